//! `lmtune history`: the store (a real SQLite file in a temp dir) and the
//! gate over it, driven through the real binary on the committed results
//! under `results/`. Variations of those results (another run_id, scaled
//! t/s) are fakes and named as such: a fake slowdown, fake run-to-run noise,
//! a fake second machine.

mod common;

use std::path::{Path, PathBuf};

use common::lmtune;
use predicates::prelude::PredicateBooleanExt;
use serde_json::Value;

fn committed(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../results")
        .join(name)
}

/// A copy of a committed run with another run_id and every t/s scaled by
/// `scale` (durations by its inverse); `hostname` fakes another machine.
fn fake_run(dir: &Path, from: &str, run_id: &str, scale: f64, hostname: Option<&str>) -> PathBuf {
    let text = std::fs::read_to_string(committed(from).join("results.jsonl")).unwrap();
    let out_dir = dir.join(run_id);
    std::fs::create_dir_all(&out_dir).unwrap();
    let mut lines = Vec::new();
    for line in text.lines() {
        let mut r: Value = serde_json::from_str(line).unwrap();
        r["run_id"] = run_id.into();
        for key in ["samples_ts", "backend_perf_ts"] {
            if let Some(v) = r[key].as_array_mut() {
                v.iter_mut()
                    .for_each(|x| *x = (x.as_f64().unwrap() * scale).into());
            }
        }
        if let Some(v) = r["samples_ns"].as_array_mut() {
            v.iter_mut()
                .for_each(|x| *x = ((x.as_f64().unwrap() / scale) as u64).into());
        }
        for key in ["tokens_per_s", "backend_perf_tokens_per_s"] {
            if let Some(s) = r[key].as_object_mut() {
                for f in [
                    "mean",
                    "sd",
                    "median",
                    "min",
                    "max",
                    "ci95_low",
                    "ci95_high",
                ] {
                    if let Some(x) = s.get(f).and_then(Value::as_f64) {
                        s.insert(f.into(), (x * scale).into());
                    }
                }
            }
        }
        if let Some(h) = hostname {
            r["fingerprint"]["host"]["hostname"] = h.into();
        }
        lines.push(serde_json::to_string(&r).unwrap());
    }
    std::fs::write(out_dir.join("results.jsonl"), lines.join("\n") + "\n").unwrap();
    out_dir
}

fn add(db: &Path, results: &Path, commit: &str, time: &str) -> assert_cmd::assert::Assert {
    lmtune()
        .args(["history", "add"])
        .arg(results)
        .args(["--commit", commit, "--branch", "main", "--time", time])
        .arg("--db")
        .arg(db)
        .assert()
}

fn check_json(db: &Path, commit: &str) -> (i32, Value) {
    let out = lmtune()
        .args([
            "history", "check", "--commit", commit, "--format", "json", "--db",
        ])
        .arg(db)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{e}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap(), json)
}

fn verdicts(check: &Value) -> Vec<String> {
    check["series"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["comparison"]["rows"].as_array().unwrap().clone())
        .map(|r| r["change"]["verdict"].as_str().unwrap().to_string())
        .collect()
}

/// Five base runs on main: the committed quickstart with fake run-to-run
/// noise of ±2% (commits base1..base5, one hour apart).
fn five_base_runs(tmp: &Path, db: &Path) {
    for (i, scale) in [1.0, 0.99, 1.01, 0.98, 1.02].iter().enumerate() {
        let run = fake_run(
            tmp,
            "2026-11-21-vm-quickstart",
            &format!("fake-noise-{i}"),
            *scale,
            None,
        );
        add(
            db,
            &run,
            &format!("base{i}"),
            &format!("2026-12-01T0{i}:00:00Z"),
        )
        .success();
    }
}

