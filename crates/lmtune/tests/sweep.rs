//! End-to-end sweeps: the real binary, the real llama.cpp backend, the real model.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{lmtune, scenario};
use lmtune_report::CSV_COLUMNS;
use serde_json::Value;

/// Two load groups (n_gpu_layers 0 and 1 — on CPU the same placement, but
/// separate loads), threads 1 and 2, two batch sizes, pp and tg.
const SWEEP: &str = r#"
name = "it-sweep"
[sweep]
n_gpu_layers = [0, 1]
n_ctx = 256
n_batch = [16, 64]
n_ubatch = 16
threads = [1, 2]
[workload]
n_prompt = [32]
n_gen = [8]
[measure]
repetitions = 3
warmup = 1
"#;

#[test]
fn sweep_writes_complete_records_and_loads_once_per_group() {
    let dir = tempfile::tempdir().unwrap();
    let path = scenario(dir.path(), "sweep.toml", SWEEP);
    let out = dir.path().join("out");
    let assert = lmtune()
        .arg("run")
        .arg(&path)
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    let stdout = String::from_utf8(assert.get_output().stdout.clone()).unwrap();

    // The table: header + rule + one row per point, llama-bench style labels.
    assert!(stdout.starts_with("| model"), "{stdout}");
    assert_eq!(stdout.lines().count(), 2 + 16, "{stdout}");
    assert!(
        stdout.contains(" pp32 |") && stdout.contains(" tg8 |"),
        "{stdout}"
    );

    let jsonl = std::fs::read_to_string(out.join("results.jsonl")).unwrap();
    let records: Vec<Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 16);

    let mut loads_by_group: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r["schema_version"], 1);
        assert_eq!(r["point_index"], i as u64);
        assert_eq!(r["status"], "ok", "{r}");
        for key in [
            "n_gpu_layers",
            "n_ctx",
            "n_batch",
            "n_ubatch",
            "threads",
            "type_k",
            "type_v",
            "flash_attn",
            "n_prompt",
            "n_gen",
            "n_depth",
            "rss_peak_bytes",
            "started_at",
            "duration_s",
            "backend_perf_ts",
            "n_batch_actual",
        ] {
            assert!(!r[key].is_null(), "record {i} lacks {key}: {r}");
        }
        let samples_ns = r["samples_ns"].as_array().unwrap();
        let samples_ts = r["samples_ts"].as_array().unwrap();
        assert_eq!(samples_ns.len(), 3, "sample count = repetitions");
        assert_eq!(samples_ts.len(), 3);
        assert_eq!(r["repetitions"], 3);
        assert!(samples_ts.iter().all(|t| t.as_f64().unwrap() > 0.0));
        let ts = &r["tokens_per_s"];
        let mean = ts["mean"].as_f64().unwrap();
        assert!(mean > 0.0);
        assert!(
            ts["ci95_low"].as_f64().unwrap() <= mean && mean <= ts["ci95_high"].as_f64().unwrap()
        );
        // The raw samples really are what the summary summarizes.
        let avg = samples_ts.iter().map(|t| t.as_f64().unwrap()).sum::<f64>() / 3.0;
        assert!((avg - mean).abs() < 1e-9 * mean);
        // Tokens/s is timed tokens over wall time, per sample.
        let timed = r["n_prompt"].as_f64().unwrap() + r["n_gen"].as_f64().unwrap();
        let t0 = timed / (samples_ns[0].as_f64().unwrap() / 1e9);
        assert!((t0 - samples_ts[0].as_f64().unwrap()).abs() < 1e-6 * t0);
        // Our wall clock and llama.cpp's own perf counters time the same
        // decodes: per repetition they agree closely (measured: within 0.3%).
        let perf = r["backend_perf_ts"].as_array().unwrap();
        assert_eq!(perf.len(), 3);
        for (wall, perf) in samples_ts.iter().zip(perf) {
            let ratio = wall.as_f64().unwrap() / perf.as_f64().unwrap();
            assert!(
                (0.95..=1.01).contains(&ratio),
                "record {i}: wall/perf = {ratio}"
            );
        }
        assert!(
            r["rss_peak_bytes"].as_u64().unwrap() > 50 << 20,
            "the model alone is ~92 MiB resident when touched"
        );

        let fp = &r["fingerprint"];
        for key in [
            "cpu_model",
            "physical_cores",
            "logical_cores",
            "ram_bytes",
            "os",
            "kernel",
        ] {
            assert!(!fp["host"][key].is_null(), "fingerprint.host lacks {key}");
        }
        assert!(fp["gpus"].is_array());
        assert!(fp["backend_version"].as_str().unwrap().contains("0.1.160"));
        assert!(!fp["lmtune_commit"].as_str().unwrap().is_empty());
        assert_eq!(
            fp["model"]["sha256"],
            "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
        );
        assert_eq!(fp["model"]["architecture"], "llama");
        assert_eq!(fp["model"]["quant"], "Q4_1");
        assert_eq!(fp["model"]["n_params"], 134_515_008u64);

        let group = r["load_group"].as_u64().unwrap();
        loads_by_group
            .entry(group)
            .or_default()
            .insert(r["model_load_seq"].as_u64().unwrap());
    }
    // Loaded once per load group: each group has one load, and the loads differ.
    assert_eq!(loads_by_group.len(), 2);
    assert!(
        loads_by_group.values().all(|loads| loads.len() == 1),
        "{loads_by_group:?}"
    );
    let all: BTreeSet<_> = loads_by_group.values().flatten().collect();
    assert_eq!(all.len(), 2);
    // Points of a load group are contiguous (the model is not reloaded in between).
    let groups: Vec<u64> = records
        .iter()
        .map(|r| r["load_group"].as_u64().unwrap())
        .collect();
    assert!(groups.windows(2).all(|w| w[0] <= w[1]), "{groups:?}");

    // CSV and JSONL agree, row by row.
    let mut csv = csv::Reader::from_path(out.join("results.csv")).unwrap();
    let header: Vec<String> = csv.headers().unwrap().iter().map(str::to_string).collect();
    assert_eq!(header, CSV_COLUMNS);
    let rows: Vec<csv::StringRecord> = csv.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), records.len());
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    for (row, r) in rows.iter().zip(&records) {
        for key in [
            "point_index",
            "n_gpu_layers",
            "n_ctx",
            "n_batch",
            "n_ubatch",
            "threads",
            "n_prompt",
            "n_gen",
            "rss_peak_bytes",
            "model_load_seq",
        ] {
            assert_eq!(row[col(key)], r[key].to_string(), "{key}");
        }
        assert_eq!(&row[col("status")], r["status"].as_str().unwrap());
        assert_eq!(&row[col("test")], r["test"].as_str().unwrap());
        let mean: f64 = row[col("tokens_per_s_mean")].parse().unwrap();
        assert_eq!(mean, r["tokens_per_s"]["mean"].as_f64().unwrap());
        let samples: Vec<f64> = row[col("samples_ts")]
            .split(';')
            .map(|s| s.parse().unwrap())
            .collect();
        let json_samples: Vec<f64> = r["samples_ts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(samples, json_samples);
    }
    // The scenario is kept beside its results.
    assert!(out.join("scenario.toml").exists());
}

