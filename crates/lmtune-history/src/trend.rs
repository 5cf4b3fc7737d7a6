//! Trends for `lmtune report --history`: every point's value per commit,
//! one value per run (the whisker), with the change points of its series.

use std::collections::BTreeMap;

use crate::changes::{series_ids, steps_of, ChangesParams, Step};
use crate::series::{commits_of, CommitMeans, PointKey};
use crate::store::Store;
use crate::HistoryError;

/// One commit of a point's trend: the point's mean in each of its runs.
#[derive(Debug, Clone, PartialEq)]
pub struct TrendCommit {
    pub commit: String,
    pub commit_time: String,
    pub runs: Vec<f64>,
}

/// One point and metric of one series (environment, branch), oldest commit
/// first, with the change points E-Divisive finds in it.
#[derive(Debug, Clone, PartialEq)]
pub struct Trend {
    pub environment_label: String,
    pub branch: String,
    pub key: PointKey,
    pub commits: Vec<TrendCommit>,
    pub steps: Vec<Step>,
}

/// The trend of every point of the newest `params.last` commits of every
/// series (of `params.branch` only, when given).
pub fn trends(store: &Store, params: &ChangesParams) -> Result<Vec<Trend>, HistoryError> {
    let ids = series_ids(store, params.branch.as_deref())?;
    if let (Some(branch), true) = (&params.branch, ids.is_empty()) {
        return Err(HistoryError::NoSuchBranch {
            branch: branch.clone(),
        });
    }
    let mut out = Vec::new();
    for id in &ids {
        let all = commits_of(store, id.environment, &id.branch)?;
        let all = &all[all.len().saturating_sub(params.last)..];
        // Each run's points are read once: the per-run values make the
        // whiskers, their means per commit the series change points are found in.
        let mut by_point: BTreeMap<PointKey, Vec<TrendCommit>> = BTreeMap::new();
        let mut means = Vec::with_capacity(all.len());
        for (commit, commit_time, runs) in all {
            let mut values: BTreeMap<PointKey, Vec<f64>> = BTreeMap::new();
            for &run in runs {
                for p in store.points_of(run)? {
                    values.entry(p.key()).or_default().push(p.mean);
                }
            }
            means.push(CommitMeans {
                commit: commit.clone(),
                commit_time: commit_time.clone(),
                runs: runs.len(),
                points: values
                    .iter()
                    .map(|(k, v)| (k.clone(), v.iter().sum::<f64>() / v.len() as f64))
                    .collect(),
            });
            for (key, runs) in values {
                if params.metrics.contains(&key.3) {
                    by_point.entry(key).or_default().push(TrendCommit {
                        commit: commit.clone(),
                        commit_time: commit_time.clone(),
                        runs,
                    });
                }
            }
        }
        let (_, steps) = steps_of(id, &means, &params.metrics, &params.edivisive);
        for (key, commits) in by_point {
            let steps = steps
                .iter()
                .filter(|s| {
                    (&s.model, &s.test, &s.knobs, s.metric) == (&key.0, &key.1, &key.2, key.3)
                })
                .cloned()
                .collect();
            out.push(Trend {
                environment_label: id.environment_label.clone(),
                branch: id.branch.clone(),
                key,
                commits,
                steps,
            });
        }
    }
    Ok(out)
}
