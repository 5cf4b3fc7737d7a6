//! Flags that take a name or a list of names refuse an unknown one up front:
//! exit 2 and one line naming the flag and the accepted names, before any
//! result file is read or any output written.

mod common;

use std::path::PathBuf;

use common::lmtune;

fn committed(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../results")
        .join(name)
}

/// Runs lmtune; (exit code, stderr).
fn refused(args: &[&str]) -> (Option<i32>, String) {
    let out = lmtune().args(args).output().unwrap();
    (out.status.code(), String::from_utf8(out.stderr).unwrap())
}

/// Issue 22 #24: `report --charts bogus` drew nothing, said "0 charts" and
/// exited 0. An unknown chart name is now refused, listing the names; the
/// names listed pick every chart a real report draws.
#[test]
fn report_refuses_an_unknown_chart_name() {
    let dir = tempfile::tempdir().unwrap();
    let grid = committed("2026-11-22-vm-cpu-grid");
    let grid = grid.to_str().unwrap();
    let out = dir.path().join("r");
    let out_arg = out.to_str().unwrap();
    for bad in ["bogus", "tg_vs_threads,bogus", ""] {
        let (code, stderr) = refused(&["report", grid, "-o", out_arg, "--charts", bad]);
        assert_eq!(code, Some(2), "{bad}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with("error: --charts") && stderr.contains("tg_vs, pp_vs"),
            "{stderr}"
        );
        assert!(!out.exists(), "nothing is written for {bad:?}");
    }
    let (_, stderr) = refused(&["report", grid, "-o", out_arg, "--charts", "bogus"]);
    let listed: Vec<String> = stderr
        .split("use ")
        .nth(1)
        .unwrap()
        .split(" (")
        .next()
        .unwrap()
        .split(", ")
        .map(str::to_string)
        .collect();

    // Every chart of real reports is named by a listed family.
    for results in ["2026-11-22-vm-cpu-grid", "2026-11-21-vm-ctx-memory"] {
        let report = dir.path().join(results);
        lmtune()
            .arg("report")
            .arg(committed(results))
            .arg("-o")
            .arg(&report)
            .arg("--no-png")
            .assert()
            .success();
        let charts: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(report.join("charts.json")).unwrap())
                .unwrap();
        for c in charts["charts"].as_array().unwrap() {
            let stem = c["stem"].as_str().unwrap();
            assert!(
                listed.iter().any(|f| stem.starts_with(f.as_str())),
                "{stem} is not under {listed:?}"
            );
        }
    }

    // A prefix and a full name are accepted and pick their charts.
    let some = dir.path().join("some");
    let run = lmtune()
        .args(["report", grid, "-o", some.to_str().unwrap(), "--no-png"])
        .args(["--charts", "tg,memory_vs_n_ctx"])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let charts: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(some.join("charts.json")).unwrap()).unwrap();
    let stems: Vec<&str> = charts["charts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["stem"].as_str().unwrap())
        .collect();
    assert!(!stems.is_empty());
    assert!(
        stems
            .iter()
            .all(|s| s.starts_with("tg") || s == &"memory_vs_n_ctx"),
        "{stems:?}"
    );
}

/// The other name-taking flags: compare's and history's `--metric` and
/// `--format`, export's `--format`: exit 2, one line naming the flag.
#[test]
fn unknown_metric_and_format_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let a = committed("2026-11-21-vm-quickstart");
    let b = committed("2026-11-21-vm-quickstart-rerun");
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    let db = dir.path().join("h.db");
    let db = db.to_str().unwrap();
    for (args, flag) in [
        (vec!["compare", a, b, "--metric", "tg,bogus"], "--metric"),
        (vec!["compare", a, b, "--metric", ""], "--metric"),
        (vec!["compare", a, b, "--format", "bogus"], "--format"),
        (vec!["export", a, "--format", "bogus"], "--format"),
        (
            vec!["history", "--db", db, "check", "--metric", "bogus"],
            "--metric",
        ),
    ] {
        let (code, stderr) = refused(&args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("error: ") && stderr.contains(flag),
            "{args:?}: {stderr}"
        );
    }
}
