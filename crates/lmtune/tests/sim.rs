//! The sim backend: deterministic, labelled simulated, and a fixture for the
//! fit: `lmtune fit` must recover the planted coefficients within 2%.

mod common;

use common::{lmtune, model_path, scenario};
use serde_json::Value;

const PROFILE: &str = r#"
name = "sim-grid"
[backend]
kind = "sim"
[backend.sim]
cpu_bandwidth_gb_per_s = 10.0
thread_saturation = 4
eta = 0.6
t_fixed_ms = 3.0
pp_ms_per_token_1_thread = 8.0
pp_ms_per_ubatch = 50.0
mem_overhead_mib = 40.0
mem_mib_per_ubatch_token = 0.03
mem_mib_per_ubatch_token_per_1k_ctx = 0.005
noise = 0.02
SEED
[sweep]
n_ctx = [512, 4096]
n_batch = 512
n_ubatch = [32, 64, 128, 256, 512]
threads = [1, 2, 4, 8]
[workload]
n_prompt = [512]
n_gen = [64]
[measure]
repetitions = 5
"#;

fn run(dir: &std::path::Path, name: &str, seed: u64) -> Vec<Value> {
    let path = scenario(
        dir,
        &format!("{name}.toml"),
        &PROFILE.replace("SEED", &format!("seed = {seed}")),
    );
    let out = dir.join(name);
    let output = lmtune()
        .arg("run")
        .arg(&path)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("sim (simulated)"),
        "the table labels simulated rows"
    );
    common::read_records(&out)
}

#[test]
fn sim_is_deterministic_and_labelled() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        run(dir.path(), "a", 7),
        run(dir.path(), "b", 7),
        run(dir.path(), "c", 8),
    );
    assert_eq!(a.len(), 80);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x["samples_ns"], y["samples_ns"], "same seed, same samples");
    }
    assert!(
        a.iter()
            .zip(&c)
            .any(|(x, y)| x["samples_ns"] != y["samples_ns"]),
        "another seed, other noise"
    );
    for r in &a {
        assert_eq!(r["backend"], "sim");
        assert!(r["fingerprint"]["backend_version"]
            .as_str()
            .unwrap()
            .contains("simulated"));
    }
}

#[test]
fn fit_recovers_the_planted_coefficients_within_two_percent() {
    let dir = tempfile::tempdir().unwrap();
    for seed in [1u64, 2, 3] {
        let records = run(dir.path(), &format!("s{seed}"), seed);
        let (cal, _) = fit(
            &dir.path().join(format!("s{seed}")),
            &dir.path().join(format!("cal{seed}.json")),
        );
        let cal = &cal;
        let coef = |model: &str, name: &str| coefficient(cal, model, name);
        let close = |what: &str, got: f64, planted: f64| {
            assert!(
                (got / planted - 1.0).abs() < 0.02,
                "seed {seed}: {what} fitted {got}, planted {planted}"
            )
        };
        close("memory overhead", coef("memory", "overhead_mib"), 40.0);
        close(
            "memory per ubatch token",
            coef("memory", "mib_per_ubatch_token"),
            0.03,
        );
        close(
            "memory per ubatch token per 1k ctx",
            coef("memory", "mib_per_ubatch_token_per_1k_ctx"),
            0.005,
        );
        close("pp per-ubatch cost", coef("pp", "ms_times_ubatch"), 50.0);
        for threads in [1u32, 2, 4, 8] {
            let effective = f64::from(threads.min(4));
            close(
                &format!("pp at {threads} threads"),
                coef("pp", &format!("ms_per_token_at_{threads}_threads")),
                8.0 / effective,
            );
            // tg: bytes read per token / (eta × bandwidth × threads) + fixed cost.
            let bytes = records.iter().find(|r| r["test"] == "tg64").unwrap()["prediction"]
                ["tg_bytes_per_token"]
                .as_f64()
                .unwrap();
            let planted = bytes / (0.6 * 10e9 * effective) * 1e3 + 3.0;
            close(
                &format!("tg at {threads} threads"),
                coef("tg", &format!("ms_per_token_at_{threads}_threads")),
                planted,
            );
        }
    }
}

