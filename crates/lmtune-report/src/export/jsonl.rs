//! JSONL: one [`Record`] per line, as serde writes it (the source of truth;
//! `read_jsonl` reads it back).

use std::io;

use lmtune_core::record::Record;

use super::Exporter;

pub struct Jsonl;

impl Exporter<[Record]> for Jsonl {
    fn body(&self, records: &[Record]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        for record in records {
            serde_json::to_writer(&mut out, record).map_err(io::Error::other)?;
            out.push(b'\n');
        }
        Ok(out)
    }
}
