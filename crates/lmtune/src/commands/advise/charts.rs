//! One chart per claim family, built from the experiments' records with
//! lmtune-report's chart types (drawn by its one renderer).

use lmtune_core::knobs::TestKind;
use lmtune_core::record::{Record, Status};
use lmtune_report::report::chart::{Bar, Chart, Range, Series, XyPoint};

use super::claims::{mean, Outcome, Outcomes};
use super::experiments::ExperimentId;
use super::memory::{dry_run_total_bytes, KvRow, KvShape};
use super::offload::{gpu_share, offload_models};

const MIB: f64 = 1024.0 * 1024.0;

fn ok(o: &Outcomes, id: ExperimentId) -> Option<(Vec<&Record>, bool)> {
    match o.get(&id)? {
        Outcome::Ran { records, simulated } => {
            let ok: Vec<&Record> = records.iter().filter(|r| r.status == Status::Ok).collect();
            (!ok.is_empty()).then_some((ok, *simulated))
        }
        Outcome::NotHere(_) => None,
    }
}

fn bar(group: usize, series: String, r: &Record) -> Bar {
    let s = r.tokens_per_s.expect("ok records have a summary");
    Bar {
        group,
        series,
        value: s.mean,
        lo: s.ci95_low,
        hi: s.ci95_high,
    }
}

fn exact_bar(group: usize, series: impl Into<String>, value: f64) -> Bar {
    Bar {
        group,
        series: series.into(),
        value,
        lo: value,
        hi: value,
    }
}

fn bars(
    stem: &str,
    title: String,
    y_label: &str,
    groups: Vec<String>,
    bars: Vec<Bar>,
    ranges: Vec<Range>,
) -> Chart {
    Chart::Bars {
        stem: stem.into(),
        title,
        y_label: y_label.into(),
        groups,
        bars,
        ranges,
        log_y: false,
    }
}

/// t/s per test, one bar per value of `knob`, for the records `keep` selects.
fn speed_bars(
    stem: &str,
    title: &str,
    records: &[&Record],
    knob: impl Fn(&Record) -> String,
) -> Chart {
    let mut groups: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for r in records {
        let g = match groups.iter().position(|g| *g == r.test) {
            Some(i) => i,
            None => {
                groups.push(r.test.clone());
                groups.len() - 1
            }
        };
        out.push(bar(g, knob(r), r));
    }
    bars(
        stem,
        title.into(),
        "tokens/s (95% CI)",
        groups,
        out,
        Vec::new(),
    )
}

pub fn build(
    o: &Outcomes,
    sevens: &[KvShape],
    own: &KvShape,
    rows: &[KvRow],
    quant_labels: &[(String, String)],
) -> Vec<Chart> {
    let mut charts = Vec::new();
    if let Some((rs, _)) = ok(o, ExperimentId::Threads) {
        charts.push(speed_bars(
            "threads",
            "Threads: t/s by thread count",
            &rs,
            |r| format!("{} threads", r.ctx.threads),
        ));
    }
    charts.push(kv_7b_chart(sevens, own));
    if rows.iter().any(|r| r.llama_cpp_bytes.is_some()) {
        let mut b = Vec::new();
        for (i, r) in rows.iter().enumerate() {
            b.push(exact_bar(
                i,
                "lmtune (exact, from the model)",
                r.exact_bytes as f64 / MIB,
            ));
            if let Some(l) = r.llama_cpp_bytes {
                b.push(exact_bar(i, "llama.cpp dry run", l as f64 / MIB));
            }
        }
        let groups = rows.iter().map(|r| format!("n_ctx {}", r.n_ctx)).collect();
        charts.push(bars(
            "context_kv",
            format!("KV cache of {} (f16)", own.name),
            "MiB",
            groups,
            b,
            Vec::new(),
        ));
    }
    if let Some((rs, _)) = ok(o, ExperimentId::KvType) {
        charts.push(speed_bars(
            "kv_type",
            "KV cache type: f16 vs q8_0 (flash attention on)",
            &rs,
            |r| format!("cache {}", r.ctx.type_k.as_str()),
        ));
    }
    if let Some((rs, _)) = ok(o, ExperimentId::Batch) {
        charts.push(speed_bars(
            "batch",
            "Batch: prompt t/s at n_batch = n_ubatch",
            &rs,
            |r| format!("n_batch {}", r.ctx.n_batch),
        ));
        let mut b = Vec::new();
        for r in &rs {
            let label = format!("n_batch {}", r.ctx.n_batch);
            if let Some(t) = dry_run_total_bytes(r) {
                b.push(exact_bar(0, label.clone(), t as f64 / MIB));
            }
            if let Some(x) = r.measurement.rss_peak_bytes {
                b.push(exact_bar(1, label, x as f64 / MIB));
            }
        }
        let groups = vec![
            "llama.cpp dry run (total)".to_string(),
            "peak RSS (measured)".to_string(),
        ];
        charts.push(bars(
            "batch_memory",
            "Batch: peak memory".into(),
            "MiB",
            groups,
            b,
            Vec::new(),
        ));
    }
    if let Some((rs, _)) = ok(o, ExperimentId::Quant) {
        quant_charts(&rs, quant_labels, &mut charts);
    }
    if let Some((rs, simulated)) = ok(o, ExperimentId::Offload) {
        if let Some(c) = offload_chart(&rs, simulated) {
            charts.push(c);
        }
    }
    if let Some((rs, _)) = ok(o, ExperimentId::Concurrency) {
        charts.push(speed_bars(
            "concurrency",
            "llama-server: aggregate t/s by clients and n_batch",
            &rs,
            |r| format!("n_batch {}", r.ctx.n_batch),
        ));
    }
    charts
}

