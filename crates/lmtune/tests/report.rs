//! Reports rendered from real result files: a fresh sweep on the real model,
//! and real llama-bench output.

mod common;

use std::path::{Path, PathBuf};

use common::{lmtune, scenario};
use serde_json::Value;

fn charts(dir: &Path) -> Vec<Value> {
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("charts.json")).unwrap()).unwrap();
    v["charts"].as_array().unwrap().clone()
}

fn chart<'a>(charts: &'a [Value], stem: &str) -> &'a Value {
    charts
        .iter()
        .find(|c| c["stem"] == stem)
        .unwrap_or_else(|| {
            panic!(
                "no chart {stem}: {:?}",
                charts.iter().map(|c| c["stem"].clone()).collect::<Vec<_>>()
            )
        })
}

#[test]
fn report_of_a_real_sweep_has_every_chart_and_the_html_holds_them_all() {
    let dir = tempfile::tempdir().unwrap();
    // threads × n_ubatch (a two-knob sweep), pp and tg, one point that runs out of memory.
    let body = "name = \"report-it\"\n[sweep]\nn_ctx = [256, 8192]\nn_batch = 64\nn_ubatch = [32, 64]\nthreads = [1, 2]\ntype_k = \"f32\"\ntype_v = \"f32\"\nskip_invalid = true\n[workload]\nn_prompt = [32]\nn_gen = [8]\n[measure]\nrepetitions = 2\nworker_memory_limit = \"500MiB\"\n";
    let path = scenario(dir.path(), "s.toml", body);
    let results = dir.path().join("results");
    let out = lmtune()
        .arg("run")
        .arg(&path)
        .arg("--out")
        .arg(&results)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "the n_ctx 8192 points run out of memory: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = dir.path().join("report");
    let reference = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/reference/community-tg-tps.csv");
    lmtune()
        .arg("report")
        .arg(&results)
        .arg("-o")
        .arg(&report)
        .arg("--reference")
        .arg(&reference)
        .args(["--ram-budget", "512MiB"])
        .assert()
        .success();

    let cs = charts(&report);
    // t/s against threads: one series per test and n_ubatch (n_ctx 8192 failed), 2 points each.
    let tg = chart(&cs, "tg_vs_threads");
    let series = tg["series"].as_array().unwrap();
    let labels: Vec<&str> = series
        .iter()
        .map(|s| s["label"].as_str().unwrap())
        .collect();
    assert!(
        labels.contains(&"tg8, n_ubatch=32, n_ctx=256")
            && labels.contains(&"tg8, n_ubatch=64, n_ctx=256"),
        "{labels:?}"
    );
    assert!(series
        .iter()
        .all(|s| s["points"].as_array().unwrap().len() == 2));
    for p in series.iter().flat_map(|s| s["points"].as_array().unwrap()) {
        let (y, lo, hi) = (
            p["y"].as_f64().unwrap(),
            p["lo"].as_f64().unwrap(),
            p["hi"].as_f64().unwrap(),
        );
        assert!(y > 0.0 && lo <= y && y <= hi, "{p}");
    }
    assert_eq!(
        tg["failed"].as_array().unwrap().len(),
        4,
        "the oom and skipped tg points are marked"
    );
    // The first n_ctx 8192 point (a pp test) ran out of memory; the points
    // that need at least as much were skipped.
    let records = common::read_records(&results);
    let statuses: Vec<String> = records
        .iter()
        .map(|r| {
            format!(
                "{} {} {}: {} {}",
                r["n_ctx"],
                r["test"],
                r["threads"],
                r["status"],
                r["error"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert!(
        chart(&cs, "pp_vs_threads")["failed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["label"] == "oom"),
        "{statuses:#?}"
    );
    assert!(tg["failed"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["label"] == "skipped"));
    assert_eq!(tg["x_label"], "threads");

    let mem = chart(&cs, "memory_vs_n_ctx");
    assert_eq!(mem["hline"][1], "RAM budget 512 MiB");
    assert!(mem["series"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["label"] == "RSS, predicted before the run" && s["predicted"] == true));
    assert!(
        mem["log2_x"].as_bool().unwrap(),
        "256 → 8192 spans decades: log axis"
    );
    let heat = chart(&cs, "heatmap_pp_threads_n_ubatch");
    assert_eq!(heat["cells"].as_array().unwrap().len(), 4);
    assert!(heat["best"].is_array());
    assert!(chart(&cs, "predicted_vs_measured_rss")["note"]
        .as_str()
        .unwrap()
        .contains("mean |error|"));
    assert!(chart(&cs, "roofline_tg")["bars"]
        .as_array()
        .unwrap()
        .iter()
        .all(|b| b["value"].as_f64().unwrap() > 0.0));
    let hw = chart(&cs, "hardware_comparison_tg");
    assert_eq!(
        hw["ranges"].as_array().unwrap().len(),
        12,
        "every community-reported row is drawn"
    );
    assert!(hw["groups"]
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g == "7B Q4_K_M"));

    // Every chart exists as SVG and PNG, and index.html inlines every chart.
    let html = std::fs::read_to_string(report.join("index.html")).unwrap();
    let md = std::fs::read_to_string(report.join("summary.md")).unwrap();
    assert!(!html.contains("<script src") && !html.contains("<link "));
    for c in &cs {
        let stem = c["stem"].as_str().unwrap();
        let svg = std::fs::read_to_string(report.join(format!("{stem}.svg"))).unwrap();
        assert!(
            svg.contains(c["title"].as_str().unwrap()),
            "{stem}: title in the SVG"
        );
        let png = std::fs::read(report.join(format!("{stem}.png"))).unwrap();
        assert_eq!(&png[..4], b"\x89PNG", "{stem}.png");
        assert!(
            html.contains(&format!("id=\"{stem}\"")),
            "index.html inlines {stem}"
        );
        assert!(
            md.contains(&format!("({stem}.png)")),
            "summary.md links {stem}"
        );
    }
    assert_eq!(html.matches("<svg").count(), cs.len());
    assert!(html.contains("fastest generation"), "the recommendation");
    assert!(
        md.contains("oom: ") && md.contains("skipped: "),
        "warnings list failed points"
    );
    assert!(md.contains("| model"), "the results table");
}

#[test]
fn llama_bench_output_is_reported_like_native_results() {
    let dir = tempfile::tempdir().unwrap();
    let bench = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/llama-bench/smollm2-cpu.json");
    let report = dir.path().join("report");
    lmtune()
        .arg("report")
        .arg(&bench)
        .arg("-o")
        .arg(&report)
        .arg("--no-png")
        .assert()
        .success();
    let cs = charts(&report);
    let tg = chart(&cs, "tg_vs_threads");
    assert_eq!(
        tg["series"].as_array().unwrap().len(),
        2,
        "one series per n_batch"
    );
    assert!(
        report.join("tg_vs_threads.svg").exists() && !report.join("tg_vs_threads.png").exists()
    );
    let md = std::fs::read_to_string(report.join("summary.md")).unwrap();
    assert!(
        md.contains("llama-bench llama.cpp build 0 (unknown)"),
        "{md}"
    );
    assert!(
        md.contains("noisy:"),
        "the 2-thread tg16 samples of 0.33..127.8 t/s are flagged: {md}"
    );
}

#[test]
fn report_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let out = lmtune()
        .args(["report", "/nonexistent/results", "-o"])
        .arg(dir.path().join("r"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).starts_with("error: cannot read /nonexistent/results")
    );
}

/// Op offload goes out to llama-bench's CSV as its `no_op_offload` column and
/// comes back in from it, on the committed op-offload run (real records).
#[test]
fn op_offload_survives_a_llama_bench_csv_round_trip() {
    let results = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../results/2026-11-30-vm-vulkan-llvmpipe-op-offload");
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("bench.csv");
    let out = lmtune()
        .arg("export")
        .arg(&results)
        .arg("-o")
        .arg(&csv)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let column = reader
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == "no_op_offload")
        .unwrap();
    let exported: Vec<String> = reader
        .records()
        .map(|r| r.unwrap()[column].to_string())
        .collect();
    let originals: Vec<bool> = common::read_records(&results)
        .iter()
        .map(|r| r.get("op_offload").is_none_or(|v| v == true))
        .collect();
    assert_eq!(
        originals,
        [true, true, false, false, true, true, false, false]
    );
    let expected: Vec<&str> = originals
        .iter()
        .map(|&on| if on { "0" } else { "1" })
        .collect();
    assert_eq!(exported, expected);

    let jsonl = dir.path().join("back.jsonl");
    let back = lmtune()
        .arg("export")
        .arg(&csv)
        .args(["--format", "jsonl", "-o"])
        .arg(&jsonl)
        .output()
        .unwrap();
    assert!(
        back.status.success(),
        "{}",
        String::from_utf8_lossy(&back.stderr)
    );
    let imported: Vec<bool> = std::fs::read_to_string(&jsonl)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v.get("op_offload").is_none_or(|v| v == true)
        })
        .collect();
    assert_eq!(imported, originals);
}

