//! One file per chart builder, and [`BUILDERS`], the one list that calls
//! them in the order their charts appear in a report. Each builder looks at
//! the same [`ChartInput`] and returns the charts its data supports (often
//! none).

mod backends;
mod categorical;
mod engine_vs_server;
mod hardware;
mod heatmap;
mod memory;
mod predicted;
mod roofline;
mod throughput;

use std::collections::BTreeSet;

use lmtune_core::knobs::TestKind;
use lmtune_core::record::Record;

use super::chart::{Chart, Series};
use super::ReportOptions;

/// A chart builder: the charts it draws from the input, and warnings a
/// reader needs about them.
type Builder = fn(&ChartInput, &mut Vec<String>) -> Vec<Chart>;

/// Every builder, in report order.
const BUILDERS: [Builder; 9] = [
    // t/s against every varied knob
    throughput::charts,
    // t/s per value of each varied categorical knob (K/V types, flash attention…)
    categorical::charts,
    // memory against n_ctx / n_gpu_layers
    memory::charts,
    // t/s over the first two varied knobs
    heatmap::charts,
    // predicted vs measured RSS and tg t/s
    predicted::charts,
    // tg bytes per second as a share of the read bandwidth
    roofline::charts,
    // several machines, or community-reported ranges
    hardware::charts,
    // the same knobs in-process and through a server
    engine_vs_server::charts,
    // the same model and knobs on each in-process backend
    backends::charts,
];

/// What `--charts` accepts: every chart's name starts with one of these
/// families (a name is `FAMILY` or `FAMILY_…`, e.g. `tg_vs_threads`).
pub const CHART_FAMILIES: &[&str] = &[
    "tg_vs",
    "pp_vs",
    "pp+tg_vs",
    "tg_by",
    "pp_by",
    "pp+tg_by",
    "memory_vs",
    "heatmap",
    "predicted",
    "roofline",
    "hardware_comparison",
    "engine_vs_server",
    "backends",
];

/// Whether `name` picks charts: the start of a family ("tg", "memory") or
/// one chart of a family ("tg_vs_threads").
pub fn is_chart_name(name: &str) -> bool {
    !name.is_empty()
        && CHART_FAMILIES
            .iter()
            .any(|f| f.starts_with(name) || name.starts_with(f))
}

/// Most series drawn on one chart (one colour each); more are split over
/// several charts, each saying which part it is.
const MAX_SERIES: usize = 8;
const MIB: f64 = 1024.0 * 1024.0;

/// A record with the label of the input it came from.
pub(super) struct Tagged<'a> {
    pub input: &'a str,
    pub r: &'a Record,
}

/// A numeric knob a chart can put on an axis, at the value llama.cpp
/// applied (it clamps contexts and batches, and offloads no layer without a
/// GPU device whatever `n_gpu_layers` asks), the requested one when the
/// record has none (failed points, older records).
struct Knob {
    name: &'static str,
    axis: &'static str,
    get: fn(&Record) -> f64,
}

const KNOBS: [Knob; 6] = [
    Knob {
        name: "threads",
        axis: "threads",
        get: |r| f64::from(r.ctx.threads),
    },
    Knob {
        name: "n_ubatch",
        axis: "n_ubatch (tokens per micro-batch, as applied)",
        get: |r| f64::from(r.measurement.n_ubatch_actual.unwrap_or(r.ctx.n_ubatch)),
    },
    Knob {
        name: "n_batch",
        axis: "n_batch (tokens per batch, as applied)",
        get: |r| f64::from(r.measurement.n_batch_actual.unwrap_or(r.ctx.n_batch)),
    },
    Knob {
        name: "n_ctx",
        axis: "n_ctx (context length in tokens, as applied)",
        get: |r| f64::from(r.measurement.n_ctx_actual.unwrap_or(r.ctx.n_ctx)),
    },
    Knob {
        name: "n_gpu_layers",
        axis: "layers offloaded (as llama.cpp applied n_gpu_layers)",
        get: |r| f64::from(layers_offloaded(r)),
    },
    Knob {
        name: "n_cpu_moe",
        axis: "blocks with their routed experts in host memory (n_cpu_moe / cpu_moe)",
        get: |r| r.load.experts_on_host(r.fingerprint.model.n_layer) as f64,
    },
];