fn kv_7b_chart(sevens: &[KvShape], own: &KvShape) -> Chart {
    let contexts = [4096u64, 32768];
    let mut b = Vec::new();
    for (g, &n) in contexts.iter().enumerate() {
        for s in sevens.iter().chain([own]) {
            b.push(exact_bar(
                g,
                format!("{} ({})", s.name, s.attention),
                s.bytes_at(n) as f64 / 1e9,
            ));
        }
    }
    let ranges = vec![
        Range {
            group: 0,
            label: "claimed 1–2 GB".into(),
            lo: 1.0,
            hi: 2.0,
        },
        Range {
            group: 1,
            label: "claimed 8–16 GB".into(),
            lo: 8.0,
            hi: 16.0,
        },
    ];
    let groups = contexts.iter().map(|n| format!("n_ctx {n}")).collect();
    bars(
        "kv_7b",
        "KV cache (f16) of 7–8B shapes against the claimed ranges".into(),
        "GB (exact)",
        groups,
        b,
        ranges,
    )
}

fn quant_charts(rs: &[&Record], labels: &[(String, String)], charts: &mut Vec<Chart>) {
    let qs = super::memory::quant_records(rs, labels);
    let mut mem = Vec::new();
    let mut speed = Vec::new();
    for (label, r) in &qs {
        mem.push(exact_bar(
            0,
            label.clone(),
            r.fingerprint.model.weights_bytes as f64 / MIB,
        ));
        if let Some(x) = r.measurement.rss_peak_bytes {
            mem.push(exact_bar(1, label.clone(), x as f64 / MIB));
        }
        if r.workload.kind() == TestKind::Tg {
            speed.push(bar(0, label.clone(), r));
        }
    }
    let groups = vec!["weights".to_string(), "peak RSS".to_string()];
    charts.push(bars(
        "quant_memory",
        "Quantization: memory (same shape, synth)".into(),
        "MiB",
        groups,
        mem,
        Vec::new(),
    ));
    charts.push(bars(
        "quant_tg",
        "Quantization: generation t/s (same shape, synth)".into(),
        "tokens/s (95% CI)",
        vec!["tg".into()],
        speed,
        Vec::new(),
    ));
}

fn offload_chart(rs: &[&Record], simulated: bool) -> Option<Chart> {
    let mut pts: Vec<(f64, &Record)> = rs
        .iter()
        .filter(|r| r.workload.kind() == TestKind::Tg)
        .map(|r| (gpu_share(r), *r))
        .collect();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (cpu, gpu) = (mean(pts.first()?.1), mean(pts.last()?.1));
    let measured = pts
        .iter()
        .map(|(f, r)| {
            let s = r.tokens_per_s.expect("ok records have a summary");
            XyPoint {
                x: 100.0 * f,
                y: s.mean,
                lo: s.ci95_low,
                hi: s.ci95_high,
            }
        })
        .collect();
    let model = |pick: fn((f64, f64)) -> f64| {
        (0..=20)
            .map(|i| {
                let f = f64::from(i) / 20.0;
                let y = pick(offload_models(cpu, gpu, f));
                XyPoint {
                    x: 100.0 * f,
                    y,
                    lo: y,
                    hi: y,
                }
            })
            .collect()
    };
    let sim = if simulated { " (SIMULATED)" } else { "" };
    Some(Chart::Lines {
        stem: "offload".into(),
        title: format!("Offload: generation t/s vs share of layers on the GPU{sim}"),
        x_label: "layers on the GPU (%)".into(),
        y_label: "tokens/s".into(),
        log2_x: false,
        series: vec![
            Series {
                label: format!("measured{sim}"),
                points: measured,
                predicted: false,
            },
            Series {
                label: "proportional (the claim)".into(),
                points: model(|p| p.0),
                predicted: true,
            },
            Series {
                label: "additive (time per token adds)".into(),
                points: model(|p| p.1),
                predicted: true,
            },
        ],
        failed: Vec::new(),
        hline: None,
    })
}
