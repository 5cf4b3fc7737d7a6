//! From records to chart specifications, and the warnings a reader needs.
//! Each chart has its builder in `charts/`.

use lmtune_core::knobs::knob_label;
use lmtune_core::record::Status;
use lmtune_core::stats::Doubts;

use super::chart::Chart;
use super::charts::{self, ChartInput, Tagged};
use super::{Input, ReportOptions};

/// One row of a community-reported reference file
/// (`../shared/reference/community-tg-tps.csv`).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct ReferenceRow {
    pub hardware: String,
    pub model_params_b: f64,
    pub quant: String,
    pub tg_tps_low: f64,
    pub tg_tps_high: f64,
}

/// Every chart the inputs' data supports, in report order, and the warnings:
/// first those about points (failed, noisy, outliers), then the charts'.
pub fn build_charts(inputs: &[Input], options: &ReportOptions) -> (Vec<Chart>, Vec<String>) {
    let all: Vec<Tagged> = inputs
        .iter()
        .flat_map(|i| i.records.iter().map(move |r| Tagged { input: &i.label, r }))
        .collect();
    let mut warnings = warnings_for(&all);
    let input = ChartInput::new(all, inputs.len() > 1, options);
    let charts = charts::build(&input, &mut warnings);
    (charts, warnings)
}

fn warnings_for(all: &[Tagged]) -> Vec<String> {
    let mut w = Vec::new();
    if all.iter().any(|t| t.r.backend == "sim") {
        w.push("SIMULATED: records of the sim backend hold numbers planted by a declared profile, not measurements".to_string());
    }
    for t in all {
        let r = t.r;
        let at = format!(
            "{}: point {} ({}, {})",
            t.input,
            r.point_index,
            r.test,
            knob_label(&r.load, &r.ctx, true)
        );
        match (&r.status, &r.tokens_per_s) {
            (Status::Ok, Some(s)) => {
                // Recomputed from the samples, so older records follow today's rule.
                let doubts = Doubts::of(s, &r.measurement.samples_ts);
                if let Some(h) = doubts.noisy_ci_half_width {
                    w.push(format!(
                        "noisy: {at}: 95% CI ±{:.0}% of the mean",
                        h * 100.0
                    ));
                }
                if s.n == 0 {
                    w.push(format!("no raw samples: {at} (llama-bench CSV)"));
                }
                if !doubts.outliers.is_empty() {
                    w.push(format!(
                        "outliers (kept, median/MAD): {at}: samples {:?}",
                        doubts.outliers
                    ));
                }
            }
            (status, _) => w.push(format!(
                "{}: {at}: {}",
                status.as_str(),
                r.error
                    .as_deref()
                    .unwrap_or("")
                    .lines()
                    .next()
                    .unwrap_or("")
            )),
        }
    }
    w
}
