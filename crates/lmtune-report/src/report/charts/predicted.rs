//! Predicted (before the run) against measured: peak RSS and generation
//! t/s, each with its mean and worst error stated; and the buffers
//! llama.cpp allocated against both predictions of them, its own dry run
//! and lmtune's analytic model.

use lmtune_core::record::{BufferKind, Record, Status};

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
    // The buffers llama.cpp allocated (weights, KV, compute; its small
    // output buffer is in neither prediction).
    let allocated = |r: &Record| -> Option<f64> {
        let p = r.measurement.placement.as_ref()?;
        let bytes: u64 = p
            .buffers
            .iter()
            .filter(|b| b.kind != BufferKind::Output)
            .map(|b| b.bytes)
            .sum();
        (bytes > 0).then_some(bytes as f64 / MIB)
    };
    let dry: Vec<(f64, f64)> = ok()
        .filter_map(|t| {
            let d =
                t.r.measurement
                    .dry_run
                    .as_ref()
                    .filter(|d| d.error.is_none())?;
            let (m, c, k) = d.sum(|_| true);
            Some(((m + c + k) as f64 / MIB, allocated(t.r)?))
        })
        .collect();
    let analytic: Vec<(f64, f64)> = ok()
        .filter_map(|t| {
            let p = t.r.prediction.as_ref()?;
            let bytes = p.host_buffers_bytes? + p.vram_buffers_bytes.unwrap_or(0);
            Some((bytes as f64 / MIB, allocated(t.r)?))
        })
        .collect();
    for (points, stem, source) in [
        (
            dry,
            "predicted_buffers_dry_run",
            "the llama.cpp dry run (no_alloc)",
        ),
        (
            analytic,
            "predicted_buffers_analytic",
            "the lmtune analytic model",
        ),
    ] {
        if !points.is_empty() {
            charts.push(Chart::Scatter {
                stem: stem.into(),
                title: format!("memory buffers: {source} vs what llama.cpp allocated"),
                x_label: "predicted (MiB)".into(),
                y_label: "allocated (MiB)".into(),
                note: error_note(&points),
                points,
            });
        }
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
