//! `lmtune advise` on the real test model: every claim gets a verdict with
//! numbers or a reason, KV figures match llama.cpp's dry run, simulated
//! offload is labelled, and bad input ends in one line, exit 2, nothing written.

mod common;

use std::path::Path;

use common::{lmtune, model_path};

/// Nothing of a failed advise is left in `dir`: no report, no staging directory.
fn assert_nothing_written(dir: &Path) {
    let left: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

fn one_error_line(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr).into_owned();
    let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{text}");
    errors[0].to_string()
}

#[test]
fn every_claim_gets_a_verdict_with_numbers_or_a_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("advise");
    let run = lmtune()
        .args(["advise", "--time-budget", "100s", "--json", "-m"])
        .arg(model_path())
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let printed: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("advise.json")).unwrap()).unwrap();
    assert_eq!(printed, saved);
    let claims = saved["claims"].as_array().unwrap();
    assert_eq!(claims.len(), 13);
    for c in claims {
        let verdict = c["verdict"].as_str().unwrap();
        assert!(
            ["holds", "does_not_hold", "cannot_test"].contains(&verdict),
            "{c}"
        );
        assert!(!c["reason"].as_str().unwrap().is_empty(), "{c}");
        if verdict != "cannot_test" {
            assert!(
                !c["effects"].as_array().unwrap().is_empty(),
                "a verdict without numbers: {c}"
            );
        }
    }
    // The 7B rule on the MHA and GQA shapes: exact, always answered.
    let kv4k = claims.iter().find(|c| c["id"] == "kv4k7b").unwrap();
    assert_eq!(kv4k["verdict"], "does_not_hold", "{kv4k}");
    // lmtune's KV bytes equal llama.cpp's dry run within 1% where measured.
    let rows = saved["kv"]["rows"].as_array().unwrap();
    let measured: Vec<&serde_json::Value> = rows
        .iter()
        .filter(|r| !r["llama_cpp_bytes"].is_null())
        .collect();
    assert!(!measured.is_empty(), "no context was measured: {rows:?}");
    for r in measured {
        assert!(r["difference_pct"].as_f64().unwrap().abs() < 1.0, "{r}");
    }
    // Every experiment ran or says why not; simulated ones say so everywhere.
    let md = std::fs::read_to_string(out.join("advise.md")).unwrap();
    for e in saved["experiments"].as_array().unwrap() {
        assert!(
            e["ran"] == true || e["reason"].as_str().is_some_and(|r| !r.is_empty()),
            "{e}"
        );
        if e["simulated"] == true {
            assert!(md.contains("SIMULATED"));
            let offload: Vec<&serde_json::Value> = claims
                .iter()
                .filter(|c| c["experiment"] == "offload")
                .collect();
            assert!(
                offload.iter().all(|c| c["verdict"] == "cannot_test"),
                "{offload:?}"
            );
        }
    }
    for c in claims {
        let advice = c["advice"].as_str().unwrap();
        assert!(md.contains(advice), "advise.md lacks {advice:?}");
    }
    for chart in saved["charts"].as_array().unwrap() {
        assert!(out.join(chart.as_str().unwrap()).is_file(), "{chart}");
    }
}

#[test]
fn a_file_that_is_not_a_model_is_one_line_exit_2_nothing_written() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.gguf");
    std::fs::write(&bad, b"not a gguf at all").unwrap();
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let run = lmtune()
        .args(["advise", "-m"])
        .arg(&bad)
        .arg("-o")
        .arg(work.join("out"))
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2));
    let line = one_error_line(&run.stderr);
    assert!(line.contains("is not a model lmtune can read"), "{line}");
    assert_nothing_written(&work);
}

/// A model whose header lmtune reads but that llama.cpp refuses (a block
/// tensor renamed, so llama.cpp misses `blk.1.ffn_up.weight`): one line,
/// exit 2, nothing written.
#[test]
fn a_model_that_reads_but_llama_cpp_refuses_is_one_line_exit_2_nothing_written() {
    let tmp = tempfile::tempdir().unwrap();
    let broken = common::broken_model(tmp.path());
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let run = lmtune()
        .args(["advise", "-m"])
        .arg(&broken)
        .arg("-o")
        .arg(work.join("out"))
        .output()
        .unwrap();
    assert_eq!(
        run.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let line = one_error_line(&run.stderr);
    assert!(line.contains("broken.gguf"), "names the model: {line}");
    assert_nothing_written(&work);
}

#[test]
fn a_model_llama_cpp_cannot_load_is_one_line_exit_2_nothing_written() {
    let tmp = tempfile::tempdir().unwrap();
    // The real header, the tensor data cut short.
    let bytes = std::fs::read(model_path()).unwrap();
    let cut = tmp.path().join("cut.gguf");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let run = lmtune()
        .args(["advise", "-m"])
        .arg(&cut)
        .arg("-o")
        .arg(work.join("out"))
        .output()
        .unwrap();
    assert_eq!(
        run.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    one_error_line(&run.stderr);
    assert_nothing_written(&work);
}

#[test]
fn a_budget_too_small_for_any_experiment_is_one_line_exit_2_nothing_written() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    for budget in ["5s", "0s", "soon"] {
        let run = lmtune()
            .args(["advise", "--time-budget", budget, "-m"])
            .arg(model_path())
            .arg("-o")
            .arg(work.join("out"))
            .output()
            .unwrap();
        assert_eq!(run.status.code(), Some(2), "{budget}");
        let line = one_error_line(&run.stderr);
        assert!(line.contains("--time-budget"), "{line}");
        assert_nothing_written(&work);
    }
}

#[test]
fn an_existing_report_is_not_overwritten() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("advise.md"), "earlier").unwrap();
    let run = lmtune()
        .args(["advise", "-m"])
        .arg(model_path())
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2));
    assert!(one_error_line(&run.stderr).contains("already exists"));
    assert_eq!(
        std::fs::read_to_string(out.join("advise.md")).unwrap(),
        "earlier"
    );
}
