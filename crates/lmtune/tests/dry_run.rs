//! llama.cpp's own dry run (model and context created with `no_alloc`) in
//! every record, checked against the buffers llama.cpp then really
//! allocated for the same point: weights, KV cache and compute buffers.

mod common;

use common::{lmtune, read_records, scenario, synth_gemma3};

/// llama.cpp prints buffer sizes to 0.01 MiB: a line is within 5 KiB.
const PRINT_ROUNDING: u64 = 5 * 1024 + 512;

/// Measured bytes of one kind of buffer, summed, and how many lines.
fn measured(r: &serde_json::Value, kind: &str) -> (u64, u64) {
    r["placement"]["buffers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["kind"] == kind)
        .fold((0, 0), |(sum, n), b| {
            (sum + b["bytes"].as_u64().unwrap(), n + 1)
        })
}

fn dry(r: &serde_json::Value, field: &str) -> u64 {
    let dry = &r["dry_run"];
    assert!(dry["error"].is_null(), "dry run failed: {dry}");
    dry["buffers"]
        .as_array()
        .unwrap_or_else(|| panic!("no dry run in {r}"))
        .iter()
        .map(|b| b[field].as_u64().unwrap())
        .sum()
}

fn assert_dry_run_matches(records: &[serde_json::Value]) {
    assert!(!records.is_empty());
    for r in records {
        assert_eq!(r["status"], "ok", "{r}");
        let label = format!("n_ctx {} n_ubatch {}", r["n_ctx"], r["n_ubatch"]);
        for (field, kind) in [
            ("model_bytes", "model"),
            ("context_bytes", "kv"),
            ("compute_bytes", "compute"),
        ] {
            let (bytes, lines) = measured(r, kind);
            let predicted = dry(r, field);
            assert!(
                predicted.abs_diff(bytes) <= lines.max(1) * PRINT_ROUNDING,
                "{label}: {kind}: dry run {predicted} B, llama.cpp allocated {bytes} B"
            );
        }
    }
}

#[test]
fn the_dry_run_is_what_llama_cpp_then_allocates_on_the_test_model() {
    let dir = tempfile::tempdir().unwrap();
    let path = scenario(
        dir.path(),
        "dry.toml",
        "[sweep]\nn_ctx = [256, 2048]\nn_ubatch = [64, 512]\nthreads = 2\n[workload]\nn_prompt = [64]\nn_gen = [0]\n[measure]\nrepetitions = 1\nwarmup = 0\n",
    );
    let out = dir.path().join("out");
    let run = lmtune()
        .arg("run")
        .arg(&path)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let records = read_records(&out);
    assert_eq!(records.len(), 4);
    assert_dry_run_matches(&records);
}

/// A sliding-window model, windowed and full size: the dry run knows the
/// architecture's rules because it is llama.cpp's own allocator.
#[test]
fn the_dry_run_knows_sliding_window_caches() {
    let dir = tempfile::tempdir().unwrap();
    let model = synth_gemma3(dir.path());
    let path = dir.path().join("dry-swa.toml");
    std::fs::write(
        &path,
        format!(
            "[model]\npath = {:?}\n[sweep]\nn_ctx = [2048, 16384]\nswa_full = [false, true]\nthreads = 2\n[workload]\nn_prompt = [0]\nn_gen = [1]\n[measure]\nrepetitions = 1\nwarmup = 0\n",
            model.display().to_string()
        ),
    )
    .unwrap();
    let out = dir.path().join("out");
    let run = lmtune()
        .arg("run")
        .arg(&path)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let records = read_records(&out);
    assert_eq!(records.len(), 4);
    assert_dry_run_matches(&records);
    // 3 global layers of n_ctx cells and 15 of 1024 (or n_ctx with
    // swa_full), 1 KiB per layer and cell.
    for r in &records {
        let n_ctx = r["n_ctx"].as_u64().unwrap();
        let swa_cells = if r["swa_full"] == true { n_ctx } else { 1024 };
        assert_eq!(dry(r, "context_bytes"), (3 * n_ctx + 15 * swa_cells) * 1024);
    }
}
