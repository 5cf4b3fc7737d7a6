//! A series as change-point detection reads it: one value per commit —
//! the mean of that commit's runs — per point and metric, in commit order
//! (commit time, then the order the runs were added).

use std::collections::BTreeMap;

use lmtune_report::compare::Metric;

use crate::store::Store;
use crate::HistoryError;

/// What identifies a point across runs: model, test, knobs, metric.
pub type PointKey = (String, String, String, Metric);

/// One commit of a series.
#[derive(Debug, Clone, PartialEq)]
pub struct CommitMeans {
    pub commit: String,
    pub commit_time: String,
    pub runs: usize,
    /// Each point's mean over the commit's runs.
    pub points: BTreeMap<PointKey, f64>,
}

/// The commits of the series (environment, branch), oldest first, without their points.
pub(crate) fn commits_of(
    store: &Store,
    environment: i64,
    branch: &str,
) -> Result<Vec<(String, String, Vec<i64>)>, HistoryError> {
    let mut stmt = store.sql(store.conn.prepare(
        "SELECT id, commit_sha, commit_time FROM runs
         WHERE environment_id = ?1 AND branch = ?2 ORDER BY commit_time, id",
    ))?;
    let rows: Vec<(i64, String, String)> = store.sql(
        stmt.query_map(rusqlite::params![environment, branch], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .and_then(|rows| rows.collect()),
    )?;
    let mut commits: Vec<(String, String, Vec<i64>)> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    for (id, commit, time) in rows {
        match index.get(&commit) {
            Some(&i) => commits[i].2.push(id),
            None => {
                index.insert(commit.clone(), commits.len());
                commits.push((commit, time, vec![id]));
            }
        }
    }
    Ok(commits)
}

/// Which commits of a series to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Span {
    /// The newest N commits.
    Last(usize),
    /// Up to `before` commits before `commit`, it, and up to `after` after it.
    Around {
        commit: String,
        before: usize,
        after: usize,
    },
}

/// The commits of the series (environment, branch) in `span`, oldest
/// first, each with its points' means over its runs.
pub fn commit_means(
    store: &Store,
    environment: i64,
    branch: &str,
    span: &Span,
) -> Result<Vec<CommitMeans>, HistoryError> {
    let commits = commits_of(store, environment, branch)?;
    let range = match span {
        Span::Last(n) => commits.len().saturating_sub(*n)..commits.len(),
        Span::Around {
            commit,
            before,
            after,
        } => match commits.iter().position(|c| &c.0 == commit) {
            Some(i) => i.saturating_sub(*before)..(i + 1 + after).min(commits.len()),
            None => 0..0,
        },
    };
    let mut out = Vec::new();
    for (commit, commit_time, runs) in &commits[range] {
        let mut sums: BTreeMap<PointKey, (f64, usize)> = BTreeMap::new();
        for &run in runs {
            for p in store.points_of(run)? {
                let entry = sums.entry(p.key()).or_default();
                entry.0 += p.mean;
                entry.1 += 1;
            }
        }
        out.push(CommitMeans {
            commit: commit.clone(),
            commit_time: commit_time.clone(),
            runs: runs.len(),
            points: sums
                .into_iter()
                .map(|(k, (sum, n))| (k, sum / n as f64))
                .collect(),
        });
    }
    Ok(out)
}
