//! Mixture-of-experts knobs end to end, on a real llama.cpp and a
//! synthesized qwen3moe (4 blocks of 8 routed experts, 2 used; `lmtune
//! synth`): bad placements are one-line scenario errors; `n_cpu_moe`,
//! `cpu_moe` and `override_tensor` reach llama.cpp (its own log says which
//! tensors went where), the records, every export, and `compare` keeps
//! points that differ only in them apart.

mod common;

use std::path::{Path, PathBuf};

use common::{lmtune, model_path, read_records};

/// `synth --like qwen3moe-tiny --layers 4`, q8_0, the test model's tokenizer.
fn synth_moe(dir: &Path) -> PathBuf {
    let path = dir.join("qwen3moe-tiny.gguf");
    let out = lmtune()
        .args([
            "synth",
            "--like",
            "qwen3moe-tiny",
            "--layers",
            "4",
            "--quant",
            "q8_0",
            "--donor",
        ])
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

fn write_scenario(dir: &Path, name: &str, model: &Path, sweep: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "[model]\npath = {:?}\n[sweep]\nthreads = 2\n{sweep}\n[workload]\nn_prompt = [0]\nn_gen = [4]\n[measure]\nrepetitions = 1\nwarmup = 0\n",
            model.display().to_string()
        ),
    )
    .unwrap();
    path
}

/// One line on stderr naming `key`, exit 2, nothing measured.
fn refused(scenario: &Path, key: &str, needle: &str) {
    let out = lmtune()
        .arg("run")
        .arg(scenario)
        .arg("--dry-run")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() <= 2, "more than an error and its fix: {stderr}");
    assert!(stderr.contains(key), "does not name {key}: {stderr}");
    assert!(stderr.contains(needle), "no {needle:?} in: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn bad_expert_placements_are_one_line_scenario_errors() {
    let dir = tempfile::tempdir().unwrap();
    let moe = synth_moe(dir.path());
    let dense = model_path();
    let cases: [(&str, &Path, &str, &str, &str); 6] = [
        (
            "dense.toml",
            &dense,
            "n_cpu_moe = [0, 2]",
            "sweep.n_cpu_moe",
            "no routed experts",
        ),
        (
            "dense-all.toml",
            &dense,
            "cpu_moe = true",
            "sweep.cpu_moe",
            "no routed experts",
        ),
        (
            "too-many.toml",
            &moe,
            "n_cpu_moe = [5]",
            "sweep.n_cpu_moe",
            "has 4 blocks",
        ),
        (
            "no-match.toml",
            &moe,
            "override_tensor = ['blk\\.9\\.ffn_up_exps=CPU']",
            "sweep.override_tensor",
            "matches no tensor",
        ),
        (
            "bad-regex.toml",
            &moe,
            "override_tensor = ['blk\\.(0=CPU']",
            "sweep.override_tensor",
            "does not compile",
        ),
        (
            "device.toml",
            &moe,
            "override_tensor = ['ffn_up_exps=CUDA0']",
            "sweep.override_tensor",
            "host memory (CPU) only",
        ),
    ];
    for (name, model, sweep, key, needle) in cases {
        let s = write_scenario(dir.path(), name, model, sweep);
        refused(&s, key, needle);
    }
}

