//! `lmtune plan`: llama.cpp's own dry run of the recommended setting
//! beside the analytic figures, and what it says when llama.cpp cannot
//! answer.

mod common;

use common::{lmtune, model_path};

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
    let mut bytes = std::fs::read(model_path()).unwrap();
    let from = b"blk.1.ffn_up.weight";
    let at = bytes
        .windows(from.len())
        .position(|w| w == from)
        .expect("the test model has blk.1.ffn_up.weight");
    bytes[at..at + from.len()].copy_from_slice(b"blk.1.ffn_xx.weight");
    let broken = dir.path().join("broken.gguf");
    std::fs::write(&broken, bytes).unwrap();
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
