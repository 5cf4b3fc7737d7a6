//! The gate over history: a commit's runs against the last N runs of its
//! series (same branch, same environment), point by point, with the run as
//! the unit — each run's mean t/s is one sample, so the between-run
//! variance that one run's repetitions miss is what the test measures.
//!
//! Two or more runs of the commit: Welch's t-test over runs
//! ([`compare_samples`]); one run: Student's test of one new run against
//! the base ([`compare_one_run`]). Same verdicts and thresholds as `compare`.
//!
//! A slowdown that the gate missed (one noisy run rarely shows a 10% step
//! beyond a 5% threshold) must not become the bar the next commits are held
//! to. So when E-Divisive over the commits around the checked one finds a
//! regression step inside the base window, that point is judged against the
//! runs before the step — the level it left — and a note says so.

use std::collections::BTreeMap;

use lmtune_core::compare::{compare_one_run, compare_samples, Change, GateParams, Verdict};
use lmtune_report::compare::{Comparison, Metric, Row};
use serde::Serialize;

use crate::changes::{steps_of, SeriesId, Step, StepKind};
use crate::edivisive::EDivisiveParams;
use crate::points::PointMean;
use crate::series::{commit_means, CommitMeans, Span};
use crate::store::Store;
use crate::HistoryError;

/// Fewer earlier runs than this and a point's verdict is Inconclusive: two
/// runs give a variance too rough to judge a third by.
pub const MIN_BASE_RUNS: usize = 3;

/// The commits around the one checked that its change points are searched
/// in: a step at a commit shows once min_size commits follow it, so a
/// commit is re-checked usefully after a few more.
const CHANGE_COMMITS_BEFORE: usize = 50;
const CHANGE_COMMITS_AFTER: usize = 10;

#[derive(Debug, Clone)]
pub struct CheckParams {
    /// How many earlier runs of the series form the base.
    pub window: usize,
    pub gate: GateParams,
    pub metrics: Vec<Metric>,
    /// Where to look when the commit's branch has no earlier runs in an
    /// environment (a new feature branch): its merge base with main.
    pub merge_base: Option<MergeBase>,
}

/// The merge base of the checked commit with the main branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeBase {
    /// The branch it is on, e.g. `main`.
    pub branch: String,
    pub commit: String,
    /// RFC 3339 UTC, see [`crate::normalize_time`].
    pub commit_time: String,
}

