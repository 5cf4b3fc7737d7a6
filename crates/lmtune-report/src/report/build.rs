//! From records to chart specifications, and the warnings a reader needs.

use std::collections::{BTreeMap, BTreeSet};

use lmtune_core::knobs::TestKind;
use lmtune_core::record::{Record, Status};

use super::chart::{Bar, Chart, FailedPoint, Range, Series, XyPoint};
use super::{Input, ReportOptions};

/// One row of a community-reported reference file
/// (`../shared/reference/community-tg-tps.csv`).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct ReferenceRow {
    pub hardware: String,
    pub model_params_b: f64,
    pub quant: String,
    pub tg_tps_low: f64,
    pub tg_tps_high: f64,
}

/// Most series drawn on one chart; more are listed as a warning.
const MAX_SERIES: usize = 8;
const MIB: f64 = 1024.0 * 1024.0;

struct Knob {
    name: &'static str,
    axis: &'static str,
    get: fn(&Record) -> f64,
}

const KNOBS: [Knob; 5] = [
    Knob {
        name: "threads",
        axis: "threads",
        get: |r| f64::from(r.ctx.threads),
    },
    Knob {
        name: "n_ubatch",
        axis: "n_ubatch (tokens per micro-batch)",
        get: |r| f64::from(r.ctx.n_ubatch),
    },
    Knob {
        name: "n_batch",
        axis: "n_batch (tokens per batch)",
        get: |r| f64::from(r.ctx.n_batch),
    },
    Knob {
        name: "n_ctx",
        axis: "n_ctx (context length, tokens)",
        get: |r| f64::from(r.ctx.n_ctx),
    },
    Knob {
        name: "n_gpu_layers",
        axis: "n_gpu_layers (layers offloaded)",
        get: |r| f64::from(r.load.n_gpu_layers),
    },
];

/// Categorical knobs: only part of series labels.
fn categorical(r: &Record) -> String {
    format!(
        "K/V {}/{} fa {}{}",
        r.ctx.type_k,
        r.ctx.type_v,
        r.ctx.flash_attn,
        r.ctx.op_offload_label()
    )
}

fn metric_name(kind: TestKind) -> &'static str {
    match kind {
        TestKind::Pp => "pp",
        TestKind::Tg => "tg",
        TestKind::PpTg => "pp+tg",
    }
}

fn metric_axis(kind: TestKind) -> &'static str {
    match kind {
        TestKind::Pp => "prompt processing (tokens/s)",
        TestKind::Tg => "generation (tokens/s)",
        TestKind::PpTg => "prompt + generation (tokens/s)",
    }
}

/// A record with the label of the input it came from.
struct Tagged<'a> {
    input: &'a str,
    r: &'a Record,
}

