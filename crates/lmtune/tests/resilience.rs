//! Sweeps that survive: crashes, hangs, out-of-memory, Ctrl-C, SIGKILL, resume.
//! All on the real llama.cpp backend and the real model; the crashes and the
//! hang come from the worker's fault-injection test hook (LMTUNE_FAULT), since
//! a real backend produces them only sometimes.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{lmtune, scenario};
use serde_json::Value;

fn records(dir: &Path) -> Vec<Value> {
    common::read_records(dir)
}

fn csv_rows(dir: &Path) -> usize {
    csv::Reader::from_path(dir.join("results.csv"))
        .unwrap()
        .records()
        .map(Result::unwrap)
        .count()
}

/// Six points, one load group, about a second each.
const SIX: &str = r#"
[sweep]
n_ctx = 128
n_batch = [32, 64, 128]
n_ubatch = 32
threads = 1
[workload]
n_prompt = [32]
n_gen = [8]
[measure]
repetitions = 2
timeout_s = 10
"#;

#[test]
fn faults_become_records_and_the_sweep_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = scenario(dir.path(), "six.toml", SIX);
    let out = dir.path().join("out");
    let start = Instant::now();
    let output = lmtune()
        .env("LMTUNE_FAULT", "abort@2,segv@4,hang@5")
        .arg("run")
        .arg(&path)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(1),
        "some points failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        start.elapsed() < Duration::from_secs(60),
        "the hang was cut by its 10 s timeout"
    );

    let rs = records(&out);
    assert_eq!(rs.len(), 6);
    let statuses: Vec<&str> = rs.iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(
        statuses,
        ["ok", "ok", "crashed", "ok", "crashed", "timeout"]
    );
    let error = |i: usize| rs[i]["error"].as_str().unwrap().to_string();
    assert!(
        error(2).contains("SIGABRT") && error(2).contains("injected fault Abort"),
        "{}",
        error(2)
    );
    assert!(error(4).contains("SIGSEGV"), "{}", error(4));
    assert!(error(5).contains("no answer within 10 s"), "{}", error(5));
    for i in [0, 1, 3] {
        assert!(rs[i]["tokens_per_s"]["mean"].as_f64().unwrap() > 0.0);
    }
    // After the crash at point 2 a new worker loaded the model again.
    assert_eq!(rs[1]["model_load_seq"], 1);
    assert_eq!(rs[3]["model_load_seq"], 2);
    assert_eq!(csv_rows(&out), 6);
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        stdout.contains("crashed") && stdout.contains("timeout"),
        "the table shows failed points: {stdout}"
    );
}

/// Starts a run, returns the child once `n` points have been reported.
fn run_until_points(scenario: &Path, out: &Path, n: usize) -> (Child, Vec<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lmtune"))
        .arg("run")
        .arg(scenario)
        .arg("--out")
        .arg(out)
        .env(
            "XDG_CACHE_HOME",
            std::env::temp_dir().join("lmtune-test-cache"),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = Vec::new();
    let mut reader = BufReader::new(stderr);
    let mut seen = 0;
    while seen < n {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 {
            panic!("the run ended before {n} points: {lines:?}");
        }
        if line.starts_with('[') {
            seen += 1;
        }
        lines.push(line);
    }
    // Keep draining stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in reader.lines() {});
    (child, lines)
}

fn resume(scenario: &Path, out: &Path) -> std::process::Output {
    lmtune()
        .arg("run")
        .arg(scenario)
        .arg("--resume")
        .arg(out)
        .output()
        .unwrap()
}

fn assert_complete(out: &Path, n_points: usize) {
    let rs = records(out);
    let ok: BTreeSet<u64> = rs
        .iter()
        .filter(|r| r["status"] == "ok")
        .map(|r| r["point_index"].as_u64().unwrap())
        .collect();
    assert_eq!(
        ok,
        (0..n_points as u64).collect(),
        "every point has an ok record"
    );
    assert_eq!(rs.len(), n_points, "no point was measured twice");
    assert_eq!(
        csv_rows(out),
        rs.len(),
        "CSV and JSONL hold the same records"
    );
}

#[test]
fn sigint_stops_cleanly_and_resume_runs_only_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let path = scenario(dir.path(), "six.toml", SIX);
    let out = dir.path().join("out");
    let (mut child, _) = run_until_points(&path, &out, 2);
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));

    let rs = records(&out);
    assert!((2..6).contains(&rs.len()), "{} records", rs.len());
    assert!(
        rs.iter().all(|r| r["status"] == "ok"),
        "the interrupted point is not recorded as failed"
    );
    assert_eq!(csv_rows(&out), rs.len());
    let before = rs.len();

    let output = resume(&path, &out);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("({before} already recorded ok)")),
        "{stderr}"
    );
    assert_complete(&out, 6);
}

