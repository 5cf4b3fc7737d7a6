//! t/s against each categorical knob that varies (K/V cache types, flash
//! attention, op offload, the full-size sliding-window cache): one bar per
//! value, grouped by the combination of the other knobs, each bar one
//! measured point with its 95% CI.

use std::collections::BTreeSet;

use lmtune_core::record::{Record, Status};

use super::{metric_axis, metric_name, short, ChartInput};
use crate::report::chart::{Bar, Chart};

/// A knob whose values are names, not numbers.
struct CatKnob {
    name: &'static str,
    get: fn(&Record) -> String,
}

const CAT_KNOBS: [CatKnob; 4] = [
    CatKnob {
        name: "kv_type",
        get: |r| format!("K/V {}/{}", r.ctx.type_k, r.ctx.type_v),
    },
    CatKnob {
        name: "flash_attn",
        get: |r| format!("flash_attn={}", r.ctx.flash_attn),
    },
    CatKnob {
        name: "op_offload",
        get: |r| format!("op_offload={}", on_off(r.ctx.op_offload)),
    },
    CatKnob {
        name: "swa_full",
        get: |r| format!("swa_full={}", on_off(r.ctx.swa_full)),
    },
];

fn on_off(on: bool) -> &'static str {
    if on {
        "on"
    } else {
        "off"
    }
}

pub(super) fn charts(input: &ChartInput, _warnings: &mut Vec<String>) -> Vec<Chart> {
    let varied: Vec<&CatKnob> = CAT_KNOBS
        .iter()
        .filter(|k| {
            input
                .all
                .iter()
                .map(|t| (k.get)(t.r))
                .collect::<BTreeSet<_>>()
                .len()
                > 1
        })
        .collect();
    let mut charts = Vec::new();
    for &kind in &input.kinds {
        let tests: BTreeSet<&str> = input
            .all
            .iter()
            .filter(|t| t.r.workload.kind() == kind)
            .map(|t| t.r.test.as_str())
            .collect();
        for knob in &varied {
            let mut groups: Vec<String> = Vec::new();
            let mut bars = Vec::new();
            for t in input
                .all
                .iter()
                .filter(|t| t.r.workload.kind() == kind && t.r.status == Status::Ok)
            {
                let Some(s) = &t.r.tokens_per_s else {
                    continue;
                };
                // The group: the test and every other knob that varies, so a
                // bar is one point.
                let mut label: Vec<String> = Vec::new();
                if tests.len() > 1 {
                    label.push(t.r.test.clone());
                }
                label.extend(
                    input
                        .varied
                        .iter()
                        .map(|k| format!("{}={}", short(k.name), (k.get)(t.r))),
                );
                label.extend(
                    varied
                        .iter()
                        .filter(|o| o.name != knob.name)
                        .map(|o| (o.get)(t.r)),
                );
                if label.is_empty() {
                    label.push(t.r.test.clone());
                }
                let group = format!("{}{}", input.input_prefix(t), label.join(" "));
                let gi = groups.iter().position(|g| *g == group).unwrap_or_else(|| {
                    groups.push(group);
                    groups.len() - 1
                });
                bars.push(Bar {
                    group: gi,
                    series: (knob.get)(t.r),
                    value: s.mean,
                    lo: s.ci95_low.max(0.0),
                    hi: s.ci95_high,
                });
            }
            if bars.is_empty() {
                continue;
            }
            bars.sort_by(|a, b| a.series.cmp(&b.series));
            charts.push(Chart::Bars {
                stem: format!("{}_by_{}", metric_name(kind), knob.name),
                title: format!(
                    "{} by {} (mean, 95% CI), grouped by the other knobs",
                    metric_axis(kind),
                    knob.name
                ),
                y_label: "tokens/s".into(),
                groups,
                bars,
                ranges: Vec::new(),
                log_y: false,
            });
        }
    }
    charts
}
