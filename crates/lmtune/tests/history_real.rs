//! The history gate on real runs (issue 23): six runs of the quickstart's
//! points at one thread, pinned to CPU 0 as tests/compare.rs pins them, are
//! commits 1–6; three more with a CPU hog on that core are commits 7–9.
//! `history check` passes commits 2–6 and fails commits 7 and 8, and
//! `history changes` names commit 7 — no threshold per metric, no fake numbers.
//!
//! The gate here asks for a 30% change, not the default 5%: on CI's shared
//! 2-core VM one clean run's pp64 came out 19.8% below the five before it
//! (CI of stop 32), a real shift of the machine, not of lmtune. Two hogs on
//! the worker's core leave it a third of the core (about −67%), far past
//! both.

mod common;

use std::path::Path;
use std::process::Command;

use common::{lmtune, pinned_run, scenario};
use serde_json::Value;

fn check(db: &Path, commit: &str) -> (i32, String) {
    let out = lmtune()
        .args(["history", "check", "--threshold", "30%", "--commit", commit])
        .arg("--db")
        .arg(db)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn real_runs_pass_the_gate_until_a_cpu_hog_and_its_commit_is_the_change_point() {
    let dir = tempfile::tempdir().unwrap();
    // The quickstart's points at one thread (the scenario in scenarios/).
    let path = scenario(
        dir.path(),
        "quickstart.toml",
        "name = \"quickstart\"\n[sweep]\nn_gpu_layers = 0\nn_ctx = 512\nn_batch = [64, 512]\nn_ubatch = 64\nthreads = 1\n[workload]\nn_prompt = [64]\nn_gen = [32]\n[measure]\nrepetitions = 5\nwarmup = 1\n",
    );
    let db = dir.path().join("history.sqlite");
    let add = |run: &Path, i: usize| {
        let out = lmtune()
            .args(["history", "add"])
            .arg(run)
            .args(["--commit", &format!("c{i}"), "--branch", "main"])
            .args(["--time", &format!("2026-12-02T{i:02}:00:00Z"), "--db"])
            .arg(&db)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    for i in 1..=6 {
        let run = dir.path().join(format!("run{i}"));
        pinned_run(&path, &run, &[]);
        add(&run, i);
        if i >= 2 {
            let (code, text) = check(&db, &format!("c{i}"));
            eprintln!("commit {i}: exit {code}\n{text}");
            assert_eq!(code, 0, "commit {i} is like the ones before it:\n{text}");
        }
    }
    let mut hogs: Vec<_> = (0..2)
        .map(|_| {
            Command::new("taskset")
                .args(["-c", "0", "sh", "-c", "while :; do :; done"])
                .spawn()
                .unwrap()
        })
        .collect();
    for i in 7..=9 {
        let run = dir.path().join(format!("run{i}"));
        pinned_run(&path, &run, &[]);
        add(&run, i);
    }
    for hog in &mut hogs {
        hog.kill().unwrap();
        hog.wait().unwrap();
    }

    let (code, text) = check(&db, "c7");
    eprintln!("commit 7: exit {code}\n{text}");
    assert_eq!(
        code, 1,
        "a CPU hog on the worker's core is a regression:\n{text}"
    );
    assert!(text.contains("CHANGE POINT at this commit"), "{text}");
    // The commit after the step is still slow against the level before it.
    let (code, text) = check(&db, "c8");
    eprintln!("commit 8: exit {code}\n{text}");
    assert_eq!(code, 1, "the commit after the step:\n{text}");

    let out = lmtune()
        .args(["history", "changes", "--format", "json", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!("{report:#}");
    // Every one of the four series (two points × pp, tg) steps down at c7.
    // A noisy VM may add a step elsewhere; it is printed, not failed on.
    let steps = report["steps"].as_array().unwrap();
    let at_c7: Vec<_> = steps
        .iter()
        .filter(|s| s["commit"] == "c7" && s["kind"] == "regression")
        .map(|s| format!("{} {} {}", s["test"], s["knobs"], s["metric"]))
        .collect();
    let distinct: std::collections::BTreeSet<_> = at_c7.iter().collect();
    assert_eq!(distinct.len(), 4, "{report:#}");

    // The trend report: a chart per point and metric, the change point in
    // the table of index.html and summary.md. LMTUNE_HISTORY_REPORT_OUT
    // keeps a copy (how reports/history-vm was made).
    let out = std::env::var_os("LMTUNE_HISTORY_REPORT_OUT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| dir.path().join("history-report"));
    let report = lmtune()
        .args(["report", "--history"])
        .arg(&db)
        .args([
            "--title",
            "Performance history: quickstart at 1 thread, CPU hog from c7",
        ])
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&report.stdout);
    assert_eq!(
        report.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&report.stderr)
    );
    assert!(stdout.starts_with("4 trend chart(s), "), "{stdout}");
    let summary = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(summary.matches("| c7 |").count() >= 4, "{summary}");
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert_eq!(html.matches("<img src=").count(), 4, "{html}");
    for i in 0..4 {
        assert!(out.join(format!("history_{i:03}.png")).is_file());
    }
}
