//! Named baselines: a run's records saved under a name, in a versioned
//! format of their own so later versions of lmtune can read old baselines.

use std::path::{Path, PathBuf};

use lmtune_core::record::Record;
use serde::{Deserialize, Serialize};

pub const BASELINE_FORMAT: &str = "lmtune-baseline";
pub const BASELINE_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Baseline {
    pub format: String,
    pub version: u32,
    pub name: String,
    pub created_at: String,
    /// The results directory the records came from.
    pub source: String,
    pub records: Vec<Record>,
}

#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error("baseline names may use letters, digits, '.', '-' and '_' only: {0:?}")]
    BadName(String),
    #[error(
        "no baseline named {name:?} in {dir} (save one with `lmtune run … --save-baseline {name}`)"
    )]
    Missing { name: String, dir: PathBuf },
    #[error("cannot access {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not an lmtune baseline ({what})")]
    Invalid { path: PathBuf, what: String },
    #[error("{path} is baseline format version {found}, newer than this lmtune reads ({BASELINE_VERSION}); upgrade lmtune")]
    TooNew { path: PathBuf, found: u32 },
}

/// Where baselines live: `$LMTUNE_BASELINE_DIR`, else `baselines/`.
pub fn baseline_dir() -> PathBuf {
    std::env::var_os("LMTUNE_BASELINE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("baselines"))
}

fn path_of(dir: &Path, name: &str) -> Result<PathBuf, BaselineError> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        || name.starts_with('.')
    {
        return Err(BaselineError::BadName(name.into()));
    }
    Ok(dir.join(format!("{name}.json")))
}

/// Saves `records` as baseline `name`, keeping the records of up to
/// `keep_runs − 1` earlier runs already in it (by `run_id`, newest kept).
pub fn save_baseline(
    dir: &Path,
    name: &str,
    source: &str,
    created_at: &str,
    records: Vec<Record>,
    keep_runs: usize,
) -> Result<PathBuf, BaselineError> {
    let path = path_of(dir, name)?;
    let mut records = records;
    if keep_runs > 1 && path.exists() {
        let old = load_baseline(dir, name)?.records;
        let mut runs: Vec<String> = Vec::new();
        for r in old.iter().rev() {
            if !runs.contains(&r.run_id) && !records.iter().any(|n| n.run_id == r.run_id) {
                runs.push(r.run_id.clone());
            }
        }
        runs.truncate(keep_runs - 1);
        let mut kept: Vec<Record> = old
            .into_iter()
            .filter(|r| runs.contains(&r.run_id))
            .collect();
        kept.append(&mut records);
        records = kept;
    }
    let io = |source| BaselineError::Io {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let baseline = Baseline {
        format: BASELINE_FORMAT.into(),
        version: BASELINE_VERSION,
        name: name.into(),
        created_at: created_at.into(),
        source: source.into(),
        records,
    };
    let text = serde_json::to_string_pretty(&baseline).expect("plain data serializes");
    // Write then rename, so a crash never leaves half a baseline.
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text).map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(io)?;
    Ok(path)
}

pub fn load_baseline(dir: &Path, name: &str) -> Result<Baseline, BaselineError> {
    let path = path_of(dir, name)?;
    if !path.exists() {
        return Err(BaselineError::Missing {
            name: name.into(),
            dir: dir.into(),
        });
    }
    let text = std::fs::read_to_string(&path).map_err(|source| BaselineError::Io {
        path: path.clone(),
        source,
    })?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| BaselineError::Invalid {
            path: path.clone(),
            what: e.to_string(),
        })?;
    if value.get("format").and_then(|f| f.as_str()) != Some(BASELINE_FORMAT) {
        return Err(BaselineError::Invalid {
            path,
            what: format!("no \"format\": \"{BASELINE_FORMAT}\""),
        });
    }
    let version = value.get("version").and_then(|v| v.as_u64()).unwrap_or(0) as u32;
    if version > BASELINE_VERSION {
        return Err(BaselineError::TooNew {
            path,
            found: version,
        });
    }
    serde_json::from_value(value).map_err(|e| BaselineError::Invalid {
        path,
        what: e.to_string(),
    })
}