pub fn build_charts(inputs: &[Input], options: &ReportOptions) -> (Vec<Chart>, Vec<String>) {
    let multi = inputs.len() > 1;
    let all: Vec<Tagged> = inputs
        .iter()
        .flat_map(|i| i.records.iter().map(move |r| Tagged { input: &i.label, r }))
        .collect();
    let mut charts = Vec::new();
    let mut warnings = warnings_for(&all);

    let varied: Vec<&Knob> = KNOBS
        .iter()
        .filter(|k| {
            all.iter()
                .map(|t| (k.get)(t.r).to_bits())
                .collect::<BTreeSet<_>>()
                .len()
                > 1
        })
        .collect();
    let varied_cat = all
        .iter()
        .map(|t| categorical(t.r))
        .collect::<BTreeSet<_>>()
        .len()
        > 1;
    let kinds: Vec<TestKind> = [TestKind::Pp, TestKind::Tg, TestKind::PpTg]
        .into_iter()
        .filter(|k| all.iter().any(|t| t.r.workload.kind() == *k))
        .collect();

    // 1. t/s against every varied knob, one series per combination of the others.
    for &kind in &kinds {
        for knob in &varied {
            let mut series: BTreeMap<String, Vec<XyPoint>> = BTreeMap::new();
            let mut failed = Vec::new();
            for t in all.iter().filter(|t| t.r.workload.kind() == kind) {
                let x = (knob.get)(t.r);
                let mut label: Vec<String> = Vec::new();
                if multi {
                    label.push(t.input.to_string());
                }
                label.push(t.r.test.clone());
                for other in varied.iter().filter(|o| o.name != knob.name) {
                    label.push(format!("{}={}", other.name, (other.get)(t.r)));
                }
                if varied_cat {
                    label.push(categorical(t.r));
                }
                match (&t.r.status, &t.r.tokens_per_s) {
                    (Status::Ok, Some(s)) => {
                        series.entry(label.join(", ")).or_default().push(XyPoint {
                            x,
                            y: s.mean,
                            lo: s.ci95_low.max(0.0),
                            hi: s.ci95_high,
                        })
                    }
                    (status, _) => failed.push(FailedPoint {
                        x,
                        label: status.as_str().to_string(),
                    }),
                }
            }
            if series.len() > MAX_SERIES {
                warnings.push(format!(
                    "{}_vs_{}: {} series, only the first {MAX_SERIES} are drawn",
                    metric_name(kind),
                    knob.name,
                    series.len()
                ));
            }
            let series: Vec<Series> = series
                .into_iter()
                .take(MAX_SERIES)
                .map(|(label, mut points)| {
                    points.sort_by(|a, b| a.x.total_cmp(&b.x));
                    Series {
                        label,
                        points,
                        predicted: false,
                    }
                })
                .collect();
            if series.is_empty() && failed.is_empty() {
                continue;
            }
            charts.push(Chart::Lines {
                stem: format!("{}_vs_{}", metric_name(kind), knob.name),
                title: format!("{} vs {} (mean, 95% CI)", metric_axis(kind), knob.name),
                x_label: knob.axis.to_string(),
                y_label: "tokens/s".into(),
                log2_x: spans_octaves(&all, knob),
                series,
                failed,
                hline: None,
            });
        }
    }

    // 2. Memory against n_ctx / n_gpu_layers: measured and predicted.
    for knob in varied
        .iter()
        .filter(|k| k.name == "n_ctx" || k.name == "n_gpu_layers")
    {
        let mut by_label: BTreeMap<String, BTreeMap<u64, Vec<f64>>> = BTreeMap::new();
        let mut add = |label: String, x: f64, v: f64| {
            by_label
                .entry(label)
                .or_default()
                .entry(x.to_bits())
                .or_default()
                .push(v)
        };
        for t in all.iter().filter(|t| t.r.status == Status::Ok) {
            let x = (knob.get)(t.r);
            let prefix = if multi {
                format!("{}: ", t.input)
            } else {
                String::new()
            };
            if let Some(rss) = t.r.measurement.rss_peak_bytes {
                add(format!("{prefix}peak RSS, measured"), x, rss as f64 / MIB);
            }
            if let Some(p) = &t.r.prediction {
                add(
                    format!("{prefix}RSS, predicted before the run"),
                    x,
                    p.rss_bytes as f64 / MIB,
                );
                if p.vram_bytes > 0 {
                    add(
                        format!("{prefix}VRAM, predicted"),
                        x,
                        p.vram_bytes as f64 / MIB,
                    );
                }
                if let Some(b) = p.vram_buffers_bytes.filter(|&b| b > 0) {
                    add(format!("{prefix}GPU buffers, predicted"), x, b as f64 / MIB);
                }
            }
            match t.r.vram.as_ref() {
                Some(v) if v.worker_peak_bytes.is_some() => {
                    let peak = v.worker_peak_bytes.unwrap_or(0);
                    add(format!("{prefix}peak VRAM, measured"), x, peak as f64 / MIB);
                }
                // No per-process figure (some drivers and containers): the device's growth.
                Some(v) if v.used_bytes() > 0 => add(
                    format!("{prefix}VRAM (device growth), measured"),
                    x,
                    v.used_bytes() as f64 / MIB,
                ),
                _ => {}
            }
            let on_gpu =
                t.r.measurement
                    .placement
                    .as_ref()
                    .map_or(0, |p| p.device_bytes());
            if on_gpu > 0 {
                add(
                    format!("{prefix}GPU buffers, as llama.cpp allocated them"),
                    x,
                    on_gpu as f64 / MIB,
                );
            }
        }
        let series: Vec<Series> = by_label
            .into_iter()
            .map(|(label, points)| Series {
                predicted: label.contains("predicted"),
                points: points
                    .into_iter()
                    .map(|(x, v)| {
                        let (lo, hi) = v
                            .iter()
                            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &y| {
                                (a.min(y), b.max(y))
                            });
                        XyPoint {
                            x: f64::from_bits(x),
                            y: v.iter().sum::<f64>() / v.len() as f64,
                            lo,
                            hi,
                        }
                    })
                    .collect(),
                label,
            })
            .collect();
        if series.is_empty() {
            continue;
        }
        let budget = match knob.name {
            "n_gpu_layers" => options.vram_budget_bytes.map(|b| {
                (
                    b as f64 / MIB,
                    format!("VRAM budget {:.0} MiB", b as f64 / MIB),
                )
            }),
            _ => options.ram_budget_bytes.map(|b| {
                (
                    b as f64 / MIB,
                    format!("RAM budget {:.0} MiB", b as f64 / MIB),
                )
            }),
        };
        charts.push(Chart::Lines {
            stem: format!("memory_vs_{}", knob.name),
            title: format!("memory vs {} (range over the other knobs)", knob.name),
            x_label: knob.axis.to_string(),
            y_label: "MiB".into(),
            log2_x: spans_octaves(&all, knob),
            series,
            failed: all
                .iter()
                .filter(|t| matches!(t.r.status, Status::Oom | Status::LoadFailed))
                .map(|t| FailedPoint {
                    x: (knob.get)(t.r),
                    label: t.r.status.as_str().into(),
                })
                .collect(),
            hline: budget,
        });
    }

    // 3. Heatmap of the first two varied knobs, best cell marked.
    if varied.len() >= 2 {
        let (kx, ky) = (varied[0], varied[1]);
        for &kind in &kinds {
            let mut cells: BTreeMap<(u64, u64), f64> = BTreeMap::new();
            for t in all
                .iter()
                .filter(|t| t.r.workload.kind() == kind && t.r.status == Status::Ok)
            {
                if let Some(s) = &t.r.tokens_per_s {
                    let key = ((kx.get)(t.r).to_bits(), (ky.get)(t.r).to_bits());
                    let best = cells.entry(key).or_insert(0.0);
                    *best = best.max(s.mean);
                }
            }
            let xs: Vec<f64> = sorted(cells.keys().map(|k| f64::from_bits(k.0)));
            let ys: Vec<f64> = sorted(cells.keys().map(|k| f64::from_bits(k.1)));
            let idx = |v: &[f64], x: f64| v.iter().position(|&a| a == x).unwrap_or(0);
            let list: Vec<(usize, usize, f64)> = cells
                .iter()
                .map(|(k, &v)| {
                    (
                        idx(&xs, f64::from_bits(k.0)),
                        idx(&ys, f64::from_bits(k.1)),
                        v,
                    )
                })
                .collect();
            let best = list
                .iter()
                .max_by(|a, b| a.2.total_cmp(&b.2))
                .map(|c| (c.0, c.1));
            if list.len() < 2 {
                continue;
            }
            charts.push(Chart::Heatmap {
                stem: format!("heatmap_{}_{}_{}", metric_name(kind), kx.name, ky.name),
                title: format!("{}: best over the other knobs", metric_axis(kind)),
                x_label: kx.axis.to_string(),
                y_label: ky.axis.to_string(),
                xs: xs.iter().map(|v| format!("{v}")).collect(),
                ys: ys.iter().map(|v| format!("{v}")).collect(),
                cells: list,
                best,
                unit: "tokens/s".into(),
            });
        }
    }

    // 4. Predicted vs measured.
    let rss: Vec<(f64, f64)> = all
        .iter()
        .filter(|t| t.r.status == Status::Ok)
        .filter_map(|t| {
            Some((
                t.r.prediction.as_ref()?.rss_bytes as f64 / MIB,
                t.r.measurement.rss_peak_bytes? as f64 / MIB,
            ))
        })
        .collect();
    if !rss.is_empty() {
        charts.push(Chart::Scatter {
            stem: "predicted_vs_measured_rss".into(),
            title: "peak RSS: predicted before the run vs measured".into(),
            x_label: "predicted (MiB)".into(),
            y_label: "measured (MiB)".into(),
            note: error_note(&rss),
            points: rss,
        });
    }
    let tg: Vec<(f64, f64)> = all
        .iter()
        .filter(|t| t.r.status == Status::Ok)
        .filter_map(|t| {
            Some((
                t.r.prediction.as_ref()?.tg_tokens_per_s?,
                t.r.tokens_per_s.as_ref()?.mean,
            ))
        })
        .collect();
    if !tg.is_empty() {
        charts.push(Chart::Scatter {
            stem: "predicted_vs_measured_tg".into(),
            title: "generation speed: predicted vs measured".into(),
            x_label: "predicted (tokens/s)".into(),
            y_label: "measured (tokens/s)".into(),
            note: error_note(&tg),
            points: tg,
        });
    }

    // 5. Roofline efficiency of tg points (CPU: against the read bandwidth measured at the same thread count).
    let mut groups: Vec<String> = Vec::new();
    let mut bars = Vec::new();
    for t in all
        .iter()
        .filter(|t| t.r.status == Status::Ok && t.r.workload.kind() == TestKind::Tg)
    {
        let (Some(bytes), Some(bw), Some(s)) = (
            t.r.prediction.as_ref().and_then(|p| p.tg_bytes_per_token),
            t.r.fingerprint.host_bandwidth_at(t.r.ctx.threads),
            &t.r.tokens_per_s,
        ) else {
            continue;
        };
        if t.r.fingerprint.backend_devices.iter().any(|d| d.is_gpu()) && t.r.load.n_gpu_layers > 0 {
            continue;
        }
        let pct = |v: f64| bytes as f64 * v / (bw * 1e9) * 100.0;
        let mut label: Vec<String> = varied
            .iter()
            .map(|k| format!("{}={}", short(k.name), (k.get)(t.r)))
            .collect();
        if label.is_empty() {
            label.push(t.r.test.clone());
        }
        let group = label.join(" ");
        let gi = groups.iter().position(|g| *g == group).unwrap_or_else(|| {
            groups.push(group.clone());
            groups.len() - 1
        });
        bars.push(Bar {
            group: gi,
            series: format!(
                "{}{}",
                if multi {
                    format!("{}: ", t.input)
                } else {
                    String::new()
                },
                t.r.model
            ),
            value: pct(s.mean),
            lo: pct(s.ci95_low.max(0.0)),
            hi: pct(s.ci95_high),
        });
    }
    if !bars.is_empty() {
        charts.push(Chart::Bars {
            stem: "roofline_tg".into(),
            title: "roofline: bytes read per second in generation, as % of the memory bandwidth at its thread count".into(),
            y_label: "% of read bandwidth (same threads)".into(),
            groups,
            bars,
            ranges: Vec::new(),
            log_y: false,
        });
    }

    // 6. Hardware comparison (several machines, not several runs of one).
    let machines: BTreeSet<(&str, &str)> = all
        .iter()
        .map(|t| {
            let h = &t.r.fingerprint.host;
            (h.hostname.as_str(), h.cpu_model.as_str())
        })
        .collect();
    if machines.len() > 1 || !options.reference.is_empty() {
        charts.push(hardware_chart(&all, options));
    }

    // 7. Engine vs server: the same knobs and test in-process and over HTTP.
    if let Some(chart) = engine_vs_server(&all) {
        charts.push(chart);
    }
    // 8. Backends: the same model and knobs on each in-process backend.
    if let Some(chart) = backends_chart(&all) {
        charts.push(chart);
    }
    (charts, warnings)
}

