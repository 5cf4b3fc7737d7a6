//! The same model, test and knobs on each in-process backend (candle and
//! llama.cpp): one bar group per shared point, a series per backend.

use std::collections::{BTreeMap, BTreeSet};

use lmtune_core::record::{Record, Status};

use super::engine_vs_server::engine_bars;
use super::ChartInput;
use crate::report::chart::Chart;

pub(super) fn charts(input: &ChartInput, _warnings: &mut Vec<String>) -> Vec<Chart> {
    backends_chart(input).into_iter().collect()
}

/// The same model, test and knobs on two or more in-process backends
/// (candle and llama.cpp). Prompt chunks are compared by what each backend
/// actually decodes at once: min(n_prompt, n_batch, n_ubatch), since candle
/// has no micro-batch and records n_ubatch = n_batch.
fn backends_chart(input: &ChartInput) -> Option<Chart> {
    let ok: Vec<&Record> = input
        .all
        .iter()
        .map(|t| t.r)
        .filter(|r| r.status == Status::Ok && r.measurement.server.is_none())
        .collect();
    let key = |r: &Record| {
        let mut k = format!(
            "{} {} t={} ngl={}",
            r.model, r.test, r.ctx.threads, r.load.n_gpu_layers
        );
        if r.workload.n_prompt > 0 {
            // The chunk a pp test decodes: the effective micro-batch, or the
            // whole prompt when it is shorter (n_ctx >= n_prompt for any pp
            // point, so this is the old n_prompt.min(n_batch).min(n_ubatch)).
            let chunk = r.ctx.effective_ubatch().min(r.workload.n_prompt);
            k.push_str(&format!(" chunk={chunk}"));
        }
        k
    };
    let mut backends_of: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
    for r in &ok {
        backends_of.entry(key(r)).or_default().insert(&r.backend);
    }
    let shared: Vec<String> = backends_of
        .into_iter()
        .filter(|(_, b)| b.len() >= 2)
        .map(|(k, _)| k)
        .collect();
    if shared.is_empty() {
        return None;
    }
    // Group labels without the model when there is only one.
    let models: BTreeSet<&str> = ok.iter().map(|r| r.model.as_str()).collect();
    let groups: Vec<String> = shared
        .iter()
        .map(|k| {
            if models.len() == 1 {
                k.split_once(' ')
                    .map_or(k.clone(), |(_, rest)| rest.to_string())
            } else {
                k.clone()
            }
        })
        .collect();
    let bars = engine_bars(&ok, &shared, key);
    Some(Chart::Bars {
        stem: "backends".into(),
        title: "the same model and knobs on each backend (tokens/s, 95% CI)".into(),
        y_label: "tokens/s".into(),
        groups,
        bars,
        ranges: Vec::new(),
        log_y: false,
    })
}
