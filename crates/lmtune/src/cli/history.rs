//! The flags of `lmtune history` and its subcommands.

use std::path::PathBuf;

use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The history store (a SQLite file).
    #[arg(long, global = true, value_name = "PATH", default_value = lmtune_history::DEFAULT_DB)]
    pub db: PathBuf,
    #[command(subcommand)]
    pub command: HistoryCommand,
}

#[derive(Debug, Subcommand)]
pub enum HistoryCommand {
    /// File runs under a commit (adding the same run twice stores it once).
    Add(HistoryAddArgs),
    /// Judge a commit's runs against the last runs of its branch (exit 1 on a regression).
    Check(HistoryCheckArgs),
    /// Find the commits where a point's level shifted: E-Divisive means over
    /// one value per commit, with each step's size and p-value (no threshold per metric).
    Changes(HistoryChangesArgs),
    /// Write the stored point means out: csv or jsonl (one row per run,
    /// point and metric), or one commit as Bencher Metric Format JSON.
    Export(HistoryExportArgs),
    /// List the series (environment × branch) and their runs.
    List,
}

#[derive(Debug, Args)]
pub struct HistoryAddArgs {
    /// Results: results directories, results.jsonl, or llama-bench output (-o json, jsonl, csv).
    #[arg(value_name = "RESULTS", required = true)]
    pub paths: Vec<PathBuf>,
    /// The commit the runs measured (default: `git rev-parse HEAD`).
    #[arg(long, value_name = "SHA")]
    pub commit: Option<String>,
    /// Its branch (default: `git rev-parse --abbrev-ref HEAD`).
    #[arg(long, value_name = "B")]
    pub branch: Option<String>,
    /// Its time, RFC 3339 (default: the commit's committer date from git).
    #[arg(long, value_name = "T")]
    pub time: Option<String>,
}

#[derive(Debug, Args)]
pub struct HistoryCheckArgs {
    /// The commit to judge, or a prefix of its SHA (default: `git rev-parse HEAD`).
    #[arg(long, value_name = "SHA")]
    pub commit: Option<String>,
    /// How many earlier runs of the series form the base.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub window: usize,
    /// Smallest relative change that counts, e.g. 5% or 0.05.
    #[arg(long, default_value = "5%")]
    pub threshold: String,
    /// Significance level of the t-test.
    #[arg(long, default_value_t = 0.05)]
    pub alpha: f64,
    /// Metrics to judge: tg, pp (comma-separated).
    #[arg(long, default_value = "tg,pp")]
    pub metric: String,
    /// Output: table, md (for a PR comment), json, junit.
    #[arg(long, default_value = "table")]
    pub format: String,
    /// A branch without earlier runs is judged against this branch's runs
    /// up to its merge base with it.
    #[arg(long, value_name = "B", default_value = "main")]
    pub base_branch: String,
    /// The merge base to use (default: `git merge-base COMMIT BASE_BRANCH`, when git knows it).
    #[arg(long, value_name = "SHA")]
    pub merge_base: Option<String>,
}

#[derive(Debug, Args)]
pub struct HistoryChangesArgs {
    /// Only this branch's series (default: every branch).
    #[arg(long, value_name = "B")]
    pub branch: Option<String>,
    /// Metrics to search: tg, pp (comma-separated).
    #[arg(long, default_value = "tg,pp")]
    pub metric: String,
    /// The newest N commits of each series.
    #[arg(long, value_name = "N", default_value_t = lmtune_history::DEFAULT_LAST_COMMITS)]
    pub last: usize,
    /// Output: table, md, json.
    #[arg(long, default_value = "table")]
    pub format: String,
}

#[derive(Debug, Args)]
pub struct HistoryExportArgs {
    /// Output: csv, jsonl, bencher (one commit: --commit, default the newest).
    #[arg(long, default_value = "csv")]
    pub format: String,
    /// Only this branch's runs.
    #[arg(long, value_name = "B")]
    pub branch: Option<String>,
    /// Only this commit's runs (a SHA or a prefix of one).
    #[arg(long, value_name = "SHA")]
    pub commit: Option<String>,
    /// Only this environment's runs (its number in `lmtune history list`).
    #[arg(long, value_name = "ID")]
    pub environment: Option<i64>,
}
