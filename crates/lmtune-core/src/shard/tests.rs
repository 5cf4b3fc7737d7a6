use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use lmtune_gguf::synth::{preset, quant_type, write_synthetic, SynthArch, SynthShape};
use lmtune_gguf::GgufFile;

use super::*;
use crate::scenario::{MachineFacts, Scenario};

#[test]
fn shard_parses_zero_based_i_over_n() {
    assert_eq!("0/1".parse(), Ok(Shard { index: 0, count: 1 }));
    assert_eq!(" 3/4 ".parse(), Ok(Shard { index: 3, count: 4 }));
    assert_eq!(Shard { index: 2, count: 5 }.to_string(), "2/5");
}

#[test]
fn bad_shards_say_the_fix_in_one_line() {
    let cases = [
        ("3/2", "--shard 3/2: shards are numbered from 0, so the last of 2 is 1/2; use an index below 2"),
        ("2/2", "--shard 2/2: shards are numbered from 0, so the last of 2 is 1/2; use an index below 2"),
        ("0/0", "--shard 0/0: a run has at least one shard; write e.g. --shard 0/1, or leave --shard out"),
        ("1", "--shard \"1\": expected I/N, two whole numbers with I < N (0-based, like Slurm array task ids): e.g. --shard 0/4 … --shard 3/4"),
        ("-1/2", "--shard \"-1/2\": expected I/N, two whole numbers with I < N (0-based, like Slurm array task ids): e.g. --shard 0/4 … --shard 3/4"),
        ("a/b", "--shard \"a/b\": expected I/N, two whole numbers with I < N (0-based, like Slurm array task ids): e.g. --shard 0/4 … --shard 3/4"),
    ];
    for (text, message) in cases {
        let e = text.parse::<Shard>().unwrap_err().to_string();
        assert_eq!(e, message, "{text}");
        assert!(!e.contains('\n'));
    }
}

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn env_resolution_follows_the_schedulers() {
    let none = env(&[]);
    let s = |i, n| Ok(Some(Shard { index: i, count: n }));
    assert_eq!(shard_from_env(None, None, &none), Ok(None));
    assert_eq!(shard_from_env(Some("1/3"), None, &none), s(1, 3));
    // The flag wins over the environment (a CI matrix inside Slurm).
    let slurm = env(&[
        ("SLURM_ARRAY_TASK_ID", "1"),
        ("SLURM_ARRAY_TASK_COUNT", "2"),
    ]);
    assert_eq!(shard_from_env(Some("0/5"), None, &slurm), s(0, 5));
    assert_eq!(shard_from_env(None, None, &slurm), s(1, 2));
    // --array=1-4: MIN and MAX, no COUNT.
    let from_one = env(&[
        ("SLURM_ARRAY_TASK_ID", "4"),
        ("SLURM_ARRAY_TASK_MIN", "1"),
        ("SLURM_ARRAY_TASK_MAX", "4"),
    ]);
    assert_eq!(shard_from_env(None, None, &from_one), s(3, 4));
    // --array=0-6:2 is four tasks.
    let stepped = env(&[
        ("SLURM_ARRAY_TASK_ID", "4"),
        ("SLURM_ARRAY_TASK_MIN", "0"),
        ("SLURM_ARRAY_TASK_MAX", "6"),
        ("SLURM_ARRAY_TASK_STEP", "2"),
    ]);
    assert_eq!(shard_from_env(None, None, &stepped), s(2, 4));
    let id_only = env(&[("SLURM_ARRAY_TASK_ID", "1")]);
    assert_eq!(shard_from_env(None, Some(3), &id_only), s(1, 3));
    let k8s = env(&[("JOB_COMPLETION_INDEX", "2")]);
    assert_eq!(shard_from_env(None, Some(3), &k8s), s(2, 3));
}

#[test]
fn env_errors_say_the_fix_in_one_line() {
    let id_only = env(&[("SLURM_ARRAY_TASK_ID", "1")]);
    let k8s = env(&[("JOB_COMPLETION_INDEX", "2")]);
    let cases = [
        (None, None, &id_only, "SLURM_ARRAY_TASK_ID=1 is set but not SLURM_ARRAY_TASK_COUNT (or SLURM_ARRAY_TASK_MIN and _MAX): pass --shard-count N, or --shard I/N"),
        (None, None, &k8s, "JOB_COMPLETION_INDEX=2 is set but --shard-count is not: pass --shard-count N with N the Job's completions (or --shard I/N)"),
        (None, Some(2), &k8s, "JOB_COMPLETION_INDEX=2 gives shard 2 of 2, past the last (1): check the array range against --shard-count, or pass --shard I/N"),
        (None, Some(2), &env(&[]), "--shard-count 2 needs SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX in the environment; outside a scheduler, use --shard I/N"),
        (None, Some(0), &k8s, "--shard-count 0: a run has at least one shard; pass --shard-count N with N >= 1"),
        (Some("0/2"), Some(2), &k8s, "--shard and --shard-count are both given: use --shard I/N alone, or --shard-count N with SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX set"),
        (None, None, &env(&[("SLURM_ARRAY_TASK_ID", "x")]), "SLURM_ARRAY_TASK_ID=\"x\" is not a whole number: fix the variable, or pass --shard I/N"),
    ];
    for (shard, count, vars, message) in cases {
        let e = shard_from_env(shard, count, vars).unwrap_err().to_string();
        assert_eq!(e, message);
    }
}