/// The check of a commit in one series.
#[derive(Debug, Clone, Serialize)]
pub struct SeriesCheck {
    pub environment: i64,
    pub environment_label: String,
    pub branch: String,
    /// The base's commits, newest first.
    pub base_commits: Vec<String>,
    pub base_runs: usize,
    pub current_runs: usize,
    pub comparison: Comparison,
    /// The points whose newest change point (E-Divisive over the commits
    /// around this one) is this commit.
    pub change_points: Vec<Step>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HistoryCheck {
    pub commit: String,
    pub window: usize,
    pub series: Vec<SeriesCheck>,
}

impl HistoryCheck {
    pub fn regressed(&self) -> bool {
        self.series.iter().any(|s| s.comparison.regressed())
    }
}

/// Checks the runs of `commit` (a SHA or a prefix of one) in every series they are in.
pub fn check(
    store: &Store,
    commit: &str,
    params: &CheckParams,
) -> Result<HistoryCheck, HistoryError> {
    let commit = store.resolve_commit(commit)?;
    let runs = store.runs_of_commit(&commit)?;
    let mut groups: BTreeMap<(i64, String), Vec<_>> = BTreeMap::new();
    for r in runs {
        groups
            .entry((r.environment, r.branch.clone()))
            .or_default()
            .push(r);
    }
    let mut series = Vec::new();
    for ((environment, branch), current) in groups {
        let newest = current
            .iter()
            .map(|r| r.commit_time.as_str())
            .max()
            .unwrap_or("");
        let mut base = store.base_runs(environment, &branch, &commit, newest, params.window)?;
        let mut base_from = format!("branch {branch}");
        let fallback = params.merge_base.as_ref().filter(|m| m.branch != branch);
        let fell_back = base.is_empty() && fallback.is_some();
        if let (true, Some(mb)) = (base.is_empty(), fallback) {
            base = store.base_runs(
                environment,
                &mb.branch,
                &commit,
                &mb.commit_time,
                params.window,
            )?;
            base_from = format!(
                "branch {} up to the merge base {} (branch {branch} has no earlier runs here)",
                mb.branch,
                &mb.commit[..mb.commit.len().min(12)]
            );
        }
        let mut base_commits: Vec<String> = Vec::new();
        for r in &base {
            if !base_commits.contains(&r.commit) {
                base_commits.push(r.commit.clone());
            }
        }
        let base_points = base
            .iter()
            .map(|r| store.points_of(r.id))
            .collect::<Result<Vec<_>, _>>()?;
        let current_points = current
            .iter()
            .map(|r| store.points_of(r.id))
            .collect::<Result<Vec<_>, _>>()?;
        let mut comparison = judge(&base_points, &current_points, &params.metrics, params.gate);
        comparison.notes.insert(
            0,
            format!(
                "base: the last {} run(s) of {base_from} in this environment ({} commit(s), window {}); each run's mean is one sample",
                base.len(),
                base_commits.len(),
                params.window
            ),
        );
        let id = SeriesId {
            environment,
            environment_label: store.environment_label(environment)?,
            branch,
        };
        let (commits, steps) = steps_around(store, &id, &commit, &params.metrics)?;
        // Only a base from this branch can hold this branch's steps.
        if !fell_back {
            let in_base = steps_in_base(&commits, &steps, &commit, &base_commits);
            for (step_commit, keys) in in_base {
                rejudge_before_step(
                    store,
                    &id,
                    &commits,
                    (&step_commit, &keys),
                    &current_points,
                    params,
                    &mut comparison,
                )?;
            }
        }
        let change_points = newest_at(steps, &commit);
        for s in &change_points {
            comparison.notes.push(format!(
                "CHANGE POINT at this commit: {} {} stepped {:+.1}% ({:.2} -> {:.2}, {} commit(s) before, {} after; E-Divisive p = {:.3})",
                s.point_label(),
                crate::points::metric_name(s.metric),
                s.change * 100.0,
                s.before_mean,
                s.after_mean,
                s.commits_before,
                s.commits_after,
                s.p_value
            ));
        }
        series.push(SeriesCheck {
            environment,
            environment_label: id.environment_label,
            branch: id.branch,
            base_commits,
            base_runs: base.len(),
            current_runs: current.len(),
            comparison,
            change_points,
        });
    }
    Ok(HistoryCheck {
        commit,
        window: params.window,
        series,
    })
}

/// The commits around `commit` (oldest first) and every point's steps over them.
fn steps_around(
    store: &Store,
    id: &SeriesId,
    commit: &str,
    metrics: &[Metric],
) -> Result<(Vec<CommitMeans>, Vec<Step>), HistoryError> {
    let span = Span::Around {
        commit: commit.to_string(),
        before: CHANGE_COMMITS_BEFORE,
        after: CHANGE_COMMITS_AFTER,
    };
    let commits = commit_means(store, id.environment, &id.branch, &span)?;
    let (_, steps) = steps_of(id, &commits, metrics, &EDivisiveParams::default());
    Ok((commits, steps))
}

/// Judges the points `keys`, which stepped down at `step_commit` inside
/// the base window, against the last `window` runs before that commit, and
/// says so in a note.
fn rejudge_before_step(
    store: &Store,
    id: &SeriesId,
    commits: &[CommitMeans],
    (step_commit, keys): (&str, &[Key]),
    current_points: &[Vec<PointMean>],
    params: &CheckParams,
    comparison: &mut Comparison,
) -> Result<(), HistoryError> {
    let Some(at) = commits.iter().position(|c| c.commit == step_commit) else {
        return Ok(());
    };
    // A step has min_size commits before it, so `at` is at least 1.
    let before_time = &commits[at.saturating_sub(1)].commit_time;
    let older = store.base_runs(
        id.environment,
        &id.branch,
        step_commit,
        before_time,
        params.window,
    )?;
    let older_points = older
        .iter()
        .map(|r| store.points_of(r.id))
        .collect::<Result<Vec<_>, _>>()?;
    let rejudged = judge(&older_points, current_points, &params.metrics, params.gate);
    let mut moved = Vec::new();
    for row in rejudged.rows {
        let key = row_key(&row);
        if !keys.contains(&key) {
            continue;
        }
        if let Some(old) = comparison.rows.iter_mut().find(|r| row_key(r) == key) {
            moved.push(format!(
                "{} {}",
                label(&key),
                crate::points::metric_name(key.3)
            ));
            *old = row;
        }
    }
    if !moved.is_empty() {
        let named = match moved.len() {
            n if n > 3 => format!("{} and {} more", moved[..3].join(", "), n - 3),
            _ => moved.join(", "),
        };
        comparison.notes.push(format!(
            "STEP IN THE BASE at commit {}: E-Divisive finds a slowdown there, inside the base window, so {} point(s) are judged against the {} run(s) before it (the level the step left), not the runs since: {named}",
            &step_commit[..step_commit.len().min(12)],
            moved.len(),
            older.len(),
        ));
    }
    Ok(())
}

fn row_key(r: &Row) -> Key {
    (r.model.clone(), r.test.clone(), r.knobs.clone(), r.metric)
}

/// The steps whose point's newest change point is `commit`.
fn newest_at(steps: Vec<Step>, commit: &str) -> Vec<Step> {
    let mut newest: BTreeMap<Key, Step> = BTreeMap::new();
    for s in steps {
        // steps_of gives each point's steps oldest first.
        newest.insert(step_key(&s), s);
    }
    newest
        .into_values()
        .filter(|s| s.commit == commit)
        .collect()
}

fn step_key(s: &Step) -> Key {
    (s.model.clone(), s.test.clone(), s.knobs.clone(), s.metric)
}

/// The regression steps inside the base window, by the commit they
/// start at: for each point, its newest step at or before `commit`, when
/// that step is a slowdown, is not `commit` itself (whose base is before it
/// already) and is one of `base_commits` (so that runs at the new level are
/// in the base). Pure: no I/O.
pub(crate) fn steps_in_base(
    commits: &[CommitMeans],
    steps: &[Step],
    commit: &str,
    base_commits: &[String],
) -> BTreeMap<String, Vec<Key>> {
    let Some(checked) = commits.iter().position(|c| c.commit == commit) else {
        return BTreeMap::new();
    };
    let position = |sha: &str| commits.iter().position(|c| c.commit == sha);
    let mut newest: BTreeMap<Key, &Step> = BTreeMap::new();
    for s in steps {
        if position(&s.commit).is_some_and(|p| p <= checked) {
            newest.insert(step_key(s), s);
        }
    }
    let mut out: BTreeMap<String, Vec<Key>> = BTreeMap::new();
    for (key, s) in newest {
        if s.kind == StepKind::Regression && s.commit != commit && base_commits.contains(&s.commit)
        {
            out.entry(s.commit.clone()).or_default().push(key);
        }
    }
    out
}

type Key = (String, String, String, Metric);

fn by_point(runs: &[Vec<PointMean>], metrics: &[Metric]) -> BTreeMap<Key, Vec<f64>> {
    let mut out: BTreeMap<Key, Vec<f64>> = BTreeMap::new();
    for run in runs {
        for p in run.iter().filter(|p| metrics.contains(&p.metric)) {
            out.entry(p.key()).or_default().push(p.mean);
        }
    }
    out
}

fn label((model, test, knobs, _): &Key) -> String {
    format!("{model} {test} {knobs}")
}

/// Judges each point of the current runs against the base runs (each
/// inner `Vec` is one run). Pure: no I/O.
pub fn judge(
    base: &[Vec<PointMean>],
    current: &[Vec<PointMean>],
    metrics: &[Metric],
    gate: GateParams,
) -> Comparison {
    let (b, c) = (by_point(base, metrics), by_point(current, metrics));
    let mut rows = Vec::new();
    let mut too_few = 0;
    let mut new_points = Vec::new();
    for (key, cur) in &c {
        // A point new in this series has nothing to be judged against.
        let Some(bas) = b.get(key) else {
            new_points.push(label(key));
            continue;
        };
        let direction = key.3.direction();
        let mut change: Change = match cur.as_slice() {
            [one] => compare_one_run(bas, *one, direction, gate),
            _ => compare_samples(bas, cur, direction, gate),
        };
        if bas.len() < MIN_BASE_RUNS {
            too_few += 1;
            change.verdict = Verdict::Inconclusive;
            change.ci_low = None;
            change.ci_high = None;
            change.p_value = None;
            change.reason = format!(
                "only {} earlier run(s) of this point in the series; the gate needs at least {MIN_BASE_RUNS}",
                bas.len()
            );
        }
        rows.push(Row {
            model: key.0.clone(),
            test: key.1.clone(),
            knobs: key.2.clone(),
            metric: key.3,
            change,
            different_environment: false,
            base_runs: bas.len(),
            current_runs: cur.len(),
        });
    }
    let mut notes = Vec::new();
    if too_few > 0 || !new_points.is_empty() {
        notes.push(format!(
            "TOO FEW RUNS: {too_few} point(s) have fewer than {MIN_BASE_RUNS} earlier runs in this series and are Inconclusive, {} have none and are not judged (only in current): neither is a pass; add more runs of this branch",
            new_points.len()
        ));
    }
    let missing_metrics = metrics
        .iter()
        .copied()
        .filter(|m| !c.keys().any(|k| k.3 == *m))
        .collect();
    Comparison {
        gate,
        rows,
        only_in_base: b
            .keys()
            .filter(|k| !c.contains_key(*k))
            .map(label)
            .collect(),
        only_in_current: new_points,
        environment_differences: Vec::new(),
        missing_metrics,
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GATE: GateParams = GateParams {
        threshold: 0.05,
        alpha: 0.05,
    };

    fn run(tg: f64) -> Vec<PointMean> {
        vec![PointMean {
            model: "m.gguf".into(),
            test: "tg32".into(),
            knobs: "t=1".into(),
            metric: Metric::Tg,
            mean: tg,
            sd: None,
            repetitions: 5,
        }]
    }

    fn verdict(base: &[f64], current: &[f64]) -> Verdict {
        let b: Vec<_> = base.iter().map(|&x| run(x)).collect();
        let c: Vec<_> = current.iter().map(|&x| run(x)).collect();
        let cmp = judge(&b, &c, &[Metric::Tg, Metric::Pp], GATE);
        assert_eq!(cmp.missing_metrics, vec![Metric::Pp]);
        cmp.rows[0].change.verdict
    }

    #[test]
    fn the_run_is_the_unit() {
        let base = [100.0, 99.0, 101.0, 98.0, 102.0];
        assert_eq!(verdict(&base, &[80.0]), Verdict::Regressed);
        assert_eq!(verdict(&base, &[80.0, 81.0]), Verdict::Regressed);
        assert_eq!(verdict(&base, &[100.0]), Verdict::NoChange);
        assert_eq!(verdict(&base, &[125.0]), Verdict::Improved);
    }

    fn step(commit: &str, kind: StepKind) -> Step {
        Step {
            environment: 1,
            environment_label: "vm".into(),
            branch: "main".into(),
            model: "m.gguf".into(),
            test: "tg32".into(),
            knobs: "t=1".into(),
            metric: Metric::Tg,
            commit: commit.into(),
            commit_time: String::new(),
            previous_commit: String::new(),
            before_mean: 100.0,
            after_mean: 90.0,
            change: -0.1,
            kind,
            p_value: 0.001,
            commits_before: 3,
            commits_after: 3,
        }
    }

    #[test]
    fn only_a_slowdown_inside_the_base_window_moves_the_base() {
        let commits: Vec<CommitMeans> = (0..10)
            .map(|i| CommitMeans {
                commit: format!("c{i}"),
                commit_time: format!("2026-12-01T00:0{i}:00Z"),
                runs: 1,
                points: BTreeMap::new(),
            })
            .collect();
        let base: Vec<String> = (3..7).rev().map(|i| format!("c{i}")).collect();
        let moved = |steps: &[Step]| steps_in_base(&commits, steps, "c7", &base);
        let slowdown = moved(&[step("c5", StepKind::Regression)]);
        assert_eq!(slowdown.len(), 1);
        assert_eq!(slowdown["c5"].len(), 1);
        // An improvement, a step before the window, the commit itself, a step after it.
        assert!(moved(&[step("c5", StepKind::Improvement)]).is_empty());
        assert!(moved(&[step("c2", StepKind::Regression)]).is_empty());
        assert!(moved(&[step("c7", StepKind::Regression)]).is_empty());
        assert!(moved(&[step("c8", StepKind::Regression)]).is_empty());
        // Only the newest step at or before the commit counts: a slowdown since recovered moves nothing.
        let recovered = [
            step("c4", StepKind::Regression),
            step("c6", StepKind::Improvement),
        ];
        assert!(moved(&recovered).is_empty());
    }

    #[test]
    fn fewer_than_three_base_runs_are_inconclusive_even_for_a_big_drop() {
        assert_eq!(verdict(&[100.0, 101.0], &[50.0]), Verdict::Inconclusive);
        let cmp = judge(&[], &[run(50.0)], &[Metric::Tg], GATE);
        assert!(cmp.rows.is_empty());
        assert_eq!(cmp.only_in_current.len(), 1);
        assert!(cmp.notes[0].starts_with("TOO FEW RUNS"), "{:?}", cmp.notes);
    }
}
