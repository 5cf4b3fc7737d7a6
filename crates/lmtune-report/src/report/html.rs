//! `index.html` (self-contained: charts inline, no network) and `summary.md`.

use std::fmt::Write as _;

use lmtune_core::knobs::TestKind;
use lmtune_core::record::{Record, Status};

use super::chart::Chart;
use super::{Input, ReportOptions};
use crate::paste::{self, Settings};
use crate::{human_bytes, markdown_table};

/// `s` escaped for HTML text and attribute values.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn machine_line(r: &Record) -> String {
    let fp = &r.fingerprint;
    let h = &fp.host;
    let gpus = if fp.gpus.is_empty() {
        fp.gpu_note
            .clone()
            .unwrap_or_else(|| "no GPU listed".into())
    } else {
        fp.gpus
            .iter()
            .map(|g| format!("{} ({})", g.name, human_bytes(g.vram_total_bytes)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let bw = fp
        .host_bandwidth
        .map(|b| {
            format!(
                ", memory {:.1} GB/s read / {:.1} GB/s STREAM triad",
                b.read_ceiling_gb_per_s(),
                b.best_gb_per_s
            )
        })
        .unwrap_or_default();
    format!(
        "{} — {} ({} physical / {} logical cores), {} RAM{bw}; {}; {} {} [{}]; lmtune {} ({}); model {} ({}, sha256 {})",
        if h.hostname.is_empty() { "unknown host" } else { &h.hostname },
        h.cpu_model,
        h.physical_cores,
        h.logical_cores,
        human_bytes(h.ram_bytes),
        gpus,
        fp.backend,
        fp.backend_version,
        build_summary(&fp.backend_build),
        if fp.lmtune_version.is_empty() { "–" } else { &fp.lmtune_version },
        if fp.lmtune_commit.is_empty() { "–" } else { &fp.lmtune_commit },
        fp.model.file_name,
        match fp.model.active_weights_bytes {
            Some(active) => format!(
                "{}, {} active per token",
                human_bytes(fp.model.weights_bytes),
                human_bytes(active)
            ),
            None => human_bytes(fp.model.weights_bytes),
        },
        if fp.model.sha256.is_empty() { "unknown".to_string() } else { fp.model.sha256.chars().take(12).collect() }
    )
}

/// llama.cpp's system line ("CPU : SSE3 = 1 | AVX = 1 | … | REPACK = 1 |")
/// as the features that are on ("CPU: SSE3 AVX … REPACK"); it was cut at 120
/// characters, mid-entry ("REPACK = ]"). Other backends' lines are whole.
fn build_summary(build: &str) -> String {
    if !build.contains(" = ") {
        return build.trim().to_string();
    }
    let mut out: Vec<String> = Vec::new();
    for entry in build.split('|').map(str::trim).filter(|e| !e.is_empty()) {
        // A new device's entries start "NAME : KEY = VALUE".
        let entry = match entry.split_once(" : ") {
            Some((device, rest)) => {
                out.push(format!("{}:", device.trim()));
                rest.trim()
            }
            None => entry,
        };
        match entry.split_once(" = ") {
            Some((_, "0")) => {}
            Some((key, "1")) => out.push(key.trim().to_string()),
            Some((key, value)) => out.push(format!("{}={}", key.trim(), value.trim())),
            None => out.push(entry.to_string()),
        }
    }
    out.join(" ")
}

/// The fastest measured point of each kind, per input: a headline and the
/// settings to type (llama-server flags, LM Studio's settings) as the
/// backend applied them.
fn recommendations(input: &Input) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for (kind, what) in [
        (TestKind::Tg, "generation"),
        (TestKind::Pp, "prompt processing"),
    ] {
        let best = input
            .records
            .iter()
            .filter(|r| r.status == Status::Ok && r.workload.kind() == kind)
            .filter_map(|r| Some((r, r.tokens_per_s.as_ref()?.mean)))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((r, tps)) = best {
            let headline = format!(
                "fastest {what} ({}): {tps:.2} t/s (point {}, measured at n_ctx {})",
                r.test, r.point_index, r.ctx.n_ctx
            );
            let settings: Vec<String> = paste::lines(&Settings::applied(r))
                .into_iter()
                .filter(|l| l.starts_with("llama-server:") || l.starts_with("LM Studio:"))
                .collect();
            out.push((headline, settings));
        }
    }
    out
}

pub fn index_html(
    inputs: &[Input],
    options: &ReportOptions,
    charts: &[Chart],
    svgs: &[String],
    warnings: &[String],
) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\n<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}}h1{{font-size:1.6em}}table{{border-collapse:collapse;font-size:0.85em}}td,th{{border:1px solid #ccc;padding:3px 6px;text-align:right}}th{{background:#f3f3f3}}td:first-child,th:first-child{{text-align:left}}.chart{{margin:1.5em 0}}.warn{{color:#a33}}code{{font-size:0.9em}}</style></head><body>\n",
        esc(&options.title)
    );
    let _ = writeln!(h, "<h1>{}</h1>", esc(&options.title));
    let _ = writeln!(h, "<h2>Machines and software</h2><ul>");
    for i in inputs {
        if let Some(r) = i.records.first() {
            let _ = writeln!(
                h,
                "<li><b>{}</b> (<code>{}</code>): {}</li>",
                esc(&i.label),
                esc(&i.path.display().to_string()),
                esc(&machine_line(r))
            );
        }
    }
    let _ = writeln!(h, "</ul><h2>Recommendation</h2><ul>");
    for i in inputs {
        for (headline, settings) in recommendations(i) {
            let _ = writeln!(
                h,
                "<li>{}: {}<pre>{}</pre></li>",
                esc(&i.label),
                esc(&headline),
                esc(&settings.join("\n"))
            );
        }
    }
    let _ = writeln!(h, "</ul><h2>Charts</h2>");
    for (c, svg) in charts.iter().zip(svgs) {
        let _ = writeln!(
            h,
            "<div class=\"chart\" id=\"{}\"><h3>{}</h3>\n{}\n</div>",
            c.stem(),
            esc(c.title()),
            svg.trim_start_matches(|ch| ch != '<')
        );
    }
    let _ = writeln!(h, "<h2>Results</h2>");
    for i in inputs {
        let _ = writeln!(
            h,
            "<h3>{}</h3>{}",
            esc(&i.label),
            markdown_to_html_table(&markdown_table(&i.records))
        );
    }
    let _ = writeln!(h, "<h2>Warnings</h2>");
    if warnings.is_empty() {
        let _ = writeln!(
            h,
            "<p>None: every point ok, no noisy point (95% CI within ±10%), no outlier.</p>"
        );
    } else {
        let _ = writeln!(h, "<ul>");
        for w in warnings {
            let _ = writeln!(h, "<li class=\"warn\">{}</li>", esc(w));
        }
        let _ = writeln!(h, "</ul>");
    }
    let _ = writeln!(h, "<p><small>Made by lmtune report. Every figure comes from the result files listed above; predictions are marked as such.</small></p></body></html>");
    h
}

