//! `lmtune plan`: llama.cpp's own dry run of the recommended setting
//! beside the analytic figures, and what it says when llama.cpp cannot
//! answer.

mod common;

use common::{broken_model, lmtune, model_path};

#[test]
fn plan_prints_llama_cpp_s_dry_run_beside_the_analytic_figures() {
    let out = lmtune()
        .args([
            "plan",
            "--ctx",
            "2048",
            "--vram",
            "0",
            "--cpu-bandwidth",
            "20",
            "--model",
        ])
        .arg(model_path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("llama.cpp's dry run (no_alloc"), "{stdout}");
    // 30 layers × 768 B per token × 2048 cells.
    assert!(stdout.contains("context (KV)   45.00 MiB"), "{stdout}");
    assert!(stdout.contains("(lmtune's analytic model, "), "{stdout}");

    let out = lmtune()
        .args([
            "plan",
            "--json",
            "--ctx",
            "2048",
            "--vram",
            "0",
            "--cpu-bandwidth",
            "20",
            "--model",
        ])
        .arg(model_path())
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["dry_run"]["source"], "llama.cpp no_alloc");
    let kv: u64 = v["dry_run"]["result"]["buffers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["context_bytes"].as_u64().unwrap())
        .sum();
    assert_eq!(kv, 30 * 768 * 2048);
}

