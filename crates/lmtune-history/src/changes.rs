//! Change points of the history: the commits where a point's level
//! shifted, found by E-Divisive means ([`crate::edivisive`]) on one value
//! per commit, with the size of each step and its significance. No
//! threshold per metric: a step counts when it stands out of its series'
//! own run-to-run noise.

use lmtune_core::compare::Direction;
use lmtune_report::compare::Metric;
use serde::Serialize;

use crate::edivisive::{change_points, EDivisiveParams};
use crate::series::{commit_means, CommitMeans, PointKey, Span};
use crate::store::Store;
use crate::HistoryError;

/// How many commits `history changes` reads per series unless told `--last`
/// (the search is O(n log n) per permutation: 3,000 commits take about 0.4 s
/// per point series).
pub const DEFAULT_LAST_COMMITS: usize = 100;

#[derive(Debug, Clone)]
pub struct ChangesParams {
    /// Only this branch's series (default: every branch).
    pub branch: Option<String>,
    pub metrics: Vec<Metric>,
    /// The newest N commits of each series.
    pub last: usize,
    pub edivisive: EDivisiveParams,
}

/// Which way a step went for its metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    Regression,
    Improvement,
}

/// A change point of one point's series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    pub environment: i64,
    pub environment_label: String,
    pub branch: String,
    pub model: String,
    pub test: String,
    pub knobs: String,
    pub metric: Metric,
    /// The first commit at the new level.
    pub commit: String,
    pub commit_time: String,
    /// The last commit at the old level.
    pub previous_commit: String,
    /// The mean of the segment before the step (from the previous change
    /// point or the series' start) and after it (to the next one or the end).
    pub before_mean: f64,
    pub after_mean: f64,
    /// after / before − 1.
    pub change: f64,
    pub kind: StepKind,
    /// E-Divisive's permutation p-value.
    pub p_value: f64,
    /// Commits in the segments before and after.
    pub commits_before: usize,
    pub commits_after: usize,
}

