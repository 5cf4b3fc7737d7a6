//! `markdown_table` byte for byte on the columns `every_record_format`'s
//! data does not reach: every knob varying, failed and simulated points,
//! CPU cores busy, predicted and measured VRAM, no "check" column, and no
//! records at all. The expected tables in `tests/data/expected/table-*.md`
//! were written before `markdown_table` was split (issue 19); to accept a
//! deliberate change, run with `LMTUNE_BLESS=1` and review the diff.

use std::path::{Path, PathBuf};

use lmtune_core::record::Record;
use lmtune_report::markdown_table;
use serde_json::{json, Value};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// Compares `actual` with `tests/data/expected/NAME` (or writes it, blessing).
fn check(name: &str, actual: &str) {
    let path = data("expected").join(name);
    if std::env::var_os("LMTUNE_BLESS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (LMTUNE_BLESS=1 writes it)", path.display()));
    assert!(
        expected == actual,
        "{name} differs from {}:\n--- expected\n{expected}\n--- actual\n{actual}",
        path.display()
    );
}

/// The committed records of `name` as JSON, to edit before reading them.
fn json_records(name: &str) -> Vec<Value> {
    std::fs::read_to_string(data(name))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn records(values: Vec<Value>) -> Vec<Record> {
    values
        .into_iter()
        .map(|v| serde_json::from_value(v).unwrap())
        .collect()
}

#[test]
fn every_column_failed_and_simulated_points() {
    let mut v = json_records("gpu.jsonl");
    v.extend(json_records("cpu.jsonl"));
    // Knobs that otherwise never vary, so every knob column shows.
    v[0]["n_cpu_moe"] = json!(3);
    v[0]["cpu_moe"] = json!(true);
    v[0]["override_tensor"] = json!("blk\\.1\\.=CPU");
    v[0]["type_k"] = json!("q8_0");
    v[0]["type_v"] = json!("q4_0");
    v[0]["flash_attn"] = json!("on");
    v[0]["op_offload"] = json!(false);
    v[0]["swa_full"] = json!(true);
    v[0]["cpu_busy_cores"] = json!(1.75);
    // VRAM: predicted with buffers, and measured as the worker's peak and
    // as the device's growth.
    v[1]["prediction"]["vram_bytes"] = json!(300_000_000u64);
    v[1]["prediction"]["vram_buffers_bytes"] = json!(44_000_000u64);
    v[1]["vram"] = json!({"worker_peak_bytes": 123_456_789u64,
        "device_used_before_bytes": 0, "device_used_after_bytes": 0, "samples": 4});
    v[2]["vram"] = json!({"worker_peak_bytes": null,
        "device_used_before_bytes": 1_000_000_000u64,
        "device_used_after_bytes": 1_500_000_000u64, "samples": 2});
    v[3]["status"] = json!("oom");
    v[3]["tokens_per_s"] = Value::Null;
    v[4]["status"] = json!("load_failed");
    v[5]["backend"] = json!("sim");
    check("table-every-column.md", &markdown_table(&records(v)));
}

#[test]
fn steady_cpu_points_have_no_check_column() {
    let mut v = json_records("cpu.jsonl");
    for r in v.iter_mut().filter(|r| r["tokens_per_s"].is_object()) {
        let mean = r["tokens_per_s"]["mean"].clone();
        r["tokens_per_s"]["sd"] = json!(0.5);
        r["samples_ts"] = json!([mean.clone(), mean.clone(), mean]);
        r["outliers"] = json!([]);
    }
    let table = markdown_table(&records(v));
    assert!(!table.contains("check"), "{table}");
    check("table-no-check.md", &table);
}

#[test]
fn no_records_is_a_header_with_threads() {
    check("table-empty.md", &markdown_table(&[]));
}