/// A model llama.cpp refuses (a tensor it needs is missing) but whose header
/// lmtune reads: the analytic plan is printed, marked as the only source,
/// with one line naming the model and llama.cpp's reason; no panic.
#[test]
fn a_model_llama_cpp_cannot_load_still_gets_the_analytic_plan_and_one_line_why() {
    let dir = tempfile::tempdir().unwrap();
    let broken = broken_model(dir.path());
    let out = lmtune()
        .args([
            "plan",
            "--ctx",
            "2048",
            "--vram",
            "0",
            "--cpu-bandwidth",
            "20",
            "--model",
        ])
        .arg(&broken)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("recommended: n_gpu_layers"), "{stdout}");
    let note: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("note: llama.cpp's dry run of"))
        .collect();
    assert_eq!(note.len(), 1, "{stdout}");
    assert!(note[0].contains("broken.gguf"), "{}", note[0]);
    assert!(note[0].contains("analytic model only"), "{}", note[0]);
    assert!(
        note[0].contains("blk.1.ffn_up.weight"),
        "llama.cpp's reason: {}",
        note[0]
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Issue 22 #15: `plan --ubatch 4096 --ctx 512` recommended `-ub 4096`;
/// llama.cpp clamps n_ubatch to n_batch and n_batch to the context, so the
/// plan is for, and recommends, what it would run — and says so.
#[test]
fn plan_clamps_n_ubatch_as_llama_cpp_does() {
    let out = lmtune()
        .args([
            "plan",
            "--ubatch",
            "4096",
            "--ctx",
            "512",
            "--vram",
            "0",
            "--cpu-bandwidth",
            "20",
            "--no-dry-run",
            "--model",
        ])
        .arg(model_path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("n_ctx 512, n_ubatch 512"), "{stdout}");
    assert!(
        stdout.contains("note: --ubatch 4096 is more than llama.cpp uses"),
        "{stdout}"
    );
    assert!(
        stdout.contains("llama-server: -ngl 0 -c 512 -ub 512 "),
        "{stdout}"
    );
    assert!(!stdout.contains("-ub 4096"), "{stdout}");
    assert!(
        !stdout.contains("llama.cpp's dry run"),
        "--no-dry-run: {stdout}"
    );
}

/// Issue 22 #13: `plan`'s speed for the same model and flags swung from 47
/// to 81 t/s within minutes with its one bandwidth probe. Probes are kept
/// per machine with their date; the plan uses the best of the last 30 days
/// and states the spread as the prediction's uncertainty.
#[test]
fn plan_uses_the_best_recent_bandwidth_probe_and_states_the_spread() {
    let cache = tempfile::tempdir().unwrap();
    let plan = || {
        let out = lmtune()
            .env("XDG_CACHE_HOME", cache.path())
            .args(["plan", "--vram", "0", "--no-dry-run", "--model"])
            .arg(model_path())
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let first = plan();
    assert!(
        first.contains("the best of 1 probe(s) on this machine"),
        "{first}"
    );
    let file = cache.path().join("lmtune/bandwidth.tsv");
    let text = std::fs::read_to_string(&file).unwrap();
    let machine = text
        .lines()
        .next()
        .unwrap()
        .split('\t')
        .nth(1)
        .unwrap()
        .to_string();
    let today = text
        .lines()
        .next()
        .unwrap()
        .split('\t')
        .next()
        .unwrap()
        .to_string();
    // A faster probe today, and a faster but stale one (ignored).
    std::fs::write(
        &file,
        format!("{text}{today}\t{machine}\t999.00\n2020-01-01\t{machine}\t5000.00\n"),
    )
    .unwrap();
    let second = plan();
    assert!(
        second.contains("host read bandwidth 999.0 GB/s: the best of 3 probe(s)"),
        "{second}"
    );
    assert!(
        second.contains("note: uncertainty: the recommendation's"),
        "{second}"
    );
}

/// A mixture-of-experts file (metadata and tensor sizes as a qwen3moe of 8
/// blocks, 16 experts of which 2 are used, n_embd 1024; zero weights: only
/// `plan` reads it). Large enough that bytes, not the fixed cost per token,
/// decide the speed.
fn moe_model(dir: &std::path::Path) -> std::path::PathBuf {
    use lmtune_gguf::{write_gguf, GgmlType, MetadataValue, TensorSpec};
    let path = dir.join("moe.gguf");
    let a = "qwen3moe";
    let u32v = |k: &str, v: u32| (format!("{a}.{k}"), MetadataValue::U32(v));
    let metadata = vec![
        (
            "general.architecture".to_string(),
            MetadataValue::String(a.into()),
        ),
        u32v("block_count", 8),
        u32v("context_length", 4096),
        u32v("embedding_length", 1024),
        u32v("attention.head_count", 8),
        u32v("attention.head_count_kv", 2),
        u32v("expert_count", 16),
        u32v("expert_used_count", 2),
        u32v("expert_feed_forward_length", 512),
    ];
    let q8 = |name: String, dims: &[u64]| TensorSpec {
        name,
        dims: dims.to_vec(),
        ggml_type: GgmlType(8),
    };
    let mut tensors = vec![q8("token_embd.weight".into(), &[1024, 4096])];
    for il in 0..8 {
        let b = |s: &str| format!("blk.{il}.{s}.weight");
        tensors.extend([
            q8(b("attn_q"), &[1024, 1024]),
            q8(b("attn_k"), &[1024, 256]),
            q8(b("attn_v"), &[1024, 256]),
            q8(b("attn_output"), &[1024, 1024]),
            q8(b("ffn_gate_inp"), &[1024, 16]),
            q8(b("ffn_gate_exps"), &[1024, 512, 16]),
            q8(b("ffn_up_exps"), &[1024, 512, 16]),
            q8(b("ffn_down_exps"), &[512, 1024, 16]),
        ]);
    }
    tensors.push(q8("output.weight".into(), &[1024, 4096]));
    write_gguf(&path, &metadata, &tensors, |t, out| {
        out.write_all(&vec![0u8; t.n_bytes().unwrap() as usize])
    })
    .unwrap();
    path
}

/// Issue 21: `plan --vram` on a mixture of experts searched whole-layer
/// offload only and recommended -ngl 4. With a budget that holds the dense
/// part plus some experts, it now puts every layer on the GPU with the
/// routed experts of the fewest blocks in host memory, and prints the
/// --n-cpu-moe / -ncmoe flags.
#[test]
fn plan_puts_every_layer_on_the_gpu_and_the_fewest_experts_on_the_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let model = moe_model(dir.path());
    let plan = |vram: &str, json: bool| {
        let mut cmd = lmtune();
        cmd.args([
            "plan",
            "--no-dry-run",
            "--ctx",
            "4096",
            "--cpu-bandwidth",
            "20",
            "--gpu-bandwidth",
            "500",
            "--ram",
            "16GiB",
            "--vram",
            vram,
            "--model",
        ])
        .arg(&model);
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let v: serde_json::Value = serde_json::from_str(&plan("64GiB", true)).unwrap();
    let rows = v["plan"]["rows"].as_array().unwrap();
    let row = |ngl: u64, moe: u64| {
        rows.iter()
            .find(|r| r["n_gpu_layers"] == ngl && r["n_cpu_moe"] == moe)
            .unwrap_or_else(|| panic!("no row ngl {ngl} moe {moe}"))
    };
    let gpu = |r: &serde_json::Value| -> u64 {
        let g = &r["memory"]["gpu"];
        ["weights", "repacked", "kv", "compute", "overhead"]
            .iter()
            .map(|f| g[*f].as_u64().unwrap())
            .sum()
    };
    // Experts of 3 blocks on the CPU fits; of 2 does not (10% headroom).
    let need3 = gpu(row(9, 3));
    let need2 = gpu(row(9, 2));
    assert!(need2 > need3);
    let budget = (need3 as f64 / 0.9) as u64 + 1;
    assert!(
        (budget as f64 * 0.9) < need2 as f64,
        "the budget must not hold moe 2"
    );
    let text = plan(&format!("{budget}B"), false);
    assert!(
        text.contains("recommended: n_gpu_layers = 9, n_cpu_moe = 3"),
        "{text}"
    );
    assert!(
        text.contains("llama-server: -ngl 9 --n-cpu-moe 3 "),
        "{text}"
    );
    assert!(text.contains("llama-bench:  -ngl 9 -ncmoe 3 "), "{text}");
    assert!(
        text.contains("MoE expert weights of the first 3 layers on the CPU"),
        "{text}"
    );
    // And it beats the best whole-layer offload that fits the same budget.
    let whole = rows
        .iter()
        .filter(|r| r["n_cpu_moe"] == 0 && gpu(r) as f64 <= budget as f64 * 0.9)
        .map(|r| r["tg_tokens_per_s"].as_f64().unwrap())
        .fold(0.0, f64::max);
    assert!(row(9, 3)["tg_tokens_per_s"].as_f64().unwrap() > whole);
}
