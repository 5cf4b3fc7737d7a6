//! A heatmap of the first two varied knobs per test kind: the best t/s of
//! each cell over the other knobs, the best cell marked. One heatmap per
//! input: a cell never takes the best of two runs (or machines).

use std::collections::BTreeMap;

use lmtune_core::record::Status;

use super::{metric_axis, metric_name, ChartInput, Knob, Tagged};
use crate::report::chart::Chart;

pub(super) fn charts(input: &ChartInput, _warnings: &mut Vec<String>) -> Vec<Chart> {
    let mut charts = Vec::new();
    if input.varied.len() < 2 {
        return charts;
    }
    let (kx, ky) = (input.varied[0], input.varied[1]);
    let labels: Vec<&str> = input.all.iter().fold(Vec::new(), |mut v, t| {
        if !v.contains(&t.input) {
            v.push(t.input);
        }
        v
    });
    for &kind in &input.kinds {
        for (i, &label) in labels.iter().enumerate() {
            let records = input
                .all
                .iter()
                .filter(|t| t.input == label && t.r.workload.kind() == kind);
            let Some((xs, ys, list)) = cells(records, kx, ky) else {
                continue;
            };
            let best = list
                .iter()
                .max_by(|a, b| a.2.total_cmp(&b.2))
                .map(|c| (c.0, c.1));
            let stem = format!("heatmap_{}_{}_{}", metric_name(kind), kx.name, ky.name);
            let (stem, title) = if input.multi {
                (format!("{stem}_{}", i + 1), format!("{label}: "))
            } else {
                (stem, String::new())
            };
            charts.push(Chart::Heatmap {
                stem,
                title: format!("{title}{}: best over the other knobs", metric_axis(kind)),
                x_label: kx.axis.to_string(),
                y_label: ky.axis.to_string(),
                xs: xs.iter().map(|v| format!("{v}")).collect(),
                ys: ys.iter().map(|v| format!("{v}")).collect(),
                cells: list,
                best,
                unit: "tokens/s".into(),
            });
        }
    }
    charts
}

type Cells = (Vec<f64>, Vec<f64>, Vec<(usize, usize, f64)>);

/// The axes' values and each cell's best t/s over the other knobs, from the
/// records of one input; `None` under two cells.
fn cells<'a>(records: impl Iterator<Item = &'a Tagged<'a>>, kx: &Knob, ky: &Knob) -> Option<Cells> {
    let mut cells: BTreeMap<(u64, u64), f64> = BTreeMap::new();
    for t in records.filter(|t| t.r.status == Status::Ok) {
        if let Some(s) = &t.r.tokens_per_s {
            let key = ((kx.get)(t.r).to_bits(), (ky.get)(t.r).to_bits());
            let best = cells.entry(key).or_insert(0.0);
            *best = best.max(s.mean);
        }
    }
    if cells.len() < 2 {
        return None;
    }
    let xs: Vec<f64> = sorted(cells.keys().map(|k| f64::from_bits(k.0)));
    let ys: Vec<f64> = sorted(cells.keys().map(|k| f64::from_bits(k.1)));
    let idx = |v: &[f64], x: f64| v.iter().position(|&a| a == x).unwrap_or(0);
    let list = cells
        .iter()
        .map(|(k, &v)| {
            (
                idx(&xs, f64::from_bits(k.0)),
                idx(&ys, f64::from_bits(k.1)),
                v,
            )
        })
        .collect();
    Some((xs, ys, list))
}

fn sorted(values: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    v.dedup();
    v
}
