//! A heatmap of the first two varied knobs per test kind: the best t/s of
//! each cell over the other knobs, the best cell marked.

use std::collections::BTreeMap;

use lmtune_core::record::Status;

use super::{metric_axis, metric_name, ChartInput};
use crate::report::chart::Chart;

pub(super) fn charts(input: &ChartInput, _warnings: &mut Vec<String>) -> Vec<Chart> {
    let mut charts = Vec::new();
    if input.varied.len() < 2 {
        return charts;
    }
    let (kx, ky) = (input.varied[0], input.varied[1]);
    for &kind in &input.kinds {
        let mut cells: BTreeMap<(u64, u64), f64> = BTreeMap::new();
        for t in input
            .all
            .iter()
            .filter(|t| t.r.workload.kind() == kind && t.r.status == Status::Ok)
        {
            if let Some(s) = &t.r.tokens_per_s {
                let key = ((kx.get)(t.r).to_bits(), (ky.get)(t.r).to_bits());
                let best = cells.entry(key).or_insert(0.0);
                *best = best.max(s.mean);
            }
        }
        let xs: Vec<f64> = sorted(cells.keys().map(|k| f64::from_bits(k.0)));
        let ys: Vec<f64> = sorted(cells.keys().map(|k| f64::from_bits(k.1)));
        let idx = |v: &[f64], x: f64| v.iter().position(|&a| a == x).unwrap_or(0);
        let list: Vec<(usize, usize, f64)> = cells
            .iter()
            .map(|(k, &v)| {
                (
                    idx(&xs, f64::from_bits(k.0)),
                    idx(&ys, f64::from_bits(k.1)),
                    v,
                )
            })
            .collect();
        let best = list
            .iter()
            .max_by(|a, b| a.2.total_cmp(&b.2))
            .map(|c| (c.0, c.1));
        if list.len() < 2 {
            continue;
        }
        charts.push(Chart::Heatmap {
            stem: format!("heatmap_{}_{}_{}", metric_name(kind), kx.name, ky.name),
            title: format!("{}: best over the other knobs", metric_axis(kind)),
            x_label: kx.axis.to_string(),
            y_label: ky.axis.to_string(),
            xs: xs.iter().map(|v| format!("{v}")).collect(),
            ys: ys.iter().map(|v| format!("{v}")).collect(),
            cells: list,
            best,
            unit: "tokens/s".into(),
        });
    }
    charts
}

fn sorted(values: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    v.dedup();
    v
}
