//! `history changes` output: a table, Markdown, or one JSON document.

use std::fmt::Write as _;

use crate::changes::{ChangesReport, Step, StepKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangesFormat {
    Table,
    Markdown,
    Json,
}

impl ChangesFormat {
    pub const ALL: [ChangesFormat; 3] = [
        ChangesFormat::Table,
        ChangesFormat::Markdown,
        ChangesFormat::Json,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ChangesFormat::Table => "table",
            ChangesFormat::Markdown => "md",
            ChangesFormat::Json => "json",
        }
    }

    pub fn parse(name: &str) -> Option<ChangesFormat> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }

    pub fn render(self, report: &ChangesReport) -> String {
        match self {
            ChangesFormat::Json => serde_json::to_string_pretty(report).unwrap_or_default() + "\n",
            ChangesFormat::Table => table(report),
            ChangesFormat::Markdown => markdown(report),
        }
    }
}

pub(crate) fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

fn kind(s: &Step) -> &'static str {
    match s.kind {
        StepKind::Regression => "regression",
        StepKind::Improvement => "improvement",
    }
}

fn summary(report: &ChangesReport) -> String {
    format!(
        "{} change point(s) in {} point series of {} series (newest {} commits each; E-Divisive means, p <= {})",
        report.steps.len(),
        report.point_series,
        report.series,
        report.last,
        report.significance
    )
}

fn table(report: &ChangesReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", summary(report));
    if report.steps.is_empty() {
        return out;
    }
    // The point's model and knobs last: they are long and vary in length.
    let _ = writeln!(
        out,
        "{:<12}  {:<20}  {:>4}  {:<10}  {:<6}  {:<6}  {:>10}  {:>10}  {:>7}  {:>6}  {:<11}  point",
        "commit",
        "time",
        "env",
        "branch",
        "metric",
        "test",
        "before",
        "after",
        "change",
        "p",
        "kind"
    );
    for s in &report.steps {
        let _ = writeln!(
            out,
            "{:<12}  {:<20}  {:>4}  {:<10}  {:<6}  {:<6}  {:>10.2}  {:>10.2}  {:>+6.1}%  {:>6.3}  {:<11}  {} {}",
            short(&s.commit),
            s.commit_time,
            s.environment,
            s.branch,
            crate::points::metric_name(s.metric),
            s.test,
            s.before_mean,
            s.after_mean,
            s.change * 100.0,
            s.p_value,
            kind(s),
            s.model,
            s.knobs
        );
    }
    out
}

fn markdown(report: &ChangesReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}\n", summary(report));
    if report.steps.is_empty() {
        return out;
    }
    out.push_str("| commit | time | environment | branch | point | metric | before | after | change | p | kind |\n");
    out.push_str("|---|---|---|---|---|---|---:|---:|---:|---:|---|\n");
    for s in &report.steps {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} | {} | {:.2} | {:.2} | {:+.1}% | {:.3} | {} |",
            short(&s.commit),
            s.commit_time,
            s.environment_label,
            s.branch,
            s.point_label(),
            crate::points::metric_name(s.metric),
            s.before_mean,
            s.after_mean,
            s.change * 100.0,
            s.p_value,
            kind(s)
        );
    }
    out
}