#[test]
fn lpt_balances_and_breaks_ties_by_id() {
    // 7, 5, 4, 3, 3 into 2: 7+3 | 5+4+3? LPT: 7→0, 5→1, 4→1 (9), 3→0 (10), 3→1 (12).
    let groups = [(0, 3), (1, 7), (2, 4), (3, 5), (4, 3)];
    let a = assign_groups(&groups, 2);
    assert_eq!(a, BTreeMap::from([(1, 0), (3, 1), (2, 1), (0, 0), (4, 1)]));
    // Equal costs go round in group order.
    let equal = assign_groups(&[(0, 1), (1, 1), (2, 1)], 3);
    assert_eq!(equal, BTreeMap::from([(0, 0), (1, 1), (2, 2)]));
    // More shards than groups: the extra shards are empty.
    assert_eq!(assign_groups(&[(0, 9)], 4), BTreeMap::from([(0, 0)]));
}

/// A stand-in for a scenario's synthetic model that is not on this machine
/// (they are made on GPU machines): the same architecture, layers and
/// experts, tiny widths. Planning reads only the header.
fn stand_in(missing: &Path, dir: &Path, donor: &GgufFile) -> PathBuf {
    let name = missing.file_name().unwrap().to_string_lossy().into_owned();
    let layers = |n| SynthShape::dense(SynthArch::Llama, n, 64, 4, 4, 128, None, 8192);
    let shape = match name.split('-').next().unwrap() {
        "qwen3moe" => SynthShape {
            n_layer: 4,
            ..preset("qwen3moe-tiny").unwrap()
        },
        "smollm2" => layers(30),
        _ if name.contains("-70b") => layers(80),
        _ if name.contains("-13b") => layers(40),
        _ if name.contains("-7b") => layers(32),
        _ => layers(16),
    };
    let out = dir.join(&name);
    write_synthetic(&out, &shape, quant_type("q8_0").unwrap(), donor, &name, 1).unwrap();
    out
}

/// Every scenario in scenarios/, split into 1 to 5 shards: the shards are
/// disjoint, their union is the whole plan, and no load group is split.
#[test]
fn every_scenario_shards_disjoint_whole_and_groups_kept() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let donor_path = root.join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        donor_path.exists(),
        "{} is missing: run scripts/fetch-model.sh",
        donor_path.display()
    );
    let donor = GgufFile::open(&donor_path).unwrap();
    let tmp = std::env::temp_dir().join(format!("lmtune-shard-test-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let machine = MachineFacts {
        physical_cores: 4,
        logical_cores: 8,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("scenarios"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 20, "found only {} scenarios", files.len());
    for file in files {
        let mut scenario = Scenario::load(&file).unwrap();
        if !scenario.model_path.exists() {
            scenario.model_path = stand_in(&scenario.model_path, &tmp, &donor);
        }
        // A managed server's program is checked at planning; the partition
        // does not depend on it.
        if let Some(cmd) = scenario
            .backend
            .openai_mut()
            .and_then(|o| o.command.as_mut())
        {
            cmd[0] = "/bin/sh".into();
        }
        let plan = scenario
            .plan(machine)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let all: BTreeSet<usize> = plan.points.iter().map(|p| p.index).collect();
        for count in 1..=5 {
            let mut seen = BTreeSet::new();
            let mut group_shard: BTreeMap<usize, u32> = BTreeMap::new();
            for index in 0..count {
                let mut part = plan.clone();
                part.keep_shard(Shard { index, count });
                for p in &part.points {
                    assert!(
                        seen.insert(p.index),
                        "{}: point {} twice",
                        file.display(),
                        p.index
                    );
                    let owner = *group_shard.entry(p.load_group).or_insert(index);
                    assert_eq!(
                        owner,
                        index,
                        "{}: group {} split",
                        file.display(),
                        p.load_group
                    );
                }
            }
            assert_eq!(seen, all, "{} in {count} shards", file.display());
            // plan.json names the same owner for every point.
            let listed = PlanFile::of(&plan, Some(Shard { index: 0, count }));
            for p in &listed.points {
                assert_eq!(Some(&p.shard), group_shard.get(&p.load_group));
            }
        }
    }
    std::fs::remove_dir_all(&tmp).ok();
}

#[test]
fn shards_balance_the_predicted_time() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let scenario = Scenario::load(&root.join("scenarios/cpu-grid.toml")).unwrap();
    if !scenario.model_path.exists() {
        panic!(
            "{} is missing: run scripts/fetch-model.sh",
            scenario.model_path.display()
        );
    }
    let plan = scenario
        .plan(MachineFacts {
            physical_cores: 4,
            logical_cores: 8,
        })
        .unwrap();
    let costs = group_costs_ms(&plan);
    let total: u64 = costs.iter().map(|c| c.1).sum();
    let largest = costs.iter().map(|c| c.1).max().unwrap();
    let shards = assign_groups(&costs, 2);
    let mut bins = [0u64; 2];
    for (g, c) in &costs {
        bins[shards[g] as usize] += c;
    }
    // LPT's bound: no shard exceeds the mean by more than the largest group.
    assert!(bins.iter().all(|&b| b <= total / 2 + largest), "{bins:?}");
}
