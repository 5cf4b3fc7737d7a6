//! The plan a run writes beside its results (`plan.json`), and the join of
//! shards' results into one set (`lmtune merge`), as pure functions.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{assign_groups, group_costs_ms, Shard};
use crate::record::Record;
use crate::scenario::Plan;

/// The file name of [`PlanFile`] in a results directory.
pub const PLAN_FILE: &str = "plan.json";

/// Version of the [`PlanFile`] format.
pub const PLAN_FILE_SCHEMA: u32 = 1;

/// Every point of the whole scenario and the shard that runs it, written by
/// each run, so that `merge` can name the points a missing shard had.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanFile {
    pub schema_version: u32,
    pub scenario: String,
    pub scenario_sha256: String,
    /// The shard this directory's run measured; `None`: the whole plan.
    pub shard: Option<Shard>,
    pub points: Vec<PlannedPoint>,
}

/// One point of the whole plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedPoint {
    pub index: usize,
    pub load_group: usize,
    /// The shard (of `PlanFile::shard`'s count) that runs it; 0 unsharded.
    pub shard: u32,
    /// The test and its knobs, e.g. `tg128 ngl=0 threads=2 n_ctx=256`.
    pub label: String,
}

impl PlanFile {
    /// The plan file of `whole` (every point, before [`Plan::keep_shard`])
    /// for a run of `shard`.
    pub fn of(whole: &Plan, shard: Option<Shard>) -> PlanFile {
        let groups = assign_groups(&group_costs_ms(whole), shard.map_or(1, |s| s.count));
        PlanFile {
            schema_version: PLAN_FILE_SCHEMA,
            scenario: whole.scenario_name.clone(),
            scenario_sha256: whole.scenario_sha256.clone(),
            shard,
            points: whole
                .points
                .iter()
                .map(|p| PlannedPoint {
                    index: p.index,
                    load_group: p.load_group,
                    shard: groups.get(&p.load_group).copied().unwrap_or(0),
                    label: format!(
                        "{} {}",
                        p.test.label(),
                        crate::knobs::knob_label(&p.load, &p.ctx, true)
                    ),
                })
                .collect(),
        }
    }
}

/// One shard's results directory, read.
#[derive(Debug, Clone)]
pub struct ShardRun {
    /// The directory, for messages.
    pub dir: String,
    pub plan: PlanFile,
    pub records: Vec<Record>,
}

/// Why shards cannot be merged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MergeError {
    #[error("{a_dir} ran scenario {a_hash} but {b_dir} ran scenario {b_hash}: merge the shards of one scenario only (same scenario.toml)")]
    DifferentScenarios {
        a_dir: String,
        a_hash: String,
        b_dir: String,
        b_hash: String,
    },
    #[error("no results directories to merge: give the shards' directories, e.g. lmtune merge results/shard-* -o results/merged")]
    Nothing,
}

/// Shards joined: their records, and what the whole plan lacks or has twice.
#[derive(Debug, Clone)]
pub struct Merged {
    /// The whole plan (`shard: None`).
    pub plan: PlanFile,
    /// Each directory's latest record of each point, in point order;
    /// fingerprints untouched.
    pub records: Vec<Record>,
    /// Points of the plan no directory recorded.
    pub missing: Vec<PlannedPoint>,
    /// Points recorded by more than one directory, with those directories.
    pub duplicated: Vec<(PlannedPoint, Vec<String>)>,
    /// The machines (hostnames) the records came from, sorted.
    pub machines: Vec<String>,
}

