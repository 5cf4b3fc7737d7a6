//! `run --shard I/N` and `merge` through the binary: bad shards are one line
//! and exit 2, `--dry-run` lists a partition that keeps load groups whole,
//! and shards of the sim backend (no llama.cpp, instant) merge back into the
//! whole run — refusing other scenarios, gaps and existing directories.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use common::{lmtune, read_records, scenario};

const SCHEDULER_VARS: [&str; 6] = [
    "SLURM_ARRAY_TASK_ID",
    "SLURM_ARRAY_TASK_COUNT",
    "SLURM_ARRAY_TASK_MIN",
    "SLURM_ARRAY_TASK_MAX",
    "SLURM_ARRAY_TASK_STEP",
    "JOB_COMPLETION_INDEX",
];

/// `lmtune ARGS` with no scheduler variables but `env`.
fn lmtune_with(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = lmtune();
    for var in SCHEDULER_VARS {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied()).args(args).output().unwrap()
}

fn quickstart() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../scenarios/quickstart.toml")
        .display()
        .to_string()
}

/// Flags, scheduler variables, and the whole of stderr.
type BadShard<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);

#[test]
fn bad_shards_are_one_line_with_the_fix_and_exit_2() {
    let q = quickstart();
    let cases: [BadShard; 4] = [
        (&["--shard", "3/2"], &[], "error: --shard 3/2: shards are numbered from 0, so the last of 2 is 1/2; use an index below 2\n"),
        (&["--shard", "0/0"], &[], "error: --shard 0/0: a run has at least one shard; write e.g. --shard 0/1, or leave --shard out\n"),
        (&[], &[("SLURM_ARRAY_TASK_ID", "1")], "error: SLURM_ARRAY_TASK_ID=1 is set but not SLURM_ARRAY_TASK_COUNT (or SLURM_ARRAY_TASK_MIN and _MAX): pass --shard-count N, or --shard I/N\n"),
        (&[], &[("JOB_COMPLETION_INDEX", "0")], "error: JOB_COMPLETION_INDEX=0 is set but --shard-count is not: pass --shard-count N with N the Job's completions (or --shard I/N)\n"),
    ];
    for (flags, env, message) in cases {
        let mut args = vec!["run", q.as_str(), "--dry-run"];
        args.extend_from_slice(flags);
        let out = lmtune_with(&args, env);
        assert_eq!(out.status.code(), Some(2), "{flags:?} {env:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), message);
    }
}

/// (point index, load group) of each point `--dry-run` lists.
fn listed(scenario: &str, shard: Option<&str>, env: &[(&str, &str)]) -> Vec<(usize, usize)> {
    let mut args = vec!["run", scenario, "--dry-run"];
    if let Some(s) = shard {
        args.extend(["--shard", s]);
    }
    let out = lmtune_with(&args, env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let index = words.next()?.strip_prefix('#')?.parse().ok()?;
            (words.next()? == "group").then_some(())?;
            Some((index, words.next()?.parse().ok()?))
        })
        .collect()
}

#[test]
fn dry_run_shards_are_disjoint_whole_and_keep_load_groups() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/cpu-grid.toml");
    let file = file.to_str().unwrap();
    let whole: BTreeSet<(usize, usize)> = listed(file, None, &[]).into_iter().collect();
    assert!(whole.len() > 1);
    for n in 1..=5u32 {
        let mut seen = BTreeSet::new();
        let mut owner: BTreeMap<usize, u32> = BTreeMap::new();
        for i in 0..n {
            for (index, group) in listed(file, Some(&format!("{i}/{n}")), &[]) {
                assert!(seen.insert((index, group)), "point {index} twice at N={n}");
                assert_eq!(*owner.entry(group).or_insert(i), i, "group {group} split");
            }
        }
        assert_eq!(seen, whole, "N={n}");
    }
    // Slurm's variables pick the same shard as the flag.
    let slurm = [
        ("SLURM_ARRAY_TASK_ID", "1"),
        ("SLURM_ARRAY_TASK_COUNT", "2"),
    ];
    assert_eq!(listed(file, None, &slurm), listed(file, Some("1/2"), &[]));
}

/// A sim scenario of three load groups; `tag` changes its text (and hash).
fn sim(dir: &Path, name: &str, tag: &str) -> PathBuf {
    scenario(
        dir,
        name,
        &format!(
            "# {tag}\nschema = 1\nname = \"fleet\"\n[backend]\nkind = \"sim\"\n[sweep]\nn_gpu_layers = [0, 1, 2]\n\
             n_ctx = 512\nn_ubatch = 64\nthreads = [1, 2]\n[workload]\nn_prompt = [64]\nn_gen = [16]\n\
             [measure]\nrepetitions = 2\nwarmup = 0\n"
        ),
    )
}