impl Step {
    pub fn point_label(&self) -> String {
        format!("{} {} {}", self.model, self.test, self.knobs)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ChangesReport {
    /// Series read: (environment, branch) pairs with commits.
    pub series: usize,
    /// Point series searched (one per environment, branch, point, metric).
    pub point_series: usize,
    pub last: usize,
    pub significance: f64,
    pub steps: Vec<Step>,
}

/// The series of one environment and branch, as found in the store.
#[derive(Debug, Clone)]
pub(crate) struct SeriesId {
    pub environment: i64,
    pub environment_label: String,
    pub branch: String,
}

/// The steps of every point of one series. Pure: no I/O.
pub(crate) fn steps_of(
    id: &SeriesId,
    commits: &[CommitMeans],
    metrics: &[Metric],
    p: &EDivisiveParams,
) -> (usize, Vec<Step>) {
    let mut keys: Vec<&PointKey> = commits
        .iter()
        .flat_map(|c| c.points.keys())
        .filter(|k| metrics.contains(&k.3))
        .collect();
    keys.sort();
    keys.dedup();
    let mut steps = Vec::new();
    for key in &keys {
        // The commits that measured this point, and its value in each.
        let (at, values): (Vec<usize>, Vec<f64>) = commits
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.points.get(*key).map(|v| (i, *v)))
            .unzip();
        let found = change_points(&values, p);
        let mut bounds = vec![0];
        bounds.extend(found.iter().map(|c| c.index));
        bounds.push(values.len());
        for (j, cp) in found.iter().enumerate() {
            let before = &values[bounds[j]..cp.index];
            let after = &values[cp.index..bounds[j + 2]];
            let before_mean = before.iter().sum::<f64>() / before.len() as f64;
            let after_mean = after.iter().sum::<f64>() / after.len() as f64;
            let change = after_mean / before_mean - 1.0;
            let worse = match key.3.direction() {
                Direction::HigherIsBetter => change < 0.0,
                Direction::LowerIsBetter => change > 0.0,
            };
            let commit = &commits[at[cp.index]];
            steps.push(Step {
                environment: id.environment,
                environment_label: id.environment_label.clone(),
                branch: id.branch.clone(),
                model: key.0.clone(),
                test: key.1.clone(),
                knobs: key.2.clone(),
                metric: key.3,
                commit: commit.commit.clone(),
                commit_time: commit.commit_time.clone(),
                previous_commit: commits[at[cp.index - 1]].commit.clone(),
                before_mean,
                after_mean,
                change,
                kind: if worse {
                    StepKind::Regression
                } else {
                    StepKind::Improvement
                },
                p_value: cp.p_value,
                commits_before: before.len(),
                commits_after: after.len(),
            });
        }
    }
    (keys.len(), steps)
}

/// The series of the store, optionally of one branch.
pub(crate) fn series_ids(
    store: &Store,
    branch: Option<&str>,
) -> Result<Vec<SeriesId>, HistoryError> {
    Ok(store
        .series()?
        .into_iter()
        .filter(|s| branch.is_none_or(|b| b == s.branch))
        .map(|s| SeriesId {
            environment: s.environment,
            environment_label: s.environment_label,
            branch: s.branch,
        })
        .collect())
}

/// The change points of the newest `params.last` commits of every series.
pub fn changes(store: &Store, params: &ChangesParams) -> Result<ChangesReport, HistoryError> {
    let ids = series_ids(store, params.branch.as_deref())?;
    if let (Some(branch), true) = (&params.branch, ids.is_empty()) {
        return Err(HistoryError::NoSuchBranch {
            branch: branch.clone(),
        });
    }
    let mut report = ChangesReport {
        series: ids.len(),
        point_series: 0,
        last: params.last,
        significance: params.edivisive.significance,
        steps: Vec::new(),
    };
    for id in &ids {
        let commits = commit_means(store, id.environment, &id.branch, &Span::Last(params.last))?;
        let (searched, steps) = steps_of(id, &commits, &params.metrics, &params.edivisive);
        report.point_series += searched;
        report.steps.extend(steps);
    }
    report.steps.sort_by(|a, b| {
        (a.environment, &a.branch, &a.commit_time)
            .cmp(&(b.environment, &b.branch, &b.commit_time))
            .then(a.point_label().cmp(&b.point_label()))
    });
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn commits(values: &[f64]) -> Vec<CommitMeans> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| CommitMeans {
                commit: format!("c{i:02}"),
                commit_time: format!("2026-12-01T00:{i:02}:00Z"),
                runs: 1,
                points: BTreeMap::from([(
                    ("m.gguf".into(), "tg32".into(), "t=1".into(), Metric::Tg),
                    *v,
                )]),
            })
            .collect()
    }

    fn id() -> SeriesId {
        SeriesId {
            environment: 1,
            environment_label: "vm".into(),
            branch: "main".into(),
        }
    }

    #[test]
    fn a_slowdown_is_a_regression_at_its_first_commit_with_its_size() {
        let mut values = vec![100.0, 101.0, 99.0, 100.5, 99.5, 100.0, 100.2, 99.8];
        values.extend([90.0, 90.5, 89.5, 90.2, 89.8, 90.0]);
        let (searched, steps) = steps_of(
            &id(),
            &commits(&values),
            &[Metric::Tg],
            &EDivisiveParams::default(),
        );
        assert_eq!(searched, 1);
        assert_eq!(steps.len(), 1, "{steps:?}");
        let s = &steps[0];
        assert_eq!(
            (s.commit.as_str(), s.previous_commit.as_str()),
            ("c08", "c07")
        );
        assert_eq!(s.kind, StepKind::Regression);
        assert!((s.change + 0.1).abs() < 0.005, "{}", s.change);
        assert_eq!((s.commits_before, s.commits_after), (8, 6));
        assert!(s.p_value <= 0.02);
    }

    #[test]
    fn a_metric_not_asked_for_is_not_searched() {
        let (searched, steps) = steps_of(
            &id(),
            &commits(&[1.0; 10]),
            &[Metric::Pp],
            &EDivisiveParams::default(),
        );
        assert_eq!((searched, steps.len()), (0, 0));
    }
}
