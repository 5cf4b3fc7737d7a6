//! The lines `run` prints about points name every knob, through the one
//! label function, so two points never print alike.

mod common;

use common::{lmtune, scenario};

/// Issue 22 #17: the per-point progress lines (and warnings) left out
/// type_k / type_v, so a sweep over the K cache type printed the same line
/// twice. Each point's line now carries its K/V types.
#[test]
fn point_lines_name_type_k_so_points_differ() {
    let dir = tempfile::tempdir().unwrap();
    let body = "name = \"kv-lines\"\n[sweep]\nn_ctx = 128\nn_batch = 32\nn_ubatch = 32\nthreads = 1\ntype_k = [\"f16\", \"q8_0\"]\n[workload]\nn_prompt = [0]\nn_gen = [2]\n[measure]\nrepetitions = 1\nwarmup = 0\n";
    let path = scenario(dir.path(), "s.toml", body);
    let out = lmtune()
        .arg("run")
        .arg(&path)
        .arg("--out")
        .arg(dir.path().join("results"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // Without a terminal, one line per finished point: "[i/n] test knobs: t/s".
    let points: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("[1/2] ") || l.starts_with("[2/2] "))
        .collect();
    assert_eq!(points.len(), 2, "{stderr}");
    let knobs: Vec<&str> = points
        .iter()
        .map(|l| l[6..].split(": ").next().unwrap())
        .collect();
    assert_ne!(knobs[0], knobs[1], "{stderr}");
    assert!(knobs[0].contains("type_k=f16 type_v=f16"), "{}", knobs[0]);
    assert!(knobs[1].contains("type_k=q8_0 type_v=f16"), "{}", knobs[1]);
}