#[test]
fn expert_placement_reaches_llama_cpp_the_records_and_every_export() {
    let dir = tempfile::tempdir().unwrap();
    let moe = synth_moe(dir.path());
    let s = write_scenario(
        dir.path(),
        "placements.toml",
        &moe,
        "n_cpu_moe = [0, 2]\noverride_tensor = ['none', 'blk\\.3\\.ffn_(up|down)_exps=CPU']",
    );
    let out_dir = dir.path().join("out");
    let run = lmtune()
        .arg("run")
        .arg(&s)
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let records = read_records(&out_dir);
    assert_eq!(records.len(), 4, "2 n_cpu_moe x 2 override_tensor");
    let anatomy: serde_json::Value = serde_json::from_slice(
        &lmtune()
            .args(["inspect", "--json"])
            .arg(&moe)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let experts_of = |block: usize| -> u64 {
        anatomy["anatomy"]["layers"][block]["routed_experts"]["bytes"]
            .as_u64()
            .unwrap()
    };
    let mut load_groups = std::collections::BTreeSet::new();
    for r in &records {
        assert_eq!(r["status"], "ok", "{r}");
        load_groups.insert(r["load_group"].as_u64().unwrap());
        let n_cpu_moe = r["n_cpu_moe"].as_u64().unwrap_or(0) as usize;
        let ot = r["override_tensor"].as_str().unwrap_or("");
        // What llama.cpp placed by hand, from its own log: blocks 0..n's
        // experts (3 tensors each), and block 3's up and down by -ot.
        let overridden = r["placement"]["overridden"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let tensors: u64 = overridden
            .iter()
            .map(|o| o["tensors"].as_u64().unwrap())
            .sum();
        let expert_bytes: u64 = overridden
            .iter()
            .map(|o| o["expert_bytes"].as_u64().unwrap())
            .sum();
        let want_tensors = 3 * n_cpu_moe as u64 + if ot.is_empty() { 0 } else { 2 };
        assert_eq!(tensors, want_tensors, "{n_cpu_moe} {ot:?}: {overridden:?}");
        let mut want_bytes: u64 = (0..n_cpu_moe).map(experts_of).sum();
        if !ot.is_empty() {
            // up and down of block 3: two of its three expert tensors, equal in size.
            want_bytes += experts_of(3) * 2 / 3;
        }
        assert_eq!(expert_bytes, want_bytes, "{n_cpu_moe} {ot:?}");
        let passed = r["backend_params"]["tensor_buft_overrides"]
            .as_str()
            .unwrap();
        if n_cpu_moe == 0 && ot.is_empty() {
            assert_eq!(passed, "none");
        } else {
            assert!(
                passed.contains(if ot.is_empty() { "n_cpu_moe=2" } else { "ot=" }),
                "{passed}"
            );
        }
    }
    assert_eq!(load_groups.len(), 4, "one load per placement");
    let active = records[0]["fingerprint"]["model"]["active_weights_bytes"]
        .as_u64()
        .unwrap();
    let total = records[0]["fingerprint"]["model"]["weights_bytes"]
        .as_u64()
        .unwrap();
    assert!(active < total, "active {active} of {total}");

    // CSV columns, llama-bench CSV and JSON out and back in.
    let csv = std::fs::read_to_string(out_dir.join("results.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    for col in ["n_cpu_moe", "cpu_moe", "override_tensor"] {
        assert!(header.contains(&col), "{col} not in {header:?}");
    }
    for (format, file) in [
        ("llama-bench-csv", "bench.csv"),
        ("llama-bench-json", "bench.json"),
    ] {
        let path = dir.path().join(file);
        let e = lmtune()
            .arg("export")
            .arg(&out_dir)
            .args(["--format", format, "-o"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(e.status.success(), "{}", String::from_utf8_lossy(&e.stderr));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            // JSON escapes the backslashes.
            text.contains("blk\\.3\\.ffn_(up|down)_exps=CPU")
                || text.contains("blk\\\\.3\\\\.ffn_(up|down)_exps=CPU"),
            "{format}: {text}"
        );
        let back = dir.path().join(format!("{file}.jsonl"));
        let i = lmtune()
            .arg("export")
            .arg(&path)
            .args(["--format", "jsonl", "-o"])
            .arg(&back)
            .output()
            .unwrap();
        assert!(i.status.success(), "{}", String::from_utf8_lossy(&i.stderr));
        let mut got: Vec<(u64, String)> = std::fs::read_to_string(&back)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .map(|r| {
                (
                    r["n_cpu_moe"].as_u64().unwrap_or(0),
                    r["override_tensor"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        got.sort();
        let mut want: Vec<(u64, String)> = records
            .iter()
            .map(|r| {
                (
                    r["n_cpu_moe"].as_u64().unwrap_or(0),
                    r["override_tensor"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        want.sort();
        assert_eq!(got, want, "{format} round trip");
    }

    // `compare` matches a point only with the same placement: the run
    // against itself matches all four, against a run of only n_cpu_moe = 0
    // and no override, one.
    let s0 = write_scenario(dir.path(), "base.toml", &moe, "n_cpu_moe = [0]");
    let base = dir.path().join("base");
    let r0 = lmtune()
        .arg("run")
        .arg(&s0)
        .arg("--out")
        .arg(&base)
        .output()
        .unwrap();
    assert!(
        r0.status.success(),
        "{}",
        String::from_utf8_lossy(&r0.stderr)
    );
    let cmp = lmtune()
        .arg("compare")
        .arg(&base)
        .arg(&out_dir)
        .args(["--format", "json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&cmp.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&cmp.stderr)));
    let c = &v["comparison"];
    assert_eq!(c["rows"].as_array().map(Vec::len), Some(1), "{c}");
    let only: Vec<&str> = c["only_in_current"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p.as_str())
        .collect();
    assert_eq!(only.len(), 3, "{only:?}");
    assert_eq!(
        only.iter().filter(|p| p.contains("n_cpu_moe=2")).count(),
        2,
        "{only:?}"
    );
    assert_eq!(
        only.iter().filter(|p| p.contains("ot=")).count(),
        2,
        "{only:?}"
    );
}

#[test]
fn cpu_moe_keeps_every_blocks_experts_in_host_memory() {
    let dir = tempfile::tempdir().unwrap();
    let moe = synth_moe(dir.path());
    let s = write_scenario(dir.path(), "all.toml", &moe, "cpu_moe = true");
    let out_dir = dir.path().join("out");
    let run = lmtune()
        .arg("run")
        .arg(&s)
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let r = &read_records(&out_dir)[0];
    assert_eq!(r["cpu_moe"], true);
    let tensors: u64 = r["placement"]["overridden"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["tensors"].as_u64().unwrap())
        .sum();
    assert_eq!(tensors, 4 * 3, "the 3 expert tensors of each of 4 blocks");
}