#[test]
fn adding_the_same_results_twice_counts_them_once() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("h.sqlite");
    let real = committed("2026-11-22-vm-cpu-grid");
    add(&db, &real, "c1", "2026-11-22T10:00:00Z")
        .success()
        .stdout(predicates::str::contains(
            "added run 2026-11-22-vm-cpu-grid",
        ));
    add(&db, &real, "c1", "2026-11-22T10:00:00Z")
        .success()
        .stdout(predicates::str::contains("stored already"));
    let list = lmtune()
        .args(["history", "list", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&list.stdout);
    let rows: Vec<&str> = text.lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "{text}");
    let cols: Vec<&str> = rows[0].split_whitespace().collect();
    assert_eq!((cols[1], cols[2], cols[3]), ("main", "1", "1"), "{text}");
}

#[test]
fn a_twenty_percent_slowdown_over_five_base_runs_exits_1() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("h.sqlite");
    five_base_runs(tmp.path(), &db);
    let slow = fake_run(
        tmp.path(),
        "2026-11-21-vm-quickstart",
        "fake-slowdown-20pct",
        0.8,
        None,
    );
    add(&db, &slow, "slow", "2026-12-01T06:00:00Z").success();
    let (code, check) = check_json(&db, "slow");
    assert_eq!(code, 1, "{check:#}");
    assert_eq!(verdicts(&check), vec!["Regressed"; 8], "{check:#}");
    assert_eq!(check["series"][0]["base_runs"], 5);
    // The table says so too, with the same exit code.
    lmtune()
        .args(["history", "check", "--commit", "slow", "--db"])
        .arg(&db)
        .assert()
        .code(1)
        .stdout(predicates::str::contains("Regressed"));
}

#[test]
fn a_run_like_its_base_passes() {
    // A/A: the committed quickstart itself, once more under a new run_id.
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("h.sqlite");
    five_base_runs(tmp.path(), &db);
    let same = fake_run(tmp.path(), "2026-11-21-vm-quickstart", "fake-aa", 1.0, None);
    add(&db, &same, "same", "2026-12-01T06:00:00Z").success();
    let (code, check) = check_json(&db, "same");
    assert_eq!(code, 0, "{check:#}");
    assert_eq!(verdicts(&check), vec!["NoChange"; 8], "{check:#}");
    // Markdown for a PR comment names the series.
    lmtune()
        .args([
            "history", "check", "--commit", "same", "--format", "md", "--db",
        ])
        .arg(&db)
        .assert()
        .code(0)
        .stdout(predicates::str::contains("### commit same on main"))
        .stdout(predicates::str::contains("TOO FEW RUNS").not());
}

#[test]
fn two_base_runs_are_inconclusive_not_a_pass() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("h.sqlite");
    add(
        &db,
        &committed("2026-11-21-vm-quickstart"),
        "a",
        "2026-11-21T21:00:00Z",
    )
    .success();
    add(
        &db,
        &committed("2026-11-21-vm-quickstart-rerun"),
        "b",
        "2026-11-21T22:00:00Z",
    )
    .success();
    let slow = fake_run(
        tmp.path(),
        "2026-11-21-vm-quickstart",
        "fake-slowdown-20pct",
        0.8,
        None,
    );
    add(&db, &slow, "c", "2026-11-21T23:00:00Z").success();
    let (code, check) = check_json(&db, "c");
    assert_eq!(code, 0, "{check:#}");
    assert_eq!(verdicts(&check), vec!["Inconclusive"; 8], "{check:#}");
    lmtune()
        .args(["history", "check", "--commit", "c", "--db"])
        .arg(&db)
        .assert()
        .code(0)
        .stdout(predicates::str::contains("TOO FEW RUNS"));
    // In Markdown the warning comes before the verdict line.
    let md = lmtune()
        .args([
            "history", "check", "--commit", "c", "--format", "md", "--db",
        ])
        .arg(&db)
        .output()
        .unwrap();
    let md = String::from_utf8_lossy(&md.stdout);
    assert!(
        md.find("TOO FEW RUNS").unwrap() < md.find("### lmtune:").unwrap(),
        "{md}"
    );
}

