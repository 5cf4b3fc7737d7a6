//! A run as the history keeps it: one mean per point and metric.

use std::collections::BTreeMap;

use lmtune_core::record::{Record, Status};
use lmtune_report::compare::Metric;

/// One run's measurement of one point and metric.
#[derive(Debug, Clone, PartialEq)]
pub struct PointMean {
    pub model: String,
    pub test: String,
    pub knobs: String,
    pub metric: Metric,
    /// The run's mean tokens/s at this point.
    pub mean: f64,
    /// The sd of the run's repetitions (absent for llama-bench CSV).
    pub sd: Option<f64>,
    pub repetitions: usize,
}

impl PointMean {
    /// What identifies a point across runs.
    pub fn key(&self) -> (String, String, String, Metric) {
        (
            self.model.clone(),
            self.test.clone(),
            self.knobs.clone(),
            self.metric,
        )
    }
}

/// Each point's mean, from the latest `ok` record of that point in the run
/// (a resumed run records a point again), as `compare` matches points:
/// by model, test and knobs (without n_ctx for llama-bench, which has none).
pub fn point_means(records: &[Record]) -> Vec<PointMean> {
    let mut latest: BTreeMap<(String, String, String), &Record> = BTreeMap::new();
    for r in records.iter().filter(|r| r.status == Status::Ok) {
        let with_n_ctx = r.backend != "llama-bench";
        let knobs = lmtune_core::knobs::knob_label(&r.load, &r.ctx, with_n_ctx);
        latest.insert((r.model.clone(), r.test.clone(), knobs), r);
    }
    latest
        .into_iter()
        .filter_map(|((model, test, knobs), r)| {
            let metric = Metric::of(r)?;
            let samples = &r.measurement.samples_ts;
            let mean = match &r.tokens_per_s {
                Some(s) => s.mean,
                None if !samples.is_empty() => samples.iter().sum::<f64>() / samples.len() as f64,
                None => return None,
            };
            Some(PointMean {
                model,
                test,
                knobs,
                metric,
                mean,
                sd: r.tokens_per_s.as_ref().map(|s| s.sd),
                repetitions: r.tokens_per_s.as_ref().map_or(samples.len(), |s| s.n),
            })
        })
        .filter(|p| p.mean.is_finite() && p.mean > 0.0)
        .collect()
}

pub(crate) fn metric_name(m: Metric) -> &'static str {
    match m {
        Metric::Tg => "tg",
        Metric::Pp => "pp",
        Metric::Ttft => "ttft",
    }
}

pub(crate) fn parse_metric(s: &str) -> Option<Metric> {
    Metric::parse_list(s).ok()?.into_iter().next()
}
