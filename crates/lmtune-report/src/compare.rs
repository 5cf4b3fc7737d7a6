//! The regression gate's matching and output: pair up the points of two
//! result sets, compare each metric (the statistics live in
//! `lmtune_core::compare`), and render the verdicts as a terminal table,
//! Markdown (for a PR comment), JSON or JUnit XML.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use lmtune_core::compare::{compare_samples, Change, Direction, GateParams, Verdict};
use lmtune_core::knobs::TestKind;
use lmtune_core::record::{Record, Status};
use serde::Serialize;

/// A metric the gate can judge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
    pub fn parse_list(s: &str) -> Result<Vec<Metric>, String> {
        s.split(',')
            .map(|m| match m.trim().to_ascii_lowercase().as_str() {
                "tg" => Ok(Metric::Tg),
                "pp" => Ok(Metric::Pp),
                "ttft" => Ok(Metric::Ttft),
                other => Err(format!("unknown metric {other:?}; use tg, pp, ttft")),
            })
            .collect()
    }

    fn of(r: &Record) -> Option<Metric> {
        match r.workload.kind() {
            TestKind::Tg => Some(Metric::Tg),
            TestKind::Pp => Some(Metric::Pp),
            TestKind::PpTg => None,
        }
    }

    fn direction(self) -> Direction {
        match self {
            Metric::Tg | Metric::Pp => Direction::HigherIsBetter,
            Metric::Ttft => Direction::LowerIsBetter,
        }
    }

    fn unit(self) -> &'static str {
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

