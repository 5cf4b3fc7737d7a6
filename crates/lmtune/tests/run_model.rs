//! Issue 22 #21: `run -m MODEL` works without a scenario, like `plan -m`:
//! llama-bench's default test (pp512 and tg128).

mod common;

use common::{lmtune, model_path, read_records};

#[test]
fn run_dash_m_measures_a_model_without_a_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let run = lmtune()
        .args(["run", "-m"])
        .arg(model_path())
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    let records = read_records(&out);
    let tests: Vec<&str> = records
        .iter()
        .map(|r| r["test"].as_str().unwrap())
        .collect();
    assert_eq!(tests, ["pp512", "tg128"]);
    assert!(records.iter().all(|r| r["status"] == "ok"));
    // The scenario it ran is kept beside the results, as for any run.
    let saved = std::fs::read_to_string(out.join("scenario.toml")).unwrap();
    assert!(saved.contains("n_prompt = [512]"), "{saved}");

    // Neither a scenario nor a model: clap says what is missing.
    let none = lmtune().arg("run").output().unwrap();
    assert_eq!(none.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&none.stderr).contains("<SCENARIO>"));
}
