//! The report's recommendation is settings a user can type, as the backend
//! applied them.

mod common;

use common::{lmtune, read_records, scenario};

/// Issue 22 #11: the report's "fastest generation" named n_gpu_layers = 19
/// on a CPU-only run (what was asked, not what llama.cpp did) in lmtune's
/// knob names. It now prints llama-server flags and LM Studio settings, with
/// the layers llama.cpp offloaded (none here) and the context it applied.
#[test]
fn report_recommends_applied_settings_in_llama_server_and_lm_studio_terms() {
    let dir = tempfile::tempdir().unwrap();
    let body = "name = \"asked-19\"\n[sweep]\nn_gpu_layers = 19\nn_ctx = 64\nn_batch = 32\nn_ubatch = 32\nthreads = 1\n[workload]\nn_prompt = [0]\nn_gen = [2]\n[measure]\nrepetitions = 1\nwarmup = 0\n";
    let path = scenario(dir.path(), "s.toml", body);
    let results = dir.path().join("results");
    let run = lmtune()
        .arg("run")
        .arg(&path)
        .arg("--out")
        .arg(&results)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let record = &read_records(&results)[0];
    assert_eq!(record["n_gpu_layers"], 19, "asked for 19");
    let offloaded = record["placement"]["layers_offloaded"].as_u64().unwrap();
    let n_ctx = record["n_ctx_actual"].as_u64().unwrap();

    let report = dir.path().join("report");
    lmtune()
        .arg("report")
        .arg(&results)
        .arg("-o")
        .arg(&report)
        .arg("--no-png")
        .assert()
        .success();
    let md = std::fs::read_to_string(report.join("summary.md")).unwrap();
    let html = std::fs::read_to_string(report.join("index.html")).unwrap();
    let recommendation = md
        .split("## Recommendation")
        .nth(1)
        .unwrap()
        .split("## Results")
        .next()
        .unwrap();
    assert!(
        recommendation.contains(&format!("llama-server: -ngl {offloaded} -c {n_ctx} ")),
        "{recommendation}"
    );
    assert!(
        recommendation.contains(&format!(
            "LM Studio:    GPU Offload {offloaded} of 30 layers"
        )),
        "{recommendation}"
    );
    assert!(
        !recommendation.contains("n_gpu_layers=19"),
        "{recommendation}"
    );
    assert!(
        html.contains("llama-server: -ngl"),
        "the HTML says the same"
    );
}
