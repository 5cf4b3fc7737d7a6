//! `lmtune tune` on a mixture of experts, on the sim backend's simulated
//! GPU: the offload search is two-dimensional (n_gpu_layers × n_cpu_moe).
//! Over many seeds it must find the planted best placement under a VRAM
//! budget while measuring at most a quarter of the 2-D grid. The truth is
//! the whole grid of the same space, run without noise.

mod common;

use std::path::Path;

use common::{lmtune, model_path, read_records};
use serde_json::Value;

/// A 16-block qwen3moe of 16 experts (2 used) whose experts are most of
/// each block (~6.4 MiB of ~6.6 MiB at q8_0), with the test model's
/// tokenizer: the sim backend reads only its header.
fn synth_moe(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("moe-16x16.gguf");
    let out = lmtune()
        .args(["synth", "--like", "qwen3moe-tiny", "--layers", "16"])
        .args([
            "--experts",
            "16",
            "--experts-used",
            "2",
            "--expert-ff",
            "512",
        ])
        .args(["--quant", "q8_0", "--donor"])
        .arg(model_path())
        .arg("-o")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

fn space(model: &Path, noise: f64, seed: u64) -> String {
    format!(
        "name = \"tune-moe-sim\"\n[model]\npath = {:?}\n[backend]\nkind = \"sim\"\n[backend.sim]\ngpu_vram_mib = 100000.0\ngpu_bandwidth_gb_per_s = 400.0\ncpu_bandwidth_gb_per_s = 1.0\nt_fixed_ms = 0.1\nnoise = {noise}\nseed = {seed}\n[sweep]\nn_gpu_layers = {{ from = 0, to = 17, step = 1 }}\nn_cpu_moe = {{ from = 0, to = 16, step = 1 }}\nthreads = [2, 4]\nn_ctx = 512\nn_batch = 512\nn_ubatch = 512\n[workload]\nn_prompt = 0\nn_gen = [32]\n[measure]\nrepetitions = 3\n",
        model.display().to_string()
    )
}

/// (n_gpu_layers, n_cpu_moe, threads) of a record or a recommendation.
fn knobs(r: &Value) -> (u64, u64, u64) {
    (
        r["n_gpu_layers"].as_u64().unwrap(),
        r["n_cpu_moe"].as_u64().unwrap_or(0),
        r["threads"].as_u64().unwrap(),
    )
}

fn vram(r: &Value) -> u64 {
    r["vram"]["worker_peak_bytes"].as_u64().unwrap_or(u64::MAX)
}

fn tps(r: &Value) -> f64 {
    r["tokens_per_s"]["mean"].as_f64().unwrap()
}

#[test]
fn tune_finds_the_planted_best_expert_placement_measuring_a_quarter_of_the_2d_grid() {
    let dir = tempfile::tempdir().unwrap();
    let model = synth_moe(dir.path());
    // The truth: every point of the grid, without noise.
    let grid_toml = dir.path().join("grid.toml");
    std::fs::write(&grid_toml, space(&model, 0.0, 1)).unwrap();
    let grid_dir = dir.path().join("grid");
    let output = lmtune()
        .arg("run")
        .arg(&grid_toml)
        .arg("--out")
        .arg(&grid_dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let grid = read_records(&grid_dir);
    let n_grid = 18 * 17 * 2;
    assert_eq!(grid.len(), n_grid);
    // VRAM of every layer on the GPU with the experts of the first k blocks
    // held back.
    let at = |ngl: u64, k: u64| {
        grid.iter()
            .filter(|r| knobs(r).0 == ngl && knobs(r).1 == k)
            .map(vram)
            .max()
            .unwrap()
    };
    assert!(
        at(17, 0) > at(17, 16) + (80 << 20),
        "experts must be most of the model"
    );
    for held_back in [5u64, 11] {
        let budget = at(17, held_back) + (256 << 10);
        let fits: Vec<&Value> = grid.iter().filter(|r| vram(r) <= budget).collect();
        let best = fits
            .iter()
            .max_by(|a, b| tps(a).total_cmp(&tps(b)))
            .unwrap();
        let optimum = tps(best);
        // The planted best is the recipe people use: every layer on the GPU,
        // the fewest experts on the CPU that fit, and it is far better than
        // the best whole-layer offload.
        assert_eq!(knobs(best), (17, held_back, 4), "grid's best");
        let whole_layers = fits
            .iter()
            .filter(|r| knobs(r).1 == 0)
            .map(|r| tps(r))
            .fold(0.0, f64::max);
        assert!(optimum > 1.2 * whole_layers, "{optimum} vs {whole_layers}");
        let flag = format!("{budget}B");
        for seed in 1..=8u64 {
            let path = dir.path().join(format!("tune-{held_back}-{seed}.toml"));
            std::fs::write(&path, space(&model, 0.02, seed)).unwrap();
            let out = dir.path().join(format!("tune-{held_back}-{seed}"));
            let output = lmtune()
                .arg("tune")
                .arg(&path)
                .args(["--objective", "tg", "--vram", &flag, "--out"])
                .arg(&out)
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&output.stdout);
            assert!(
                output.status.success(),
                "{}{stdout}",
                String::from_utf8_lossy(&output.stderr)
            );
            let summary: Value =
                serde_json::from_str(&std::fs::read_to_string(out.join("tune.json")).unwrap())
                    .unwrap();
            let pick = knobs(&summary["recommendation"]);
            let planted = grid.iter().find(|r| knobs(r) == pick).map(tps).unwrap();
            assert!(
                planted >= 0.99 * optimum,
                "budget {held_back}, seed {seed}: picked {pick:?} worth {planted:.1} of {optimum:.1} t/s:\n{stdout}"
            );
            assert_eq!(
                (pick.0, pick.1),
                (17, held_back),
                "budget {held_back}, seed {seed}:\n{stdout}"
            );
            assert!(
                stdout.contains(&format!(
                    "offload settled: n_gpu_layers = 17, n_cpu_moe = {held_back}, the fewest experts on the CPU that fit"
                )),
                "{stdout}"
            );
            // The pick is printed as flags a user can paste.
            assert!(
                stdout.contains(&format!("--n-cpu-moe {held_back}")),
                "{stdout}"
            );
            let measured = read_records(&out).len();
            assert!(
                measured * 4 <= n_grid,
                "budget {held_back}, seed {seed}: measured {measured} of {n_grid}:\n{stdout}"
            );
        }
    }
}