/// What every chart builder looks at: the records of all inputs and what
/// varies among them.
pub(super) struct ChartInput<'a> {
    all: Vec<Tagged<'a>>,
    /// Several inputs: series are labelled with their input.
    multi: bool,
    /// The numeric knobs that take more than one value.
    varied: Vec<&'static Knob>,
    /// The categorical knobs (K/V types, flash attention, op offload) vary.
    varied_cat: bool,
    /// The kinds of test present, pp first.
    kinds: Vec<TestKind>,
    options: &'a ReportOptions,
}

impl<'a> ChartInput<'a> {
    pub fn new(all: Vec<Tagged<'a>>, multi: bool, options: &'a ReportOptions) -> ChartInput<'a> {
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
        ChartInput {
            all,
            multi,
            varied,
            varied_cat,
            kinds,
            options,
        }
    }

    /// `"INPUT: "` when there are several inputs, else nothing.
    fn input_prefix(&self, t: &Tagged) -> String {
        if self.multi {
            format!("{}: ", t.input)
        } else {
            String::new()
        }
    }

    /// Use a log2 axis when the knob spans 8x or more (batch sizes, contexts).
    fn spans_octaves(&self, knob: &Knob) -> bool {
        let values: Vec<f64> = self.all.iter().map(|t| (knob.get)(t.r)).collect();
        let (lo, hi) = values
            .iter()
            .fold((f64::INFINITY, 0.0f64), |(a, b), &v| (a.min(v), b.max(v)));
        lo > 0.0 && hi / lo >= 8.0
    }
}

/// The layers llama.cpp offloaded; without its placement (a failed point),
/// none on a machine without a GPU device, else as requested.
fn layers_offloaded(r: &Record) -> u32 {
    match &r.measurement.placement {
        Some(p) => p.layers_offloaded,
        None if !r.fingerprint.backend_devices.iter().any(|d| d.is_gpu()) => 0,
        None => r.load.n_gpu_layers,
    }
}

/// Two or more distinct values: a chart against it shows something.
fn distinct_at_least_two(values: impl Iterator<Item = f64>) -> bool {
    values.map(f64::to_bits).collect::<BTreeSet<_>>().len() > 1
}

/// Every builder's charts, in report order; builders add their warnings.
pub(super) fn build(input: &ChartInput, warnings: &mut Vec<String>) -> Vec<Chart> {
    let mut charts = Vec::new();
    for builder in BUILDERS {
        charts.extend(builder(input, warnings));
    }
    debug_assert!(charts.iter().all(|c| is_chart_name(c.stem())));
    charts
}

/// Categorical knobs: only part of series labels.
fn categorical(r: &Record) -> String {
    format!(
        "K/V {}/{} fa {}{}",
        r.ctx.type_k,
        r.ctx.type_v,
        r.ctx.flash_attn,
        r.ctx.non_default_label()
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

/// Splits `series` over as many charts as it takes to draw every one with
/// at most [`MAX_SERIES`] each: `(stem, title, series)` per chart. One
/// chart keeps `stem` and `title`; parts are `STEM_part2`… and their titles
/// say "part i of n", so no series is dropped and none goes unannounced.
fn split_series(
    stem: &str,
    title: &str,
    series: Vec<Series>,
) -> Vec<(String, String, Vec<Series>)> {
    let parts = series.len().div_ceil(MAX_SERIES).max(1);
    if parts == 1 {
        return vec![(stem.to_string(), title.to_string(), series)];
    }
    let total = series.len();
    // Even parts (10 series: 5 + 5, not 8 + 2).
    let per_part = total.div_ceil(parts);
    let mut rest = series.into_iter();
    (1..=parts)
        .map(|part| {
            let stem = if part == 1 {
                stem.to_string()
            } else {
                format!("{stem}_part{part}")
            };
            let title = format!("{title}, part {part} of {parts} ({total} series)");
            (stem, title, rest.by_ref().take(per_part).collect())
        })
        .collect()
}

/// Knob names short enough for a bar group label.
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
