//! Change points through the store: a fake history of the committed
//! quickstart run (relabelled per commit, every t/s scaled: a fake 10%
//! slowdown at one commit and fake ±1% noise), then `changes` and `check`.

use std::path::Path;

use lmtune_core::compare::{GateParams, Verdict};
use lmtune_core::record::Record;
use lmtune_history::{
    changes, check, ChangesFormat, ChangesParams, CheckFormat, CheckParams, MergeBase, RunMeta,
    StepKind, Store, DEFAULT_LAST_COMMITS,
};
use lmtune_report::compare::Metric;

fn quickstart() -> Vec<Record> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../results/2026-11-21-vm-quickstart");
    lmtune_report::load_results(&dir).unwrap().1
}

fn sha(i: usize) -> String {
    format!("{i:040x}")
}

/// Adds commit `i` (one run, t/s × `scale`).
fn add(store: &mut Store, template: &[Record], i: usize, scale: f64) {
    let mut run = template.to_vec();
    for r in &mut run {
        r.run_id = format!("fake-{i}");
        r.measurement
            .samples_ts
            .iter_mut()
            .for_each(|x| *x *= scale);
        if let Some(s) = r.tokens_per_s.as_mut() {
            s.mean *= scale;
        }
    }
    let meta = RunMeta {
        commit: sha(i),
        branch: "main".into(),
        commit_time: format!("2026-12-01T{:02}:{:02}:00Z", i / 60, i % 60),
    };
    let refs: Vec<&Record> = run.iter().collect();
    store.add_run(&meta, &refs).unwrap();
}

/// 12 commits at the recorded speed, then 8 at 90% of it; ±1% noise.
fn stepped_store(dir: &Path) -> Store {
    let template = quickstart();
    let mut store = Store::open(&dir.join("history.sqlite")).unwrap();
    let noise = [
        0.0, 0.01, -0.008, 0.004, -0.01, 0.006, -0.003, 0.009, -0.006, 0.002,
    ];
    for i in 0..20 {
        let level = if i < 12 { 1.0 } else { 0.9 };
        add(
            &mut store,
            &template,
            i,
            level * (1.0 + noise[i % noise.len()]),
        );
    }
    store
}

fn changes_params() -> ChangesParams {
    ChangesParams {
        branch: None,
        metrics: vec![Metric::Tg, Metric::Pp],
        last: DEFAULT_LAST_COMMITS,
        edivisive: Default::default(),
    }
}

fn check_params() -> CheckParams {
    CheckParams {
        window: 10,
        gate: GateParams {
            threshold: 0.05,
            alpha: 0.05,
        },
        metrics: vec![Metric::Tg, Metric::Pp],
        merge_base: None,
    }
}

#[test]
fn a_10_percent_slowdown_is_a_change_point_of_every_point_at_its_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = stepped_store(dir.path());
    let report = changes(&store, &changes_params()).unwrap();
    assert_eq!(report.point_series, 8);
    assert_eq!(report.steps.len(), 8, "{:#?}", report.steps);
    for s in &report.steps {
        assert_eq!(s.commit, sha(12));
        assert_eq!(s.previous_commit, sha(11));
        assert_eq!(s.kind, StepKind::Regression);
        assert!((s.change + 0.1).abs() < 0.01, "{}", s.change);
        assert_eq!((s.commits_before, s.commits_after), (12, 8));
    }
    let md = ChangesFormat::Markdown.render(&report);
    assert!(
        md.starts_with("8 change point(s) in 8 point series of 1 series"),
        "{md}"
    );
    assert!(md.contains("| -10."), "{md}");
}

#[test]
fn last_n_commits_leave_the_step_out() {
    let dir = tempfile::tempdir().unwrap();
    let store = stepped_store(dir.path());
    let mut params = changes_params();
    params.last = 8;
    assert!(changes(&store, &params).unwrap().steps.is_empty());
}

#[test]
fn check_of_the_stepped_commit_is_regressed_and_names_the_change_point() {
    let dir = tempfile::tempdir().unwrap();
    let store = stepped_store(dir.path());
    let result = check(&store, &sha(12), &check_params()).unwrap();
    assert!(result.regressed());
    let series = &result.series[0];
    assert!(series
        .comparison
        .rows
        .iter()
        .all(|r| r.change.verdict == Verdict::Regressed));
    assert_eq!(series.change_points.len(), 8);
    assert!(series
        .comparison
        .notes
        .iter()
        .any(|n| n.starts_with("CHANGE POINT at this commit")));
    // Before the step, and after it: no change point at the commit checked.
    for i in [5, 15] {
        let other = check(&store, &sha(i), &check_params()).unwrap();
        assert!(other.series[0].change_points.is_empty(), "commit {i}");
    }
}