pub fn compare_records(
    base: &[Record],
    current: &[Record],
    metrics: &[Metric],
    gate: GateParams,
    allow_different_environment: bool,
) -> Result<Comparison, CompareError> {
    let environment_differences = match (base.first(), current.first()) {
        (Some(b), Some(c)) => b.fingerprint.differences(&c.fingerprint),
        _ => Vec::new(),
    };
    if !environment_differences.is_empty() && !allow_different_environment {
        return Err(CompareError::DifferentEnvironment(environment_differences));
    }
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

fn pct(x: Option<f64>) -> String {
    x.map(|v| format!("{:+.1}%", v * 100.0))
        .unwrap_or_else(|| "–".into())
}

fn summary_line(c: &Comparison) -> String {
    format!(
        "{} compared: {} regressed, {} improved, {} no change, {} inconclusive (threshold {:.1}%, alpha {})",
        c.rows.len(),
        c.count(Verdict::Regressed),
        c.count(Verdict::Improved),
        c.count(Verdict::NoChange),
        c.count(Verdict::Inconclusive),
        c.gate.threshold * 100.0,
        c.gate.alpha
    )
}

/// Plain text for a terminal.
pub fn render_text(c: &Comparison) -> String {
    let mut out = String::new();
    if !c.environment_differences.is_empty() {
        let _ = writeln!(
            out,
            "WARNING: different environments ({}); every row is labelled [env]",
            c.environment_differences.join("; ")
        );
    }
    let _ = writeln!(
        out,
        "{:<12} {:<14} {:>11} {:>11} {:>8} {:>17} {:>8}  knobs",
        "verdict", "test", "base", "current", "change", "interval", "p"
    );
    for r in &c.rows {
        let ch = &r.change;
        let _ = writeln!(
            out,
            "{:<12} {:<14} {:>11} {:>11} {:>8} {:>17} {:>8}  {}{}",
            ch.verdict.as_str(),
            r.test,
            format!("{:.2}", ch.base_mean),
            format!("{:.2}", ch.current_mean),
            pct(Some(ch.relative_change)),
            format!("[{}, {}]", pct(ch.ci_low), pct(ch.ci_high)),
            ch.p_value
                .map(|p| format!("{p:.3}"))
                .unwrap_or_else(|| "–".into()),
            r.knobs,
            if r.different_environment {
                " [env]"
            } else {
                ""
            }
        );
    }
    for k in &c.only_in_base {
        let _ = writeln!(out, "only in base:    {k}");
    }
    for k in &c.only_in_current {
        let _ = writeln!(out, "only in current: {k}");
    }
    for m in &c.missing_metrics {
        let _ = writeln!(out, "note: no {m:?} measurements in these results");
    }
    for n in &c.notes {
        let _ = writeln!(out, "note: {n}");
    }
    let _ = writeln!(out, "{}", summary_line(c));
    out
}

/// Markdown for a pull-request comment.
pub fn render_markdown(c: &Comparison) -> String {
    let mut out = String::new();
    let icon = if c.regressed() {
        "❌ performance regression"
    } else {
        "✅ no performance regression"
    };
    let _ = writeln!(out, "### lmtune: {icon}\n\n{}\n", summary_line(c));
    if !c.environment_differences.is_empty() {
        let _ = writeln!(
            out,
            "> **Different environments:** {}\n",
            c.environment_differences.join("; ")
        );
    }
    let _ = writeln!(
        out,
        "| verdict | model | test | base | current | change | interval | p | knobs |"
    );
    let _ = writeln!(
        out,
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |"
    );
    for r in &c.rows {
        let ch = &r.change;
        let verdict = match ch.verdict {
            Verdict::Regressed => "**Regressed**",
            v => v.as_str(),
        };
        let _ = writeln!(
            out,
            "| {verdict} | {} | {} | {:.2} {unit} | {:.2} {unit} | {} | [{}, {}] | {} | `{}` |",
            r.model,
            r.test,
            ch.base_mean,
            ch.current_mean,
            pct(Some(ch.relative_change)),
            pct(ch.ci_low),
            pct(ch.ci_high),
            ch.p_value
                .map(|p| format!("{p:.3}"))
                .unwrap_or_else(|| "–".into()),
            r.knobs,
            unit = r.metric.unit()
        );
    }
    if !c.only_in_base.is_empty() || !c.only_in_current.is_empty() {
        let _ = writeln!(
            out,
            "\nUnmatched points: {} only in base, {} only in current.",
            c.only_in_base.len(),
            c.only_in_current.len()
        );
    }
    out
}

pub fn render_json(c: &Comparison) -> String {
    let value = serde_json::json!({ "format": "lmtune-compare", "version": 1, "regressed": c.regressed(), "comparison": c });
    serde_json::to_string_pretty(&value).expect("plain data serializes")
}

/// JUnit XML: one test case per point and metric; `Regressed` is a failure,
/// `Inconclusive` is reported as skipped.
pub fn render_junit(c: &Comparison) -> String {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let mut out = String::new();
    let _ = writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    let _ = writeln!(
        out,
        r#"<testsuite name="lmtune compare" tests="{}" failures="{}" skipped="{}">"#,
        c.rows.len(),
        c.count(Verdict::Regressed),
        c.count(Verdict::Inconclusive)
    );
    for r in &c.rows {
        let name = esc(&format!("{} {} {}", r.model, r.test, r.knobs));
        let _ = write!(
            out,
            r#"  <testcase classname="lmtune.{:?}" name="{name}""#,
            r.metric
        );
        match r.change.verdict {
            Verdict::Regressed => {
                let _ = writeln!(
                    out,
                    ">\n    <failure message=\"{}\">{}</failure>\n  </testcase>",
                    esc(&format!(
                        "Regressed {}",
                        pct(Some(r.change.relative_change))
                    )),
                    esc(&r.change.reason)
                );
            }
            Verdict::Inconclusive => {
                let _ = writeln!(
                    out,
                    ">\n    <skipped message=\"{}\"/>\n  </testcase>",
                    esc(&r.change.reason)
                );
            }
            _ => {
                let _ = writeln!(out, "/>");
            }
        }
    }
    let _ = writeln!(out, "</testsuite>");
    out
}
