//! The end-of-run table, laid out like llama-bench's Markdown output.

use std::io;

use lmtune_core::record::{Record, Status};
use lmtune_core::stats::Doubts;

use super::{params_label, text, Exporter};
use crate::human_bytes;

/// A whole table: its column widths depend on every row, so it is written
/// at once, never appended to.
pub struct MarkdownTable;

impl Exporter<[Record]> for MarkdownTable {
    fn body(&self, records: &[Record]) -> io::Result<Vec<u8>> {
        text(markdown_table(records))
    }
}

/// A knob column: header and how to read it from a record.
struct Column {
    header: &'static str,
    value: fn(&Record) -> String,
}

const KNOBS: &[Column] = &[
    Column {
        header: "ngl",
        value: |r| r.load.n_gpu_layers.to_string(),
    },
    Column {
        header: "n_cpu_moe",
        value: |r| r.load.n_cpu_moe.to_string(),
    },
    Column {
        header: "cpu_moe",
        value: |r| if r.load.cpu_moe { "on" } else { "off" }.to_string(),
    },
    Column {
        header: "ot",
        value: |r| {
            if r.load.override_tensor.is_empty() {
                "none".to_string()
            } else {
                r.load.override_tensor.clone()
            }
        },
    },
    Column {
        header: "n_ctx",
        value: |r| r.ctx.n_ctx.to_string(),
    },
    Column {
        header: "n_batch",
        value: |r| r.ctx.n_batch.to_string(),
    },
    Column {
        header: "n_ubatch",
        value: |r| r.ctx.n_ubatch.to_string(),
    },
    Column {
        header: "threads",
        value: |r| r.ctx.threads.to_string(),
    },
    Column {
        header: "type_k",
        value: |r| r.ctx.type_k.to_string(),
    },
    Column {
        header: "type_v",
        value: |r| r.ctx.type_v.to_string(),
    },
    Column {
        header: "fa",
        value: |r| r.ctx.flash_attn.to_string(),
    },
    Column {
        header: "op offload",
        value: |r| if r.ctx.op_offload { "on" } else { "off" }.to_string(),
    },
    Column {
        header: "swa full",
        value: |r| if r.ctx.swa_full { "on" } else { "off" }.to_string(),
    },
];

/// GPU columns: layers as the backend applied them, and VRAM predicted /
/// allocated by the backend / measured.
const GPU_HEADERS: [&str; 4] = [
    "offloaded",
    "VRAM predicted",
    "GPU buffers (predicted)",
    "VRAM measured",
];

/// llama-bench-style table: model, size, params, backend, the knobs that
/// vary (threads always), test, and t/s as mean ± sd. Failed points show
/// their status instead of a rate.
pub fn markdown_table(records: &[Record]) -> String {
    // A "check" column only when a point is noisy or had outlier repetitions.
    let doubts: Vec<String> = records.iter().map(doubts_label).collect();
    let columns = Columns {
        knobs: varying_knobs(records),
        gpu: ran_on_gpu(records),
        // Cores busy, where the records have it (in-process backends, newer records).
        cpu: records
            .iter()
            .any(|r| r.measurement.cpu_busy_cores.is_some()),
        check: doubts.iter().any(|d| !d.is_empty()),
    };
    let (header, right) = columns.header();
    let rows: Vec<Vec<String>> = records
        .iter()
        .zip(&doubts)
        .map(|(r, doubt)| columns.row(r, doubt))
        .collect();
    render(&header, &right, &rows)
}

/// The knob columns whose value differs between records, and threads always.
fn varying_knobs(records: &[Record]) -> Vec<&'static Column> {
    let varies = |c: &Column| {
        records
            .iter()
            .any(|r| (c.value)(r) != (c.value)(&records[0]))
    };
    KNOBS
        .iter()
        .filter(|c| c.header == "threads" || (!records.is_empty() && varies(c)))
        .collect()
}

/// Whether anything ran on a GPU: layers offloaded, or VRAM used.
fn ran_on_gpu(records: &[Record]) -> bool {
    records.iter().any(|r| {
        r.measurement
            .placement
            .as_ref()
            .is_some_and(|p| p.layers_offloaded > 0)
            || r.vram.as_ref().is_some_and(|v| v.used_bytes() > 0)
    })
}

/// Which columns a table has besides model, size, params, backend, test and
/// t/s (always there).
struct Columns {
    knobs: Vec<&'static Column>,
    /// The four [`GPU_HEADERS`] columns.
    gpu: bool,
    /// "CPU cores busy".
    cpu: bool,
    /// "check": why a point's mean needs a second look.
    check: bool,
}