#[test]
fn another_machine_is_another_series() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("h.sqlite");
    five_base_runs(tmp.path(), &db);
    // A fake slowdown on a fake second machine is not judged against the first one's runs.
    let other = fake_run(
        tmp.path(),
        "2026-11-21-vm-quickstart",
        "fake-other-host-slow",
        0.8,
        Some("fake-other-host"),
    );
    add(&db, &other, "other", "2026-12-01T06:00:00Z")
        .success()
        .stdout(predicates::str::contains("(new series)"));
    let (code, check) = check_json(&db, "other");
    assert_eq!(code, 0, "{check:#}");
    assert_eq!(check["series"][0]["base_runs"], 0);
    assert_eq!(check["series"][0]["environment"], 2);
    // Nothing to judge against: no verdict at all, every point listed as new.
    assert!(verdicts(&check).is_empty(), "{check:#}");
    let comparison = &check["series"][0]["comparison"];
    assert_eq!(comparison["only_in_current"].as_array().unwrap().len(), 8);
    assert!(
        comparison["notes"][1]
            .as_str()
            .unwrap()
            .starts_with("TOO FEW RUNS"),
        "{check:#}"
    );
    let list = lmtune()
        .args(["history", "list", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&list.stdout);
    assert_eq!(text.lines().count(), 3, "a header and two series: {text}");
    assert!(text.contains("fake-other-host"), "{text}");
}

#[test]
fn a_bad_store_path_is_one_line_and_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let not_a_db = tmp.path().join("notes.txt");
    std::fs::write(
        &not_a_db,
        "this is not SQLite, and it is long enough to have a header page\n".repeat(20),
    )
    .unwrap();
    let real = committed("2026-11-21-vm-quickstart");
    for db in [tmp.path().to_path_buf(), not_a_db.clone()] {
        let out = lmtune()
            .args(["history", "add"])
            .arg(&real)
            .args([
                "--commit",
                "x",
                "--branch",
                "main",
                "--time",
                "2026-12-01T00:00:00Z",
                "--db",
            ])
            .arg(&db)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with("error: "), "{stderr}");
        assert!(stderr.contains(&db.display().to_string()), "{stderr}");
    }
    // A store that does not exist is not created by a check.
    let missing = tmp.path().join("missing.sqlite");
    lmtune()
        .args(["history", "check", "--commit", "x", "--db"])
        .arg(&missing)
        .assert()
        .code(2)
        .stderr(predicates::str::contains("no history store there"));
    assert!(!missing.exists());
}

#[test]
fn commit_branch_and_time_come_from_git_when_not_given() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .args(args)
            .current_dir(repo)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let head = git(&["rev-parse", "HEAD"]);
    if head.is_empty() {
        eprintln!("skipped: not in a git checkout");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("h.sqlite");
    lmtune()
        .current_dir(repo)
        .args(["history", "add"])
        .arg(committed("2026-11-21-vm-quickstart"))
        .arg("--db")
        .arg(&db)
        .assert()
        .success()
        .stdout(predicates::str::contains(format!(
            "commit {head} on {}",
            git(&["rev-parse", "--abbrev-ref", "HEAD"])
        )));
}

#[test]
fn llama_bench_output_is_its_own_series() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("h.sqlite");
    let bench = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/llama-bench/smollm2-cpu.json");
    if !bench.exists() {
        eprintln!("skipped: {} is missing", bench.display());
        return;
    }
    add(
        &db,
        &committed("2026-11-21-vm-quickstart"),
        "a",
        "2026-12-01T00:00:00Z",
    )
    .success();
    add(&db, &bench, "a", "2026-12-01T00:00:00Z")
        .success()
        .stdout(predicates::str::contains("(new series)"));
    add(&db, &bench, "a", "2026-12-01T00:00:00Z")
        .success()
        .stdout(predicates::str::contains("stored already"));
    let (code, check) = check_json(&db, "a");
    assert_eq!(code, 0, "{check:#}");
    assert_eq!(check["series"].as_array().unwrap().len(), 2, "{check:#}");
}