fn run(file: &Path, out: &Path, shard: Option<&str>) {
    let mut args = vec![
        "run",
        file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    if let Some(s) = shard {
        args.extend(["--shard", s]);
    }
    let out = lmtune_with(&args, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn points(dir: &Path) -> BTreeSet<(u64, String)> {
    read_records(dir)
        .iter()
        .map(|r| {
            (
                r["point_index"].as_u64().unwrap(),
                r["test"].as_str().unwrap().into(),
            )
        })
        .collect()
}

fn hash(dir: &Path) -> String {
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("plan.json")).unwrap()).unwrap();
    plan["scenario_sha256"].as_str().unwrap().to_string()
}

#[test]
fn sim_shards_merge_into_the_whole_run_and_bad_sets_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let file = sim(d, "fleet.toml", "a");
    let (s0, s1, whole) = (d.join("s0"), d.join("s1"), d.join("whole"));
    run(&file, &s0, Some("0/2"));
    run(&file, &s1, Some("1/2"));
    run(&file, &whole, None);
    for r in read_records(&s1) {
        assert_eq!(r["shard"], serde_json::json!({"index": 1, "count": 2}));
        assert_eq!(r["scenario_sha256"].as_str(), Some(hash(&s1).as_str()));
    }
    let path = |p: &Path| p.to_str().unwrap().to_string();
    let merged = d.join("merged");
    let out = lmtune_with(
        &["merge", &path(&s0), &path(&s1), "-o", &path(&merged)],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(points(&merged), points(&whole));
    assert_eq!(points(&whole).len(), 12);

    // An existing output directory is never written into.
    let out = lmtune_with(
        &["merge", &path(&s0), &path(&s1), "-o", &path(&merged)],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));

    // A missing shard: its points are named, nothing is written, exit 1.
    let partial = d.join("partial");
    let out = lmtune_with(&["merge", &path(&s0), "-o", &path(&partial)], &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let missing = points(&whole).len() - points(&s0).len();
    assert_eq!(
        stderr.matches("missing: point ").count(),
        missing,
        "{stderr}"
    );
    assert!(stderr.contains("tg16 ngl="), "{stderr}");
    assert!(!partial.exists());
    let out = lmtune_with(
        &[
            "merge",
            &path(&s0),
            "-o",
            &path(&partial),
            "--allow-partial",
        ],
        &[],
    );
    assert!(out.status.success());
    assert_eq!(points(&partial), points(&s0));

    // The same shard twice.
    let twice = d.join("twice");
    let out = lmtune_with(
        &[
            "merge",
            &path(&s0),
            &path(&s1),
            &path(&s0),
            "-o",
            &path(&twice),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("duplicated: point "));

    // Shards of another scenario: both hashes named.
    let other = d.join("other");
    run(&sim(d, "other.toml", "b"), &other, Some("1/2"));
    let out = lmtune_with(
        &[
            "merge",
            &path(&s0),
            &path(&other),
            "-o",
            &path(&d.join("x")),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&hash(&s0)) && stderr.contains(&hash(&other)),
        "{stderr}"
    );

    // A shard resumes as itself only.
    let out = lmtune_with(
        &[
            "run",
            &path(&file),
            "--resume",
            &path(&s0),
            "--shard",
            "1/2",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("it holds shard 0/2, not shard 1/2; pass --shard 0/2"));
}

/// Shards measured on two machines stay a multi-machine set: every record
/// keeps its own fingerprint, and the report draws the hardware comparison.
#[test]
fn shards_from_two_machines_merge_into_a_side_by_side_report() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let file = sim(d, "fleet.toml", "a");
    let (s0, s1) = (d.join("s0"), d.join("s1"));
    run(&file, &s0, Some("0/2"));
    run(&file, &s1, Some("1/2"));
    // The second shard as another machine would have recorded it.
    let jsonl = s1.join("results.jsonl");
    let text = std::fs::read_to_string(&jsonl).unwrap();
    let host = read_records(&s1)[0]["fingerprint"]["host"]["hostname"]
        .as_str()
        .unwrap()
        .to_string();
    let from = format!("\"hostname\":{}", serde_json::json!(host));
    assert!(text.contains(&from));
    std::fs::write(&jsonl, text.replace(&from, "\"hostname\":\"node-2\"")).unwrap();

    let merged = d.join("merged");
    let path = |p: &Path| p.to_str().unwrap().to_string();
    let out = lmtune_with(
        &["merge", &path(&s0), &path(&s1), "-o", &path(&merged)],
        &[],
    );
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("the records come from 2 machines"));
    let hosts: BTreeSet<String> = read_records(&merged)
        .iter()
        .map(|r| {
            r["fingerprint"]["host"]["hostname"]
                .as_str()
                .unwrap()
                .into()
        })
        .collect();
    assert_eq!(hosts, BTreeSet::from([host, "node-2".to_string()]));
    let report = d.join("report");
    let out = lmtune_with(&["report", &path(&merged), "-o", &path(&report)], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.join("hardware_comparison_tg.svg").is_file());
}
