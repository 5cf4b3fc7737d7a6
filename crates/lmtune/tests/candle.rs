//! The candle backend on the real test model: a sweep through `lmtune run`,
//! greedy tokens equal to llama.cpp's, the layer split on two CPU devices,
//! and the clear failure of a GPU request in a build without CUDA.

mod common;

use std::path::Path;

use common::{lmtune, model_path, read_records, scenario};
use serde_json::Value;

fn generate(backend: &str, extra: &[&str]) -> Value {
    let model = model_path();
    let output = lmtune()
        .args(["generate", "--json", "-n", "8", "--backend", backend])
        .arg("--model")
        .arg(&model)
        .args(["--prompt", "The capital of France is"])
        .args(extra)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "generate {backend} {extra:?}: {stderr}"
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn tokens(v: &Value) -> Vec<u64> {
    v["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap())
        .collect()
}

#[test]
fn greedy_decoding_gives_the_same_first_8_tokens_as_llama_cpp() {
    let llama = generate("llama-cpp", &[]);
    let candle = generate("candle", &["--threads", "2"]);
    assert_eq!(llama["prompt_tokens"], candle["prompt_tokens"]);
    assert!(llama["prompt_tokens"].as_array().unwrap().len() >= 4);
    let (l, c) = (tokens(&llama), tokens(&candle));
    assert_eq!(l.len(), 8);
    assert_eq!(
        l, c,
        "llama.cpp said {:?}, candle said {:?}",
        llama["text"], candle["text"]
    );
    // Not a degenerate sequence (one token repeated would match by accident).
    let mut distinct = l.clone();
    distinct.sort();
    distinct.dedup();
    assert!(distinct.len() >= 4, "{l:?}");
    // The prompt chunked 2 tokens at a time decodes the same (KV cache across chunks).
    let chunked = generate("candle", &["--n-batch", "2"]);
    assert_eq!(tokens(&chunked), c);
}

#[test]
fn the_layer_split_on_two_cpu_devices_gives_the_same_tokens() {
    let whole = tokens(&generate("candle", &[]));
    for k in ["1", "15", "31"] {
        let split = generate("candle", &["--n-gpu-layers", k, "--offload-device", "cpu"]);
        assert_eq!(tokens(&split), whole, "n_gpu_layers = {k}");
    }
}

#[test]
fn a_candle_sweep_runs_through_lmtune_run() {
    let dir = tempfile::tempdir().unwrap();
    let file = scenario(
        dir.path(),
        "candle.toml",
        "schema = 1\n[backend]\nkind = \"candle\"\n[sweep]\nn_gpu_layers = 0\nn_ctx = 64\nn_batch = [4, 64]\nthreads = [2, 1]\n[workload]\nn_prompt = [16]\nn_gen = [8]\n[measure]\nrepetitions = 2\nwarmup = 1\n",
    );
    let out = dir.path().join("out");
    let output = lmtune()
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let records = read_records(&out);
    assert_eq!(records.len(), 8, "{stderr}");
    let model_bytes = std::fs::metadata(model_path()).unwrap().len();
    for r in &records {
        let what = format!("{r}");
        assert_eq!(r["status"], "ok", "{what}");
        assert_eq!(r["backend"], "candle");
        // What candle does, recorded as such.
        assert_eq!(r["type_k"], "f32");
        assert_eq!(r["type_v"], "f32");
        assert_eq!(r["flash_attn"], "off");
        assert_eq!(r["use_mmap"], false);
        assert_eq!(r["n_ubatch"], r["n_batch"]);
        assert_eq!(r["n_batch_actual"], r["n_batch"]);
        assert_eq!(r["samples_ts"].as_array().unwrap().len(), 2);
        assert!(r["tokens_per_s"]["mean"].as_f64().unwrap() > 0.0);
        // The weights are read into memory: the worker holds at least the file.
        assert!(
            r["rss_peak_bytes"].as_u64().unwrap() > model_bytes,
            "{what}"
        );
        let build = r["fingerprint"]["backend_build"].as_str().unwrap();
        assert!(build.contains("target features:"), "{build}");
        if cfg!(target_feature = "avx2") {
            assert!(build.contains("avx2"), "{build}");
        }
        assert!(build.contains("CUDA: not compiled"), "{build}");
        let log = r["backend_log"][0].as_str().unwrap();
        assert!(log.contains("blocks 0-29 on cpu, output on cpu"), "{log}");
    }
    // One worker per thread count, its points together, in the order written.
    let threads: Vec<u64> = records
        .iter()
        .map(|r| r["threads"].as_u64().unwrap())
        .collect();
    assert_eq!(threads, [2, 2, 2, 2, 1, 1, 1, 1]);
    let loads: Vec<u64> = records
        .iter()
        .map(|r| r["model_load_seq"].as_u64().unwrap())
        .collect();
    assert_eq!(loads[0], loads[3]);
    assert_ne!(loads[3], loads[4]);
    assert_eq!(loads[4], loads[7]);
}

fn run_split(dir: &Path, body: &str) -> (Vec<Value>, String, Option<i32>) {
    let file = scenario(dir, "split.toml", body);
    let out = dir.join("out");
    let output = lmtune()
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (read_records(&out), stderr, output.status.code())
}

#[test]
fn n_gpu_layers_places_blocks_on_the_offload_device() {
    let dir = tempfile::tempdir().unwrap();
    let (records, stderr, code) = run_split(
        dir.path(),
        "schema = 1\n[backend]\nkind = \"candle\"\n[backend.candle]\noffload_device = \"cpu\"\n[sweep]\nn_gpu_layers = [0, 10, 30, \"all\"]\nthreads = 1\n[workload]\nn_prompt = 0\nn_gen = [8]\n[measure]\nrepetitions = 2\nwarmup = 0\n",
    );
    assert_eq!(code, Some(0), "{stderr}");
    let logs: Vec<(u64, String)> = records
        .iter()
        .map(|r| {
            assert_eq!(r["status"], "ok", "{r}");
            (
                r["n_gpu_layers"].as_u64().unwrap(),
                r["backend_log"][0].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expect = [
        (0, "blocks 0-29 on cpu, output on cpu"),
        // As in llama.cpp, the output layer is offloaded first.
        (
            10,
            "blocks 0-20 on cpu, blocks 21-29 on cpu:1, output on cpu:1",
        ),
        (30, "block 0 on cpu, blocks 1-29 on cpu:1, output on cpu:1"),
        (31, "blocks 0-29 on cpu:1, output on cpu:1"),
    ];
    for ((ngl, log), (want_ngl, want)) in logs.iter().zip(expect) {
        assert_eq!(*ngl, want_ngl);
        assert!(log.contains(want), "n_gpu_layers = {ngl}: {log}");
    }
}

#[test]
fn a_gpu_request_without_cuda_is_a_clear_load_failure() {
    let dir = tempfile::tempdir().unwrap();
    let (records, stderr, code) = run_split(
        dir.path(),
        "schema = 1\n[backend]\nkind = \"candle\"\n[sweep]\nn_gpu_layers = [0, 8]\nthreads = 1\n[workload]\nn_prompt = 0\nn_gen = [4]\n[measure]\nrepetitions = 1\nwarmup = 0\n",
    );
    // The CPU point is measured; the GPU one fails with the reason, and the
    // run says some points failed.
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["status"], "ok");
    assert_eq!(records[1]["status"], "load_failed");
    let error = records[1]["error"].as_str().unwrap();
    assert!(error.contains("not compiled with CUDA support"), "{error}");
    assert!(error.contains("candle-cuda"), "{error}");
}