/// With the offload varying (a simulated GPU), the fit models generation as
/// additive over devices, linear in the GB left on the CPU per thread count,
/// and VRAM as the offloaded weights and KV cache plus a fitted residue; it
/// recovers the planted bandwidths and memory terms. (Simulated numbers: the
/// fixture for the real GPU runs still owed.)
#[test]
fn fit_recovers_planted_offload_terms_on_a_simulated_gpu() {
    let dir = tempfile::tempdir().unwrap();
    let profile = "name = \"sim-gpu-fit\"\n[backend]\nkind = \"sim\"\n[backend.sim]\ncpu_bandwidth_gb_per_s = 10.0\nthread_saturation = 4\neta = 0.6\nt_fixed_ms = 3.0\nmem_overhead_mib = 40.0\nmem_mib_per_ubatch_token = 0.03\nmem_mib_per_ubatch_token_per_1k_ctx = 0.005\ngpu_vram_mib = 8000.0\ngpu_bandwidth_gb_per_s = 300.0\ngpu_pp_speedup = 20.0\nnoise = 0.02\nseed = 11\n[sweep]\nn_gpu_layers = [0, 8, 16, 24, 31]\nn_ctx = [512, 4096]\nn_batch = 512\nn_ubatch = [128, 512]\nthreads = [2, 4]\n[workload]\nn_prompt = [512]\nn_gen = [64]\n[measure]\nrepetitions = 3\n";
    let path = scenario(dir.path(), "gpu.toml", profile);
    let out = dir.path().join("grid");
    lmtune()
        .arg("run")
        .arg(&path)
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    let (cal, stdout) = fit(&out, &dir.path().join("cal.json"));
    let cal = &cal;
    assert!(
        stdout.contains("VRAM (MiB over the offloaded weights and KV cache)"),
        "{stdout}"
    );
    let coef = |model: &str, name: &str| coefficient(cal, model, name);
    let close = |what: &str, got: f64, planted: f64, tolerance: f64| {
        assert!(
            (got / planted - 1.0).abs() < tolerance,
            "{what}: fitted {got}, planted {planted}\n{stdout}"
        )
    };
    // Generation: ms per GB left on the CPU = 1000/η × (1/BW_cpu(t) − 1/BW_gpu).
    for threads in [2u32, 4] {
        let bw_cpu = 10.0 * f64::from(threads.min(4));
        close(
            &format!("tg ms per GB on the CPU at {threads} threads"),
            coef("tg", &format!("ms_per_gb_on_cpu_at_{threads}_threads")),
            1000.0 / 0.6 * (1.0 / bw_cpu - 1.0 / 300.0),
            0.03,
        );
    }
    let loo = cal["tg"]["loo_mape"].as_f64().unwrap();
    assert!(loo < 0.05, "tg leave-one-out error {loo}");
    // VRAM over weights and KV: the planner's compute buffer and CUDA
    // context (which the sim adds) plus the planted residue.
    let a = common::test_model_anatomy();
    let (vocab, embd, ff) = (
        a["anatomy"]["n_vocab"].as_f64().unwrap(),
        a["anatomy"]["n_embd"].as_f64().unwrap(),
        a["anatomy"]["n_ff"].as_f64().unwrap(),
    );
    let mib = 1048576.0;
    close(
        "vram overhead",
        coef("vram", "vram_overhead_mib"),
        400.0 + 40.0,
        0.01,
    );
    close(
        "vram per ubatch token",
        coef("vram", "vram_mib_per_ubatch_token"),
        0.03 + 4.0 * (vocab + 4.0 * embd + 2.0 * ff) / mib,
        0.01,
    );
    close(
        "vram per ubatch token per 1k ctx",
        coef("vram", "vram_mib_per_ubatch_token_per_1k_ctx"),
        0.005 + 2000.0 / mib,
        0.01,
    );
}

/// A fitted coefficient from a calibration's JSON (`lmtune fit -o`).
fn coefficient(cal: &Value, model: &str, name: &str) -> f64 {
    cal[model]["coefficients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("{model}.{name}: {cal}"))["value"]
        .as_f64()
        .unwrap()
}

/// `lmtune fit RESULTS --model <test model> -o CAL`: the first calibration
/// it saved, and what it printed.
fn fit(results: &std::path::Path, cal_path: &std::path::Path) -> (Value, String) {
    let out = lmtune()
        .arg("fit")
        .arg(results)
        .arg("--model")
        .arg(model_path())
        .arg("-o")
        .arg(cal_path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_str(&std::fs::read_to_string(cal_path).unwrap()).unwrap();
    (v["calibrations"][0].clone(), stdout)
}