/// The committed CPU grid, whose charts held 10–12 series: `lmtune report`
/// drew the first 8 and dropped the rest (there, the only run that varied
/// threads) with a warning the chart did not show.
fn cpu_grid_report() -> (tempfile::TempDir, PathBuf) {
    let results =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../results/2026-11-21-vm-cpu-grid");
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report");
    lmtune()
        .arg("report")
        .arg(&results)
        .arg("-o")
        .arg(&report)
        .arg("--no-png")
        .assert()
        .success();
    (dir, report)
}

#[test]
fn charts_with_more_than_eight_series_are_split_and_drop_none() {
    let (_dir, report) = cpu_grid_report();
    let cs = charts(&report);
    let parts: Vec<&Value> = cs
        .iter()
        .filter(|c| c["stem"].as_str().unwrap().starts_with("tg_vs_threads"))
        .collect();
    assert_eq!(parts.len(), 2, "10 series over 2 charts");
    let labels: Vec<&str> = parts
        .iter()
        .flat_map(|c| c["series"].as_array().unwrap())
        .map(|s| s["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels.len(), 10, "{labels:?}");
    for (i, c) in parts.iter().enumerate() {
        assert!(c["series"].as_array().unwrap().len() <= 8);
        let title = c["title"].as_str().unwrap();
        assert!(
            title.contains(&format!("part {} of 2 (10 series)", i + 1)),
            "{title}"
        );
        assert!(report
            .join(format!("{}.svg", c["stem"].as_str().unwrap()))
            .exists());
    }
    let md = std::fs::read_to_string(report.join("summary.md")).unwrap();
    assert!(!md.contains("are drawn"), "no series dropped: {md}");
}

/// Two runs of the same grid: the heatmap took each cell's best over both
/// runs, so a cell could show one run's number beside the other's.
#[test]
fn heatmap_never_merges_points_of_two_runs_into_one_cell() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../results");
    let runs = ["2026-11-21-vm-cpu-grid", "2026-11-22-vm-cpu-grid"];
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report");
    lmtune()
        .arg("report")
        .args(runs.iter().map(|r| root.join(r)))
        .arg("-o")
        .arg(&report)
        .arg("--no-png")
        .assert()
        .success();
    let cs = charts(&report);
    for (i, run) in runs.iter().enumerate() {
        let heatmap = chart(&cs, &format!("heatmap_tg_threads_n_ubatch_{}", i + 1));
        assert!(
            heatmap["title"].as_str().unwrap().starts_with(run),
            "{}",
            heatmap["title"]
        );
        // Every cell is the best of its own run's points, the best cell its run's best.
        let best_of_run = common::read_records(&root.join(run))
            .iter()
            .filter(|r| r["status"] == "ok" && r["test"] == "tg32")
            .map(|r| r["tokens_per_s"]["mean"].as_f64().unwrap())
            .fold(0.0, f64::max);
        let best_cell = heatmap["cells"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c[2].as_f64().unwrap())
            .fold(0.0, f64::max);
        assert_eq!(best_cell, best_of_run, "{run}");
    }
    assert!(cs
        .iter()
        .all(|c| c["stem"] != "heatmap_tg_threads_n_ubatch"));
}

/// A sweep over the K cache type drew no chart of it at all: the type was
/// only part of series labels. Now t/s by K/V type, one bar per type.
#[test]
fn a_varied_kv_cache_type_gets_its_own_chart() {
    let dir = tempfile::tempdir().unwrap();
    let body = "name = \"kv-types\"\n[sweep]\nn_ctx = 256\nn_batch = 32\nn_ubatch = 32\nthreads = 2\ntype_k = [\"f16\", \"q8_0\"]\n[workload]\nn_prompt = [0]\nn_gen = [4]\n[measure]\nrepetitions = 2\n";
    let path = scenario(dir.path(), "s.toml", body);
    let results = dir.path().join("results");
    lmtune()
        .arg("run")
        .arg(&path)
        .arg("--out")
        .arg(&results)
        .assert()
        .success();
    let report = dir.path().join("report");
    lmtune()
        .arg("report")
        .arg(&results)
        .arg("-o")
        .arg(&report)
        .arg("--no-png")
        .assert()
        .success();
    let cs = charts(&report);
    let bars = chart(&cs, "tg_by_kv_type");
    let mut types: Vec<&str> = bars["bars"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["series"].as_str().unwrap())
        .collect();
    types.sort();
    assert_eq!(types, ["K/V f16/f16", "K/V q8_0/f16"]);
    for b in bars["bars"].as_array().unwrap() {
        let (v, lo, hi) = (
            b["value"].as_f64().unwrap(),
            b["lo"].as_f64().unwrap(),
            b["hi"].as_f64().unwrap(),
        );
        assert!(v > 0.0 && lo <= v && v <= hi, "{b}");
    }
    assert!(report.join("tg_by_kv_type.svg").exists());
}

/// The committed op-offload run (on/off × two offloads × pp16/pp32): one
/// bar per op_offload value, grouped by test and n_gpu_layers.
#[test]
fn a_varied_op_offload_gets_its_own_chart() {
    let results = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../results/2026-11-30-vm-vulkan-llvmpipe-op-offload");
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report");
    lmtune()
        .arg("report")
        .arg(&results)
        .arg("-o")
        .arg(&report)
        .arg("--no-png")
        .assert()
        .success();
    let cs = charts(&report);
    let bars = chart(&cs, "pp_by_op_offload");
    assert_eq!(
        bars["groups"],
        serde_json::json!(["pp16 ngl=0", "pp32 ngl=0", "pp16 ngl=16", "pp32 ngl=16"])
    );
    let bars = bars["bars"].as_array().unwrap();
    assert_eq!(bars.len(), 8, "every point, none merged");
    let off = bars
        .iter()
        .filter(|b| b["series"] == "op_offload=off")
        .count();
    assert_eq!(off, 4);
}

/// Two CPU-only dry-run benches asked for n_gpu_layers 19 and 31; llama.cpp
/// offloaded 0 layers in both. The report drew memory against "layers
/// offloaded" 19 and 31; charts now use the applied values, and skip a
/// knob that takes one.
#[test]
fn memory_vs_n_gpu_layers_uses_the_layers_llama_cpp_offloaded() {
    let root =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../results/2026-12-01-vm-dry-run-bench");
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report");
    lmtune()
        .arg("report")
        .arg(root.join("gemma3-270m"))
        .arg(root.join("SmolLM2-135M-Instruct.Q4_1"))
        .arg("-o")
        .arg(&report)
        .arg("--no-png")
        .assert()
        .success();
    let stems: Vec<String> = charts(&report)
        .iter()
        .map(|c| c["stem"].as_str().unwrap().to_string())
        .collect();
    assert!(stems.contains(&"memory_vs_n_ctx".to_string()), "{stems:?}");
    assert!(
        stems.iter().all(|s| !s.contains("n_gpu_layers")),
        "0 layers offloaded everywhere: {stems:?}"
    );
}

/// A context auto-sized per test (pp at one n_ctx, tg at another): n_ctx
/// varies over the records, but each test kind has one value, and the
/// report drew `tg_vs_n_ctx` with a single x.
#[test]
fn tg_vs_n_ctx_is_not_drawn_with_a_single_context() {
    let grid =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../results/2026-11-21-vm-cpu-grid");
    let kept: Vec<String> = std::fs::read_to_string(grid.join("results.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| {
            let r: Value = serde_json::from_str(l).unwrap();
            let tg = r["n_prompt"] == 0;
            (tg && r["n_ctx"] == 512) || (!tg && r["n_ctx"] == 4096)
        })
        .map(str::to_string)
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results.jsonl");
    std::fs::write(&results, kept.join("\n") + "\n").unwrap();
    let report = dir.path().join("report");
    lmtune()
        .arg("report")
        .arg(&results)
        .arg("-o")
        .arg(&report)
        .arg("--no-png")
        .assert()
        .success();
    let stems: Vec<String> = charts(&report)
        .iter()
        .map(|c| c["stem"].as_str().unwrap().to_string())
        .collect();
    assert!(stems.contains(&"tg_vs_threads".to_string()), "{stems:?}");
    assert!(
        stems
            .iter()
            .all(|s| !s.starts_with("tg_vs_n_ctx") && !s.starts_with("pp_vs_n_ctx")),
        "{stems:?}"
    );
}
