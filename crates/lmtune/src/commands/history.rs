//! `lmtune history`: file runs under commits, and gate a commit over history.

use std::io::Write;

use anyhow::{anyhow, bail, Context};
use lmtune_core::compare::GateParams;
use lmtune_history::{
    git, Added, ChangesFormat, ChangesParams, CheckFormat, CheckParams, ExportFilter, ExportFormat,
    MergeBase, RunMeta, Store,
};
use lmtune_report::compare::Metric;
use lmtune_report::load_results;

use super::compare::parse_fraction;
use crate::cli::{
    HistoryAddArgs, HistoryArgs, HistoryChangesArgs, HistoryCheckArgs, HistoryCommand,
    HistoryExportArgs,
};
use crate::exit;

pub fn run(args: HistoryArgs) -> anyhow::Result<u8> {
    match args.command {
        HistoryCommand::Add(add_args) => add(&args.db, add_args),
        HistoryCommand::Check(check_args) => check(&args.db, check_args),
        HistoryCommand::Changes(changes_args) => changes(&args.db, changes_args),
        HistoryCommand::Export(export_args) => export(&args.db, export_args),
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
        bail!("--format {}: use table, md, json or junit", args.format);
    };
    let commit = match args.commit {
        Some(c) => c,
        None => git::head_commit()?,
    };
    let store = Store::open_existing(db)?;
    let merge_base = merge_base(
        &store,
        &commit,
        &args.base_branch,
        args.merge_base.as_deref(),
    )?;
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
            merge_base,
        },
    )?;
    std::io::stdout().write_all(&format.render(&result)?)?;
    Ok(if result.regressed() {
        exit::SOME_FAILED
    } else {
        exit::OK
    })
}

/// Where a branch without history is judged from: `--merge-base`, else
/// git's merge base with the base branch when git knows both (outside a
/// checkout, or for a commit git lacks, there is none and the check says
/// the branch has too few runs).
fn merge_base(
    store: &Store,
    commit: &str,
    base_branch: &str,
    given: Option<&str>,
) -> anyhow::Result<Option<MergeBase>> {
    let sha = match given {
        Some(sha) => sha.to_string(),
        None => {
            let full = store
                .resolve_commit(commit)
                .unwrap_or_else(|_| commit.to_string());
            match git::merge_base(&full, base_branch) {
                Ok(sha) => sha,
                Err(_) => return Ok(None),
            }
        }
    };
    let commit_time = match store.runs_of_commit(&sha)?.first() {
        Some(run) => run.commit_time.clone(),
        None => git::commit_time(&sha).with_context(|| {
            format!("--merge-base {sha}: no run of it in the store and git does not know its time")
        })?,
    };
    Ok(Some(MergeBase {
        branch: base_branch.to_string(),
        commit: sha,
        commit_time,
    }))
}

fn changes(db: &std::path::Path, args: HistoryChangesArgs) -> anyhow::Result<u8> {
    let metrics = Metric::parse_list(&args.metric).map_err(|e| anyhow!("--metric: {e}"))?;
    let Some(format) = ChangesFormat::parse(&args.format) else {
        bail!("--format {}: use table, md or json", args.format);
    };
    if args.last < 6 {
        bail!(
            "--last {}: a change point needs 3 commits on either side; give at least 6 (default {})",
            args.last,
            lmtune_history::DEFAULT_LAST_COMMITS
        );
    }
    let store = Store::open_existing(db)?;
    let report = lmtune_history::changes(
        &store,
        &ChangesParams {
            branch: args.branch,
            metrics,
            last: args.last,
            edivisive: Default::default(),
        },
    )?;
    std::io::stdout().write_all(format.render(&report).as_bytes())?;
    Ok(exit::OK)
}

fn export(db: &std::path::Path, args: HistoryExportArgs) -> anyhow::Result<u8> {
    let Some(format) = ExportFormat::parse(&args.format) else {
        bail!("--format {}: use csv, jsonl or bencher", args.format);
    };
    let store = Store::open_existing(db)?;
    let commit = match &args.commit {
        Some(c) => Some(store.resolve_commit(c)?),
        None => None,
    };
    let filter = ExportFilter {
        branch: args.branch,
        commit,
        environment: args.environment,
    };
    let out = lmtune_history::export(&store, &filter, format)?;
    std::io::stdout().write_all(out.as_bytes())?;
    Ok(exit::OK)
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
