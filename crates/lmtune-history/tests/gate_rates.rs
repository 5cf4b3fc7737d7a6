//! The gate on generated histories (issue 23): how often `check` says
//! Regressed on the commit after a planted 10% slowdown, and how often it
//! says so on a history with no change (A/A). No timing involved.
//!
//! Each history is a branch of one store: 30 commits at 100 t/s with 5%
//! Gaussian run-to-run noise on the run's mean (one point, tg32), one or two
//! runs a commit; a step history drops to 90 t/s from commit k (3 to 27, as
//! in the change-point tests of `edivisive.rs`). `check` runs exactly as
//! `history check --window 10 --threshold 5%` does (alpha 0.05).
//!
//! Two states of the store are measured: as CI sees it when it checks
//! k + 1 (commits up to k + 1 stored), and later, with all 30 commits
//! stored (a re-check: the change-point search then sees the commits after).
//!
//! Why 90% Regressed on k + 1 is out of reach: the gate says Regressed only
//! when its whole 95% interval is worse than −5%. With m runs at the new
//! level and even a perfectly known base and noise, that needs an observed
//! drop beyond 5% + 1.96 · 5% / √m, which a true 10% drop gives with
//! probability Φ(√m − 1.96): 17% for one run (m = 1), 29% for two, and 90%
//! only from m = 11 runs. A base of 10 runs and an estimated variance
//! (Student, Welch) take a little more off. So these tests pin what the gate
//! reaches — the step-aware base (a slowdown inside the base window found
//! by E-Divisive: judged against the runs before it) brings k + 1 up to what
//! a base the step never reached gives — and that A/A stays under 5%.

use std::path::Path;

use lmtune_core::compare::{GateParams, Verdict};
use lmtune_core::record::Record;
use lmtune_history::edivisive::SplitMix;
use lmtune_history::{check, judge, CheckParams, PointMean, RunMeta, Store};
use lmtune_report::compare::Metric;

const HISTORIES: usize = 200;
const COMMITS: usize = 30;