/// Commit 15 is three commits past the step at 12: its last 10 runs are
/// 7 at the old level and 3 at the new one, a base that half-accepts the
/// slowdown. It is judged against the 10 runs before commit 12 instead.
#[test]
fn a_slowdown_inside_the_base_window_is_judged_against_the_level_it_left() {
    let dir = tempfile::tempdir().unwrap();
    let store = stepped_store(dir.path());
    let result = check(&store, &sha(15), &check_params()).unwrap();
    let series = &result.series[0];
    assert!(series.change_points.is_empty());
    assert_eq!(series.comparison.rows.len(), 8);
    for row in &series.comparison.rows {
        assert_eq!(row.change.verdict, Verdict::Regressed, "{row:?}");
        assert!((row.change.relative_change + 0.1).abs() < 0.02, "{row:?}");
    }
    let note = series
        .comparison
        .notes
        .iter()
        .find(|n| n.starts_with("STEP IN THE BASE at commit 000000000000:"))
        .unwrap_or_else(|| panic!("{:?}", series.comparison.notes));
    assert!(
        note.contains("8 point(s) are judged against the 10 run(s) before it")
            && note.ends_with(" and 5 more"),
        "{note}"
    );
    // Before the step nothing moves: the base is one level.
    let before = check(&store, &sha(10), &check_params()).unwrap();
    assert!(!before.regressed());
    assert!(!before.series[0]
        .comparison
        .notes
        .iter()
        .any(|n| n.starts_with("STEP IN THE BASE")));
}

#[test]
fn changes_of_an_unknown_branch_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = stepped_store(dir.path());
    let mut params = changes_params();
    params.branch = Some("nope".into());
    let err = changes(&store, &params).unwrap_err().to_string();
    assert!(err.starts_with("branch nope has no runs"), "{err}");
}

#[test]
fn a_branch_without_history_is_judged_against_main_up_to_its_merge_base() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = stepped_store(dir.path());
    // A fake feature branch forked from commit 5 (before the step), 10% slower.
    let mut run = quickstart();
    for r in &mut run {
        r.run_id = "fake-feature".into();
        if let Some(s) = r.tokens_per_s.as_mut() {
            s.mean *= 0.9;
        }
    }
    let meta = RunMeta {
        commit: "feed".repeat(10),
        branch: "feature".into(),
        commit_time: "2026-12-02T00:00:00Z".into(),
    };
    store
        .add_run(&meta, &run.iter().collect::<Vec<_>>())
        .unwrap();
    let alone = check(&store, "feed", &check_params()).unwrap();
    assert!(alone.series[0].comparison.rows.is_empty());
    let mut params = check_params();
    params.merge_base = Some(MergeBase {
        branch: "main".into(),
        commit: sha(5),
        commit_time: "2026-12-01T00:05:00Z".into(),
    });
    let result = check(&store, "feed", &params).unwrap();
    let s = &result.series[0];
    assert_eq!(s.base_runs, 6, "commits 0 to 5 of main");
    assert!(result.regressed());
    assert!(
        s.comparison.notes[0].contains("branch main up to the merge base 000000000000"),
        "{:?}",
        s.comparison.notes
    );
}

#[test]
fn check_as_junit_is_one_suite_per_series_with_the_notes() {
    let dir = tempfile::tempdir().unwrap();
    let store = stepped_store(dir.path());
    let result = check(&store, &sha(12), &check_params()).unwrap();
    let xml = String::from_utf8(CheckFormat::Junit.render(&result).unwrap()).unwrap();
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n<testsuite name=\"lmtune history check 000000000000 on main"), "{xml}");
    assert_eq!(xml.matches("<?xml").count(), 1);
    assert!(
        xml.contains("tests=\"8\" failures=\"8\" skipped=\"0\""),
        "{xml}"
    );
    assert!(
        xml.contains("<system-out>base: the last 10 run(s) of branch main"),
        "{xml}"
    );
    assert!(xml.contains("CHANGE POINT at this commit"), "{xml}");
    assert!(xml.ends_with("</testsuite>\n</testsuites>\n"), "{xml}");
}
