//! Hand-made records for the verdict tests.

use lmtune_core::knobs::KvType;
use lmtune_core::record::{DryRun, DryRunBuffer, Record, Status};
use lmtune_core::stats::Summary;

/// An ok record of `test` ("pp256", "tg32") at `threads` with these samples.
pub fn record(test: &str, threads: u32, samples: &[f64]) -> Record {
    let (n_prompt, n_gen) = match test.strip_prefix("pp") {
        Some(n) => (n.parse().unwrap(), 0),
        None => (0, test.trim_start_matches("tg").parse().unwrap()),
    };
    let fingerprint = serde_json::json!({
        "host": {"hostname": "h", "cpu_model": "c", "physical_cores": 4, "logical_cores": 8,
                 "ram_bytes": 1, "os": "", "kernel": "", "arch": ""},
        "gpus": [], "gpu_note": null, "backend": "llama-cpp", "backend_version": "",
        "backend_build": "", "lmtune_version": "", "lmtune_commit": "",
        "model": {"file_name": "m.gguf", "file_size_bytes": 1, "weights_bytes": 1000,
                  "sha256": "", "architecture": "llama", "n_params": 1000, "quant": "Q4_0",
                  "n_layer": 30, "n_ctx_train": 8192}
    });
    let mut v = serde_json::json!({
        "schema_version": 1, "run_id": "t", "scenario": "t", "point_index": 0, "load_group": 0,
        "status": "ok", "error": null, "backend": "llama-cpp", "model": "m.gguf",
        "n_gpu_layers": 0, "use_mmap": true,
        "n_ctx": 4096, "n_batch": 2048, "n_ubatch": 512, "threads": threads,
        "type_k": "f16", "type_v": "f16", "flash_attn": "auto",
        "test": test, "n_prompt": n_prompt, "n_gen": n_gen, "n_depth": 0,
        "warmup": 1, "repetitions": samples.len(), "tokens_per_s": null,
        "backend_perf_tokens_per_s": null, "outliers": [], "model_load_seq": 1, "model_load_ms": 1.0,
        "started_at": "", "duration_s": 1.0, "vram": null, "prediction": null
    });
    let measurement = serde_json::json!({
        "samples_ns": [], "samples_ts": samples, "backend_perf_ts": [],
        "rss_peak_bytes": null, "rss_before_bytes": null, "n_ctx_actual": null,
        "n_batch_actual": null, "n_ubatch_actual": null, "backend_log": []
    });
    for (k, x) in measurement.as_object().unwrap() {
        v[k] = x.clone();
    }
    v["fingerprint"] = fingerprint;
    let mut r: Record = serde_json::from_value(v).unwrap();
    r.tokens_per_s = Summary::of(samples);
    r.status = Status::Ok;
    r
}

/// With llama.cpp's dry run: weights, context (KV) and compute bytes.
pub fn with_dry_run(mut r: Record, model: u64, context: u64, compute: u64) -> Record {
    r.measurement.dry_run = Some(Box::new(DryRun {
        buffers: vec![DryRunBuffer {
            buffer_type: "CPU".into(),
            device: "CPU".into(),
            host: true,
            model_bytes: model,
            context_bytes: context,
            compute_bytes: compute,
        }],
        ms: 1.0,
        error: None,
    }));
    r
}

pub fn with_kv(mut r: Record, t: KvType) -> Record {
    r.ctx.type_k = t;
    r.ctx.type_v = t;
    r
}