fn params() -> CheckParams {
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

/// One tg32 record of the committed quickstart run: the template of a run.
fn template() -> Record {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../results/2026-11-21-vm-quickstart");
    let records = lmtune_report::load_results(&dir).unwrap().1;
    records.into_iter().find(|r| r.test == "tg32").unwrap()
}

/// Gaussian noise (Box–Muller).
fn normal(rng: &mut SplitMix) -> f64 {
    let u = rng.unit().max(1e-300);
    let v = rng.unit();
    (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}

fn sha(history: usize, commit: usize) -> String {
    format!("{history:08x}{commit:032x}")
}

/// Each run's mean t/s, per commit: 100 before `step_at`, 90 from it on.
fn generate(rng: &mut SplitMix, step_at: usize, runs: usize) -> Vec<Vec<f64>> {
    (0..COMMITS)
        .map(|i| {
            let level = if i >= step_at { 90.0 } else { 100.0 };
            (0..runs)
                .map(|_| level * (1.0 + 0.05 * normal(rng)))
                .collect()
        })
        .collect()
}

/// Files commits `from..upto` of history `h` as branch `h{h}`.
fn file(
    store: &mut Store,
    template: &Record,
    h: usize,
    values: &[Vec<f64>],
    from: usize,
    upto: usize,
) {
    for (i, runs) in values.iter().enumerate().take(upto).skip(from) {
        for (r, v) in runs.iter().enumerate() {
            let mut record = template.clone();
            record.run_id = format!("h{h}-c{i}-r{r}");
            record.tokens_per_s.as_mut().unwrap().mean = *v;
            let meta = RunMeta {
                commit: sha(h, i),
                branch: format!("h{h}"),
                commit_time: format!("2026-12-01T00:{i:02}:{r:02}Z"),
            };
            store.add_run(&meta, &[&record]).unwrap();
        }
    }
}

fn verdict_of(store: &Store, h: usize, commit: usize) -> Verdict {
    let result = check(store, &sha(h, commit), &params()).unwrap();
    assert_eq!(result.series.len(), 1);
    result.series[0].comparison.rows[0].change.verdict
}

fn run_of(v: f64) -> Vec<PointMean> {
    vec![PointMean {
        model: "m.gguf".into(),
        test: "tg32".into(),
        knobs: "t=1".into(),
        metric: Metric::Tg,
        mean: v,
        sd: None,
        repetitions: 5,
    }]
}

/// The gate's verdict on `current` against the newest `window` runs of
/// `before` (commits oldest first): `judge`, as `check` calls it.
fn judged(before: &[Vec<f64>], current: &[f64]) -> Verdict {
    let base: Vec<Vec<PointMean>> = before
        .iter()
        .rev()
        .flat_map(|runs| runs.iter().rev())
        .take(params().window)
        .map(|&v| run_of(v))
        .collect();
    let current: Vec<Vec<PointMean>> = current.iter().map(|&v| run_of(v)).collect();
    judge(&base, &current, &params().metrics, params().gate).rows[0]
        .change
        .verdict
}

#[derive(Debug, Default)]
struct Rates {
    /// `check` on k + 1, the store as CI sees it then.
    ci: usize,
    /// `check` on k + 1, all 30 commits stored.
    later: usize,
    /// `check` on k + 2 as CI sees it: the first commit at which 3 commits
    /// at the new level are stored, so that E-Divisive can place the step.
    ci_k2: usize,
    /// `check` on k itself (the stepped commit) as CI sees it.
    at_step: usize,
    /// The gate on k + 1 against the 10 runs before k only (a base the
    /// step has not reached: what a perfect step-aware base could do).
    clean_base: usize,
}

/// Each history is filed commit by commit, and each commit checked as CI
/// checks it, when it is the newest; k + 1 is checked again at the end.
fn step_rates(seed: u64, runs: usize) -> Rates {
    let template = template();
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("steps.sqlite")).unwrap();
    let mut rng = SplitMix::new(seed);
    let mut rates = Rates::default();
    let regressed = |v: Verdict| usize::from(v == Verdict::Regressed);
    for h in 0..HISTORIES {
        let k = 3 + rng.below(COMMITS - 5);
        let values = generate(&mut rng, k, runs);
        file(&mut store, &template, h, &values, 0, k + 1);
        rates.at_step += regressed(verdict_of(&store, h, k));
        file(&mut store, &template, h, &values, k + 1, k + 2);
        rates.ci += regressed(verdict_of(&store, h, k + 1));
        file(&mut store, &template, h, &values, k + 2, k + 3);
        rates.ci_k2 += regressed(verdict_of(&store, h, k + 2));
        file(&mut store, &template, h, &values, k + 3, COMMITS);
        rates.later += regressed(verdict_of(&store, h, k + 1));
        rates.clean_base += regressed(judged(&values[..k], &values[k + 1]));
    }
    rates
}

fn aa_regressed(seed: u64, runs: usize) -> usize {
    let template = template();
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("aa.sqlite")).unwrap();
    let mut rng = SplitMix::new(seed);
    (0..HISTORIES)
        .filter(|&h| {
            let values = generate(&mut rng, COMMITS, runs);
            file(&mut store, &template, h, &values, 0, COMMITS);
            verdict_of(&store, h, COMMITS - 1) == Verdict::Regressed
        })
        .count()
}

fn report(runs: usize, r: &Rates, aa: usize) {
    let n = HISTORIES;
    eprintln!(
        "{runs} run(s) a commit, {n} histories, Regressed: on k+1 {}/{n} as CI sees it, {}/{n} with all commits stored, {}/{n} against a clean base (the 10 runs before k); on k+2 as CI sees it {}/{n}; on k {}/{n}; A/A on the newest commit {aa}/{n}",
        r.ci, r.later, r.clean_base, r.ci_k2, r.at_step
    );
}

/// Measured: k+1 9/200 (CI), 20/200 (all stored), clean base 19/200, k+2
/// 23/200, A/A 1/200 — against the 17% bound above.
#[test]
fn gate_on_the_commit_after_a_step_with_one_run_a_commit() {
    let r = step_rates(2031, 1);
    let aa = aa_regressed(2032, 1);
    report(1, &r, aa);
    assert!(aa <= HISTORIES / 20, "A/A {aa}/{HISTORIES}");
    assert!(r.later >= r.clean_base * 9 / 10, "{r:?}");
    assert!(r.later >= 15, "{r:?}");
    assert!(r.ci_k2 >= 15, "{r:?}");
}

/// Measured: k+1 28/200 (CI), 45/200 (all stored), clean base 45/200, k+2
/// 49/200, A/A 1/200 — against the 29% bound above.
#[test]
fn gate_on_the_commit_after_a_step_with_two_runs_a_commit() {
    let r = step_rates(2033, 2);
    let aa = aa_regressed(2034, 2);
    report(2, &r, aa);
    assert!(aa <= HISTORIES / 20, "A/A {aa}/{HISTORIES}");
    assert!(r.later >= r.clean_base * 9 / 10, "{r:?}");
    assert!(r.later >= 35, "{r:?}");
    assert!(r.ci_k2 >= 35, "{r:?}");
}