/// llama.cpp clamps a context's n_batch to n_ctx; decoding a chunk of the
/// requested (larger) n_batch would hit a C assert and abort. Chunks follow
/// the context's actual n_batch().
#[test]
fn n_batch_larger_than_n_ctx_is_chunked_by_the_actual_batch() {
    let dir = tempfile::tempdir().unwrap();
    let path = scenario(
        dir.path(),
        "clamp.toml",
        "[sweep]\nn_ctx = 64\nn_batch = 512\nn_ubatch = 32\nthreads = 2\n[workload]\nn_prompt = [48]\nn_gen = [0]\n[measure]\nrepetitions = 1\nwarmup = 0\n",
    );
    let out = dir.path().join("out");
    lmtune()
        .arg("run")
        .arg(&path)
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    let r = common::read_records(&out).remove(0);
    assert_eq!(r["status"], "ok");
    assert_eq!(r["n_batch"], 512, "the requested value is recorded");
    assert_eq!(r["n_batch_actual"], 64, "llama.cpp clamped it to n_ctx");
}

#[test]
fn default_results_dir_is_under_results() {
    let dir = tempfile::tempdir().unwrap();
    let path = scenario(dir.path(), "tiny.toml", "name = \"tiny\"\n[sweep]\nn_ctx = 64\nthreads = 1\n[workload]\nn_prompt = [8]\nn_gen = [4]\n[measure]\nrepetitions = 1\n");
    lmtune()
        .current_dir(dir.path())
        .arg("run")
        .arg(&path)
        .assert()
        .success();
    let dirs: Vec<_> = std::fs::read_dir(dir.path().join("results"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(dirs.len(), 1);
    assert!(dirs[0].ends_with("-tiny"), "{dirs:?}");
    assert!(dir
        .path()
        .join("results")
        .join(&dirs[0])
        .join("results.csv")
        .exists());
}

#[test]
fn dry_run_lists_points_without_measuring() {
    let dir = tempfile::tempdir().unwrap();
    let path = scenario(dir.path(), "sweep.toml", SWEEP);
    let assert = lmtune()
        .arg("run")
        .arg(&path)
        .arg("--dry-run")
        .assert()
        .success();
    let stdout = String::from_utf8(assert.get_output().stdout.clone()).unwrap();
    assert!(stdout.contains("16 points in 2 load group(s)"), "{stdout}");
    assert!(!dir.path().join("results").exists());
}
