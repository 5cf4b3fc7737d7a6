//! llama-bench's JSON (`llama-bench -o json`): an array of objects with
//! llama-bench's keys in its order and its types (numbers, `true`/`false`
//! for its boolean fields, strings), then `samples_ns` and `samples_ts`.
//! The same values as the llama-bench CSV, so the two round-trip alike.

use std::io;

use lmtune_core::record::{Record, Status};

use super::llama_bench_csv::{row, LLAMA_BENCH_COLUMNS};
use super::Exporter;

/// The columns llama-bench prints as `true` / `false` (its CSV has 0 / 1).
const BOOLEANS: &[&str] = &[
    "cpu_strict",
    "no_kv_offload",
    "embeddings",
    "no_host",
    "repack",
];

/// The columns llama-bench prints as strings; every other is a number.
const STRINGS: &[&str] = &[
    "build_commit",
    "cpu_info",
    "gpu_info",
    "backends",
    "model_filename",
    "model_type",
    "cpu_mask",
    "type_k",
    "type_v",
    "split_mode",
    "devices",
    "tensor_split",
    "tensor_buft_overrides",
    "load_mode",
    "lazy_mode",
    "test_time",
];

/// A whole array: written at once, never appended to.
pub struct LlamaBenchJson;

impl Exporter<[Record]> for LlamaBenchJson {
    fn body(&self, records: &[Record]) -> io::Result<Vec<u8>> {
        let objects: Vec<String> = records
            .iter()
            .filter(|r| r.status == Status::Ok)
            .map(object)
            .collect();
        let mut out = String::from("[\n");
        out.push_str(&objects.join(",\n"));
        if !objects.is_empty() {
            out.push('\n');
        }
        out.push_str("]\n");
        Ok(out.into_bytes())
    }
}

fn object(r: &Record) -> String {
    let values = row(r);
    let mut fields: Vec<String> = LLAMA_BENCH_COLUMNS
        .iter()
        .zip(values)
        .map(|(key, value)| format!("    \"{key}\": {}", typed(key, &value)))
        .collect();
    let ns = &r.measurement.samples_ns;
    fields.push(format!(
        "    \"samples_ns\": [ {} ]",
        ns.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
    ));
    let ts: Vec<String> = ns
        .iter()
        .map(|&n| {
            let tokens = r.workload.n_prompt.max(r.workload.n_gen) as f64;
            format!("{:.4}", if n == 0 { 0.0 } else { tokens * 1e9 / n as f64 })
        })
        .collect();
    fields.push(format!("    \"samples_ts\": [ {} ]", ts.join(", ")));
    format!("  {{\n{}\n  }}", fields.join(",\n"))
}

fn typed(key: &str, value: &str) -> String {
    if STRINGS.contains(&key) {
        serde_json::to_string(value).unwrap_or_else(|_| "\"\"".into())
    } else if BOOLEANS.contains(&key) {
        (value == "1" || value == "true").to_string()
    } else if value.parse::<f64>().is_ok() {
        value.to_string()
    } else {
        serde_json::to_string(value).unwrap_or_else(|_| "\"\"".into())
    }
}
