//! The regression gate's matching: pair up the points of two result sets
//! and compare each metric (the statistics live in `lmtune_core::compare`).
//! The verdicts are written by the exporters of [`crate::export::CompareFormat`]:
//! a terminal table, Markdown (for a PR comment), JSON or JUnit XML.

use std::collections::BTreeMap;

use lmtune_core::compare::{compare_samples, Change, Direction, GateParams, Verdict};
use lmtune_core::knobs::TestKind;
use lmtune_core::record::{Record, Status};
use serde::Serialize;

/// A metric the gate can judge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// Generation tokens/s (tg tests).
    Tg,
    /// Prompt-processing tokens/s (pp tests).
    Pp,
    /// Time to first token (server backends).
    Ttft,
}

impl Metric {
    pub fn parse_list(s: &str) -> Result<Vec<Metric>, UnknownMetric> {
        s.split(',')
            .map(|m| match m.trim().to_ascii_lowercase().as_str() {
                "tg" => Ok(Metric::Tg),
                "pp" => Ok(Metric::Pp),
                "ttft" => Ok(Metric::Ttft),
                other => Err(UnknownMetric(other.to_string())),
            })
            .collect()
    }

    /// The metric a record measures (pp+tg tests: none).
    pub fn of(r: &Record) -> Option<Metric> {
        match r.workload.kind() {
            TestKind::Tg => Some(Metric::Tg),
            TestKind::Pp => Some(Metric::Pp),
            TestKind::PpTg => None,
        }
    }

    pub fn direction(self) -> Direction {
        match self {
            Metric::Tg | Metric::Pp => Direction::HigherIsBetter,
            Metric::Ttft => Direction::LowerIsBetter,
        }
    }

    pub(crate) fn unit(self) -> &'static str {
        match self {
            Metric::Tg | Metric::Pp => "t/s",
            Metric::Ttft => "ms",
        }
    }
}

/// One matched point and metric.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub model: String,
    pub test: String,
    pub knobs: String,
    pub metric: Metric,
    pub change: Change,
    /// The two sides were measured in different environments (allowed explicitly).
    pub different_environment: bool,
    /// Runs pooled on each side.
    pub base_runs: usize,
    pub current_runs: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub gate: GateParams,
    pub rows: Vec<Row>,
    /// Points (as "model test knobs") present or ok on one side only.
    pub only_in_base: Vec<String>,
    pub only_in_current: Vec<String>,
    /// How the environments differ (empty: same machine, backend, build, model).
    pub environment_differences: Vec<String>,
    /// Metrics asked for that these results do not have.
    pub missing_metrics: Vec<Metric>,
    pub notes: Vec<String>,
}

impl Comparison {
    pub fn regressed(&self) -> bool {
        self.rows
            .iter()
            .any(|r| r.change.verdict == Verdict::Regressed)
    }

    pub fn count(&self, v: Verdict) -> usize {
        self.rows.iter().filter(|r| r.change.verdict == v).count()
    }
}

/// A `--metric` name that is not one of tg, pp, ttft.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown metric {0:?}; use tg, pp, ttft")]
pub struct UnknownMetric(pub String);

/// Why two result sets cannot be compared.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error("the results come from different environments: {}; compare like with like, or pass --allow-different-environment to compare anyway (every row is then labelled)", .0.join("; "))]
    DifferentEnvironment(Vec<String>),
    #[error("no point is in both result sets (base has {base}, current {current}); were they run from the same scenario?")]
    NothingInCommon { base: usize, current: usize },
}

fn knobs(r: &Record, with_n_ctx: bool) -> String {
    lmtune_core::knobs::knob_label(&r.load, &r.ctx, with_n_ctx)
}

/// Points match by model file, knobs and workload. Within one run the
/// latest `ok` record of a point wins (a resumed run); records of the same
/// point from several runs are pooled, so the samples carry the run-to-run
/// variation too, which a single run's repetitions underestimate.
fn by_point(records: &[Record], with_n_ctx: bool) -> BTreeMap<String, (Record, usize)> {
    let mut latest: BTreeMap<(String, String), &Record> = BTreeMap::new();
    for r in records.iter().filter(|r| r.status == Status::Ok) {
        latest.insert(
            (
                format!("{} {} {}", r.model, r.test, knobs(r, with_n_ctx)),
                r.run_id.clone(),
            ),
            r,
        );
    }
    let mut pooled: BTreeMap<String, (Record, usize)> = BTreeMap::new();
    for ((key, _), r) in latest {
        match pooled.get_mut(&key) {
            None => {
                pooled.insert(key, (r.clone(), 1));
            }
            Some((merged, runs)) => {
                merged
                    .measurement
                    .samples_ts
                    .extend_from_slice(&r.measurement.samples_ts);
                merged
                    .measurement
                    .samples_ns
                    .extend_from_slice(&r.measurement.samples_ns);
                *runs += 1;
            }
        }
    }
    pooled
}

