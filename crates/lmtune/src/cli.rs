//! The command line, and nothing else.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

const AFTER_HELP: &str = "\
Exit codes: 0 every point ok, 1 some points failed (their records say why), 2 could not run (bad input),
130 interrupted (Ctrl-C / SIGTERM; the results so far are complete and the run can be resumed).

Examples:
  lmtune run scenarios/quickstart.toml          sweep the quickstart scenario
  lmtune run my.toml --dry-run                  validate and list the points
  lmtune hw                                     show this machine's fingerprint";

#[derive(Debug, Parser)]
#[command(name = "lmtune", version, about = "Auto-tuning benchmark and planner for local LLM inference", after_help = AFTER_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a scenario file: sweep its settings and record tokens/s and memory per point.
    Run(RunArgs),
    /// Print this machine's hardware/software fingerprint and detected GPUs.
    Hw(HwArgs),
    /// Worker mode (internal): hosts one backend, speaks JSON lines on stdin/stdout.
    #[command(name = "__worker", hide = true)]
    Worker(WorkerArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Scenario file (TOML, schema 1; see README.md "Scenario files").
    pub scenario: PathBuf,
    /// Directory for results.jsonl / results.csv
    /// [default: results/<date>-<host>-<scenario>/]
    #[arg(long, short, conflicts_with = "resume")]
    pub out: Option<PathBuf>,
    /// Continue an interrupted run in DIR: only points without an `ok`
    /// record are run. The scenario and the machine must be the same.
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
    /// Limit the worker's address space (RLIMIT_AS), e.g. 2GiB; overrides
    /// [measure] worker_memory_limit. A point that needs more is recorded as `oom`.
    #[arg(long, value_name = "SIZE")]
    pub worker_memory_limit: Option<String>,
    /// Use this model file instead of the scenario's [model] path.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Validate the scenario and list its points without measuring.
    #[arg(long)]
    pub dry_run: bool,
    /// Show the backend's own logs (llama.cpp's loading and context messages).
    #[arg(long, short)]
    pub verbose: bool,
}

#[derive(Debug, Args)]
pub struct HwArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    #[arg(long)]
    pub backend: String,
    #[arg(long)]
    pub verbose: bool,
}
