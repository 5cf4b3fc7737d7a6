//! The regression gate's verdicts as plain text for a terminal.

use std::fmt::Write as _;
use std::io;

use crate::compare::Comparison;
use lmtune_core::compare::Verdict;

use super::{text, Exporter};

pub struct CompareTable;

impl Exporter<Comparison> for CompareTable {
    fn body(&self, c: &Comparison) -> io::Result<Vec<u8>> {
        text(render_text(c))
    }
}

/// Plain text for a terminal.
fn render_text(c: &Comparison) -> String {
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

pub(super) fn pct(x: Option<f64>) -> String {
    x.map(|v| format!("{:+.1}%", v * 100.0))
        .unwrap_or_else(|| "–".into())
}

pub(super) fn summary_line(c: &Comparison) -> String {
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