/// 12 commits c00..c11 of the committed quickstart with fake ±1% noise,
/// then 8 commits c12..c19 at a fake 90% of it.
fn stepped_history(tmp: &Path, db: &Path) {
    let noise = [
        0.0, 0.01, -0.008, 0.004, -0.01, 0.006, -0.003, 0.009, -0.006, 0.002,
    ];
    for i in 0..20 {
        let level = if i < 12 { 1.0 } else { 0.9 };
        let scale = level * (1.0 + noise[i % noise.len()]);
        let run = fake_run(
            tmp,
            "2026-11-21-vm-quickstart",
            &format!("fake-step-{i}"),
            scale,
            None,
        );
        add(
            db,
            &run,
            &format!("c{i:02}"),
            &format!("2026-12-01T{i:02}:00:00Z"),
        )
        .success();
    }
}

#[test]
fn history_changes_finds_a_fake_10_percent_slowdown_and_check_names_it() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("h.sqlite");
    stepped_history(tmp.path(), &db);
    let out = lmtune()
        .args(["history", "changes", "--format", "json", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let steps = report["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 8, "{report:#}");
    for s in steps {
        assert_eq!(
            (s["commit"].as_str(), s["kind"].as_str()),
            (Some("c12"), Some("regression"))
        );
        assert!((s["change"].as_f64().unwrap() + 0.1).abs() < 0.01, "{s:#}");
    }
    lmtune()
        .args([
            "history", "changes", "--branch", "main", "--metric", "tg", "--db",
        ])
        .arg(&db)
        .assert()
        .success()
        .stdout(predicates::str::starts_with(
            "4 change point(s) in 4 point series of 1 series",
        ));
    lmtune()
        .args(["history", "check", "--commit", "c12", "--db"])
        .arg(&db)
        .assert()
        .code(1)
        .stdout(predicates::str::contains("CHANGE POINT at this commit"));
    lmtune()
        .args([
            "history", "check", "--commit", "c12", "--format", "junit", "--db",
        ])
        .arg(&db)
        .assert()
        .code(1)
        .stdout(predicates::str::starts_with("<?xml"))
        .stdout(predicates::str::contains("failures=\"8\""));
    lmtune()
        .args(["history", "changes", "--last", "3", "--db"])
        .arg(&db)
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "--last 3: a change point needs 3 commits on either side",
        ));
}

#[test]
fn history_export_writes_csv_and_bencher_json() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("h.sqlite");
    five_base_runs(tmp.path(), &db);
    let csv = lmtune()
        .args(["history", "export", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&csv.stdout);
    assert_eq!(text.lines().count(), 1 + 5 * 8, "{text}");
    let bencher = lmtune()
        .args([
            "history", "export", "--format", "bencher", "--commit", "base4", "--db",
        ])
        .arg(&db)
        .output()
        .unwrap();
    let doc: Value = serde_json::from_slice(&bencher.stdout).unwrap();
    let benchmarks = doc.as_object().unwrap();
    assert_eq!(benchmarks.len(), 8, "{doc:#}");
    for (_, measures) in benchmarks {
        let (name, m) = measures.as_object().unwrap().iter().next().unwrap();
        assert!(name.ends_with("_tokens_per_s"), "{name}");
        assert!(m["value"].as_f64().unwrap() > 0.0);
    }
    lmtune()
        .args(["history", "export", "--format", "xml", "--db"])
        .arg(&db)
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "--format xml: use csv, jsonl or bencher",
        ));
}

#[test]
fn a_new_branch_is_judged_against_main_up_to_its_merge_base() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("h.sqlite");
    five_base_runs(tmp.path(), &db);
    let slow = fake_run(
        tmp.path(),
        "2026-11-21-vm-quickstart",
        "fake-feature-slow",
        0.8,
        None,
    );
    lmtune()
        .args(["history", "add"])
        .arg(&slow)
        .args([
            "--commit",
            "feat1",
            "--branch",
            "feature",
            "--time",
            "2026-12-02T00:00:00Z",
            "--db",
        ])
        .arg(&db)
        .assert()
        .success();
    let out = lmtune()
        .args([
            "history",
            "check",
            "--commit",
            "feat1",
            "--merge-base",
            "base4",
            "--format",
            "json",
            "--db",
        ])
        .arg(&db)
        .output()
        .unwrap();
    let check: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{check:#}");
    assert_eq!(check["series"][0]["base_runs"], 5);
    assert_eq!(verdicts(&check), vec!["Regressed"; 8], "{check:#}");
}
