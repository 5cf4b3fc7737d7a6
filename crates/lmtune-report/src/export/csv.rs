//! CSV: the same records as JSONL, flattened to one row each (for
//! spreadsheets). Lists (raw samples, outliers, GPUs) are joined with `;`.

use std::io;

use lmtune_core::record::Record;

use super::Exporter;

/// The CSV header, in order.
pub const CSV_COLUMNS: &[&str] = &[
    "schema_version",
    "run_id",
    "scenario",
    "point_index",
    "load_group",
    "status",
    "error",
    "backend",
    "backend_version",
    "model",
    "model_sha256",
    "model_file_size_bytes",
    "model_weights_bytes",
    "model_architecture",
    "model_n_params",
    "model_quant",
    "n_gpu_layers",
    "use_mmap",
    "n_cpu_moe",
    "cpu_moe",
    "override_tensor",
    "n_ctx",
    "n_batch",
    "n_ubatch",
    "threads",
    "type_k",
    "type_v",
    "flash_attn",
    "op_offload",
    "swa_full",
    "test",
    "n_prompt",
    "n_gen",
    "n_depth",
    "warmup",
    "repetitions",
    "tokens_per_s_mean",
    "tokens_per_s_sd",
    "tokens_per_s_median",
    "tokens_per_s_ci95_low",
    "tokens_per_s_ci95_high",
    "backend_perf_tokens_per_s_mean",
    "samples_ts",
    "samples_ns",
    "outliers",
    "rss_peak_bytes",
    "rss_before_bytes",
    "n_ctx_actual",
    "n_batch_actual",
    "n_ubatch_actual",
    "model_load_seq",
    "model_load_ms",
    "started_at",
    "duration_s",
    "hostname",
    "cpu_model",
    "physical_cores",
    "logical_cores",
    "ram_bytes",
    "gpus",
    "os",
    "kernel",
    "lmtune_version",
    "lmtune_commit",
];

pub struct Csv;

impl Exporter<[Record]> for Csv {
    fn header(&self) -> io::Result<Vec<u8>> {
        row_bytes(CSV_COLUMNS.iter().map(|s| s.to_string()))
    }

    fn body(&self, records: &[Record]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        for record in records {
            out.extend(row_bytes(row(record))?);
        }
        Ok(out)
    }

    /// Rows may hold quoted newlines, so the end of the last whole row is
    /// found by parsing, not by the last newline.
    fn whole_records_len(&self, bytes: &[u8]) -> usize {
        whole_rows_len(bytes)
    }
}

/// The end of the last whole CSV row in `bytes` (shared with llama-bench CSV).
pub(super) fn whole_rows_len(bytes: &[u8]) -> usize {
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(bytes);
    let mut record = ::csv::ByteRecord::new();
    let mut good = 0;
    while let Ok(true) = reader.read_byte_record(&mut record) {
        let end = reader.position().byte();
        if end as usize <= bytes.len() && bytes[..end as usize].last() == Some(&b'\n') {
            good = end;
        }
    }
    good as usize
}

fn row_bytes(fields: impl IntoIterator<Item = String>) -> std::io::Result<Vec<u8>> {
    let mut w = ::csv::Writer::from_writer(Vec::new());
    w.write_record(fields.into_iter().collect::<Vec<_>>())?;
    w.into_inner()
        .map_err(|e| std::io::Error::other(e.to_string()))
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

fn join<T: ToString>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(";")
}

fn row(r: &Record) -> Vec<String> {
    let fp = &r.fingerprint;
    let ts = r.tokens_per_s.as_ref();
    let m = &r.measurement;
    let gpus: Vec<String> = fp
        .gpus
        .iter()
        .map(|g| format!("{} ({} MiB)", g.name, g.vram_total_bytes >> 20))
        .collect();
    let row = vec![
        r.schema_version.to_string(),
        r.run_id.clone(),
        r.scenario.clone(),
        r.point_index.to_string(),
        r.load_group.to_string(),
        r.status.as_str().to_string(),
        opt(r.error.as_ref()),
        r.backend.clone(),
        fp.backend_version.clone(),
        r.model.clone(),
        fp.model.sha256.clone(),
        fp.model.file_size_bytes.to_string(),
        fp.model.weights_bytes.to_string(),
        fp.model.architecture.clone(),
        fp.model.n_params.to_string(),
        fp.model.quant.clone(),
        r.load.n_gpu_layers.to_string(),
        r.load.use_mmap.to_string(),
        r.load.n_cpu_moe.to_string(),
        r.load.cpu_moe.to_string(),
        r.load.override_tensor.clone(),
        r.ctx.n_ctx.to_string(),
        r.ctx.n_batch.to_string(),
        r.ctx.n_ubatch.to_string(),
        r.ctx.threads.to_string(),
        r.ctx.type_k.to_string(),
        r.ctx.type_v.to_string(),
        r.ctx.flash_attn.to_string(),
        r.ctx.op_offload.to_string(),
        r.ctx.swa_full.to_string(),
        r.test.clone(),
        r.workload.n_prompt.to_string(),
        r.workload.n_gen.to_string(),
        r.workload.n_depth.to_string(),
        r.warmup.to_string(),
        r.repetitions.to_string(),
        opt(ts.map(|s| s.mean)),
        opt(ts.map(|s| s.sd)),
        opt(ts.map(|s| s.median)),
        opt(ts.map(|s| s.ci95_low)),
        opt(ts.map(|s| s.ci95_high)),
        opt(r.backend_perf_tokens_per_s.as_ref().map(|s| s.mean)),
        join(&m.samples_ts),
        join(&m.samples_ns),
        join(&r.outliers),
        opt(m.rss_peak_bytes),
        opt(m.rss_before_bytes),
        opt(m.n_ctx_actual),
        opt(m.n_batch_actual),
        opt(m.n_ubatch_actual),
        r.model_load_seq.to_string(),
        r.model_load_ms.to_string(),
        r.started_at.clone(),
        r.duration_s.to_string(),
        fp.host.hostname.clone(),
        fp.host.cpu_model.clone(),
        fp.host.physical_cores.to_string(),
        fp.host.logical_cores.to_string(),
        fp.host.ram_bytes.to_string(),
        gpus.join(";"),
        fp.host.os.clone(),
        fp.host.kernel.clone(),
        fp.lmtune_version.clone(),
        fp.lmtune_commit.clone(),
    ];
    debug_assert_eq!(row.len(), CSV_COLUMNS.len());
    row
}
