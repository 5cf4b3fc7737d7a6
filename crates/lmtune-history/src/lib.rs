//! Performance history: a store of runs per commit, and a gate over it.
//!
//! This crate owns the history store — one embedded SQLite file (WAL mode,
//! a versioned schema migrated on open, see [`schema`]) in which every run
//! is filed under its commit, branch, commit time and environment — and the
//! gate that judges a commit's runs against the last N runs of its series.
//! A series is one branch in one environment: runs whose fingerprints
//! differ (`Fingerprint::differences`, the rule of `compare`, lmtune's own
//! commit aside) are never mixed. Adding the same run (run_id + hash of its
//! records) twice stores it once. It also finds the commits where a point's
//! level shifted ([`changes`], E-Divisive means in [`edivisive`]) and
//! exports the store (CSV, JSON lines, Bencher Metric Format).
//!
//! It depends on lmtune-core (records, fingerprints, the statistics of the
//! gate) and lmtune-report (reading results, the `compare` exporters); they
//! do not depend on it.
//!
//! ```no_run
//! use lmtune_history::{check, CheckParams, RunMeta, Store};
//! use lmtune_core::compare::GateParams;
//! use lmtune_report::compare::Metric;
//! let mut store = Store::open("history.sqlite".as_ref())?;
//! let (_, records) = lmtune_report::load_results("results/run".as_ref())?;
//! let meta = RunMeta { commit: "abc123".into(), branch: "main".into(), commit_time: "2026-12-01T09:00:00Z".into() };
//! for run in lmtune_history::runs_in(&records) {
//!     store.add_run(&meta, &run)?;
//! }
//! let params = CheckParams { window: 10, gate: GateParams { threshold: 0.05, alpha: 0.05 }, metrics: vec![Metric::Tg, Metric::Pp], merge_base: None };
//! let verdicts = check(&store, "abc123", &params)?;
//! println!("regressed: {}", verdicts.regressed());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod changes;
mod changes_format;
pub mod edivisive;
mod error;
mod export;
mod format;
mod gate;
pub mod git;
mod points;
pub mod schema;
mod series;
mod store;
mod trend;

pub use changes::{changes, ChangesParams, ChangesReport, Step, StepKind, DEFAULT_LAST_COMMITS};
pub use changes_format::ChangesFormat;
pub use error::HistoryError;
pub use export::{export, export_rows, ExportFilter, ExportFormat, ExportRow};
pub use format::CheckFormat;
pub use gate::{check, judge, CheckParams, HistoryCheck, MergeBase, SeriesCheck, MIN_BASE_RUNS};
pub use points::{point_means, PointMean};
pub use series::{commit_means, CommitMeans, PointKey, Span};
pub use store::{runs_in, Added, RunMeta, RunRow, Series, Store, DEFAULT_DB};
pub use trend::{trends, Trend, TrendCommit};

/// A time as the store keeps it: RFC 3339 in UTC, to the second, so that
/// times sort as text.
pub fn normalize_time(value: &str) -> Result<String, HistoryError> {
    chrono::DateTime::parse_from_rfc3339(value.trim())
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .format("%Y-%m-%dT%H:%M:%SZ")
                .to_string()
        })
        .map_err(|e| HistoryError::Time {
            value: value.to_string(),
            what: e.to_string(),
        })
}

pub(crate) fn now_utc() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}
