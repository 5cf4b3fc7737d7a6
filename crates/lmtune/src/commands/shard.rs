//! `run --shard I/N`: which part of the plan this process measures (flag or
//! scheduler variables), the plan file written beside the results, and the
//! check that a resumed directory holds the same shard.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context};
use lmtune_core::scenario::Plan;
use lmtune_core::shard::{predicted_point_s, shard_from_env, PlanFile, Shard, PLAN_FILE};

/// The shard from `--shard`, `--shard-count` and the scheduler's variables
/// (`SLURM_ARRAY_TASK_*`, `JOB_COMPLETION_INDEX`); `None`: the whole plan.
pub(super) fn resolve(
    shard: Option<&str>,
    shard_count: Option<u32>,
) -> anyhow::Result<Option<Shard>> {
    // Variables that are not Unicode are none of the scheduler's.
    let env: BTreeMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    Ok(shard_from_env(shard, shard_count, &env)?)
}

/// The plan file of the whole plan, then `plan` cut to `shard`'s points.
pub(super) fn apply(plan: &mut Plan, shard: Option<Shard>) -> PlanFile {
    let file = PlanFile::of(plan, shard);
    if let Some(shard) = shard {
        plan.keep_shard(shard);
    }
    file
}

/// The line saying which part of the whole a sharded plan is.
pub(super) fn summary(plan: &Plan, file: &PlanFile) -> Option<String> {
    let shard = plan.shard?;
    let mut groups: Vec<usize> = file.points.iter().map(|p| p.load_group).collect();
    groups.sort_unstable();
    groups.dedup();
    // An empty sum is -0.0.
    let predicted_s = 0.0
        + plan
            .points
            .iter()
            .map(|p| predicted_point_s(plan, p))
            .sum::<f64>();
    Some(format!(
        "shard {shard}: {} of {} points, {} of {} load group(s), scenario {}; about {:.0} s of measuring on the reference machine",
        plan.points.len(),
        file.points.len(),
        plan.load_groups(),
        groups.len(),
        &file.scenario_sha256[..file.scenario_sha256.len().min(12)],
        predicted_s
    ) + if plan.points.is_empty() {
        " (nothing to measure: more shards than load groups)"
    } else {
        ""
    })
}

/// The default results directory's scenario part: the name, and the shard.
pub(super) fn dir_name(plan: &Plan) -> String {
    match plan.shard {
        Some(s) => format!("{}-shard-{}-of-{}", plan.scenario_name, s.index, s.count),
        None => plan.scenario_name.clone(),
    }
}

/// Writes `plan.json` into the results directory.
pub(super) fn write_plan_file(dir: &Path, file: &PlanFile) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(file).expect("plain data serializes");
    std::fs::write(dir.join(PLAN_FILE), text + "\n")
        .with_context(|| format!("cannot write {}", dir.join(PLAN_FILE).display()))
}

/// Refuses to resume `dir` with another shard than it was started with.
pub(super) fn check_resume(dir: &Path, file: &PlanFile) -> anyhow::Result<()> {
    let path = dir.join(PLAN_FILE);
    let Ok(text) = std::fs::read_to_string(&path) else {
        // A directory from before plan files: nothing to check.
        return Ok(());
    };
    let before: PlanFile =
        serde_json::from_str(&text).with_context(|| format!("cannot read {}", path.display()))?;
    if before.shard != file.shard {
        let name =
            |s: Option<Shard>| s.map_or("the whole plan".to_string(), |s| format!("shard {s}"));
        let fix = before.shard.map_or(
            "leave --shard out (and unset SLURM_ARRAY_TASK_ID / JOB_COMPLETION_INDEX)".to_string(),
            |s| format!("pass --shard {s}"),
        );
        bail!(
            "cannot resume {}: it holds {}, not {}; {fix}",
            dir.display(),
            name(before.shard),
            name(file.shard)
        );
    }
    Ok(())
}
