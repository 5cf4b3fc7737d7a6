//! `run` flags points whose mean cannot be trusted, by the rule `report`
//! warns by (a 95% CI wider than ±10% of the mean, or outlier repetitions).

mod common;

use common::{lmtune, scenario};

const SIM: &str = r#"
name = "sim-noise"
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
noise = NOISE
seed = 3
[sweep]
n_ctx = 512
threads = [1, 2]
[workload]
n_prompt = [0]
n_gen = [64]
[measure]
repetitions = 3
"#;

fn run(dir: &std::path::Path, name: &str, noise: f64) -> (String, String) {
    let path = scenario(
        dir,
        &format!("{name}.toml"),
        &SIM.replace("NOISE", &noise.to_string()),
    );
    let out = lmtune()
        .arg("run")
        .arg(&path)
        .arg("--out")
        .arg(dir.join(name))
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{stderr}");
    (String::from_utf8(out.stdout).unwrap(), stderr)
}

/// Issue 22 #18: `run` printed a ±81% point as a plain row. Noisy points
/// are now marked in the table's "check" column and listed after it; a
/// quiet run has neither.
#[test]
fn run_flags_noisy_points_in_the_table_and_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let (table, stderr) = run(dir.path(), "noisy", 0.3);
    let header = table.lines().next().unwrap();
    let last = header.trim_end().trim_end_matches('|').rsplit('|').next();
    assert_eq!(last.map(str::trim), Some("check"), "{table}");
    let flagged = table.lines().filter(|l| l.contains("noisy ±")).count();
    assert!(flagged >= 1, "{table}");
    assert!(
        stderr.contains(&format!("note: {flagged} point(s) are noisy")),
        "{stderr}"
    );
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("point ") && l.contains("noisy ±")),
        "{stderr}"
    );

    let (table, stderr) = run(dir.path(), "quiet", 0.001);
    assert!(!table.contains("check"), "{table}");
    assert!(!stderr.contains("are noisy"), "{stderr}");
}