#[test]
fn sigkill_of_the_runner_loses_at_most_the_point_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let path = scenario(dir.path(), "six.toml", SIX);
    let out = dir.path().join("out");
    let (mut child, _) = run_until_points(&path, &out, 3);
    child.kill().unwrap();
    child.wait().unwrap();
    let rs = records(&out);
    assert!(rs.len() >= 3, "the 3 reported points are on disk");

    let output = resume(&path, &out);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_complete(&out, 6);
}

#[test]
fn resume_refuses_a_changed_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let path = scenario(dir.path(), "one.toml", "[sweep]\nn_ctx = 64\nthreads = 1\n[workload]\nn_prompt = [8]\nn_gen = [0]\n[measure]\nrepetitions = 1\n");
    let out = dir.path().join("out");
    lmtune()
        .arg("run")
        .arg(&path)
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("n_prompt = [8]", "n_prompt = [16]");
    std::fs::write(&path, text).unwrap();
    let output = resume(&path, &out);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr)
        .contains("differs from the scenario it was started with"));
    // A second plain run into the same directory is refused too.
    let output = lmtune()
        .arg("run")
        .arg(&path)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("already holds results"));
}

/// A real out-of-memory: f32 KV cache at n_ctx 8192 (≈ 377 MB) does not fit
/// in a 600 MiB address space, n_ctx 512 does. llama.cpp's allocation failure
/// is recorded as `oom` with its own message, the next point of the same
/// size is skipped, and the sweep goes on.
#[test]
fn kv_cache_over_the_memory_limit_is_recorded_as_oom() {
    let dir = tempfile::tempdir().unwrap();
    let path = scenario(
        dir.path(),
        "oom.toml",
        "[sweep]\nn_ctx = [8192, 512]\nn_batch = 512\nn_ubatch = 512\nthreads = 1\ntype_k = \"f32\"\ntype_v = \"f32\"\n[workload]\nn_prompt = [16]\nn_gen = [8]\n[measure]\nrepetitions = 1\nworker_memory_limit = \"600MiB\"\n",
    );
    let out = dir.path().join("out");
    let output = lmtune()
        .arg("run")
        .arg(&path)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let rs = records(&out);
    let statuses: Vec<&str> = rs.iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["oom", "skipped", "ok", "ok"]);
    let error = rs[0]["error"].as_str().unwrap();
    assert!(
        error.contains("failed to allocate"),
        "llama.cpp's reason is kept: {error}"
    );
    assert!(rs[1]["error"]
        .as_str()
        .unwrap()
        .contains("ran out of memory"));
}

/// The memory limit flag overrides the scenario and is checked.
#[test]
fn bad_memory_limit_flag_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = scenario(
        dir.path(),
        "one.toml",
        "[workload]\nn_prompt = [8]\nn_gen = [0]\n",
    );
    let output = lmtune()
        .arg("run")
        .arg(&path)
        .args(["--worker-memory-limit", "lots"])
        .arg("--out")
        .arg(PathBuf::from(dir.path()).join("o"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--worker-memory-limit"));
}
