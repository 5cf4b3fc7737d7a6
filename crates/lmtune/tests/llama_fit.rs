//! `lmtune plan --llama-fit`: llama.cpp's own fit (`common_fit_params`,
//! what `llama-server --fit` runs) beside lmtune's plan, on this machine's
//! CPU (the GPU side runs on Mesa's llvmpipe in tests/vulkan.rs), and a
//! scenario's `n_gpu_layers = "fit"`.

mod common;

use common::{broken_model, lmtune, model_path, read_records, scenario};

fn plan(model: &std::path::Path, extra: &[&str]) -> std::process::Output {
    lmtune()
        .args([
            "plan",
            "--ctx",
            "2048",
            "--vram",
            "0",
            "--cpu-bandwidth",
            "20",
            "--llama-fit",
        ])
        .args(extra)
        .arg("--model")
        .arg(model)
        .output()
        .unwrap()
}

/// Without a GPU llama.cpp's fit only checks the host keeps its margin: it
/// keeps its default offload and the context asked for, and says so.
#[test]
fn without_a_gpu_llama_cpp_s_fit_keeps_the_context_and_changes_nothing() {
    let out = plan(&model_path(), &["--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let fit = &v["llama_fit"];
    assert_eq!(fit["source"], "llama.cpp common_fit_params", "{fit}");
    let r = &fit["result"];
    assert_eq!(r["fits"], true, "{fit}");
    assert_eq!(r["n_ctx"], 2048, "{fit}");
    assert_eq!(r["n_gpu_layers"], -1, "llama.cpp's default: {fit}");
    assert_eq!(r["devices"].as_array().map(Vec::len), Some(0), "{fit}");
    assert!(r["ms"].as_f64().unwrap() > 0.0, "{fit}");
    assert_eq!(
        fit["request"]["target"]["margin"].as_u64(),
        Some(1 << 30),
        "llama-server's default 1 GiB: {fit}"
    );
    // The dry run of its choice: the whole model in host buffers.
    let buffers = fit["dry_run"]["buffers"].as_array().unwrap();
    assert!(buffers.iter().all(|b| b["host"] == true), "{fit}");
    let weights: u64 = buffers
        .iter()
        .map(|b| b["model_bytes"].as_u64().unwrap())
        .sum();
    let file = std::fs::metadata(model_path()).unwrap().len();
    assert!(
        weights > file * 9 / 10 && weights < file,
        "weights {weights} of a {file} B file"
    );

    let text = plan(&model_path(), &[]);
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert_eq!(text.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("llama.cpp's own fit (common_fit_params"),
        "{stdout}"
    );
    assert!(
        stdout.contains("n_gpu_layers = all (llama.cpp's default), n_ctx = 2048"),
        "{stdout}"
    );
    assert!(stdout.contains("no GPU device"), "{stdout}");
}

/// A model llama.cpp cannot load: the analytic plan still prints, and the
/// fit's failure is one line with llama.cpp's reason.
#[test]
fn a_model_the_fit_cannot_load_gets_one_line_and_the_plan_still_prints() {
    let dir = tempfile::tempdir().unwrap();
    let broken = broken_model(dir.path());
    let out = plan(&broken, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("recommended: n_gpu_layers"), "{stdout}");
    let note: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("note: llama.cpp's fit of"))
        .collect();
    assert_eq!(note.len(), 1, "{stdout}");
    assert!(note[0].contains("broken.gguf"), "{}", note[0]);
    assert!(!stderr.contains("panicked"), "{stderr}");

    let json = plan(&broken, &["--json"]);
    assert_eq!(json.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert!(v["llama_fit"]["error"].is_string(), "{}", v["llama_fit"]);
}

/// `n_gpu_layers = "fit"`: the worker runs llama.cpp's fit before the load,
/// loads what it chose, and the record keeps both the choice and the fit.
#[test]
fn a_fit_point_loads_what_llama_cpp_chose_and_the_record_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = scenario(
        dir.path(),
        "fit.toml",
        "[sweep]\nn_gpu_layers = \"fit\"\nn_ctx = 512\nthreads = 1\n[workload]\nn_prompt = [16]\nn_gen = [0]\n[measure]\nrepetitions = 1\nwarmup = 0\n",
    );
    let listed = lmtune()
        .arg("run")
        .arg(&path)
        .arg("--dry-run")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&listed.stdout);
    assert_eq!(listed.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains(" fit"),
        "the dry run names the fit: {stdout}"
    );

    let out = dir.path().join("out");
    let run = lmtune()
        .arg("run")
        .arg(&path)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let records = read_records(&out);
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(r["status"], "ok", "{r}");
    assert_eq!(r["fit"], true, "{r}");
    // No GPU: llama.cpp keeps its default, every layer (31 here).
    assert_eq!(r["n_gpu_layers"], 31, "{r}");
    assert_eq!(r["llama_fit"]["fits"], true, "{r}");
    assert_eq!(r["llama_fit"]["n_ctx"], 512, "{r}");
}

/// "fit" belongs to llama.cpp: another backend, or placement by hand beside
/// it, is one line naming the key, exit 2.
#[test]
fn fit_with_another_backend_or_hand_placement_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (name, body, says) in [
        (
            "sim.toml",
            "[backend]\nkind = \"sim\"\n[sweep]\nn_gpu_layers = \"fit\"\n",
            "which the sim backend does not have",
        ),
        (
            "ot.toml",
            "[sweep]\nn_gpu_layers = [\"fit\"]\noverride_tensor = ['token_embd=CPU']\n",
            "cannot be set beside it",
        ),
    ] {
        let path = scenario(dir.path(), name, body);
        let out = lmtune()
            .arg("run")
            .arg(&path)
            .arg("--dry-run")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert!(
            stderr.contains("sweep.n_gpu_layers") && stderr.contains(says),
            "{name}: {stderr}"
        );
        assert_eq!(stderr.trim().lines().count(), 1, "{name}: {stderr}");
    }
}
