//! t/s against every knob that varies, one chart per test kind and knob,
//! one series per combination of the other knobs; failed points marked.

use std::collections::BTreeMap;

use lmtune_core::record::Status;

use super::{
    categorical, distinct_at_least_two, metric_axis, metric_name, split_series, ChartInput,
};
use crate::report::chart::{Chart, FailedPoint, Series, XyPoint};

pub(super) fn charts(input: &ChartInput, _warnings: &mut Vec<String>) -> Vec<Chart> {
    let mut charts = Vec::new();
    for &kind in &input.kinds {
        for knob in &input.varied {
            let mut series: BTreeMap<String, Vec<XyPoint>> = BTreeMap::new();
            let mut failed = Vec::new();
            for t in input.all.iter().filter(|t| t.r.workload.kind() == kind) {
                let x = (knob.get)(t.r);
                let mut label: Vec<String> = Vec::new();
                if input.multi {
                    label.push(t.input.to_string());
                }
                label.push(t.r.test.clone());
                for other in input.varied.iter().filter(|o| o.name != knob.name) {
                    label.push(format!("{}={}", other.name, (other.get)(t.r)));
                }
                if input.varied_cat {
                    label.push(categorical(t.r));
                }
                match (&t.r.status, &t.r.tokens_per_s) {
                    (Status::Ok, Some(s)) => {
                        series.entry(label.join(", ")).or_default().push(XyPoint {
                            x,
                            y: s.mean,
                            lo: s.ci95_low.max(0.0),
                            hi: s.ci95_high,
                        })
                    }
                    (status, _) => failed.push(FailedPoint {
                        x,
                        label: status.as_str().to_string(),
                    }),
                }
            }
            // One x value (a context auto-sized per test, say): no line to draw.
            let xs = series
                .values()
                .flatten()
                .map(|p| p.x)
                .chain(failed.iter().map(|f| f.x));
            if !distinct_at_least_two(xs) {
                continue;
            }
            let series: Vec<Series> = series
                .into_iter()
                .map(|(label, mut points)| {
                    points.sort_by(|a, b| a.x.total_cmp(&b.x));
                    Series {
                        label,
                        points,
                        predicted: false,
                    }
                })
                .collect();
            let stem = format!("{}_vs_{}", metric_name(kind), knob.name);
            let title = format!("{} vs {} (mean, 95% CI)", metric_axis(kind), knob.name);
            charts.extend(split_series(&stem, &title, series).into_iter().map(
                |(stem, title, series)| Chart::Lines {
                    stem,
                    title,
                    x_label: knob.axis.to_string(),
                    y_label: "tokens/s".into(),
                    log2_x: input.spans_octaves(knob),
                    series,
                    failed: failed.clone(),
                    hline: None,
                },
            ));
        }
    }
    charts
}