impl Columns {
    /// The header cells, and for each column whether it is right-aligned.
    fn header(&self) -> (Vec<String>, Vec<bool>) {
        let mut header = vec![
            "model".to_string(),
            "size".into(),
            "params".into(),
            "backend".into(),
        ];
        let mut right = vec![false, true, true, false];
        header.extend(self.knobs.iter().map(|c| c.header.to_string()));
        right.extend(self.knobs.iter().map(|_| true));
        if self.gpu {
            header.extend(GPU_HEADERS.iter().map(|h| h.to_string()));
            right.extend(GPU_HEADERS.iter().map(|_| true));
        }
        if self.cpu {
            header.push("CPU cores busy".into());
            right.push(true);
        }
        header.extend(["test".to_string(), "t/s".into()]);
        right.extend([true, true]);
        if self.check {
            header.push("check".into());
            right.push(false);
        }
        (header, right)
    }

    /// One record's cells, in the header's order.
    fn row(&self, r: &Record, doubt: &str) -> Vec<String> {
        let m = &r.fingerprint.model;
        let mut row = vec![
            format!(
                "{} {} {}",
                m.architecture,
                params_label(m.n_params),
                m.quant
            ),
            human_bytes(m.weights_bytes),
            format!("{:.2} M", m.n_params as f64 / 1e6),
            if r.backend == "sim" {
                "sim (simulated)".to_string()
            } else {
                r.backend.clone()
            },
        ];
        row.extend(self.knobs.iter().map(|c| (c.value)(r)));
        if self.gpu {
            row.extend(gpu_cells(r));
        }
        if self.cpu {
            row.push(
                r.measurement
                    .cpu_busy_cores
                    .map_or("-".into(), |c| format!("{c:.1}")),
            );
        }
        row.push(r.test.clone());
        row.push(match (&r.status, &r.tokens_per_s) {
            (Status::Ok, Some(s)) => format!("{:.2} ± {:.2}", s.mean, s.sd),
            (status, _) => status.as_str().to_string(),
        });
        if self.check {
            row.push(doubt.to_string());
        }
        row
    }
}

/// A record's [`GPU_HEADERS`] cells; "-" where it has no value (or zero).
fn gpu_cells(r: &Record) -> [String; 4] {
    let placement = r.measurement.placement.as_ref();
    let bytes = |b: Option<u64>| b.filter(|&b| b > 0).map_or("-".to_string(), human_bytes);
    let offloaded = placement.map_or("-".into(), |p| {
        format!("{}/{}", p.layers_offloaded, p.layers_total)
    });
    let predicted = bytes(r.prediction.as_ref().map(|p| p.vram_bytes));
    let measured = bytes(placement.map(|p| p.device_bytes()));
    let buffers = match r.prediction.as_ref().and_then(|p| p.vram_buffers_bytes) {
        Some(b) if b > 0 => format!("{measured} ({})", human_bytes(b)),
        _ => measured,
    };
    let used = bytes(r.vram.as_ref().map(|v| v.used_bytes()));
    [offloaded, predicted, buffers, used]
}

/// The table as text: each column as wide as its widest cell (at least 3,
/// for the rule), padded to its alignment, with a rule whose `:` marks the
/// right-aligned columns.
fn render(header: &[String], right: &[bool], rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].len(), 3])
                .max()
                .unwrap_or(3)
        })
        .collect();
    let line = |cells: &[String]| {
        let cells: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if right[i] {
                    format!("{c:>w$}", w = widths[i])
                } else {
                    format!("{c:<w$}", w = widths[i])
                }
            })
            .collect();
        format!("| {} |\n", cells.join(" | "))
    };
    let mut out = line(header);
    let rule: Vec<String> = widths
        .iter()
        .enumerate()
        .map(|(i, &w)| {
            if right[i] {
                format!("{}:", "-".repeat(w - 1))
            } else {
                "-".repeat(w)
            }
        })
        .collect();
    out.push_str(&format!("| {} |\n", rule.join(" | ")));
    for row in rows {
        out.push_str(&line(row));
    }
    out
}

/// The table's "check" cell: why a measured point's mean needs a second
/// look ([`Doubts`], the rule `report` warns by); "" for none.
fn doubts_label(r: &Record) -> String {
    match (&r.status, &r.tokens_per_s) {
        (Status::Ok, Some(s)) => Doubts::of(s, &r.measurement.samples_ts).label(),
        _ => String::new(),
    }
}
