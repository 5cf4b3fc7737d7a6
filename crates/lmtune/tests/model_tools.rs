//! `inspect`, `synth` and `plan` on real GGUF files, and a synthetic 1B model
//! that the real llama.cpp loads and measures.

mod common;

use common::{lmtune, model_path, scenario};
use serde_json::Value;

fn stdout_of(args: &[&str]) -> String {
    let out = lmtune().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn inspect_describes_the_test_model() {
    let model = model_path().display().to_string();
    let text = stdout_of(&["inspect", &model]);
    assert!(
        text.contains("llama, 30 layers, n_embd 576, n_ff 1536"),
        "{text}"
    );
    assert!(
        text.contains("9 heads, 3 KV heads (GQA 3:1), head dim K 64 / V 64"),
        "{text}"
    );
    assert!(
        text.contains("blk.0..29 (each)") && text.contains("2.11 MiB"),
        "{text}"
    );
    assert!(text.contains("f16 22.50 KiB"), "KV per token: {text}");
    assert!(!text.contains("SYNTHETIC"));

    let json: Value = serde_json::from_str(&stdout_of(&["inspect", &model, "--json"])).unwrap();
    assert_eq!(json["anatomy"]["n_layer"], 30);
    assert_eq!(json["anatomy"]["layers"].as_array().unwrap().len(), 30);
    assert_eq!(json["kv_bytes_per_token"]["f16"], 23040);
    assert_eq!(json["anatomy"]["weights_bytes"], 96_576_768u64);
}

#[test]
fn inspect_of_a_broken_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.gguf");
    std::fs::write(&bad, b"GGUF\x03\x00\x00\x00").unwrap();
    let out = lmtune().arg("inspect").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error: ") && stderr.contains("truncated"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"));
}

#[test]
fn plan_recommends_full_offload_when_it_fits_and_cpu_when_there_is_no_gpu() {
    let model = model_path().display().to_string();
    let fixed = [
        "--cpu-bandwidth",
        "20",
        "--gpu-bandwidth",
        "900",
        "--ram",
        "16GiB",
    ];
    let mut args = vec!["plan", "-m", &model, "--vram", "8GiB", "--ctx", "4096"];
    args.extend(fixed);
    let text = stdout_of(&args);
    assert!(text.contains("recommended: n_gpu_layers = 31"), "{text}");
    assert!(
        text.contains("llama-server: -ngl 31 -c 4096 -ub 512"),
        "{text}"
    );
    assert!(text.contains("llama-bench:  -ngl 31"), "{text}");
    assert!(
        text.contains(
            "LM Studio:    GPU Offload 30 of 30 layers (all, output included), Context Length 4096"
        ),
        "{text}"
    );
    assert!(
        text.contains("n_gpu_layers = 31\n  n_ctx = 4096"),
        "scenario snippet: {text}"
    );
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("| ") && !l.starts_with("| ngl") && !l.starts_with("| --"))
            .count(),
        32,
        "one row per n_gpu_layers 0..=31"
    );

    let mut args = vec!["plan", "-m", &model, "--vram", "0", "--json"];
    args.extend(fixed);
    let json: Value = serde_json::from_str(&stdout_of(&args)).unwrap();
    let plan = &json["plan"];
    let best = plan["recommended"].as_u64().unwrap() as usize;
    assert_eq!(plan["rows"][best]["n_gpu_layers"], 0);
    // Memory moves to the GPU layer by layer: host + GPU weights are constant
    // apart from the output layer's copy of the tied embeddings.
    let rows = plan["rows"].as_array().unwrap();
    let w = |r: &Value, dev: &str| r["memory"][dev]["weights"].as_u64().unwrap();
    assert_eq!(w(&rows[0], "host"), 96_576_768);
    assert!(rows
        .windows(2)
        .skip(1)
        .all(|p| w(&p[1], "gpu") > w(&p[0], "gpu") && w(&p[1], "host") < w(&p[0], "host")));

    let out = lmtune()
        .args([
            "plan",
            "-m",
            &model,
            "--vram",
            "0",
            "--ram",
            "16MiB",
            "--cpu-bandwidth",
            "20",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "nothing fits");
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing fits"));
    let out = lmtune()
        .args(["plan", "-m", &model, "--vram", "lots"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--vram"));
}

/// The check of the synth issue: a 1B-shaped Q4_0 model written by `lmtune
/// synth` loads in llama.cpp and `lmtune run` measures it; the RSS predicted
/// before each point is within 10% of the measured peak (on SmolLM2 too).
#[test]
fn synthetic_1b_model_is_loaded_and_measured_and_rss_is_predicted() {
    let dir = tempfile::tempdir().unwrap();
    let synth = dir.path().join("llama-1b-q4_0.gguf");
    let donor = model_path().display().to_string();
    let out = lmtune()
        .args([
            "synth",
            "--like",
            "llama-1b",
            "--quant",
            "q4_0",
            "--ctx-train",
            "8192",
            "--donor",
            &donor,
            "-o",
        ])
        .arg(&synth)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1.17 B params"));
    let text = stdout_of(&["inspect", synth.to_str().unwrap()]);
    assert!(
        text.contains("SYNTHETIC") && text.contains("22 layers, n_embd 2048, n_ff 5632"),
        "{text}"
    );

    let body = "[sweep]\nn_ctx = [512, 4096]\nn_batch = 512\nn_ubatch = 512\nthreads = 1\n[workload]\nn_prompt = [32]\nn_gen = [4]\n[measure]\nrepetitions = 1\n";
    for model in [synth.clone(), model_path()] {
        let path = scenario(dir.path(), "s.toml", body);
        let out_dir = dir.path().join(format!(
            "out-{}",
            model.file_name().unwrap().to_string_lossy()
        ));
        lmtune()
            .arg("run")
            .arg(&path)
            .arg("--model")
            .arg(&model)
            .arg("--out")
            .arg(&out_dir)
            .assert()
            .success();
        let text = std::fs::read_to_string(out_dir.join("results.jsonl")).unwrap();
        for line in text.lines() {
            let r: Value = serde_json::from_str(line).unwrap();
            assert_eq!(r["status"], "ok");
            assert!(r["tokens_per_s"]["mean"].as_f64().unwrap() > 0.0);
            let measured = r["rss_peak_bytes"].as_f64().unwrap();
            let predicted = r["prediction"]["rss_bytes"].as_f64().unwrap();
            let error = predicted / measured - 1.0;
            assert!(
                error.abs() < 0.10,
                "{}: n_ctx {} RSS predicted {predicted} vs measured {measured} ({:+.1}%)",
                r["model"],
                r["n_ctx"],
                error * 100.0
            );
            if r["test"] == "tg4" {
                assert!(r["prediction"]["tg_tokens_per_s"].as_f64().unwrap() > 0.0);
            }
        }
    }
}
