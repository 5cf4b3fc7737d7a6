//! `lmtune tune` on the sim backend: over many seeds it finds the planted
//! optimum while measuring at most a quarter of the space.

mod common;

use common::{lmtune, scenario};
use serde_json::Value;

const SPACE: &str = r#"
name = "tune-sim"
[backend]
kind = "sim"
[backend.sim]
cpu_bandwidth_gb_per_s = 10.0
thread_saturation = 4
eta = 0.6
t_fixed_ms = 3.0
pp_ms_per_token_1_thread = 8.0
pp_ms_per_ubatch = 50.0
noise = 0.02
SEED
[sweep]
n_ctx = [512, 2048]
n_batch = [256, 512]
n_ubatch = [32, 64, 128, 256, 512]
threads = [1, 2, 3, 4, 6, 8]
skip_invalid = true
[workload]
n_prompt = [512]
n_gen = [64]
[measure]
repetitions = 3
"#;

/// Planted t/s of a record's knobs (the formulas of `SimProfile`).
fn planted(r: &Value) -> f64 {
    let threads = r["threads"].as_f64().unwrap().min(4.0);
    let ubatch = r["n_ubatch"]
        .as_f64()
        .unwrap()
        .min(r["n_batch"].as_f64().unwrap())
        .min(512.0);
    if r["test"] == "pp512" {
        1000.0 / (8.0 / threads + 50.0 / ubatch)
    } else {
        let bytes = r["prediction"]["tg_bytes_per_token"].as_f64().unwrap();
        1000.0 / (bytes / (0.6 * 10e9 * threads) * 1e3 + 3.0)
    }
}

#[test]
fn tune_finds_the_planted_optimum_with_a_quarter_of_the_points_over_many_seeds() {
    let dir = tempfile::tempdir().unwrap();
    for objective in ["pp", "tg"] {
        for seed in 1..=8u64 {
            let path = scenario(
                dir.path(),
                &format!("{objective}{seed}.toml"),
                &SPACE.replace("SEED", &format!("seed = {seed}")),
            );
            let out = dir.path().join(format!("{objective}{seed}"));
            let output = lmtune()
                .arg("tune")
                .arg(&path)
                .args(["--objective", objective, "--out"])
                .arg(&out)
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&output.stdout);
            assert!(
                output.status.success(),
                "{}{stdout}",
                String::from_utf8_lossy(&output.stderr)
            );
            let measured = common::read_records(&out);
            // 6 thread counts × 9 (n_batch, n_ubatch) pairs × 2 n_ctx = 108 candidates per objective.
            assert!(stdout.contains("of 108 candidates"), "{stdout}");
            if objective == "tg" {
                // n_batch and n_ubatch do not change generation: 6 × 2 settings to tell apart.
                assert!(
                    stdout.contains("(12 distinct of 108 candidates)"),
                    "{stdout}"
                );
            }
            assert!(
                measured.len() * 4 <= 108,
                "{objective} seed {seed}: measured {} of 108:\n{stdout}",
                measured.len()
            );
            let best = measured
                .iter()
                .max_by(|a, b| {
                    a["tokens_per_s"]["mean"]
                        .as_f64()
                        .unwrap()
                        .total_cmp(&b["tokens_per_s"]["mean"].as_f64().unwrap())
                })
                .unwrap();
            // The planted optimum: 4+ threads (saturation), and for pp the largest micro-batch.
            // Every tg point reads the same bytes per token here (depth is fixed).
            let optimum = if objective == "pp" {
                1000.0 / (8.0 / 4.0 + 50.0 / 512.0)
            } else {
                let bytes = best["prediction"]["tg_bytes_per_token"].as_f64().unwrap();
                1000.0 / (bytes / (0.6 * 10e9 * 4.0) * 1e3 + 3.0)
            };
            assert!(planted(best) >= 0.99 * optimum, "{objective} seed {seed}: chose a point worth {} of the optimum {optimum}:\n{stdout}", planted(best));
        }
    }
}

