//! `lmtune history`: file runs under commits, and gate a commit over history.

use std::io::Write;

use anyhow::{anyhow, bail, Context};
use lmtune_core::compare::GateParams;
use lmtune_history::{git, Added, CheckFormat, CheckParams, RunMeta, Store};
use lmtune_report::compare::Metric;
use lmtune_report::load_results;

use super::compare::parse_fraction;
use crate::cli::{HistoryAddArgs, HistoryArgs, HistoryCheckArgs, HistoryCommand};
use crate::exit;

pub fn run(args: HistoryArgs) -> anyhow::Result<u8> {
    match args.command {
        HistoryCommand::Add(add_args) => add(&args.db, add_args),
        HistoryCommand::Check(check_args) => check(&args.db, check_args),
        HistoryCommand::List => list(&args.db),
    }
}

/// The commit, branch and time to file runs under: the flags, else git.
fn run_meta(args: &HistoryAddArgs) -> anyhow::Result<RunMeta> {
    let commit = match &args.commit {
        Some(c) => c.clone(),
        None => git::head_commit()?,
    };
    let branch = match &args.branch {
        Some(b) => b.clone(),
        None => git::current_branch()?,
    };
    let commit_time = match &args.time {
        Some(t) => lmtune_history::normalize_time(t)?,
        None => git::commit_time(&commit)?,
    };
    Ok(RunMeta {
        commit,
        branch,
        commit_time,
    })
}

fn add(db: &std::path::Path, args: HistoryAddArgs) -> anyhow::Result<u8> {
    // Parse, validate, then act: every file is read before the store is touched.
    let meta = run_meta(&args)?;
    let mut files = Vec::new();
    for path in &args.paths {
        let (_, records) = load_results(path)
            .with_context(|| format!("cannot read the results {}", path.display()))?;
        files.push(records);
    }
    let mut store = Store::open(db)?;
    for records in &files {
        for run in lmtune_history::runs_in(records) {
            let run_id = run[0].run_id.clone();
            match store.add_run(&meta, &run)? {
                Added::New {
                    environment,
                    new_environment,
                    points,
                    ..
                } => println!(
                    "added run {run_id}: {points} points, commit {} on {}, environment {environment}{}",
                    meta.commit,
                    meta.branch,
                    if new_environment { " (new series)" } else { "" }
                ),
                Added::AlreadyStored { .. } => {
                    println!("run {run_id} is stored already: nothing added")
                }
            }
        }
    }
    Ok(exit::OK)
}

fn check(db: &std::path::Path, args: HistoryCheckArgs) -> anyhow::Result<u8> {
    let threshold = parse_fraction(&args.threshold).ok_or_else(|| {
        anyhow!(
            "--threshold {}: write a percentage like 5% or a fraction like 0.05",
            args.threshold
        )
    })?;
    if !(0.0 < args.alpha && args.alpha < 0.5) {
        bail!("--alpha {} must be between 0 and 0.5", args.alpha);
    }
    if args.window == 0 {
        bail!("--window 0: the base needs at least one run; the default is 10");
    }
    let metrics = Metric::parse_list(&args.metric).map_err(|e| anyhow!("--metric: {e}"))?;
    let Some(format) = CheckFormat::parse(&args.format) else {
        bail!("--format {}: use table, md or json", args.format);
    };
    let commit = match args.commit {
        Some(c) => c,
        None => git::head_commit()?,
    };
    let store = Store::open_existing(db)?;
    let result = lmtune_history::check(
        &store,
        &commit,
        &CheckParams {
            window: args.window,
            gate: GateParams {
                threshold,
                alpha: args.alpha,
            },
            metrics,
        },
    )?;
    std::io::stdout().write_all(&format.render(&result)?)?;
    Ok(if result.regressed() {
        exit::SOME_FAILED
    } else {
        exit::OK
    })
}

fn list(db: &std::path::Path) -> anyhow::Result<u8> {
    let store = Store::open_existing(db)?;
    let series = store.series()?;
    println!(
        "{:>4}  {:<16} {:>5} {:>8}  {:<20} {:<20}  environment",
        "env", "branch", "runs", "commits", "first", "last"
    );
    for s in &series {
        println!(
            "{:>4}  {:<16} {:>5} {:>8}  {:<20} {:<20}  {}",
            s.environment,
            s.branch,
            s.runs,
            s.commits,
            s.first_time,
            s.last_time,
            s.environment_label
        );
    }
    Ok(exit::OK)
}
