//! `results.jsonl`: one [`Record`] per line.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use lmtune_core::record::{Record, RESULTS_SCHEMA_VERSION};

use crate::RecordSink;

pub struct JsonlSink {
    file: File,
}

impl JsonlSink {
    /// Opens `path` for appending (creating it).
    /// Opens `path` for appending (creating it). A last line cut short by a
    /// crash is removed first, so the next record starts on a line of its own.
    pub fn create(path: &Path) -> std::io::Result<JsonlSink> {
        if let Ok(bytes) = std::fs::read(path) {
            if !bytes.is_empty() && bytes.last() != Some(&b'\n') {
                let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
                OpenOptions::new()
                    .write(true)
                    .open(path)?
                    .set_len(keep as u64)?;
            }
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(JsonlSink { file })
    }
}

impl RecordSink for JsonlSink {
    fn append(&mut self, record: &Record) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(record).map_err(std::io::Error::other)?;
        line.push(b'\n');
        // One write per record keeps lines whole even if the process dies mid-way.
        self.file.write_all(&line)?;
        self.file.sync_data()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: not an lmtune record ({source})")]
    Parse {
        path: PathBuf,
        line: usize,
        source: serde_json::Error,
    },
    #[error("{path}:{line}: schema_version {found} is newer than this lmtune reads ({RESULTS_SCHEMA_VERSION}); upgrade lmtune")]
    TooNew {
        path: PathBuf,
        line: usize,
        found: u64,
    },
}

/// Reads every record of a JSONL file. A last line cut short by a crash is
/// skipped (it was never a complete record); any other bad line is an error.
pub fn read_jsonl(path: &Path) -> Result<Vec<Record>, ReadError> {
    let file = File::open(path).map_err(|source| ReadError::Io {
        path: path.into(),
        source,
    })?;
    let lines: Vec<String> = BufReader::new(file)
        .lines()
        .collect::<Result<_, _>>()
        .map_err(|source| ReadError::Io {
            path: path.into(),
            source,
        })?;
    let last = lines.iter().rposition(|l| !l.trim().is_empty());
    let mut records = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(_) if Some(i) == last && !line.ends_with('}') => continue,
            Err(source) => {
                return Err(ReadError::Parse {
                    path: path.into(),
                    line: i + 1,
                    source,
                })
            }
        };
        let version = value
            .get("schema_version")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        if version > u64::from(RESULTS_SCHEMA_VERSION) {
            return Err(ReadError::TooNew {
                path: path.into(),
                line: i + 1,
                found: version,
            });
        }
        let record = serde_json::from_value(value).map_err(|source| ReadError::Parse {
            path: path.into(),
            line: i + 1,
            source,
        })?;
        records.push(record);
    }
    Ok(records)
}
