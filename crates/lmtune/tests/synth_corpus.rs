//! The synthetic corpus: for every architecture `lmtune synth --arch` writes,
//! its tiny model loads in llama.cpp and runs one prompt and one generation
//! point, llama.cpp's own dry run of it has no error, and `inspect` reads it.
//! Adding an architecture is adding a row to `ARCHS` (its `NAME-tiny` preset).

mod common;

use common::{lmtune, model_path, read_records};

/// Each architecture and what its tiny model is made of (for the failure message).
const ARCHS: &[(&str, &str)] = &[
    ("llama", "attention + gated FFN"),
    (
        "gemma3",
        "Q/K norms, post norms, 5:1 sliding window, tied output",
    ),
    ("qwen2", "Q/K/V biases"),
    ("qwen3", "Q/K norms"),
    ("phi3", "fused QKV, fused gate-up"),
    ("granite", "embedding/residual/attention/logit scales"),
    ("gemma2", "soft-capping, 1:1 sliding window, tied output"),
    ("qwen3moe", "8 routed experts, 2 used"),
    (
        "olmoe",
        "full-width Q/K norms, 8 routed experts of n_ff, 2 used",
    ),
    ("mixtral", "a llama whose FFN is 8 experts of n_ff, 2 used"),
    (
        "gpt-oss",
        "biased experts, attention sinks, 1:1 sliding window",
    ),
];

#[test]
fn every_synth_architecture_loads_and_runs_in_llama_cpp() {
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for (arch, what) in ARCHS {
        let model = dir.path().join(format!("{arch}.gguf"));
        let out = lmtune()
            .args(["synth", "--like", &format!("{arch}-tiny")])
            .args(["--quant", "q8_0", "--donor"])
            .arg(model_path())
            .arg("-o")
            .arg(&model)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "synth --arch {arch}: {}",
            String::from_utf8_lossy(&out.stderr)
        );

        let inspect = lmtune().arg("inspect").arg(&model).output().unwrap();
        assert!(
            inspect.status.success(),
            "inspect {arch}: {}",
            String::from_utf8_lossy(&inspect.stderr)
        );

        let scenario = dir.path().join(format!("{arch}.toml"));
        std::fs::write(
            &scenario,
            format!(
                "[model]\npath = {:?}\n[sweep]\nthreads = 2\n[workload]\nn_prompt = [16]\nn_gen = [4]\n[measure]\nrepetitions = 1\nwarmup = 0\n",
                model.display().to_string()
            ),
        )
        .unwrap();
        let results = dir.path().join(format!("out-{arch}"));
        let run = lmtune()
            .arg("run")
            .arg(&scenario)
            .arg("--out")
            .arg(&results)
            .output()
            .unwrap();
        if !results.join("results.jsonl").exists() {
            failures.push(format!(
                "{arch} ({what}): no results; {}",
                String::from_utf8_lossy(&run.stderr)
            ));
            continue;
        }
        for r in read_records(&results) {
            let test = r["test"].as_str().unwrap_or("?").to_string();
            if r["status"] != "ok" {
                failures.push(format!(
                    "{arch} ({what}) {test}: status {} ({})",
                    r["status"], r["error"]
                ));
            }
            let dry_run = &r["dry_run"];
            if !dry_run.is_object() || !dry_run["error"].is_null() {
                failures.push(format!("{arch} ({what}) {test}: dry run {dry_run}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
