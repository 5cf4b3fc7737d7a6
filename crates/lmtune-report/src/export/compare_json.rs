//! The regression gate's verdicts as JSON (`"format": "lmtune-compare"`,
//! version 1), for scripts.

use std::io;

use crate::compare::Comparison;

use super::{text, Exporter};

pub struct CompareJson;

impl Exporter<Comparison> for CompareJson {
    fn body(&self, c: &Comparison) -> io::Result<Vec<u8>> {
        let value = serde_json::json!({ "format": "lmtune-compare", "version": 1, "regressed": c.regressed(), "comparison": c });
        text(serde_json::to_string_pretty(&value).map_err(io::Error::other)?)
    }
}