/// `--objective balanced`: one setting for a whole pp512 + tg64 request,
/// found with at most a quarter of the grid's points over several seeds.
#[test]
fn tune_balanced_finds_the_planted_optimum_of_a_whole_request() {
    let dir = tempfile::tempdir().unwrap();
    let pp =
        |threads: f64, ubatch: f64| 1000.0 / (8.0 / threads.min(4.0) + 50.0 / ubatch.min(512.0));
    for seed in 1..=4u64 {
        let path = scenario(
            dir.path(),
            &format!("balanced{seed}.toml"),
            &SPACE.replace("SEED", &format!("seed = {seed}")),
        );
        let out = dir.path().join(format!("balanced{seed}"));
        let output = lmtune()
            .arg("tune")
            .arg(&path)
            .args(["--objective", "balanced", "--out"])
            .arg(&out)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{stdout}");
        // 108 settings, each with a pp and a tg point: 216 points in the grid.
        assert!(stdout.contains("of 108 candidates"), "{stdout}");
        let measured = common::read_records(&out);
        assert!(
            measured.len() * 4 <= 216,
            "seed {seed}: {} measurements:\n{stdout}",
            measured.len()
        );
        // The recommended setting, and what a request is worth there (planted).
        let line = stdout
            .lines()
            .find(|l| l.starts_with("recommended for balanced"))
            .unwrap_or_else(|| panic!("{stdout}"));
        let knob = |name: &str| -> f64 {
            let at = line.find(&format!("{name}=")).unwrap() + name.len() + 1;
            line[at..]
                .split_whitespace()
                .next()
                .unwrap()
                .parse()
                .unwrap()
        };
        let (threads, n_batch, n_ubatch) = (knob("threads"), knob("n_batch"), knob("n_ubatch"));
        let tg_of = |threads: f64| {
            let r = measured.iter().find(|r| r["test"] == "tg64").unwrap();
            let bytes = r["prediction"]["tg_bytes_per_token"].as_f64().unwrap();
            1000.0 / (bytes / (0.6 * 10e9 * threads.min(4.0)) * 1e3 + 3.0)
        };
        let request = |pp: f64, tg: f64| 576.0 / (512.0 / pp + 64.0 / tg);
        let chosen = request(pp(threads, n_ubatch.min(n_batch)), tg_of(threads));
        let optimum = request(pp(4.0, 512.0), tg_of(4.0));
        assert!(
            chosen >= 0.99 * optimum,
            "seed {seed}: chose {chosen} of {optimum}:\n{stdout}"
        );
        assert!(stdout.contains("request: pp512 at"), "{stdout}");
        // Generation is measured only at the setting that stands for all
        // those differing in n_batch and n_ubatch (the largest micro-batch),
        // never once per micro-batch.
        for r in measured.iter().filter(|r| r["test"] == "tg64") {
            assert_eq!(
                (&r["n_batch"], &r["n_ubatch"]),
                (&512.into(), &512.into()),
                "{r}"
            );
        }
    }
}

