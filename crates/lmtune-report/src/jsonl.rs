//! Reading `results.jsonl` (one [`Record`] per line; written by
//! [`crate::export`]).

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use lmtune_core::record::{Record, RESULTS_SCHEMA_VERSION};

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