fn markdown_to_html_table(md: &str) -> String {
    let mut out = String::from("<table>\n");
    for (i, line) in md.lines().enumerate() {
        if i == 1 {
            continue;
        }
        let cells: Vec<&str> = line
            .trim()
            .trim_matches('|')
            .split('|')
            .map(str::trim)
            .collect();
        let tag = if i == 0 { "th" } else { "td" };
        out.push_str("<tr>");
        for c in cells {
            let _ = write!(out, "<{tag}>{}</{tag}>", esc(c));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>");
    out
}

pub fn summary_md(
    inputs: &[Input],
    options: &ReportOptions,
    charts: &[Chart],
    warnings: &[String],
) -> String {
    let mut m = String::new();
    let _ = writeln!(m, "# {}\n", options.title);
    let _ = writeln!(m, "## Machines and software\n");
    for i in inputs {
        if let Some(r) = i.records.first() {
            let _ = writeln!(
                m,
                "- **{}** (`{}`): {}",
                i.label,
                i.path.display(),
                machine_line(r)
            );
        }
    }
    let _ = writeln!(m, "\n## Recommendation\n");
    for i in inputs {
        for (headline, settings) in recommendations(i) {
            let _ = writeln!(m, "- {}: {headline}\n\n  ```", i.label);
            for line in settings {
                let _ = writeln!(m, "  {line}");
            }
            let _ = writeln!(m, "  ```\n");
        }
    }
    let _ = writeln!(m, "\n## Results\n");
    for i in inputs {
        let _ = writeln!(m, "### {}\n\n{}", i.label, markdown_table(&i.records));
    }
    let _ = writeln!(m, "## Charts\n");
    for c in charts {
        let file = if options.png {
            format!("{}.png", c.stem())
        } else {
            format!("{}.svg", c.stem())
        };
        let _ = writeln!(m, "### {}\n\n![{}]({file})\n", c.title(), c.title());
    }
    let _ = writeln!(m, "## Warnings\n");
    if warnings.is_empty() {
        let _ = writeln!(
            m,
            "None: every point ok, no noisy point (95% CI within ±10%), no outlier."
        );
    }
    for w in warnings {
        let _ = writeln!(m, "- {w}");
    }
    m
}

#[cfg(test)]
mod tests {
    use super::build_summary;

    #[test]
    fn the_build_line_keeps_whole_entries() {
        let line =
            "CPU : SSE3 = 1 | AVX = 1 | AVX512 = 0 | LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 |";
        assert_eq!(build_summary(line), "CPU: SSE3 AVX LLAMAFILE OPENMP REPACK");
        let candle = "target features: avx,avx2; CUDA: not compiled";
        assert_eq!(build_summary(candle), candle);
    }
}
