//! `advise.json` (for scripts; versioned) and `advise.md` (for people), and
//! the charts beside them.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use lmtune_report::report::chart::Chart;
use serde::Serialize;

use super::claims::{ClaimVerdict, Verdict};
use super::experiments::ExperimentId;
use super::memory::{KvRow, KvShape};

pub const ADVISE_SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize)]
pub struct MachineSummary {
    pub hostname: String,
    pub cpu_model: String,
    pub physical_cores: u32,
    pub logical_cores: u32,
    pub ram_bytes: u64,
    /// The GPU, or why there is none.
    pub gpu: String,
    /// The 1-minute load average when advise started (Linux): above the
    /// core count, other processes were competing with the measurements.
    pub load_average_1m: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExperimentSummary {
    pub id: ExperimentId,
    pub ran: bool,
    pub simulated: bool,
    /// Why it did not run here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub estimate_s: f64,
    pub spent_s: f64,
    /// Results directories (`runs/<part>/`), relative to the report.
    pub runs: Vec<String>,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct KvSection {
    pub shapes_7b: Vec<KvShape>,
    pub model_shape: KvShape,
    pub rows: Vec<KvRow>,
    /// Largest |lmtune − llama.cpp| over the measured rows, percent.
    pub max_abs_difference_pct: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AdviseReport {
    pub schema_version: u32,
    pub model: String,
    pub model_path: String,
    pub machine: MachineSummary,
    pub time_budget_s: f64,
    pub spent_s: f64,
    pub experiments: Vec<ExperimentSummary>,
    pub claims: Vec<ClaimVerdict>,
    pub kv: KvSection,
    /// Chart files, relative to the report.
    pub charts: Vec<String>,
}

impl AdviseReport {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("plain data serializes") + "\n"
    }
}

/// Writes every chart as SVG and PNG under `dir/charts/`; the files to link
/// (the PNG where it could be drawn, else the SVG).
pub fn write_charts(dir: &Path, charts: &[Chart]) -> anyhow::Result<Vec<String>> {
    let charts_dir = dir.join("charts");
    std::fs::create_dir_all(&charts_dir)
        .with_context(|| format!("cannot create {}", charts_dir.display()))?;
    let mut files = Vec::new();
    for c in charts {
        let svg = c
            .to_svg()
            .map_err(|e| anyhow::anyhow!("chart {}: {e}", c.stem()))?;
        let svg_path = charts_dir.join(format!("{}.svg", c.stem()));
        std::fs::write(&svg_path, svg)
            .with_context(|| format!("cannot write {}", svg_path.display()))?;
        let png = charts_dir.join(format!("{}.png", c.stem()));
        files.push(match c.to_png(&png) {
            Ok(()) => format!("charts/{}.png", c.stem()),
            Err(_) => format!("charts/{}.svg", c.stem()),
        });
    }
    Ok(files)
}

fn verdict_mark(v: &ClaimVerdict) -> String {
    let mark = match v.verdict {
        Verdict::Holds => "✅ holds",
        Verdict::DoesNotHold => "❌ does not hold",
        Verdict::CannotTest => "➖ cannot be tested here",
    };
    if v.simulated {
        format!("{mark} (simulated figures shown)")
    } else {
        mark.to_string()
    }
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The Markdown report.
pub fn markdown(r: &AdviseReport) -> String {
    let mut md = String::new();
    let m = &r.machine;
    let _ = writeln!(md, "# lmtune advise: {} on {}\n", r.model, m.hostname);
    let _ = writeln!(
        md,
        "{} — {} physical / {} logical cores, {} RAM; GPU: {}. Time budget {:.0} s, spent {:.0} s.\n",
        m.cpu_model,
        m.physical_cores,
        m.logical_cores,
        lmtune_report::human_bytes(m.ram_bytes),
        m.gpu,
        r.time_budget_s,
        r.spent_s
    );
    if let Some(load) = m
        .load_average_1m
        .filter(|&l| l > f64::from(m.logical_cores) / 2.0)
    {
        let _ = writeln!(
            md,
            "**A busy machine:** the load average was {load:.1} on {} cores when advise started; other processes competed with every measurement below (thread counts above all).\n",
            m.logical_cores
        );
    }
    let _ = writeln!(
        md,
        "Each piece of common advice, tested on this machine and model. Intervals are 95% (Welch's t on the repetitions); a difference counts when its interval excludes zero and it is at least 5%. Memory figures from the model's shape are exact.\n"
    );
    let _ = writeln!(
        md,
        "| advice | claimed | verdict | measured | set instead |\n| --- | --- | --- | --- | --- |"
    );
    for c in &r.claims {
        let measured = if c.effects.is_empty() {
            c.reason.clone()
        } else {
            c.effects
                .iter()
                .map(|e| e.text())
                .collect::<Vec<_>>()
                .join("; ")
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} |",
            cell(c.advice),
            cell(c.figure),
            verdict_mark(c),
            cell(&measured),
            cell(&c.instead)
        );
    }
    let _ = writeln!(md, "\n## Why\n");
    for c in &r.claims {
        let sim = if c.simulated { " **SIMULATED**" } else { "" };
        let _ = writeln!(
            md,
            "- **{}** ({}){sim}: {} — {}.",
            c.advice,
            c.figure,
            c.verdict.label(),
            c.reason
        );
    }
    kv_markdown(&mut md, &r.kv);
    let _ = writeln!(md, "\n## Experiments\n\n| experiment | ran | estimate | spent | results / why not | notes |\n| --- | --- | --- | --- | --- | --- |");
    for e in &r.experiments {
        let what = match &e.reason {
            Some(why) => why.clone(),
            None => e
                .runs
                .iter()
                .map(|d| format!("`{d}`"))
                .collect::<Vec<_>>()
                .join(", "),
        };
        let ran = match (e.ran, e.simulated) {
            (true, true) => "SIMULATED",
            (true, false) => "yes",
            (false, _) => "no",
        };
        let _ = writeln!(
            md,
            "| {} | {ran} | {:.0} s | {:.0} s | {} | {} |",
            e.id.as_str(),
            e.estimate_s,
            e.spent_s,
            cell(&what),
            cell(&e.notes.join("; "))
        );
    }
    if !r.charts.is_empty() {
        let _ = writeln!(md, "\n## Charts\n");
        for c in &r.charts {
            let _ = writeln!(md, "![{c}]({c})\n");
        }
    }
    md
}

fn kv_markdown(md: &mut String, kv: &KvSection) {
    let _ = writeln!(
        md,
        "\n## KV cache (f16 K and V)\n\nlmtune's figure from the model's shape, next to llama.cpp's own dry run of the same context (`dry_run` context bytes in the records).\n"
    );
    let _ = writeln!(md, "| n_ctx | lmtune (exact) | llama.cpp dry run | difference | peak RSS | note |\n| --- | --- | --- | --- | --- | --- |");
    for row in &kv.rows {
        let _ = writeln!(
            md,
            "| {} | {} ({} B) | {} | {} | {} | {} |",
            row.n_ctx,
            lmtune_report::human_bytes(row.exact_bytes),
            row.exact_bytes,
            row.llama_cpp_bytes.map_or("—".into(), |b| format!(
                "{} ({b} B)",
                lmtune_report::human_bytes(b)
            )),
            row.difference_pct
                .map_or("—".into(), |d| format!("{d:+.3}%")),
            row.rss_peak_bytes
                .map_or("—".into(), lmtune_report::human_bytes),
            row.not_measured.as_deref().unwrap_or("")
        );
    }
    let _ = writeln!(md, "\n| shape | attention | layers | KV heads / heads | KV per token | at 4096 | at 32768 |\n| --- | --- | --- | --- | --- | --- | --- |");
    for s in kv.shapes_7b.iter().chain([&kv.model_shape]) {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} / {} | {} | {:.2} GB | {:.2} GB |",
            s.name,
            s.attention,
            s.n_layer,
            s.n_head_kv,
            s.n_head,
            lmtune_report::human_bytes(s.kv_bytes_per_token_f16),
            s.bytes_at(4096) as f64 / 1e9,
            s.bytes_at(32768) as f64 / 1e9
        );
    }
}

/// Writes `advise.json` and `advise.md` into `dir`.
pub fn write_report(dir: &Path, r: &AdviseReport) -> anyhow::Result<()> {
    for (name, text) in [("advise.json", r.to_json()), ("advise.md", markdown(r))] {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}
