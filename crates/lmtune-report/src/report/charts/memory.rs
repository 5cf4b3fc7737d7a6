//! Memory against `n_ctx` / `n_gpu_layers` / `n_cpu_moe`: measured (peak RSS, VRAM, the
//! buffers llama.cpp allocated) next to what was predicted before the run,
//! with the budget line when one is given; out-of-memory points marked.

use std::collections::BTreeMap;

use lmtune_core::record::Status;

use super::{distinct_at_least_two, ChartInput, Knob, MIB};
use crate::report::chart::{Chart, FailedPoint, Series, XyPoint};

pub(super) fn charts(input: &ChartInput, _warnings: &mut Vec<String>) -> Vec<Chart> {
    let mut charts = Vec::new();
    for knob in input
        .varied
        .iter()
        .filter(|k| k.name == "n_ctx" || k.name == "n_gpu_layers" || k.name == "n_cpu_moe")
    {
        let series = memory_series(input, knob);
        let failed: Vec<FailedPoint> = input
            .all
            .iter()
            .filter(|t| matches!(t.r.status, Status::Oom | Status::LoadFailed))
            .map(|t| FailedPoint {
                x: (knob.get)(t.r),
                label: t.r.status.as_str().into(),
            })
            .collect();
        // One x value as applied (n_gpu_layers=19 on a machine with no GPU
        // offloads 0 layers, as does 31): nothing to show.
        let xs = series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.x))
            .chain(failed.iter().map(|f| f.x));
        if series.is_empty() || !distinct_at_least_two(xs) {
            continue;
        }
        charts.push(Chart::Lines {
            stem: format!("memory_vs_{}", knob.name),
            title: format!("memory vs {} (range over the other knobs)", knob.name),
            x_label: knob.axis.to_string(),
            y_label: "MiB".into(),
            log2_x: input.spans_octaves(knob),
            series,
            failed,
            hline: budget(input, knob),
        });
    }
    charts
}

/// One series per quantity (and input), each point the mean over the other
/// knobs with their range as the error bar.
fn memory_series(input: &ChartInput, knob: &Knob) -> Vec<Series> {
    let mut by_label: BTreeMap<String, BTreeMap<u64, Vec<f64>>> = BTreeMap::new();
    let mut add = |label: String, x: f64, v: f64| {
        by_label
            .entry(label)
            .or_default()
            .entry(x.to_bits())
            .or_default()
            .push(v)
    };
    for t in input.all.iter().filter(|t| t.r.status == Status::Ok) {
        let x = (knob.get)(t.r);
        let prefix = input.input_prefix(t);
        if let Some(rss) = t.r.measurement.rss_peak_bytes {
            add(format!("{prefix}peak RSS, measured"), x, rss as f64 / MIB);
        }
        if let Some(p) = &t.r.prediction {
            add(
                format!("{prefix}RSS, predicted before the run"),
                x,
                p.rss_bytes as f64 / MIB,
            );
            if p.vram_bytes > 0 {
                add(
                    format!("{prefix}VRAM, predicted"),
                    x,
                    p.vram_bytes as f64 / MIB,
                );
            }
            if let Some(b) = p.vram_buffers_bytes.filter(|&b| b > 0) {
                add(format!("{prefix}GPU buffers, predicted"), x, b as f64 / MIB);
            }
        }
        match t.r.vram.as_ref() {
            Some(v) if v.worker_peak_bytes.is_some() => {
                let peak = v.worker_peak_bytes.unwrap_or(0);
                add(format!("{prefix}peak VRAM, measured"), x, peak as f64 / MIB);
            }
            // No per-process figure (some drivers and containers): the device's growth.
            Some(v) if v.used_bytes() > 0 => add(
                format!("{prefix}VRAM (device growth), measured"),
                x,
                v.used_bytes() as f64 / MIB,
            ),
            _ => {}
        }
        let on_gpu =
            t.r.measurement
                .placement
                .as_ref()
                .map_or(0, |p| p.device_bytes());
        if on_gpu > 0 {
            add(
                format!("{prefix}GPU buffers, as llama.cpp allocated them"),
                x,
                on_gpu as f64 / MIB,
            );
        }
    }
    by_label
        .into_iter()
        .map(|(label, points)| Series {
            predicted: label.contains("predicted"),
            points: points
                .into_iter()
                .map(|(x, v)| {
                    let (lo, hi) = v
                        .iter()
                        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &y| {
                            (a.min(y), b.max(y))
                        });
                    XyPoint {
                        x: f64::from_bits(x),
                        y: v.iter().sum::<f64>() / v.len() as f64,
                        lo,
                        hi,
                    }
                })
                .collect(),
            label,
        })
        .collect()
}

/// The VRAM budget against n_gpu_layers, the RAM budget against n_ctx.
fn budget(input: &ChartInput, knob: &Knob) -> Option<(f64, String)> {
    let options = input.options;
    match knob.name {
        "n_gpu_layers" | "n_cpu_moe" => options.vram_budget_bytes.map(|b| {
            (
                b as f64 / MIB,
                format!("VRAM budget {:.0} MiB", b as f64 / MIB),
            )
        }),
        _ => options.ram_budget_bytes.map(|b| {
            (
                b as f64 / MIB,
                format!("RAM budget {:.0} MiB", b as f64 / MIB),
            )
        }),
    }
}
