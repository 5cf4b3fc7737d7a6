//! `tune.json`: the recommendation, the cost and the trace, for scripts.
//! A saved format: versioned by `schema`, kept apart from the search's
//! in-memory types.

use serde::{Deserialize, Serialize};

use super::check::Check;
use super::space::Objective;
use super::Search;

/// Version of the `tune.json` format this lmtune writes.
pub const TUNE_SUMMARY_SCHEMA: u32 = 1;

/// The whole of `tune.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TuneSummary {
    pub schema: u32,
    pub objective: Objective,
    /// `null` when no candidate was measured successfully.
    pub recommendation: Option<Recommendation>,
    /// With a recommendation: the search's totals.
    #[serde(flatten)]
    pub totals: Option<SearchTotals>,
    pub measurements: usize,
    pub measuring_time_s: f64,
    pub trace: Vec<String>,
}

/// The recommended setting and its measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    pub n_gpu_layers: u32,
    /// Blocks whose routed experts stay in host memory (left out at 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub n_cpu_moe: u32,
    /// Every block's routed experts in host memory (left out when off).
    #[serde(default, skip_serializing_if = "is_false")]
    pub cpu_moe: bool,
    pub threads: u32,
    pub n_ctx: u32,
    pub n_batch: u32,
    pub n_ubatch: u32,
    pub tokens_per_s: f64,
    pub ci95: [f64; 2],
    pub samples: usize,
    /// What the speed models fitted to the other measurements predict.
    pub predicted_tokens_per_s: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchTotals {
    pub tolerance: f64,
    pub candidates: usize,
    pub candidates_measured: usize,
    /// `--against`: the recommendation against a full grid.
    pub check: Option<CheckSummary>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckSummary {
    pub grid: String,
    pub grid_candidates: usize,
    pub grid_measuring_time_s: f64,
    /// The tuner's measuring time over the grid's.
    pub time_fraction: Option<f64>,
    pub grid_best: GridBest,
    pub recommendation_grid_tokens_per_s: Option<f64>,
    pub back_to_back_rounds: usize,
    /// (recommendation, grid's best) measured back to back.
    pub back_to_back_tokens_per_s: Option<[f64; 2]>,
    pub ratio: Option<f64>,
    pub ratio_ci95_relative: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GridBest {
    pub n_gpu_layers: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub n_cpu_moe: u32,
    #[serde(default, skip_serializing_if = "is_false")]
    pub cpu_moe: bool,
    pub threads: u32,
    pub n_ctx: u32,
    pub n_batch: u32,
    pub n_ubatch: u32,
    pub grid_tokens_per_s: f64,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Search<'_> {
    /// The summary `tune.json` keeps, with the check against a grid if one ran.
    pub fn summary(&self, check: Option<&Check>) -> TuneSummary {
        let spent = self.measuring_time_s();
        let recommendation = self.ranking.first().map(|(c, s)| {
            let p = self.space.point(c);
            Recommendation {
                n_gpu_layers: p.load.n_gpu_layers,
                n_cpu_moe: p.load.n_cpu_moe,
                cpu_moe: p.load.cpu_moe,
                threads: p.ctx.threads,
                n_ctx: p.ctx.n_ctx,
                n_batch: p.ctx.n_batch,
                n_ubatch: p.ctx.n_ubatch,
                tokens_per_s: s.mean,
                ci95: [s.low, s.high],
                samples: s.samples,
                predicted_tokens_per_s: self.held_out_prediction(),
            }
        });
        let totals = recommendation.as_ref().map(|_| SearchTotals {
            tolerance: self.tolerance,
            candidates: self.n_candidates,
            candidates_measured: self.candidates_measured(),
            check: check.map(|c| c.summary(spent)),
        });
        TuneSummary {
            schema: TUNE_SUMMARY_SCHEMA,
            objective: self.space.objective,
            recommendation,
            totals,
            measurements: self.measured.len(),
            measuring_time_s: spent,
            trace: self.trace.clone(),
        }
    }
}

impl TuneSummary {
    /// As `tune.json` holds it: pretty JSON, keys in alphabetical order,
    /// and a final newline.
    pub fn to_json_text(&self) -> String {
        // Through a `Value`, whose maps keep keys sorted: the order of the
        // files written before this type existed.
        let value = serde_json::to_value(self).expect("plain data serializes");
        serde_json::to_string_pretty(&value).expect("plain data serializes") + "\n"
    }
}
