//! Issue 22 #4: `--vram 12` was read as 12 bytes and recommended
//! n_gpu_layers = 0. A size without a unit is an error in every command and
//! scenario key that takes one, naming the flag or key and the accepted forms.

mod common;

use common::{lmtune, model_path, scenario};

fn assert_refused(args: &[&str], what: &str) {
    let out = lmtune().args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{args:?}: one line: {stderr}");
    assert!(lines[0].contains(what), "{args:?} names {what}: {stderr}");
    assert!(lines[0].contains("has no unit"), "{stderr}");
    assert!(
        lines[0].contains("GiB") && lines[0].contains("MiB"),
        "{stderr}"
    );
}

#[test]
fn a_size_without_a_unit_is_an_error_in_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let model = model_path();
    let m = model.to_str().unwrap();
    let quick = scenario(
        dir.path(),
        "quick.toml",
        "[workload]\nn_prompt = [8]\nn_gen = [0]\n[measure]\nrepetitions = 1\n",
    );
    let q = quick.to_str().unwrap();
    assert_refused(&["plan", "-m", m, "--vram", "12"], "--vram");
    assert_refused(&["plan", "-m", m, "--vram", "0", "--ram", "16"], "--ram");
    assert_refused(&["tune", q, "--vram", "12"], "--vram");
    assert_refused(
        &["run", q, "--worker-memory-limit", "512", "--dry-run"],
        "--worker-memory-limit",
    );
    let results = dir.path().join("none");
    std::fs::create_dir_all(&results).unwrap();
    assert_refused(
        &[
            "report",
            "--ram-budget",
            "16",
            "-o",
            dir.path().join("r").to_str().unwrap(),
            results.to_str().unwrap(),
        ],
        "--ram-budget",
    );
    let budget = scenario(dir.path(), "budget.toml", "[budget]\nvram = \"12\"\n");
    assert_refused(
        &["run", budget.to_str().unwrap(), "--dry-run"],
        "budget.vram",
    );
}
