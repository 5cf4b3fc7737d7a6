//! `lmtune report`: charts, index.html and summary.md from result files.

use anyhow::{anyhow, bail, Context};
use lmtune_core::units::parse_size;
use lmtune_report::load_results;
use lmtune_report::report::{
    is_chart_name, write_report, Input, ReferenceRow, ReportOptions, CHART_FAMILIES,
};

use crate::cli::ReportArgs;
use crate::exit;

pub fn run(args: ReportArgs) -> anyhow::Result<u8> {
    if let Some(db) = &args.history {
        return super::report_history::run(db, &args);
    }
    // Flags first: a bad one is refused before any file is read.
    let size = |flag: &str, v: &Option<String>| -> anyhow::Result<Option<u64>> {
        v.as_deref()
            .map(|s| parse_size(s).map_err(|e| anyhow!("{flag}: {e}")))
            .transpose()
    };
    if let Some(bad) = args.charts.iter().find(|c| !is_chart_name(c)) {
        bail!(
            "--charts {bad:?}: no such chart; use {} (a chart's full name, e.g. tg_vs_threads, picks one)",
            CHART_FAMILIES.join(", ")
        );
    }
    let ram_budget_bytes = size("--ram-budget", &args.ram_budget)?;
    let vram_budget_bytes = size("--vram-budget", &args.vram_budget)?;
    let mut inputs = Vec::new();
    for path in &args.results {
        let (_, records) =
            load_results(path).with_context(|| format!("cannot read {}", path.display()))?;
        let label = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        let label = if label == "results" {
            path.parent()
                .and_then(|p| p.file_name())
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or(label)
        } else {
            label
        };
        inputs.push(Input {
            label,
            path: path.clone(),
            records,
        });
    }
    let reference = match &args.reference {
        None => Vec::new(),
        Some(path) => {
            let mut reader = csv::Reader::from_path(path)
                .with_context(|| format!("--reference: cannot read {}", path.display()))?;
            reader.deserialize::<ReferenceRow>().collect::<Result<Vec<_>, _>>().with_context(|| format!("--reference {}: expected columns hardware, model_params_b, quant, tg_tps_low, tg_tps_high", path.display()))?
        }
    };
    let mut scenarios: Vec<String> = inputs
        .iter()
        .filter_map(|i| i.records.first().map(|r| r.scenario.clone()))
        .collect();
    scenarios.dedup();
    let options = ReportOptions {
        title: args
            .title
            .clone()
            .unwrap_or_else(|| format!("lmtune report: {}", scenarios.join(", "))),
        ram_budget_bytes,
        vram_budget_bytes,
        reference,
        png: !args.no_png,
        only: args.charts.clone(),
    };
    let files = write_report(&inputs, &options, &args.output)?;
    for e in &files.png_errors {
        eprintln!("warning: {e} (the SVG was written; PNG needs a TrueType font such as Debian's fonts-dejavu-core)");
    }
    eprintln!(
        "{} charts, index.html and summary.md in {} ({} warnings)",
        files.charts.len(),
        args.output.display(),
        files.warnings.len()
    );
    Ok(exit::OK)
}
