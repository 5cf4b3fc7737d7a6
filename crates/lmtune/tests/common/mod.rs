//! Helpers shared by the integration tests: the real test model and the real binary.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;

/// The real test model, fetched by scripts/fetch-model.sh.
pub fn model_path() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    let path = path.canonicalize().unwrap_or(path);
    assert!(
        path.exists(),
        "{} is missing: run scripts/fetch-model.sh (scripts/test.sh does)",
        path.display()
    );
    path
}

pub fn lmtune() -> Command {
    let mut cmd = Command::cargo_bin("lmtune").unwrap();
    // Keep the model-hash cache out of the user's home.
    cmd.env(
        "XDG_CACHE_HOME",
        std::env::temp_dir().join("lmtune-test-cache"),
    );
    cmd
}

/// Writes `body` as a scenario whose [model] is the test model.
pub fn scenario(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    // [model] goes last: top-level keys in `body` must come before any table.
    let text = format!(
        "{body}\n[model]\npath = {:?}\n",
        model_path().display().to_string()
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// A synthetic Gemma 3 of the real 270M's blocks (`lmtune synth --like
/// gemma3-270m`, q8_0, the test model's tokenizer): 18 layers, every 6th
/// global, the others a 512-token sliding window.
pub fn synth_gemma3(dir: &Path) -> PathBuf {
    let path = dir.join("gemma3-270m.gguf");
    let out = lmtune()
        .args([
            "synth",
            "--like",
            "gemma3-270m",
            "--quant",
            "q8_0",
            "--donor",
        ])
        .arg(model_path())
        .arg("-o")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

/// Every record of a results directory's `results.jsonl`, as JSON.
pub fn read_records(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("results.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `lmtune inspect --json` of the test model: its anatomy as lmtune reads it.
pub fn test_model_anatomy() -> serde_json::Value {
    let out = lmtune()
        .args(["inspect", "--json"])
        .arg(model_path())
        .output()
        .unwrap();
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `lmtune run SCENARIO --out OUT EXTRA…` pinned to CPU 0 with taskset, so a
/// CPU hog on CPU 0 is a real, repeatable handicap.
#[allow(dead_code)]
pub fn pinned_run(scenario: &Path, out: &Path, extra: &[&str]) {
    let status = std::process::Command::new("taskset")
        .args(["-c", "0", env!("CARGO_BIN_EXE_lmtune"), "run"])
        .arg(scenario)
        .arg("--out")
        .arg(out)
        .args(extra)
        .env(
            "XDG_CACHE_HOME",
            std::env::temp_dir().join("lmtune-test-cache"),
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
}

/// The test model with `blk.1.ffn_up.weight` renamed: the GGUF reads, but
/// llama.cpp refuses to load it ("tensor 'blk.1.ffn_up.weight' not found").
#[allow(dead_code)]
pub fn broken_model(dir: &Path) -> PathBuf {
    let mut bytes = std::fs::read(model_path()).unwrap();
    let from = b"blk.1.ffn_up.weight";
    let at = bytes
        .windows(from.len())
        .position(|w| w == from)
        .expect("the test model has blk.1.ffn_up.weight");
    bytes[at..at + from.len()].copy_from_slice(b"blk.1.ffn_xx.weight");
    let broken = dir.join("broken.gguf");
    std::fs::write(&broken, bytes).unwrap();
    broken
}
