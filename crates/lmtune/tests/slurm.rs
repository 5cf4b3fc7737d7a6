//! A real scheduler: Slurm on localhost (scripts/slurm-local.sh: munge,
//! slurmctld, slurmd; one node, two CPUs) runs deploy/slurm/lmtune.sbatch as
//! a 2-task array over a small scenario's shards, then as the merge + report
//! step. The merge has exactly the points of an unsharded run, every record
//! names its shard and the scenario's hash, and the report draws.
//!
//! It needs root and Slurm's packages (`scripts/slurm-local.sh install`).
//! Without `LMTUNE_TEST_SLURM=1` at build time it is `#[ignore]`d with the
//! reason (crates/lmtune's build.rs); with it, missing parts fail it.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{read_records, scenario};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Stops the daemons when the test ends, passed or not.
struct Slurm;

impl Slurm {
    fn start() -> Slurm {
        let out = Command::new(repo().join("scripts/slurm-local.sh"))
            .arg("start")
            .output()
            .expect("scripts/slurm-local.sh runs");
        assert!(
            out.status.success(),
            "scripts/slurm-local.sh start failed (run it as root, after scripts/slurm-local.sh install): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Slurm
    }
}

impl Drop for Slurm {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("scripts/slurm-local.sh"))
            .arg("stop")
            .status();
    }
}

/// `sbatch --wait ARGS deploy/slurm/lmtune.sbatch SCENARIO RESULTS`; the job's id.
fn sbatch(dir: &Path, extra: &[&str], scenario: &Path, results: &Path) -> String {
    let out = Command::new("sbatch")
        .current_dir(dir)
        .args(["--wait", "--parsable", "--time=20", "-o", "slurm-%A_%a.log"])
        .args(extra)
        .arg(repo().join("deploy/slurm/lmtune.sbatch"))
        .arg(scenario)
        .arg(results)
        .env("LMTUNE", assert_cmd::cargo::cargo_bin("lmtune"))
        .env(
            "XDG_CACHE_HOME",
            std::env::temp_dir().join("lmtune-test-cache"),
        )
        .output()
        .expect("sbatch runs");
    let logs: String = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("slurm-"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect();
    assert!(
        out.status.success(),
        "sbatch {extra:?} failed: {}\n{logs}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

/// (point index, test, n_gpu_layers): a point, as the records name it.
fn points(dir: &Path) -> BTreeSet<(u64, String, u64)> {
    read_records(dir)
        .iter()
        .map(|r| {
            (
                r["point_index"].as_u64().unwrap(),
                r["test"].as_str().unwrap().to_string(),
                r["n_gpu_layers"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
#[cfg_attr(
    not(lmtune_slurm),
    ignore = "needs root and Slurm on localhost: scripts/slurm-local.sh install, then build and run with LMTUNE_TEST_SLURM=1"
)]
fn a_slurm_array_runs_the_shards_and_their_merge_is_the_whole_run() {
    let _slurm = Slurm::start();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // Two load groups (n_gpu_layers 0 and 1: a CPU build runs both on the CPU).
    let file = scenario(
        dir,
        "fleet.toml",
        "schema = 1\nname = \"fleet\"\n[sweep]\nn_gpu_layers = [0, 1]\nthreads = [1]\nn_ctx = [128]\n\
         [workload]\nn_prompt = [16]\nn_gen = [8]\n[measure]\nrepetitions = 2\nwarmup = 0\n",
    );
    let results = dir.join("results");
    sbatch(dir, &["--array=0-1", "--cpus-per-task=1"], &file, &results);
    for i in 0..2 {
        let shard = results.join(format!("shard-{i}"));
        let records = read_records(&shard);
        assert!(!records.is_empty(), "shard {i} recorded nothing");
        for r in &records {
            assert_eq!(r["shard"], serde_json::json!({"index": i, "count": 2}));
            assert_eq!(r["scenario_sha256"].as_str().unwrap().len(), 64);
        }
    }
    let merge_job = sbatch(dir, &[], &file, &results);

    let whole = dir.join("whole");
    common::lmtune()
        .args([
            "run",
            file.to_str().unwrap(),
            "--out",
            whole.to_str().unwrap(),
        ])
        .assert()
        .success();
    let merged = results.join(format!("merged-{merge_job}"));
    assert_eq!(points(&merged), points(&whole));
    assert_eq!(points(&whole).len(), 4);
    let report = results.join(format!("report-{merge_job}"));
    assert!(
        report.join("index.html").is_file(),
        "no report in {}",
        report.display()
    );
}
