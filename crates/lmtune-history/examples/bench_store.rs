//! How long `history add` and `check` take on a large store (issue 23:
//! 10,000 runs × 50 points, each under a second). A script, not a timed
//! test: `cargo run --release -p lmtune-history --example bench_store [RUNS]`.
//! Also times `changes` over the newest 100, 300 and 3,000 commits (the
//! search is O(n log n) per permutation, see `edivisive.rs`).
//!
//! The runs are the committed quickstart's records, widened to 52 points
//! (thread counts 1–13) and relabelled per run, with fake noise and a
//! fake step: fakes of a long history.

use std::path::Path;
use std::time::Instant;

use lmtune_core::compare::GateParams;
use lmtune_core::record::Record;
use lmtune_history::edivisive::SplitMix;
use lmtune_history::{
    changes, check, commit_means, ChangesParams, CheckParams, RunMeta, Span, Store,
};
use lmtune_report::compare::Metric;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runs: usize = std::env::args().nth(1).map_or(Ok(10_000), |s| s.parse())?;
    let results =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../results/2026-11-21-vm-quickstart");
    let (_, template) = lmtune_report::load_results(&results)?;
    let mut wide: Vec<Record> = Vec::new();
    for threads in 1..=13 {
        for r in template.iter().filter(|r| r.ctx.threads == 1) {
            let mut r = r.clone();
            r.ctx.threads = threads;
            wide.push(r);
        }
    }
    let dir = tempfile::tempdir()?;
    let mut store = Store::open(&dir.path().join("history.sqlite"))?;
    let fill = Instant::now();
    let add_run = |store: &mut Store, i: usize| -> Result<f64, Box<dyn std::error::Error>> {
        let mut run = wide.clone();
        // Fake run-to-run noise (uniform ±5%) and a fake 10% slowdown 30
        // commits before the end, so that the searches have work to do.
        let mut rng = SplitMix::new(i as u64);
        let level = if i + 30 >= runs { 0.9 } else { 1.0 };
        for r in &mut run {
            r.run_id = format!("fake-{i}");
            if let Some(s) = r.tokens_per_s.as_mut() {
                s.mean *= level * (1.0 + 0.1 * (rng.unit() - 0.5));
            }
        }
        let meta = RunMeta {
            commit: format!("{i:040x}"),
            branch: "main".into(),
            // One commit a minute from 2026-01-01.
            commit_time: chrono::DateTime::from_timestamp(1_767_225_600 + i as i64 * 60, 0)
                .expect("a valid time")
                .format("%Y-%m-%dT%H:%M:%SZ")
                .to_string(),
        };
        let refs: Vec<&Record> = run.iter().collect();
        let t = Instant::now();
        store.add_run(&meta, &refs)?;
        Ok(t.elapsed().as_secs_f64())
    };
    for i in 0..runs {
        add_run(&mut store, i)?;
    }
    println!(
        "filled {runs} runs × {} points in {:.1} s",
        wide.len(),
        fill.elapsed().as_secs_f64()
    );
    let add_s = add_run(&mut store, runs)?;
    println!("history add of one more run: {:.3} s", add_s);
    let t = Instant::now();
    let params = CheckParams {
        window: 10,
        gate: GateParams {
            threshold: 0.05,
            alpha: 0.05,
        },
        metrics: vec![Metric::Tg, Metric::Pp],
        merge_base: None,
    };
    let result = check(&store, &format!("{runs:040x}"), &params)?;
    println!(
        "history check of it against the last 10, change points over the last 51 commits included: {:.3} s ({} rows)",
        t.elapsed().as_secs_f64(),
        result
            .series
            .iter()
            .map(|s| s.comparison.rows.len())
            .sum::<usize>()
    );
    // Five commits after the fake step: the step is inside the base window,
    // so every point is judged again against the runs before it.
    let t = Instant::now();
    let after_step = check(&store, &format!("{:040x}", runs - 25), &params)?;
    let notes: usize = after_step
        .series
        .iter()
        .map(|s| {
            s.comparison
                .notes
                .iter()
                .filter(|n| n.starts_with("STEP IN THE BASE"))
                .count()
        })
        .sum();
    println!(
        "history check of the commit 5 after the fake step (a step in its base window): {:.3} s ({notes} STEP IN THE BASE note(s), regressed: {})",
        t.elapsed().as_secs_f64(),
        after_step.regressed()
    );
    for last in [100, 300, 3000] {
        let t = Instant::now();
        let report = changes(
            &store,
            &ChangesParams {
                branch: None,
                metrics: vec![Metric::Tg, Metric::Pp],
                last,
                edivisive: Default::default(),
            },
        )?;
        let total = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let series = store.series()?;
        for s in &series {
            commit_means(&store, s.environment, &s.branch, &Span::Last(last))?;
        }
        println!(
            "history changes --last {last}: {total:.3} s ({} point series, {} change points; reading the commits {:.3} s of it)",
            report.point_series,
            report.steps.len(),
            t.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