/// `lmtune tune --model` without a scenario: the default CPU space on the
/// real test model, stopped by the time budget after its first point.
#[test]
fn tune_model_uses_the_default_space_and_stops_at_the_time_budget() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tuned");
    let output = lmtune()
        .arg("tune")
        .arg("--model")
        .arg(common::model_path())
        .args(["--ctx", "512", "--objective", "tg", "--time-budget", "1s"])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}{stdout}");
    let source = std::fs::read_to_string(out.join("scenario.toml")).unwrap();
    assert!(
        source.contains("Written by `lmtune tune --model`"),
        "{source}"
    );
    assert!(source.contains("n_ctx = 512"), "{source}");
    // A tg128 point takes well over a second: the budget ends the search after it.
    let records = common::read_records(&out);
    assert_eq!(records.len(), 1, "{stdout}");
    assert_eq!(records[0]["status"], "ok");
    assert_eq!(records[0]["test"], "tg128");
    assert_eq!(records[0]["n_ctx"], 512);
    assert!(stdout.contains("time budget of 1 s spent"), "{stdout}");
    assert!(
        stdout.contains("recommended for generation (tg)"),
        "{stdout}"
    );

    // Bad input is one clear line, not a panic.
    for (args, says) in [
        (vec!["--ctx", "100000"], "larger than the 8192 tokens"),
        (vec!["--time-budget", "soon"], "--time-budget soon"),
        (vec!["--backend", "vllm"], "--backend vllm"),
    ] {
        let output = lmtune()
            .arg("tune")
            .arg("--model")
            .arg(common::model_path())
            .args(&args)
            .arg("--out")
            .arg(dir.path().join("bad"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_ne!(output.status.code(), Some(0), "{args:?}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

/// With n_gpu_layers in the space, the tuner settles the offload first: the
/// largest that fits the VRAM budget, or the (simulated) device when no
/// budget is given. The truth comes from the full grid of the same space.
#[test]
fn tune_finds_the_largest_offload_that_fits_on_a_simulated_gpu() {
    let dir = tempfile::tempdir().unwrap();
    let space = "name = \"sim-gpu\"\n[backend]\nkind = \"sim\"\n[backend.sim]\ngpu_vram_mib = 520.0\nnoise = 0.02\nseed = 5\n[sweep]\nn_gpu_layers = { from = 0, to = 31, step = 1 }\nn_ctx = 512\nn_batch = 512\nn_ubatch = 64\nthreads = [1, 2, 4, 8]\n[workload]\nn_prompt = 0\nn_gen = [64]\n[measure]\nrepetitions = 3\n";
    let path = scenario(dir.path(), "gpu.toml", space);
    let grid_dir = dir.path().join("grid");
    let output = lmtune()
        .arg("run")
        .arg(&path)
        .arg("--out")
        .arg(&grid_dir)
        .output()
        .unwrap();
    // Offloads past the simulated GPU's memory are oom: some points failed.
    assert_eq!(output.status.code(), Some(1));
    // With VRAM in the records, the table gains the GPU columns.
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(
        table.contains("| offloaded | VRAM predicted | GPU buffers (predicted) | VRAM measured |"),
        "{table}"
    );
    let grid = common::read_records(&grid_dir);
    assert_eq!(grid.len(), 128);
    let vram = |r: &Value| r["vram"]["worker_peak_bytes"].as_u64().unwrap_or(0);
    let largest_fitting = |budget: u64| {
        grid.iter()
            .filter(|r| r["status"] == "ok" && vram(r) <= budget)
            .map(|r| r["n_gpu_layers"].as_u64().unwrap())
            .max()
            .unwrap()
    };
    for (budget, flag) in [
        (490u64 << 20, Some("490MiB")),
        (505 << 20, Some("505MiB")),
        (u64::MAX, None),
    ] {
        let want = largest_fitting(budget);
        assert!(want > 0 && want < 31, "the budget must bind: {want}");
        let out = dir
            .path()
            .join(format!("tune-{}", flag.unwrap_or("device")));
        let mut cmd = lmtune();
        cmd.arg("tune")
            .arg(&path)
            .args(["--objective", "tg", "--out"])
            .arg(&out);
        if let Some(flag) = flag {
            cmd.args(["--vram", flag]);
        }
        let output = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{stdout}");
        assert!(
            stdout.contains(&format!("offload settled: n_gpu_layers = {want},")),
            "{flag:?}: wanted n_gpu_layers = {want}:\n{stdout}"
        );
        assert!(
            stdout.contains(&format!("n_gpu_layers={want} — measured")),
            "{stdout}"
        );
        let measured = common::read_records(&out);
        assert!(
            measured.len() * 4 <= grid.len(),
            "{flag:?}: {} measurements:\n{stdout}",
            measured.len()
        );
    }
    // A budget the scenario declares binds like --vram.
    let declared = scenario(
        dir.path(),
        "gpu-budget.toml",
        &space.replace("[sweep]", "[budget]\nvram = \"490MiB\"\n[sweep]"),
    );
    let output = lmtune()
        .arg("tune")
        .arg(&declared)
        .args(["--objective", "tg", "--out"])
        .arg(dir.path().join("tune-declared"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "offload settled: n_gpu_layers = {},",
            largest_fitting(490 << 20)
        )),
        "{stdout}"
    );
    assert!(stdout.contains("budget 490 MiB"), "{stdout}");
}

/// On the real llama.cpp backend with no GPU device, n_gpu_layers changes
/// nothing: the tuner sees it in the placement llama.cpp reports (0 layers
/// offloaded), says so, and does not recommend an offload that never happened.
#[test]
fn tune_without_a_gpu_device_does_not_recommend_an_offload() {
    let dir = tempfile::tempdir().unwrap();
    let space = "name = \"no-gpu\"\n[sweep]\nn_gpu_layers = [0, 16, \"all\"]\nn_ctx = 256\nthreads = 1\n[workload]\nn_prompt = 0\nn_gen = [8]\n[measure]\nrepetitions = 2\n";
    let path = scenario(dir.path(), "no-gpu.toml", space);
    let output = lmtune()
        .arg("tune")
        .arg(&path)
        .args(["--objective", "tg", "--vram", "8GiB", "--out"])
        .arg(dir.path().join("tune"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains("n_gpu_layers = 31: the backend offloaded nothing (it has no GPU device)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("offload settled: n_gpu_layers = 0, the smallest (no GPU device)"),
        "{stdout}"
    );
    assert!(stdout.contains("n_gpu_layers=0 — measured"), "{stdout}");
}

#[test]
fn tune_against_a_grid_measures_both_back_to_back_and_reports_the_ratio() {
    let dir = tempfile::tempdir().unwrap();
    let path = scenario(dir.path(), "space.toml", &SPACE.replace("SEED", "seed = 3"));
    let grid = dir.path().join("grid");
    let output = lmtune()
        .arg("run")
        .arg(&path)
        .arg("--out")
        .arg(&grid)
        .output()
        .unwrap();
    assert!(output.status.success());
    let out = dir.path().join("tune");
    let output = lmtune()
        .arg("tune")
        .arg(&path)
        .args(["--objective", "pp", "--check-rounds", "2", "--against"])
        .arg(&grid)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("check against"), "{stdout}");
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("tune.json")).unwrap()).unwrap();
    let check = &summary["check"];
    assert_eq!(check["grid_candidates"], summary["candidates"], "{summary}");
    let ratio = check["ratio"].as_f64().unwrap();
    assert!(ratio >= 0.97, "{summary}");
    // Simulated points take microseconds, so the time share is mostly
    // overhead here; the count of measurements is what the sim can check.
    let fraction = check["time_fraction"].as_f64().unwrap();
    assert!(fraction > 0.0 && fraction.is_finite(), "{summary}");
    let measurements = summary["measurements"].as_u64().unwrap();
    assert!(
        measurements * 4 <= summary["candidates"].as_u64().unwrap(),
        "{summary}"
    );
    // The recommendation in tune.json is the one printed.
    let rec = &summary["recommendation"];
    assert!(stdout.contains(&format!(
        "threads={} n_batch={} n_ubatch={}",
        rec["threads"], rec["n_batch"], rec["n_ubatch"]
    )));
    // Back-to-back measurements stay out of the tuner's results.
    let tuned = common::read_records(&out);
    assert_eq!(
        tuned.len() as u64,
        summary["measurements"].as_u64().unwrap()
    );
    let rounds = check["back_to_back_rounds"].as_u64().unwrap();
    if check["back_to_back_tokens_per_s"].is_null() {
        assert_eq!(
            rounds, 0,
            "same setting as the grid's best: nothing re-measured"
        );
    } else {
        assert_eq!(rounds, 2);
        let checked = std::fs::read_to_string(out.join("check.jsonl")).unwrap();
        assert_eq!(checked.lines().count(), 4, "two rounds of two settings");
    }

    // A grid of another space is refused before anything is measured.
    let other = scenario(
        dir.path(),
        "other.toml",
        &SPACE
            .replace("SEED", "seed = 3")
            .replace("n_ctx = [512, 2048]", "n_ctx = [1024]"),
    );
    let output = lmtune()
        .arg("tune")
        .arg(&other)
        .args(["--objective", "pp", "--against"])
        .arg(&grid)
        .arg("--out")
        .arg(dir.path().join("other-tune"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("is a point of this space"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!dir.path().join("other-tune").exists());
    for (args, want) in [
        (
            vec!["--against", "/nonexistent/grid"],
            "--against /nonexistent/grid",
        ),
        (vec!["--tolerance", "80%"], "--tolerance 80%"),
        (vec!["--tolerance", "abc"], "--tolerance abc"),
    ] {
        let output = lmtune()
            .arg("tune")
            .arg(&path)
            .args(&args)
            .arg("--out")
            .arg(dir.path().join("bad"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
    }
}

/// Issue 22 #14: tune printed its pick as knobs only; it now prints the same
/// scenario snippet, llama-server / llama-bench flags and LM Studio settings
/// as `plan`, with every knob it chose.
#[test]
fn tune_prints_its_pick_as_llama_server_llama_bench_and_lm_studio_settings() {
    let dir = tempfile::tempdir().unwrap();
    let path = scenario(dir.path(), "paste.toml", &SPACE.replace("SEED", "seed = 3"));
    let out = dir.path().join("out");
    let output = lmtune()
        .arg("tune")
        .arg(&path)
        .args(["--objective", "pp", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("tune.json")).unwrap()).unwrap();
    let k = &summary["recommendation"];
    let server = format!(
        "llama-server: -ngl {} -c {} -b {} -ub {} -t {}",
        k["n_gpu_layers"], k["n_ctx"], k["n_batch"], k["n_ubatch"], k["threads"]
    );
    assert!(stdout.contains(&server), "{server}\n{stdout}");
    assert!(stdout.contains("llama-bench:  -ngl "), "{stdout}");
    assert!(stdout.contains("LM Studio:    GPU Offload "), "{stdout}");
    assert!(stdout.contains("  [sweep]"), "{stdout}");
}

/// Issue 22 #24: `--max-points 0` was accepted; it is refused up front,
/// before any point runs, with what to give instead.
#[test]
fn tune_refuses_max_points_zero_up_front() {
    let dir = tempfile::tempdir().unwrap();
    let path = scenario(dir.path(), "zero.toml", &SPACE.replace("SEED", "seed = 1"));
    let output = lmtune()
        .arg("tune")
        .arg(&path)
        .args(["--max-points", "0", "--out"])
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--max-points 0") && stderr.contains("at least 1"),
        "{stderr}"
    );
    assert!(!dir.path().join("out").exists(), "nothing was written");
}
