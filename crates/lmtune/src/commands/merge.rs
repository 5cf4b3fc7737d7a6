//! `lmtune merge DIR… -o DIR`: one result set from the shards of one
//! scenario (`run --shard I/N`). Points missing or recorded twice are listed
//! and refused (exit 1) unless `--allow-partial`; the output directory is
//! never overwritten. Records keep their fingerprints, so shards measured on
//! different machines stay a multi-machine set that `report` draws side by
//! side.

use std::path::Path;

use anyhow::{bail, Context};
use lmtune_core::shard::{merge, Merged, PlanFile, ShardRun, PLAN_FILE};
use lmtune_report::{read_jsonl, results_sinks, RESULTS_JSONL};

use crate::cli::MergeArgs;
use crate::exit;

pub fn run(args: MergeArgs) -> anyhow::Result<u8> {
    if args.out.exists() {
        bail!(
            "-o {}: it already exists, and merge never overwrites; choose a new directory",
            args.out.display()
        );
    }
    let mut runs = Vec::new();
    for dir in &args.dirs {
        runs.push(read_shard(dir)?);
    }
    let scenario_source = std::fs::read_to_string(args.dirs[0].join("scenario.toml"))
        .with_context(|| {
            format!(
                "cannot read {}",
                args.dirs[0].join("scenario.toml").display()
            )
        })?;
    let merged = merge(runs)?;
    for p in &merged.missing {
        eprintln!(
            "missing: point {} ({}), load group {}, shard {} of the plan",
            p.index, p.label, p.load_group, p.shard
        );
    }
    for (p, dirs) in &merged.duplicated {
        eprintln!(
            "duplicated: point {} ({}) is recorded in {}",
            p.index,
            p.label,
            dirs.join(" and ")
        );
    }
    let partial = !merged.missing.is_empty() || !merged.duplicated.is_empty();
    if partial && !args.allow_partial {
        eprintln!(
            "not merged: {} of {} point(s) missing, {} recorded more than once; run the missing shards (lmtune run SCENARIO --shard I/N, or --resume their directories), give each shard once, or pass --allow-partial",
            merged.missing.len(),
            merged.plan.points.len(),
            merged.duplicated.len()
        );
        return Ok(exit::SOME_FAILED);
    }
    write_merged(&args.out, &scenario_source, &merged)?;
    eprintln!(
        "merged {} record(s) of {} point(s) from {} director{} ({} missing) → {}",
        merged.records.len(),
        merged.plan.points.len(),
        args.dirs.len(),
        if args.dirs.len() == 1 { "y" } else { "ies" },
        merged.missing.len(),
        args.out.display()
    );
    if merged.machines.len() > 1 {
        eprintln!(
            "note: the records come from {} machines ({}); `lmtune report {}` draws them side by side",
            merged.machines.len(),
            merged.machines.join(", "),
            args.out.display()
        );
    }
    Ok(exit::OK)
}

/// One shard's plan file and records.
fn read_shard(dir: &Path) -> anyhow::Result<ShardRun> {
    let plan_path = dir.join(PLAN_FILE);
    let text = std::fs::read_to_string(&plan_path).with_context(|| {
        format!(
            "cannot read {}: merge takes results directories written by `lmtune run` (with its {PLAN_FILE})",
            plan_path.display()
        )
    })?;
    let plan: PlanFile = serde_json::from_str(&text)
        .with_context(|| format!("{} is not an lmtune plan file", plan_path.display()))?;
    let jsonl = dir.join(RESULTS_JSONL);
    let records = if jsonl.exists() {
        read_jsonl(&jsonl)?
    } else {
        Vec::new()
    };
    Ok(ShardRun {
        dir: dir.display().to_string(),
        plan,
        records,
    })
}

/// The merged directory: scenario, whole plan, records (JSONL and CSV).
fn write_merged(out: &Path, scenario_source: &str, merged: &Merged) -> anyhow::Result<()> {
    std::fs::create_dir_all(out)
        .with_context(|| format!("cannot create the output directory {}", out.display()))?;
    std::fs::write(out.join("scenario.toml"), scenario_source)
        .with_context(|| format!("cannot write into {}", out.display()))?;
    let plan = serde_json::to_string_pretty(&merged.plan).expect("plain data serializes");
    std::fs::write(out.join(PLAN_FILE), plan + "\n")
        .with_context(|| format!("cannot write into {}", out.display()))?;
    let mut sinks = results_sinks(out)?;
    for record in &merged.records {
        for sink in sinks.iter_mut() {
            sink.append(record)
                .with_context(|| format!("cannot write the results in {}", out.display()))?;
        }
    }
    Ok(())
}
