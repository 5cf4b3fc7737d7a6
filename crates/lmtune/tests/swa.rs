//! Sliding-window models measured as llama-bench and llama-server run them:
//! `swa_full` off by default (llama.cpp's C default is on), a knob to turn
//! it on, and every llama.cpp parameter lmtune passes recorded and read back
//! from llama.cpp's own log.

mod common;

use common::{lmtune, model_path, read_records, scenario, synth_gemma3};

const MIB: u64 = 1 << 20;

fn run_ok(path: &std::path::Path, out: &std::path::Path) {
    let run = lmtune()
        .arg("run")
        .arg(path)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
}

/// (kind, cells, layers, bytes) of each KV cache llama.cpp logged.
fn kv_caches(r: &serde_json::Value) -> Vec<(String, u64, u64, u64)> {
    r["placement"]["kv_caches"]
        .as_array()
        .unwrap_or_else(|| panic!("no kv_caches in {r}"))
        .iter()
        .map(|c| {
            (
                c["kind"].as_str().unwrap().to_string(),
                c["cells"].as_u64().unwrap(),
                c["layers"].as_u64().unwrap(),
                c["bytes"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Gemma 3 at n_ctx 32768 (the issue: lmtune measured a 576 MiB KV cache
/// where llama-server allocates 111 MiB): by default the 15 sliding-window
/// layers keep window + n_ubatch = 1024 cells and the 3 global layers the
/// whole context; with `swa_full = true` every layer is full size.
#[test]
fn swa_full_is_off_by_default_as_llama_bench_and_llama_server_run_it() {
    let dir = tempfile::tempdir().unwrap();
    let model = synth_gemma3(dir.path());
    let path = dir.path().join("swa.toml");
    std::fs::write(
        &path,
        format!(
            "[model]\npath = {:?}\n[sweep]\nn_ctx = 32768\nthreads = 2\nswa_full = [false, true]\n[workload]\nn_prompt = [0]\nn_gen = [2]\n[measure]\nrepetitions = 1\nwarmup = 0\n",
            model.display().to_string()
        ),
    )
    .unwrap();
    let out = dir.path().join("out");
    run_ok(&path, &out);
    let records = read_records(&out);
    assert_eq!(records.len(), 2);
    // K + V of one layer and token: 1 KV head × 256 dims × f16 × 2.
    let per_cell = 1024;
    let (off, on) = (&records[0], &records[1]);

    assert!(off.get("swa_full").is_none(), "off is the default: {off}");
    assert_eq!(off["backend_params"]["swa_full"], "false");
    assert!(off["backend_applied"].get("swa_full").is_none());
    assert_eq!(
        kv_caches(off),
        vec![
            ("global".into(), 32768, 3, 3 * 32768 * per_cell),
            ("sliding_window".into(), 1024, 15, 15 * 1024 * per_cell),
        ]
    );
    let kv_off: u64 = kv_caches(off).iter().map(|c| c.3).sum();
    assert_eq!(kv_off, 111 * MIB);

    assert_eq!(on["swa_full"], true);
    assert_eq!(on["backend_params"]["swa_full"], "true");
    // llama.cpp says so itself ("using full-size SWA cache").
    assert_eq!(on["backend_applied"]["swa_full"], "true");
    assert_eq!(
        kv_caches(on),
        vec![
            ("global".into(), 32768, 3, 3 * 32768 * per_cell),
            ("sliding_window".into(), 32768, 15, 15 * 32768 * per_cell),
        ]
    );
    // The KV buffers llama.cpp allocated are the caches' sizes.
    let kv_buffers: u64 = off["placement"]["buffers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["kind"] == "kv")
        .map(|b| b["bytes"].as_u64().unwrap())
        .sum();
    assert_eq!(kv_buffers, kv_off);
    // And the memory a user sees follows: the full-size cache adds its 465 MiB.
    let rss = |r: &serde_json::Value| r["rss_peak_bytes"].as_u64().unwrap();
    assert!(
        rss(on) > rss(off) + 400 * MIB,
        "{} vs {}",
        rss(on),
        rss(off)
    );

    // The analytic model agrees with llama.cpp on the KV cache.
    let inspect = lmtune().arg("inspect").arg(&model).output().unwrap();
    let text = String::from_utf8_lossy(&inspect.stdout);
    assert!(
        text.contains("111.00 MiB at n_ctx 32768"),
        "inspect's KV line: {text}"
    );
    assert!(text.contains("sliding win.  512 tokens on 15 of 18 layers"));
}

/// The first numbers: lmtune predicted Gemma 3's peak RSS 62% low
/// at n_ctx 32768. Now, for a prompt and for generation at n_ctx 2048,
/// 16384 and 32768, the prediction every record carries is within 5% of
/// the peak RSS the worker measured: weights, the whole KV cache (cleared
/// at creation, so resident) and the part of the compute buffer the test's
/// calls touch.
#[test]
fn gemma3_peak_rss_is_predicted_within_5_percent_for_prompt_and_generation() {
    let dir = tempfile::tempdir().unwrap();
    let model = synth_gemma3(dir.path());
    let path = dir.path().join("rss.toml");
    std::fs::write(
        &path,
        format!(
            "[model]\npath = {:?}\n[sweep]\nn_ctx = [2048, 16384, 32768]\nthreads = 2\n[workload]\nn_prompt = [512]\nn_gen = [16]\n[measure]\nrepetitions = 1\nwarmup = 0\n",
            model.display().to_string()
        ),
    )
    .unwrap();
    let out = dir.path().join("out");
    run_ok(&path, &out);
    let records = read_records(&out);
    assert_eq!(records.len(), 6);
    for r in &records {
        let measured = r["rss_peak_bytes"].as_u64().unwrap() as f64;
        let predicted = r["prediction"]["rss_bytes"].as_u64().unwrap() as f64;
        let error = predicted / measured - 1.0;
        eprintln!(
            "{} n_ctx {}: measured {:.1} MiB, predicted {:.1} MiB ({:+.1}%)",
            r["test"],
            r["n_ctx"],
            measured / MIB as f64,
            predicted / MIB as f64,
            100.0 * error
        );
        assert!(
            error.abs() <= 0.05,
            "{} at n_ctx {}: predicted {predicted} B, measured {measured} B",
            r["test"],
            r["n_ctx"]
        );
    }
}

/// The rows of README.md's "llama.cpp parameters" table: (field, lmtune's value).
fn readme_rows() -> Vec<(String, String)> {
    let readme = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"),
    )
    .unwrap();
    let section = readme
        .split("### llama.cpp parameters")
        .nth(1)
        .expect("README.md has a \"### llama.cpp parameters\" section");
    section
        .lines()
        .skip_while(|l| !l.starts_with("| field"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (
                cells[1].trim_matches('`').to_string(),
                cells[2].trim_matches('`').to_string(),
            )
        })
        .collect()
}

/// README's audit table, row by row: the value lmtune's column names is what
/// the record says was passed to llama.cpp, and where llama.cpp logs the
/// setting back, what it applied.
#[test]
fn every_llama_cpp_parameter_in_the_readme_is_what_a_point_ran_with() {
    let dir = tempfile::tempdir().unwrap();
    let path = scenario(
        dir.path(),
        "params.toml",
        "[sweep]\nthreads = 2\n[workload]\nn_prompt = [64]\nn_gen = [0]\n[measure]\nrepetitions = 1\nwarmup = 0\n",
    );
    let out = dir.path().join("out");
    run_ok(&path, &out);
    let r = &read_records(&out)[0];
    let passed = r["backend_params"].as_object().unwrap();
    let applied = r["backend_applied"].as_object().unwrap();
    let rows = readme_rows();
    assert!(rows.len() >= 20, "{rows:?}");
    let mut checked = 0;
    for (field, lmtune_value) in &rows {
        let Some(value) = passed.get(field) else {
            continue;
        };
        checked += 1;
        // The table gives per-point values as the knob or rule they follow.
        let expected = match lmtune_value.as_str() {
            "= n_ctx" => r["n_ctx"].to_string(),
            "= n_batch" => r["n_batch"].to_string(),
            "= n_ubatch" => r["n_ubatch"].to_string(),
            "= threads" => r["threads"].to_string(),
            "= n_gpu_layers" => r["n_gpu_layers"].to_string(),
            "= type_k" => "f16".into(),
            "= type_v" => "f16".into(),
            "= flash_attn" => "auto".into(),
            "= op_offload" => "true".into(),
            "= swa_full" => "false".into(),
            "= override_tensor" => "none".into(),
            v => v.to_string(),
        };
        assert_eq!(value.as_str().unwrap(), expected, "README row {field}");
        // Settings llama.cpp logs back unchanged (n_ctx is padded to 256 and
        // n_batch clamped to the context, so they are checked below).
        if ["n_seq_max", "kv_unified"].contains(&field.as_str()) {
            assert_eq!(
                applied[field.as_str()],
                expected.as_str(),
                "{field} as llama.cpp logged it"
            );
        }
    }
    assert!(
        checked >= 20,
        "only {checked} README rows are in the record"
    );
    // Every parameter the record carries has its README row.
    for key in passed.keys() {
        assert!(
            rows.iter().any(|(f, _)| f == key),
            "backend_params.{key} has no row in README.md's table"
        );
    }
    // What llama.cpp applied, as llama-bench would have it.
    assert_eq!(applied["n_seq_max"], "1");
    assert_eq!(applied["kv_unified"], "false");
    assert_eq!(
        applied["n_ctx"].as_str().unwrap(),
        r["n_ctx_actual"].to_string()
    );
    assert_eq!(
        applied["n_ctx"], "256",
        "64 tokens, padded to 256 as llama.cpp does"
    );
    assert_eq!(
        applied["n_batch"].as_str().unwrap(),
        r["n_batch_actual"].to_string()
    );
    assert_eq!(applied["flash_attn"], "auto");
    assert!(applied.get("swa_full").is_none());
    let _ = model_path();
}