/// Backend parameters that differ between the same point on both sides
/// (`backend_params`: a changed default in llama.cpp, llama-cpp-2 or
/// lmtune), one line per parameter. Records without them (older files,
/// llama-bench output) say nothing.
fn parameter_differences(
    base: &BTreeMap<String, (Record, usize)>,
    current: &BTreeMap<String, (Record, usize)>,
) -> Vec<String> {
    let mut seen: BTreeMap<&str, (String, String)> = BTreeMap::new();
    for (key, (rb, _)) in base {
        let Some((rc, _)) = current.get(key) else {
            continue;
        };
        let (pb, pc) = (
            &rb.measurement.backend_params,
            &rc.measurement.backend_params,
        );
        for (name, vb) in pb {
            if let Some(vc) = pc.get(name).filter(|vc| *vc != vb) {
                seen.entry(name).or_insert_with(|| (vb.clone(), vc.clone()));
            }
        }
    }
    seen.into_iter()
        .map(|(name, (vb, vc))| format!("backend parameter {name}: {vb} vs {vc}"))
        .collect()
}

pub fn compare_records(
    base: &[Record],
    current: &[Record],
    metrics: &[Metric],
    gate: GateParams,
    allow_different_environment: bool,
) -> Result<Comparison, CompareError> {
    let mut environment_differences = match (base.first(), current.first()) {
        (Some(b), Some(c)) => b.fingerprint.differences(&c.fingerprint),
        _ => Vec::new(),
    };
    // llama-bench output has no context size (it sizes the context to each
    // test), so with llama-bench on either side points match without n_ctx.
    let from_llama_bench = base
        .iter()
        .chain(current)
        .any(|r| r.backend == "llama-bench");
    let mut notes = Vec::new();
    if from_llama_bench {
        notes.push("llama-bench results have no n_ctx: points are matched without it".to_string());
    }
    let (b, c) = (
        by_point(base, !from_llama_bench),
        by_point(current, !from_llama_bench),
    );
    environment_differences.extend(parameter_differences(&b, &c));
    if !environment_differences.is_empty() && !allow_different_environment {
        return Err(CompareError::DifferentEnvironment(environment_differences));
    }
    let mut rows = Vec::new();
    for (key, (rb, base_runs)) in &b {
        let Some((rc, current_runs)) = c.get(key) else {
            continue;
        };
        let Some(metric) = Metric::of(rb).filter(|m| metrics.contains(m)) else {
            continue;
        };
        let mut change = compare_samples(
            &rb.measurement.samples_ts,
            &rc.measurement.samples_ts,
            metric.direction(),
            gate,
        );
        if rb.measurement.samples_ts.is_empty() || rc.measurement.samples_ts.is_empty() {
            change.reason = "no raw samples on one side (llama-bench CSV keeps only mean and sd; use -o json or jsonl)".into();
            if let (Some(sb), Some(sc)) = (&rb.tokens_per_s, &rc.tokens_per_s) {
                change.base_mean = sb.mean;
                change.current_mean = sc.mean;
                change.relative_change = sc.mean / sb.mean - 1.0;
            }
        }
        rows.push(Row {
            model: rb.model.clone(),
            test: rb.test.clone(),
            knobs: knobs(rb, !from_llama_bench),
            metric,
            change,
            different_environment: !environment_differences.is_empty(),
            base_runs: *base_runs,
            current_runs: *current_runs,
        });
    }
    if rows.is_empty() && !b.is_empty() && !c.is_empty() {
        return Err(CompareError::NothingInCommon {
            base: b.len(),
            current: c.len(),
        });
    }
    let only_in_base = b.keys().filter(|k| !c.contains_key(*k)).cloned().collect();
    let only_in_current = c.keys().filter(|k| !b.contains_key(*k)).cloned().collect();
    let missing_metrics = metrics
        .iter()
        .copied()
        .filter(|m| !b.values().any(|(r, _)| Metric::of(r) == Some(*m)))
        .collect();
    Ok(Comparison {
        gate,
        rows,
        only_in_base,
        only_in_current,
        environment_differences,
        missing_metrics,
        notes,
    })
}
