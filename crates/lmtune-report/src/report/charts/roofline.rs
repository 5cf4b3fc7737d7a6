//! The roofline of tg points: bytes read per second in generation as a
//! share of the host's read bandwidth measured at the same thread count
//! (CPU points only: a GPU's bandwidth is not measured).

use lmtune_core::knobs::TestKind;
use lmtune_core::record::Status;

use super::{short, ChartInput};
use crate::report::chart::{Bar, Chart};

pub(super) fn charts(input: &ChartInput, _warnings: &mut Vec<String>) -> Vec<Chart> {
    let mut groups: Vec<String> = Vec::new();
    let mut bars = Vec::new();
    for t in input
        .all
        .iter()
        .filter(|t| t.r.status == Status::Ok && t.r.workload.kind() == TestKind::Tg)
    {
        let (Some(bytes), Some(bw), Some(s)) = (
            t.r.prediction.as_ref().and_then(|p| p.tg_bytes_per_token),
            t.r.fingerprint.host_bandwidth_at(t.r.ctx.threads),
            &t.r.tokens_per_s,
        ) else {
            continue;
        };
        if t.r.fingerprint.backend_devices.iter().any(|d| d.is_gpu()) && t.r.load.n_gpu_layers > 0 {
            continue;
        }
        let pct = |v: f64| bytes as f64 * v / (bw * 1e9) * 100.0;
        let mut label: Vec<String> = input
            .varied
            .iter()
            .map(|k| format!("{}={}", short(k.name), (k.get)(t.r)))
            .collect();
        if label.is_empty() {
            label.push(t.r.test.clone());
        }
        let group = label.join(" ");
        let gi = groups.iter().position(|g| *g == group).unwrap_or_else(|| {
            groups.push(group.clone());
            groups.len() - 1
        });
        bars.push(Bar {
            group: gi,
            series: format!("{}{}", input.input_prefix(t), t.r.model),
            value: pct(s.mean),
            lo: pct(s.ci95_low.max(0.0)),
            hi: pct(s.ci95_high),
        });
    }
    if bars.is_empty() {
        return Vec::new();
    }
    vec![Chart::Bars {
        stem: "roofline_tg".into(),
        title: "roofline: bytes read per second in generation, as % of the memory bandwidth at its thread count".into(),
        y_label: "% of read bandwidth (same threads)".into(),
        groups,
        bars,
        ranges: Vec::new(),
        log_y: false,
    }]
}
