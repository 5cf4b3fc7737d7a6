use std::path::PathBuf;

/// Why the history could not be read or written. Each message is one line
/// that names the file or flag and the fix.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("{}: cannot open the history store: {source}", .path.display())]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("{}: cannot create its folder: {source}", .path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: no history store there; add runs first with `lmtune history add RESULTS --db {}`", .path.display(), .path.display())]
    Missing { path: PathBuf },
    #[error("{}: written by a newer lmtune (schema version {found}; this one reads up to {known}): upgrade lmtune", .path.display())]
    NewerSchema {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("{}: {source}", .path.display())]
    Sql {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("run {run_id}: no ok record has a tg or pp measurement; nothing to add")]
    NothingToAdd { run_id: String },
    #[error("no run of commit {commit} in the history store; add its results first with `lmtune history add RESULTS --commit {commit}`")]
    NoRunsOfCommit { commit: String },
    #[error("commit {prefix} is ambiguous in the history store ({}); give more of the SHA", .candidates.join(", "))]
    AmbiguousCommit {
        prefix: String,
        candidates: Vec<String>,
    },
    #[error(
        "`git {args}` failed ({what}); outside a git checkout give --commit, --branch and --time"
    )]
    Git { args: String, what: String },
    #[error(
        "branch {branch} has no runs in the history store; `lmtune history list` shows its series"
    )]
    NoSuchBranch { branch: String },
    #[error("--format bencher exports one commit in one environment, and these runs span {commits} commit(s) in {environments} environment(s); give --commit SHA and --environment ID (`lmtune history list` shows them)")]
    BencherScope { commits: usize, environments: usize },
    #[error("--time {value}: {what}; write RFC 3339, e.g. 2026-12-01T09:30:00Z")]
    Time { value: String, what: String },
}