/// How a record was measured, for the engine-vs-server chart.
fn engine_label(r: &Record) -> String {
    match &r.measurement.server {
        Some(s) if s.mode == "managed" => {
            let program = r
                .fingerprint
                .backend_build
                .strip_prefix("managed: ")
                .and_then(|b| b.split_whitespace().next())
                .and_then(|p| p.rsplit('/').next())
                .unwrap_or("server");
            format!("{program} over HTTP (managed)")
        }
        Some(s) => format!("server at {}", s.base_url),
        None if r.backend == "llama-cpp" => "llama.cpp in-process".into(),
        None if r.backend == "candle" => "candle in-process".into(),
        None => r.backend.clone(),
    }
}

fn engine_vs_server(all: &[Tagged]) -> Option<Chart> {
    let ok: Vec<&Record> = all
        .iter()
        .map(|t| t.r)
        .filter(|r| r.status == Status::Ok && r.workload.concurrency <= 1)
        .collect();
    let has_server = ok.iter().any(|r| r.measurement.server.is_some());
    let has_engine = ok.iter().any(|r| r.measurement.server.is_none());
    if !has_server || !has_engine {
        return None;
    }
    // Same knobs and test on both sides.
    let key = |r: &Record| {
        format!(
            "{} t={} b={} ub={} ngl={}",
            r.test, r.ctx.threads, r.ctx.n_batch, r.ctx.n_ubatch, r.load.n_gpu_layers
        )
    };
    let server_keys: BTreeSet<String> = ok
        .iter()
        .filter(|r| r.measurement.server.is_some())
        .map(|r| key(r))
        .collect();
    let engine_keys: BTreeSet<String> = ok
        .iter()
        .filter(|r| r.measurement.server.is_none())
        .map(|r| key(r))
        .collect();
    let groups: Vec<String> = server_keys.intersection(&engine_keys).cloned().collect();
    if groups.is_empty() {
        return None;
    }
    let bars = engine_bars(&ok, &groups, key);
    Some(Chart::Bars {
        stem: "engine_vs_server".into(),
        title: "the same knobs in-process and through a server (tokens/s, 95% CI)".into(),
        y_label: "tokens/s".into(),
        groups,
        bars,
        ranges: Vec::new(),
        log_y: false,
    })
}

