//! llama-bench's CSV (`llama-bench -o csv`), so the scripts and spreadsheets
//! built around llama-bench read lmtune results. Columns lmtune has no value
//! for get llama-bench's defaults; failed points have no row (llama-bench
//! has none for failed tests).

use std::io;

use lmtune_core::fingerprint::LlamaCppBuild;
use lmtune_core::knobs::{FlashAttn, LoadParams, EXPS};
use lmtune_core::record::{Record, Status};

use super::{params_label, Exporter};

pub const LLAMA_BENCH_COLUMNS: &[&str] = &[
    "build_commit",
    "build_number",
    "cpu_info",
    "gpu_info",
    "backends",
    "model_filename",
    "model_type",
    "model_size",
    "model_n_params",
    "n_batch",
    "n_ubatch",
    "n_threads",
    "cpu_mask",
    "cpu_strict",
    "poll",
    "type_k",
    "type_v",
    "n_gpu_layers",
    "n_cpu_moe",
    "split_mode",
    "main_gpu",
    "no_kv_offload",
    "flash_attn",
    "devices",
    "tensor_split",
    "tensor_buft_overrides",
    "load_mode",
    "lazy_mode",
    "embeddings",
    "no_op_offload",
    "no_host",
    "repack",
    "fit_target",
    "fit_min_ctx",
    "n_prompt",
    "n_gen",
    "n_depth",
    "test_time",
    "avg_ns",
    "stddev_ns",
    "avg_ts",
    "stddev_ts",
];

pub struct LlamaBenchCsv;

impl Exporter<[Record]> for LlamaBenchCsv {
    fn header(&self) -> io::Result<Vec<u8>> {
        write_rows([LLAMA_BENCH_COLUMNS.iter().map(|s| s.to_string()).collect()])
    }

    fn body(&self, records: &[Record]) -> io::Result<Vec<u8>> {
        write_rows(records.iter().filter(|r| r.status == Status::Ok).map(row))
    }

    fn whole_records_len(&self, bytes: &[u8]) -> usize {
        super::csv::whole_rows_len(bytes)
    }
}

/// llama-bench quotes every field that is not a number.
fn write_rows(rows: impl IntoIterator<Item = Vec<String>>) -> io::Result<Vec<u8>> {
    let mut w = ::csv::WriterBuilder::new()
        .quote_style(::csv::QuoteStyle::NonNumeric)
        .from_writer(Vec::new());
    for row in rows {
        w.write_record(&row)?;
    }
    w.into_inner().map_err(|e| io::Error::other(e.to_string()))
}

/// llama-bench's `tensor_buft_overrides` column: its `-ot` entries as
/// `pattern=BUFT` joined by `;`, or "none". llama-bench has no `--cpu-moe`:
/// it is written as the `-ot` entry it stands for (read back as cpu_moe);
/// `-ncmoe` has its own column.
pub(super) fn tensor_buft_overrides(load: &LoadParams) -> String {
    let mut entries: Vec<String> = load
        .tensor_overrides_of_text()
        .iter()
        .map(|o| format!("{}={}", o.pattern, o.buft))
        .collect();
    if load.cpu_moe {
        entries.push(format!("{EXPS}=CPU"));
    }
    if entries.is_empty() {
        "none".into()
    } else {
        entries.join(";")
    }
}

pub(super) fn row(r: &Record) -> Vec<String> {
    let fp = &r.fingerprint;
    let ns = &r.measurement.samples_ns;
    let mean_ns = if ns.is_empty() {
        0.0
    } else {
        ns.iter().sum::<u64>() as f64 / ns.len() as f64
    };
    let sd_ns = if ns.len() < 2 {
        0.0
    } else {
        (ns.iter()
            .map(|&x| (x as f64 - mean_ns).powi(2))
            .sum::<f64>()
            / (ns.len() - 1) as f64)
            .sqrt()
    };
    let ts = r.tokens_per_s.as_ref();
    let gpu_info = fp
        .gpus
        .iter()
        .map(|g| g.name.clone())
        .collect::<Vec<_>>()
        .join(", ");
    let backends = if fp.backend_devices.iter().any(|d| d.is_gpu()) {
        "CUDA"
    } else {
        "CPU"
    };
    // llama-bench's build is llama.cpp's; without one (other backends,
    // older records) what llama-bench prints when built without git.
    let build = LlamaCppBuild::parse(&fp.backend_version).unwrap_or(LlamaCppBuild {
        number: 0,
        commit: "unknown".into(),
    });
    vec![
        build.commit,
        build.number.to_string(),
        fp.host.cpu_model.clone(),
        gpu_info,
        backends.into(),
        r.model.clone(),
        format!(
            "{} {} {}",
            fp.model.architecture,
            params_label(fp.model.n_params),
            fp.model.quant
        ),
        fp.model.weights_bytes.to_string(),
        fp.model.n_params.to_string(),
        r.ctx.n_batch.to_string(),
        r.ctx.n_ubatch.to_string(),
        r.ctx.threads.to_string(),
        "0x0".into(),
        "0".into(),
        "50".into(),
        r.ctx.type_k.to_string(),
        r.ctx.type_v.to_string(),
        r.load.n_gpu_layers.to_string(),
        r.load.n_cpu_moe.to_string(),
        "layer".into(),
        "0".into(),
        "0".into(),
        match r.ctx.flash_attn {
            FlashAttn::Auto => "-1",
            FlashAttn::On => "1",
            FlashAttn::Off => "0",
        }
        .into(),
        "auto".into(),
        "0.00".into(),
        tensor_buft_overrides(&r.load),
        "auto".into(),
        "auto".into(),
        "0".into(),
        // no_op_offload
        if r.ctx.op_offload { "0" } else { "1" }.into(),
        "0".into(),
        "1".into(),
        "0".into(),
        "0".into(),
        r.workload.n_prompt.to_string(),
        r.workload.n_gen.to_string(),
        r.workload.n_depth.to_string(),
        r.started_at.clone(),
        format!("{mean_ns:.0}"),
        format!("{sd_ns:.0}"),
        format!("{:.6}", ts.map_or(0.0, |s| s.mean)),
        format!("{:.6}", ts.map_or(0.0, |s| s.sd)),
    ]
}
