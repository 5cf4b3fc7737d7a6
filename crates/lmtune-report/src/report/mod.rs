//! `lmtune report`: charts (SVG + PNG), a self-contained `index.html`, a
//! `summary.md` and the charts' data (`charts.json`) from result files of one
//! or several machines.
//!
//! Which charts exist follows from the data: t/s against every knob that
//! varies, memory against `n_ctx` / `n_gpu_layers`, a heatmap when two
//! knobs vary, predicted vs measured when records carry predictions, the
//! roofline for tg points, and a hardware comparison when results come from
//! more than one machine or a reference file is given.

mod build;
pub mod chart;
mod charts;
mod draw;
mod html;

use std::path::{Path, PathBuf};

use lmtune_core::record::Record;

pub use build::{build_charts, ReferenceRow};
pub use chart::{Chart, DrawError};
pub use charts::{is_chart_name, CHART_FAMILIES};
pub use html::esc as html_escape;

/// One input: a label (the machine / file) and its records.
#[derive(Debug, Clone)]
pub struct Input {
    pub label: String,
    pub path: PathBuf,
    pub records: Vec<Record>,
}

#[derive(Debug, Clone, Default)]
pub struct ReportOptions {
    pub title: String,
    /// Budget lines on the memory charts.
    pub ram_budget_bytes: Option<u64>,
    pub vram_budget_bytes: Option<u64>,
    /// Community-reported ranges for the hardware comparison.
    pub reference: Vec<ReferenceRow>,
    /// Write PNG files beside the SVG ones.
    pub png: bool,
    /// Keep only charts whose name starts with one of these (empty: all).
    pub only: Vec<String>,
}

/// What was written.
#[derive(Debug, Clone)]
pub struct ReportFiles {
    pub charts: Vec<String>,
    pub warnings: Vec<String>,
    pub png_errors: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("chart {name}: {source}")]
    Draw { name: String, source: DrawError },
    #[error("no records to report on")]
    Empty,
}

/// Writes the report into `out_dir`.
pub fn write_report(
    inputs: &[Input],
    options: &ReportOptions,
    out_dir: &Path,
) -> Result<ReportFiles, ReportError> {
    if inputs.iter().all(|i| i.records.is_empty()) {
        return Err(ReportError::Empty);
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ReportError::Io { path, source }
    };
    std::fs::create_dir_all(out_dir).map_err(io(out_dir))?;
    let (mut charts, warnings) = build_charts(inputs, options);
    if !options.only.is_empty() {
        charts.retain(|c| {
            options
                .only
                .iter()
                .any(|o| c.stem().starts_with(o.as_str()))
        });
    }
    let mut svgs = Vec::new();
    let mut png_errors = Vec::new();
    for c in &charts {
        let svg = c.to_svg().map_err(|source| ReportError::Draw {
            name: c.stem().into(),
            source,
        })?;
        let path = out_dir.join(format!("{}.svg", c.stem()));
        std::fs::write(&path, &svg).map_err(io(&path))?;
        if options.png {
            if let Err(e) = c.to_png(&out_dir.join(format!("{}.png", c.stem()))) {
                png_errors.push(format!("{}.png: {e}", c.stem()));
            }
        }
        svgs.push(svg);
    }
    // The chart data, machine-readable (what each chart shows, point by point).
    let json_path = out_dir.join("charts.json");
    let json = serde_json::to_string_pretty(&serde_json::json!({ "format": "lmtune-report-charts", "version": 1, "charts": charts, "warnings": warnings })).expect("plain data serializes");
    std::fs::write(&json_path, json).map_err(io(&json_path))?;
    let html_path = out_dir.join("index.html");
    std::fs::write(
        &html_path,
        html::index_html(inputs, options, &charts, &svgs, &warnings),
    )
    .map_err(io(&html_path))?;
    let md_path = out_dir.join("summary.md");
    std::fs::write(
        &md_path,
        html::summary_md(inputs, options, &charts, &warnings),
    )
    .map_err(io(&md_path))?;
    Ok(ReportFiles {
        charts: charts.iter().map(|c| c.stem().to_string()).collect(),
        warnings,
        png_errors,
    })
}