/// One bar per record whose `key` is one of `groups`, a series per engine.
fn engine_bars(
    records: &[&Record],
    groups: &[String],
    key: impl Fn(&Record) -> String,
) -> Vec<Bar> {
    records
        .iter()
        .filter_map(|r| {
            let group = groups.iter().position(|g| *g == key(r))?;
            let s = r.tokens_per_s.as_ref()?;
            Some(Bar {
                group,
                series: engine_label(r),
                value: s.mean,
                lo: s.ci95_low.max(0.0),
                hi: s.ci95_high,
            })
        })
        .collect()
}

/// The same model, test and knobs on two or more in-process backends
/// (candle and llama.cpp). Prompt chunks are compared by what each backend
/// actually decodes at once: min(n_prompt, n_batch, n_ubatch), since candle
/// has no micro-batch and records n_ubatch = n_batch.
fn backends_chart(all: &[Tagged]) -> Option<Chart> {
    let ok: Vec<&Record> = all
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
            let chunk = r.workload.n_prompt.min(r.ctx.n_batch).min(r.ctx.n_ubatch);
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

fn short(name: &str) -> &str {
    match name {
        "threads" => "t",
        "n_ubatch" => "ub",
        "n_batch" => "b",
        "n_gpu_layers" => "ngl",
        "n_ctx" => "ctx",
        other => other,
    }
}

fn sorted(values: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    v.dedup();
    v
}

/// Use a log2 axis when the knob spans 8x or more (batch sizes, contexts).
fn spans_octaves(all: &[Tagged], knob: &Knob) -> bool {
    let values: Vec<f64> = all.iter().map(|t| (knob.get)(t.r)).collect();
    let (lo, hi) = values
        .iter()
        .fold((f64::INFINITY, 0.0f64), |(a, b), &v| (a.min(v), b.max(v)));
    lo > 0.0 && hi / lo >= 8.0
}

/// Mean absolute percentage error of predicted (x) against measured (y).
fn error_note(points: &[(f64, f64)]) -> String {
    let mape = points
        .iter()
        .filter(|p| p.1 > 0.0)
        .map(|p| ((p.0 - p.1) / p.1).abs())
        .sum::<f64>()
        / points.len().max(1) as f64;
    let worst = points
        .iter()
        .filter(|p| p.1 > 0.0)
        .map(|p| (p.0 - p.1) / p.1)
        .fold(0.0f64, |w, e| if e.abs() > w.abs() { e } else { w });
    format!(
        "{} points: mean |error| {:.1}%, worst {:+.1}%",
        points.len(),
        mape * 100.0,
        worst * 100.0
    )
}

fn params_class(n_params: u64, quant: &str, synthetic: bool) -> String {
    let b = n_params as f64 / 1e9;
    let size = if b >= 3.0 {
        format!("{:.0}B", b)
    } else {
        format!("{:.1}B", b)
    };
    format!(
        "{size} {quant}{}",
        if synthetic { " (synthetic)" } else { "" }
    )
}

fn hardware_chart(all: &[Tagged], options: &ReportOptions) -> Chart {
    let mut groups: Vec<String> = Vec::new();
    let mut group_of = |name: String| -> usize {
        groups.iter().position(|g| *g == name).unwrap_or_else(|| {
            groups.push(name);
            groups.len() - 1
        })
    };
    // Best tg t/s per (model class, machine).
    let mut best: BTreeMap<(String, String), (f64, f64, f64)> = BTreeMap::new();
    for t in all
        .iter()
        .filter(|t| t.r.status == Status::Ok && t.r.workload.kind() == TestKind::Tg)
    {
        let Some(s) = &t.r.tokens_per_s else { continue };
        let m = &t.r.fingerprint.model;
        // One series per machine (several result files of one machine merge);
        // synthetic weights are said in the series, so the bar stands in the
        // same group as the reference ranges of real models of that size.
        let h = &t.r.fingerprint.host;
        let machine = if h.cpu_model.is_empty() {
            t.input.to_string()
        } else {
            format!(
                "{} ({}, {} cores)",
                h.hostname, h.cpu_model, h.logical_cores
            )
        };
        let machine = if m.synthetic {
            format!("{machine}, synthetic weights")
        } else {
            machine
        };
        let key = (params_class(m.n_params, &m.quant, false), machine);
        let e = best.entry(key).or_insert((0.0, 0.0, 0.0));
        if s.mean > e.0 {
            *e = (s.mean, s.ci95_low.max(0.0), s.ci95_high);
        }
    }
    let mut bars = Vec::new();
    for ((class, machine), (v, lo, hi)) in best {
        bars.push(Bar {
            group: group_of(class),
            series: machine,
            value: v,
            lo,
            hi,
        });
    }
    let mut ranges = Vec::new();
    for r in &options.reference {
        let gi = group_of(format!("{:.0}B {}", r.model_params_b, r.quant));
        ranges.push(Range {
            group: gi,
            label: r.hardware.replace("NVIDIA ", "").replace("Apple ", ""),
            lo: r.tg_tps_low,
            hi: r.tg_tps_high,
        });
    }
    Chart::Bars {
        stem: "hardware_comparison_tg".into(),
        title: "generation speed by model and machine (best point per machine)".into(),
        y_label: "generation (tokens/s)".into(),
        groups,
        bars,
        ranges,
        log_y: true,
    }
}

fn warnings_for(all: &[Tagged]) -> Vec<String> {
    let mut w = Vec::new();
    if all.iter().any(|t| t.r.backend == "sim") {
        w.push("SIMULATED: records of the sim backend hold numbers planted by a declared profile, not measurements".to_string());
    }
    for t in all {
        let r = t.r;
        let at = format!(
            "{}: point {} ({}, ngl={} n_ctx={} n_batch={} n_ubatch={} threads={})",
            t.input,
            r.point_index,
            r.test,
            r.load.n_gpu_layers,
            r.ctx.n_ctx,
            r.ctx.n_batch,
            r.ctx.n_ubatch,
            r.ctx.threads
        );
        match (&r.status, &r.tokens_per_s) {
            (Status::Ok, Some(s)) => {
                if s.n >= 2 && s.relative_ci_half_width() > 0.10 {
                    w.push(format!(
                        "noisy: {at}: 95% CI ±{:.0}% of the mean",
                        s.relative_ci_half_width() * 100.0
                    ));
                }
                if s.n == 0 {
                    w.push(format!("no raw samples: {at} (llama-bench CSV)"));
                }
                // Recomputed from the samples, so older records follow today's rule.
                let outliers = lmtune_core::stats::outliers(&r.measurement.samples_ts);
                if !outliers.is_empty() {
                    w.push(format!(
                        "outliers (kept, median/MAD): {at}: samples {outliers:?}"
                    ));
                }
            }
            (status, _) => w.push(format!(
                "{}: {at}: {}",
                status.as_str(),
                r.error
                    .as_deref()
                    .unwrap_or("")
                    .lines()
                    .next()
                    .unwrap_or("")
            )),
        }
    }
    w
}
