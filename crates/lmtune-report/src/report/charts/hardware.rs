//! The hardware comparison: the best generation t/s per model class and
//! machine, beside community-reported ranges (`--reference`). Drawn for
//! several machines (not several runs of one) or when a reference is given.

use std::collections::{BTreeMap, BTreeSet};

use lmtune_core::knobs::TestKind;
use lmtune_core::record::Status;

use super::ChartInput;
use crate::report::chart::{Bar, Chart, Range};

pub(super) fn charts(input: &ChartInput, _warnings: &mut Vec<String>) -> Vec<Chart> {
    let machines: BTreeSet<(&str, &str)> = input
        .all
        .iter()
        .map(|t| {
            let h = &t.r.fingerprint.host;
            (h.hostname.as_str(), h.cpu_model.as_str())
        })
        .collect();
    if machines.len() > 1 || !input.options.reference.is_empty() {
        vec![hardware_chart(input)]
    } else {
        Vec::new()
    }
}

fn params_class(n_params: u64, quant: &str, synthetic: bool) -> String {
    let b = n_params as f64 / 1e9;
    let size = if b >= 3.0 {
        format!("{:.0}B", b)
    } else {
        format!("{:.1}B", b)
    };
    format!(
        "{size} {quant}{}",
        if synthetic { " (synthetic)" } else { "" }
    )
}

fn hardware_chart(input: &ChartInput) -> Chart {
    let options = input.options;
    let mut groups: Vec<String> = Vec::new();
    let mut group_of = |name: String| -> usize {
        groups.iter().position(|g| *g == name).unwrap_or_else(|| {
            groups.push(name);
            groups.len() - 1
        })
    };
    // Best tg t/s per (model class, machine).
    let mut best: BTreeMap<(String, String), (f64, f64, f64)> = BTreeMap::new();
    for t in input
        .all
        .iter()
        .filter(|t| t.r.status == Status::Ok && t.r.workload.kind() == TestKind::Tg)
    {
        let Some(s) = &t.r.tokens_per_s else { continue };
        let m = &t.r.fingerprint.model;
        // One series per machine (several result files of one machine merge);
        // synthetic weights are said in the series, so the bar stands in the
        // same group as the reference ranges of real models of that size.
        let h = &t.r.fingerprint.host;
        let machine = if h.cpu_model.is_empty() {
            t.input.to_string()
        } else {
            format!(
                "{} ({}, {} cores)",
                h.hostname, h.cpu_model, h.logical_cores
            )
        };
        let machine = if m.synthetic {
            format!("{machine}, synthetic weights")
        } else {
            machine
        };
        let key = (params_class(m.n_params, &m.quant, false), machine);
        let e = best.entry(key).or_insert((0.0, 0.0, 0.0));
        if s.mean > e.0 {
            *e = (s.mean, s.ci95_low.max(0.0), s.ci95_high);
        }
    }
    let mut bars = Vec::new();
    for ((class, machine), (v, lo, hi)) in best {
        bars.push(Bar {
            group: group_of(class),
            series: machine,
            value: v,
            lo,
            hi,
        });
    }
    let mut ranges = Vec::new();
    for r in &options.reference {
        let gi = group_of(format!("{:.0}B {}", r.model_params_b, r.quant));
        ranges.push(Range {
            group: gi,
            label: r.hardware.replace("NVIDIA ", "").replace("Apple ", ""),
            lo: r.tg_tps_low,
            hi: r.tg_tps_high,
        });
    }
    Chart::Bars {
        stem: "hardware_comparison_tg".into(),
        title: "generation speed by model and machine (best point per machine)".into(),
        y_label: "generation (tokens/s)".into(),
        groups,
        bars,
        ranges,
        log_y: true,
    }
}
