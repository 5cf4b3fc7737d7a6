//! Predicted (before the run) against measured: peak RSS and generation
//! t/s, each with its mean and worst error stated.

use lmtune_core::record::Status;

use super::{ChartInput, MIB};
use crate::report::chart::Chart;

pub(super) fn charts(input: &ChartInput, _warnings: &mut Vec<String>) -> Vec<Chart> {
    let ok = || input.all.iter().filter(|t| t.r.status == Status::Ok);
    let mut charts = Vec::new();
    let rss: Vec<(f64, f64)> = ok()
        .filter_map(|t| {
            Some((
                t.r.prediction.as_ref()?.rss_bytes as f64 / MIB,
                t.r.measurement.rss_peak_bytes? as f64 / MIB,
            ))
        })
        .collect();
    if !rss.is_empty() {
        charts.push(Chart::Scatter {
            stem: "predicted_vs_measured_rss".into(),
            title: "peak RSS: predicted before the run vs measured".into(),
            x_label: "predicted (MiB)".into(),
            y_label: "measured (MiB)".into(),
            note: error_note(&rss),
            points: rss,
        });
    }
    let tg: Vec<(f64, f64)> = ok()
        .filter_map(|t| {
            Some((
                t.r.prediction.as_ref()?.tg_tokens_per_s?,
                t.r.tokens_per_s.as_ref()?.mean,
            ))
        })
        .collect();
    if !tg.is_empty() {
        charts.push(Chart::Scatter {
            stem: "predicted_vs_measured_tg".into(),
            title: "generation speed: predicted vs measured".into(),
            x_label: "predicted (tokens/s)".into(),
            y_label: "measured (tokens/s)".into(),
            note: error_note(&tg),
            points: tg,
        });
    }
    charts
}

/// Mean absolute percentage error of predicted (x) against measured (y).
fn error_note(points: &[(f64, f64)]) -> String {
    let mape = points
        .iter()
        .filter(|p| p.1 > 0.0)
        .map(|p| ((p.0 - p.1) / p.1).abs())
        .sum::<f64>()
        / points.len().max(1) as f64;
    let worst = points
        .iter()
        .filter(|p| p.1 > 0.0)
        .map(|p| (p.0 - p.1) / p.1)
        .fold(0.0f64, |w, e| if e.abs() > w.abs() { e } else { w });
    format!(
        "{} points: mean |error| {:.1}%, worst {:+.1}%",
        points.len(),
        mape * 100.0,
        worst * 100.0
    )
}
