//! The regression gate's verdicts as Markdown, for a pull-request comment.

use std::fmt::Write as _;
use std::io;

use crate::compare::Comparison;
use lmtune_core::compare::Verdict;

use super::compare_table::{pct, summary_line};
use super::{text, Exporter};

pub struct CompareMarkdown;

impl Exporter<Comparison> for CompareMarkdown {
    fn body(&self, c: &Comparison) -> io::Result<Vec<u8>> {
        text(render_markdown(c))
    }
}

/// Markdown for a pull-request comment.
fn render_markdown(c: &Comparison) -> String {
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