/// Joins `runs` (shards of one scenario: the same scenario hash).
pub fn merge(runs: Vec<ShardRun>) -> Result<Merged, MergeError> {
    let first = runs.first().ok_or(MergeError::Nothing)?;
    if let Some(other) = runs
        .iter()
        .find(|r| r.plan.scenario_sha256 != first.plan.scenario_sha256)
    {
        return Err(MergeError::DifferentScenarios {
            a_dir: first.dir.clone(),
            a_hash: first.plan.scenario_sha256.clone(),
            b_dir: other.dir.clone(),
            b_hash: other.plan.scenario_sha256.clone(),
        });
    }
    let planned = first.plan.points.clone();
    let plan = PlanFile {
        shard: None,
        points: first
            .plan
            .points
            .iter()
            .map(|p| PlannedPoint {
                shard: 0,
                ..p.clone()
            })
            .collect(),
        ..first.plan.clone()
    };
    let mut by_point: BTreeMap<usize, Vec<(String, Record)>> = BTreeMap::new();
    for run in runs {
        let mut latest: BTreeMap<usize, Record> = BTreeMap::new();
        for r in run.records {
            latest.insert(r.point_index, r);
        }
        for (index, r) in latest {
            by_point
                .entry(index)
                .or_default()
                .push((run.dir.clone(), r));
        }
    }
    // Missing points keep the shard that should have run them.
    let missing = planned
        .iter()
        .filter(|p| !by_point.contains_key(&p.index))
        .cloned()
        .collect();
    let label_of = |index: usize| {
        planned
            .iter()
            .find(|p| p.index == index)
            .cloned()
            .unwrap_or(PlannedPoint {
                index,
                load_group: 0,
                shard: 0,
                label: format!("point {index} (not in the plan)"),
            })
    };
    let duplicated = by_point
        .iter()
        .filter(|(_, rs)| rs.len() > 1)
        .map(|(&i, rs)| (label_of(i), rs.iter().map(|(d, _)| d.clone()).collect()))
        .collect();
    let records: Vec<Record> = by_point.into_values().flatten().map(|(_, r)| r).collect();
    let machines: BTreeSet<String> = records
        .iter()
        .map(|r| r.fingerprint.host.hostname.clone())
        .collect();
    Ok(Merged {
        plan,
        records,
        missing,
        duplicated,
        machines: machines.into_iter().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records of version 1 without the shard fields: old files still read.
    fn old_records() -> Vec<Record> {
        include_str!("../../../lmtune-report/tests/data/cpu.jsonl")
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn plan(hash: &str, shard: Option<Shard>, indices: &[usize]) -> PlanFile {
        PlanFile {
            schema_version: PLAN_FILE_SCHEMA,
            scenario: "quickstart".into(),
            scenario_sha256: hash.into(),
            shard,
            points: indices
                .iter()
                .map(|&index| PlannedPoint {
                    index,
                    load_group: index / 4,
                    shard: u32::from(index >= 4),
                    label: format!("p{index}"),
                })
                .collect(),
        }
    }

    fn run(dir: &str, hash: &str, shard: u32, records: Vec<Record>) -> ShardRun {
        ShardRun {
            dir: dir.into(),
            plan: plan(hash, Some(Shard::new(shard, 2).unwrap()), &[0, 1, 4, 8]),
            records,
        }
    }

    #[test]
    fn two_shards_make_the_whole_set() {
        let records = old_records();
        assert!(records
            .iter()
            .all(|r| r.shard.is_none() && r.scenario_sha256.is_none()));
        let (a, b) = records.split_at(2);
        let merged = merge(vec![
            run("s0", "h", 0, a.to_vec()),
            run("s1", "h", 1, b.to_vec()),
        ])
        .unwrap();
        assert!(merged.missing.is_empty() && merged.duplicated.is_empty());
        assert_eq!(merged.records, records);
        assert_eq!(merged.machines, ["vm"]);
        assert_eq!(merged.plan.shard, None);
    }

    #[test]
    fn missing_and_duplicated_points_are_named() {
        let records = old_records();
        let merged = merge(vec![
            run("s0", "h", 0, records[..2].to_vec()),
            run("s1", "h", 1, records[1..3].to_vec()),
        ])
        .unwrap();
        let missing: Vec<&str> = merged.missing.iter().map(|p| p.label.as_str()).collect();
        assert_eq!(missing, ["p8"]);
        assert_eq!(merged.duplicated.len(), 1);
        assert_eq!(merged.duplicated[0].0.label, "p1");
        assert_eq!(merged.duplicated[0].1, ["s0", "s1"]);
    }

    #[test]
    fn shards_of_different_scenarios_are_refused_naming_both_hashes() {
        let e = merge(vec![run("a", "abc", 0, vec![]), run("b", "def", 1, vec![])]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "a ran scenario abc but b ran scenario def: merge the shards of one scenario only (same scenario.toml)"
        );
        assert_eq!(merge(vec![]).unwrap_err(), MergeError::Nothing);
    }
}
