//! The same knobs and test in-process and through a server (llama-server,
//! LM Studio, …): one bar group per shared point, a series per engine.

use std::collections::BTreeSet;

use lmtune_core::record::{Record, Status};

use super::ChartInput;
use crate::report::chart::{Bar, Chart};

pub(super) fn charts(input: &ChartInput, _warnings: &mut Vec<String>) -> Vec<Chart> {
    engine_vs_server(input).into_iter().collect()
}

/// How a record was measured, for the engine-vs-server chart.
fn engine_label(r: &Record) -> String {
    match &r.measurement.server {
        Some(s) if s.mode == "managed" => {
            let program = r
                .fingerprint
                .backend_build
                .strip_prefix("managed: ")
                .and_then(|b| b.split_whitespace().next())
                .and_then(|p| p.rsplit('/').next())
                .unwrap_or("server");
            format!("{program} over HTTP (managed)")
        }
        Some(s) => format!("server at {}", s.base_url),
        None if r.backend == "llama-cpp" => "llama.cpp in-process".into(),
        None if r.backend == "candle" => "candle in-process".into(),
        None => r.backend.clone(),
    }
}

fn engine_vs_server(input: &ChartInput) -> Option<Chart> {
    let ok: Vec<&Record> = input
        .all
        .iter()
        .map(|t| t.r)
        .filter(|r| r.status == Status::Ok && r.workload.concurrency <= 1)
        .collect();
    let has_server = ok.iter().any(|r| r.measurement.server.is_some());
    let has_engine = ok.iter().any(|r| r.measurement.server.is_none());
    if !has_server || !has_engine {
        return None;
    }
    // Same knobs and test on both sides.
    let key = |r: &Record| {
        format!(
            "{} t={} b={} ub={} ngl={}",
            r.test, r.ctx.threads, r.ctx.n_batch, r.ctx.n_ubatch, r.load.n_gpu_layers
        )
    };
    let server_keys: BTreeSet<String> = ok
        .iter()
        .filter(|r| r.measurement.server.is_some())
        .map(|r| key(r))
        .collect();
    let engine_keys: BTreeSet<String> = ok
        .iter()
        .filter(|r| r.measurement.server.is_none())
        .map(|r| key(r))
        .collect();
    let groups: Vec<String> = server_keys.intersection(&engine_keys).cloned().collect();
    if groups.is_empty() {
        return None;
    }
    let bars = engine_bars(&ok, &groups, key);
    Some(Chart::Bars {
        stem: "engine_vs_server".into(),
        title: "the same knobs in-process and through a server (tokens/s, 95% CI)".into(),
        y_label: "tokens/s".into(),
        groups,
        bars,
        ranges: Vec::new(),
        log_y: false,
    })
}

/// One bar per record whose `key` is one of `groups`, a series per engine.
pub(super) fn engine_bars(
    records: &[&Record],
    groups: &[String],
    key: impl Fn(&Record) -> String,
) -> Vec<Bar> {
    records
        .iter()
        .filter_map(|r| {
            let group = groups.iter().position(|g| *g == key(r))?;
            let s = r.tokens_per_s.as_ref()?;
            Some(Bar {
                group,
                series: engine_label(r),
                value: s.mean,
                lo: s.ci95_low.max(0.0),
                hi: s.ci95_high,
            })
        })
        .collect()
}
