//! Each point records the cores it kept busy; the run table and the report
//! show them, and older records (without) still read.

mod common;

use common::{lmtune, read_records, scenario};

/// Issue 22 #19: nothing said how busy the CPU was at a point (a threads
/// sweep on a loaded machine looked like a slow one). Records now carry
/// `cpu_busy_cores` (the worker's CPU seconds over the point's wall time),
/// shown in the run table and the report's.
#[test]
fn each_point_records_the_cores_it_kept_busy() {
    let dir = tempfile::tempdir().unwrap();
    let body = "name = \"busy\"\n[sweep]\nn_ctx = 128\nn_batch = 32\nn_ubatch = 32\nthreads = [1, 2]\n[workload]\nn_prompt = [0]\nn_gen = [8]\n[measure]\nrepetitions = 2\nwarmup = 0\n";
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
    let logical = std::thread::available_parallelism().unwrap().get() as f64;
    for r in read_records(&results) {
        let busy = r["cpu_busy_cores"]
            .as_f64()
            .unwrap_or_else(|| panic!("no cpu_busy_cores: {r}"));
        assert!(busy > 0.2 && busy <= logical + 0.5, "{busy} of {logical}");
    }
    let table = String::from_utf8(run.stdout).unwrap();
    assert!(
        table.lines().next().unwrap().contains("CPU cores busy"),
        "{table}"
    );

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
    assert!(md.contains("CPU cores busy"), "{md}");

    // Records of older versions have no such field: no column, no error.
    let old = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../results/2026-11-21-vm-quickstart");
    let out = lmtune()
        .args(["export", "--format", "md"])
        .arg(old)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stdout).contains("CPU cores busy"));
}
