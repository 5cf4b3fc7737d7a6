//! The analytic memory model against llama.cpp's own dry run, over a corpus
//! of architectures `lmtune synth` writes and a grid of n_ctx × n_ubatch:
//! weights exact, KV cache within 1%, compute buffers within 10% — or, for
//! an architecture whose cache lmtune does not model, the plan says so.
//! Adding an architecture is adding one row to `CORPUS`.

mod common;

use common::{lmtune, model_path};

/// (name, `lmtune synth` arguments, trained context).
const CORPUS: &[(&str, &[&str], u64)] = &[
    (
        "llama",
        &[
            "--arch",
            "llama",
            "--layers",
            "4",
            "--embd",
            "256",
            "--heads",
            "4",
            "--kv-heads",
            "2",
            "--ff",
            "512",
            "--ctx-train",
            "32768",
        ],
        32768,
    ),
    (
        "gemma3",
        &[
            "--arch",
            "gemma3",
            "--layers",
            "7",
            "--embd",
            "256",
            "--heads",
            "4",
            "--kv-heads",
            "1",
            "--head-dim",
            "64",
            "--ff",
            "512",
            "--ctx-train",
            "32768",
        ],
        32768,
    ),
    // The architectures' tiny presets (`lmtune synth --arch ARCH`).
    ("qwen2", &["--arch", "qwen2"], 4096),
    ("qwen3", &["--arch", "qwen3"], 4096),
    ("phi3", &["--arch", "phi3"], 4096),
    ("granite", &["--arch", "granite"], 4096),
    ("gemma2", &["--arch", "gemma2"], 4096),
    ("qwen3moe", &["--arch", "qwen3moe"], 4096),
    ("gpt-oss", &["--arch", "gpt-oss"], 4096),
    ("deepseek2", &["--arch", "deepseek2"], 4096),
    ("olmoe", &["--arch", "olmoe"], 4096),
    ("mixtral", &["--like", "mixtral-tiny"], 4096),
];

const MIB: f64 = 1048576.0;

fn plan_json(model: &std::path::Path, n_ctx: u64, n_ubatch: u64) -> serde_json::Value {
    let out = lmtune()
        .args(["plan", "--json", "--vram", "0", "--cpu-bandwidth", "20"])
        .args([
            "--ctx",
            &n_ctx.to_string(),
            "--ubatch",
            &n_ubatch.to_string(),
            "--model",
        ])
        .arg(model)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_analytic_model_matches_llama_cpp_s_dry_run_over_the_corpus() {
    let dir = tempfile::tempdir().unwrap();
    let mut report = Vec::new();
    for (arch, args, ctx_train) in CORPUS {
        let model = dir.path().join(format!("{arch}.gguf"));
        let out = lmtune()
            .arg("synth")
            .args(*args)
            .args(["--quant", "q8_0", "--donor"])
            .arg(model_path())
            .arg("-o")
            .arg(&model)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{arch}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for n_ctx in [512, 4096, 32768].into_iter().filter(|c| c <= ctx_train) {
            for n_ubatch in [64, 512, 2048] {
                let v = plan_json(&model, n_ctx, n_ubatch);
                let label = format!("{arch} n_ctx {n_ctx} n_ubatch {n_ubatch}");
                let dry = &v["dry_run"]["result"]["buffers"];
                assert!(dry.is_array(), "{label}: no dry run: {v}");
                let sum = |f: &str| -> f64 {
                    dry.as_array()
                        .unwrap()
                        .iter()
                        .map(|b| b[f].as_f64().unwrap())
                        .sum()
                };
                let host = &v["plan"]["rows"][0]["memory"]["host"];
                let analytic = |f: &str| host[f].as_f64().unwrap();
                let not_modelled = v["notes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|n| n.as_str().unwrap().contains("not modelled"));
                let (w, kv, c) = (
                    sum("model_bytes"),
                    sum("context_bytes"),
                    sum("compute_bytes"),
                );
                let err = |a: f64, d: f64| (a - d) / d.max(1.0);
                report.push(format!(
                    "{label}: weights {:+.3}%, KV {:+.2}%, compute {:+.1}%",
                    100.0 * err(analytic("weights") + analytic("repacked"), w),
                    100.0 * err(analytic("kv"), kv),
                    100.0 * err(analytic("compute"), c)
                ));
                assert!(
                    (analytic("weights") + analytic("repacked") - w).abs() <= 0.01 * MIB,
                    "{label}: weights {} vs dry run {w}",
                    analytic("weights")
                );
                if not_modelled {
                    continue;
                }
                assert!(
                    err(analytic("kv"), kv).abs() <= 0.01,
                    "{label}: KV {} vs {kv}",
                    analytic("kv")
                );
                assert!(
                    err(analytic("compute"), c).abs() <= 0.10,
                    "{label}: compute {} vs {c}",
                    analytic("compute")
                );
            }
        }
    }
    eprintln!("{}", report.join("\n"));
}
