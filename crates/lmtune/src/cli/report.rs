//! The flags of `lmtune report`.

use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Result sets: results directories, results.jsonl, or llama-bench output.
    /// Several machines' results make a hardware comparison.
    #[arg(required_unless_present = "history")]
    pub results: Vec<PathBuf>,
    /// Instead of result sets: trends from a history store (`lmtune history
    /// add`), t/s per commit with a whisker over its runs and the change
    /// points marked, per point and metric.
    #[arg(long, value_name = "DB", conflicts_with = "results")]
    pub history: Option<PathBuf>,
    /// With --history: only this branch (default: every branch).
    #[arg(long, value_name = "B", requires = "history")]
    pub branch: Option<String>,
    /// Output directory (created).
    #[arg(long, short)]
    pub output: PathBuf,
    /// Report title [default: from the scenario names].
    #[arg(long)]
    pub title: Option<String>,
    /// Draw a host memory budget line on the memory charts, e.g. 16GiB.
    #[arg(long)]
    pub ram_budget: Option<String>,
    /// Draw a VRAM budget line on the memory charts, e.g. 8GiB.
    #[arg(long)]
    pub vram_budget: Option<String>,
    /// A community-reported reference CSV (hardware, model_params_b, quant,
    /// tg_tps_low, tg_tps_high, …) drawn as labelled ranges in the hardware comparison.
    #[arg(long)]
    pub reference: Option<PathBuf>,
    /// Write only SVG charts (no PNG).
    #[arg(long)]
    pub no_png: bool,
    /// Only these charts (comma-separated name prefixes: tg_vs, pp_vs,
    /// pp+tg_vs, tg_by, pp_by, pp+tg_by, memory_vs, heatmap, predicted,
    /// roofline, hardware_comparison, engine_vs_server, backends; or a
    /// chart's full name, e.g. tg_vs_threads).
    #[arg(long, value_delimiter = ',')]
    pub charts: Vec<String>,
}
