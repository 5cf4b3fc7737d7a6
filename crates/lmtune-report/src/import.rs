//! Reading results from wherever they come from, detected by content: an
//! lmtune results directory or JSONL file, or llama-bench's JSON, JSONL or
//! CSV output (`llama-bench -o json|jsonl|csv`), which become lmtune records
//! so that `compare` (and later `fit` and `report`) treat them alike.
//!
//! llama-bench has no per-point fingerprint of the machine beyond
//! `cpu_info`/`gpu_info`, no model hash, and its CSV carries no raw samples
//! and no repetition count: those records say so (`backend = "llama-bench"`,
//! empty sha256, no samples) instead of inventing values.

use std::path::{Path, PathBuf};

use lmtune_core::fingerprint::{Fingerprint, GpuInfo, HostInfo, LlamaCppBuild, ModelFingerprint};
use lmtune_core::knobs::{ContextParams, FlashAttn, KvType, LoadParams, Test};
use lmtune_core::record::{Measurement, Record, Status, RESULTS_SCHEMA_VERSION};
use lmtune_core::stats::{outliers, Summary};
use serde_json::Value;

use crate::jsonl::{read_jsonl, ReadError};

/// What a results file turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceFormat {
    Lmtune,
    LlamaBenchJson,
    LlamaBenchJsonl,
    LlamaBenchCsv,
}

/// llama-bench writes `n_gpu_layers = -1` for "auto"; lmtune knobs are
/// unsigned, so it is recorded as this value (any value above a model's
/// layer count means "all" to llama.cpp).
pub const LLAMA_BENCH_AUTO_NGL: u32 = 999;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a results file lmtune knows (expected an lmtune results directory or results.jsonl, or llama-bench output from -o json, jsonl or csv)")]
    Unknown { path: PathBuf },
    #[error("{path}: {what}")]
    Bad { path: PathBuf, what: String },
}

/// Loads records from a results directory (its `results.jsonl`), an lmtune
/// JSONL file, or a llama-bench JSON/JSONL/CSV file.
pub fn load_results(path: &Path) -> Result<(SourceFormat, Vec<Record>), ImportError> {
    let file = if path.is_dir() {
        path.join("results.jsonl")
    } else {
        path.to_path_buf()
    };
    let text = std::fs::read_to_string(&file).map_err(|source| ImportError::Io {
        path: file.clone(),
        source,
    })?;
    let trimmed = text.trim_start();
    let bad = |what: String| ImportError::Bad {
        path: file.clone(),
        what,
    };
    if trimmed.starts_with('[') {
        let rows: Vec<Value> =
            serde_json::from_str(trimmed).map_err(|e| bad(format!("invalid JSON: {e}")))?;
        if rows.first().is_some_and(is_llama_bench) {
            let records = rows
                .iter()
                .enumerate()
                .map(|(i, v)| from_llama_bench(v, i, &file))
                .collect::<Result<_, _>>()?;
            return Ok((SourceFormat::LlamaBenchJson, records));
        }
        return Err(ImportError::Unknown { path: file });
    }
    if trimmed.starts_with('{') {
        let first: Value = serde_json::from_str(trimmed.lines().next().unwrap_or(""))
            .map_err(|e| bad(format!("invalid JSON line: {e}")))?;
        if first.get("schema_version").is_some() {
            return Ok((SourceFormat::Lmtune, read_jsonl(&file)?));
        }
        if is_llama_bench(&first) {
            let mut records = Vec::new();
            for (i, line) in text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
                let v: Value = serde_json::from_str(line)
                    .map_err(|e| bad(format!("line {}: invalid JSON: {e}", i + 1)))?;
                records.push(from_llama_bench(&v, i, &file)?);
            }
            return Ok((SourceFormat::LlamaBenchJsonl, records));
        }
        return Err(ImportError::Unknown { path: file });
    }
    if trimmed.starts_with("build_commit,") || trimmed.starts_with("\"build_commit\",") {
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let headers = reader
            .headers()
            .map_err(|e| bad(format!("invalid CSV: {e}")))?
            .clone();
        let mut records = Vec::new();
        for (i, row) in reader.records().enumerate() {
            let row = row.map_err(|e| bad(format!("CSV row {}: {e}", i + 2)))?;
            // CSV values are all strings; numbers are parsed where the JSON has numbers.
            let mut obj = serde_json::Map::new();
            for (h, v) in headers.iter().zip(row.iter()) {
                let value = v
                    .parse::<i64>()
                    .map(Value::from)
                    .or_else(|_| v.parse::<f64>().map(Value::from))
                    .unwrap_or_else(|_| Value::from(v));
                obj.insert(h.to_string(), value);
            }
            records.push(from_llama_bench(&Value::Object(obj), i, &file)?);
        }
        return Ok((SourceFormat::LlamaBenchCsv, records));
    }
    Err(ImportError::Unknown { path: file })
}

/// llama-bench's `tensor_buft_overrides` ("none", or `pattern=BUFT` joined
/// by `;`) as (override_tensor, cpu_moe): a last entry that is `--cpu-moe`'s
/// pattern on the CPU (how lmtune writes cpu_moe) reads back as cpu_moe.
fn overrides_of(column: &str) -> (String, bool) {
    let column = column.trim();
    if column.is_empty() || column == "none" {
        return (String::new(), false);
    }
    let mut entries: Vec<&str> = column.split(';').collect();
    let cpu_moe_entry = format!("{}=CPU", lmtune_core::knobs::EXPS);
    let cpu_moe = entries.last() == Some(&cpu_moe_entry.as_str());
    if cpu_moe {
        entries.pop();
    }
    (entries.join(";"), cpu_moe)
}

fn is_llama_bench(v: &Value) -> bool {
    v.get("build_commit").is_some() && v.get("avg_ts").is_some()
}

/// One llama-bench record (a JSON object; CSV rows are converted to one)
/// as an lmtune record. Required columns are checked in this order, and the
/// first missing or bad one is the error: n_prompt, n_gen, n_depth (if
/// present), n_gpu_layers, avg_ts (without samples), n_batch, n_ubatch,
/// n_threads, type_k, type_v.
fn from_llama_bench(v: &Value, index: usize, path: &Path) -> Result<Record, ImportError> {
    let row = BenchRow { v, index, path };
    let test = row.test()?;
    let ngl = row.int("n_gpu_layers")?;
    let (samples_ns, samples_ts) = row.samples();
    let tokens_per_s = row.tokens_per_s(&samples_ts)?;
    let model_file = row.model_file();
    Ok(Record {
        schema_version: RESULTS_SCHEMA_VERSION,
        run_id: path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default(),
        scenario: "llama-bench".into(),
        scenario_sha256: None,
        shard: None,
        point_index: index,
        load_group: 0,
        status: Status::Ok,
        error: None,
        backend: "llama-bench".into(),
        model: model_file.clone(),
        load: row.load(ngl),
        ctx: row.context(&test)?,
        test: test.label(),
        workload: test,
        warmup: 1,
        repetitions: samples_ts.len(),
        outliers: outliers(&samples_ts),
        tokens_per_s,
        backend_perf_tokens_per_s: None,
        model_load_seq: 0,
        model_load_ms: 0.0,
        started_at: row.text("test_time"),
        duration_s: samples_ns.iter().sum::<u64>() as f64 / 1e9,
        vram: None,
        prediction: None,
        measurement: Measurement {
            samples_ns,
            samples_ts,
            ..Default::default()
        },
        fingerprint: row.fingerprint(model_file),
    })
}

/// A llama-bench record being read: its columns, and where it came from for
/// error messages.
struct BenchRow<'a> {
    v: &'a Value,
    index: usize,
    path: &'a Path,
}

impl BenchRow<'_> {
    fn bad(&self, what: String) -> ImportError {
        ImportError::Bad {
            path: self.path.to_path_buf(),
            what: format!("llama-bench record {}: {what}", self.index + 1),
        }
    }

    /// An integer column; a bool counts as 0 or 1.
    fn int(&self, key: &str) -> Result<i64, ImportError> {
        match self.v.get(key) {
            Some(Value::Number(n)) => n
                .as_i64()
                .ok_or_else(|| self.bad(format!("`{key}` is not an integer"))),
            Some(Value::Bool(b)) => Ok(i64::from(*b)),
            _ => Err(self.bad(format!("`{key}` is missing"))),
        }
    }

    fn uint(&self, key: &str) -> Result<u32, ImportError> {
        u32::try_from(self.int(key)?).map_err(|_| self.bad(format!("`{key}` is out of range")))
    }

    /// A column as text (a non-string as its JSON); missing: empty.
    fn text(&self, key: &str) -> String {
        self.v
            .get(key)
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| x.to_string())
            })
            .unwrap_or_default()
    }

    fn kv(&self, key: &str) -> Result<KvType, ImportError> {
        self.text(key)
            .parse()
            .map_err(|e: lmtune_core::knobs::UnknownKvType| self.bad(format!("`{key}`: {e}")))
    }

    /// The test; n_depth is optional (older llama-bench has none).
    fn test(&self) -> Result<Test, ImportError> {
        Ok(Test {
            n_prompt: self.uint("n_prompt")?,
            n_gen: self.uint("n_gen")?,
            n_depth: self
                .v
                .get("n_depth")
                .map_or(Ok(0), |_| self.uint("n_depth"))?,
            concurrency: 1,
        })
    }

    /// `flash_attn`: a bool, or 1/0 (llama-bench's -1 and anything else: auto).
    fn flash_attn(&self) -> FlashAttn {
        match self.v.get("flash_attn") {
            Some(Value::Bool(true)) => FlashAttn::On,
            Some(Value::Bool(false)) => FlashAttn::Off,
            Some(Value::Number(n)) => match n.as_i64() {
                Some(1) => FlashAttn::On,
                Some(0) => FlashAttn::Off,
                _ => FlashAttn::Auto,
            },
            _ => FlashAttn::Auto,
        }
    }

    /// llama-bench's `no_op_offload` (0 or false: op offload on, its default).
    fn op_offload(&self) -> bool {
        !matches!(self.v.get("no_op_offload"), Some(Value::Bool(true)))
            && self.v.get("no_op_offload").and_then(Value::as_i64) != Some(1)
    }

    /// The raw samples (durations in ns, rates in tokens/s); none in CSV.
    fn samples(&self) -> (Vec<u64>, Vec<f64>) {
        let samples_ns: Vec<u64> = self
            .v
            .get("samples_ns")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default();
        let samples_ts: Vec<f64> = self
            .v
            .get("samples_ts")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default();
        (samples_ns, samples_ts)
    }

    /// The rate's summary: from the samples, or without them (CSV) from
    /// `avg_ts` and `stddev_ts` alone, with no sample count (`n = 0`).
    fn tokens_per_s(&self, samples_ts: &[f64]) -> Result<Option<Summary>, ImportError> {
        if !samples_ts.is_empty() {
            return Ok(Summary::of(samples_ts));
        }
        let mean = self
            .v
            .get("avg_ts")
            .and_then(Value::as_f64)
            .ok_or_else(|| self.bad("`avg_ts` is missing".into()))?;
        let sd = self
            .v
            .get("stddev_ts")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        Ok(Some(Summary {
            n: 0,
            mean,
            sd,
            median: mean,
            min: mean,
            max: mean,
            ci95_low: mean,
            ci95_high: mean,
        }))
    }

    /// The model's file name, without llama-bench's directory.
    fn model_file(&self) -> String {
        let model_path = self.text("model_filename");
        Path::new(&model_path)
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or(model_path.clone())
    }

    /// Load parameters: n_gpu_layers (-1, "auto", as
    /// [`LLAMA_BENCH_AUTO_NGL`]), and llama-bench's -ncmoe and -ot.
    fn load(&self, ngl: i64) -> LoadParams {
        let (override_tensor, cpu_moe) = overrides_of(&self.text("tensor_buft_overrides"));
        LoadParams {
            n_cpu_moe: self.v.get("n_cpu_moe").and_then(Value::as_u64).unwrap_or(0) as u32,
            cpu_moe,
            override_tensor,
            ..LoadParams::new(u32::try_from(ngl).unwrap_or(LLAMA_BENCH_AUTO_NGL), true)
        }
    }

    fn context(&self, test: &Test) -> Result<ContextParams, ImportError> {
        Ok(ContextParams {
            // llama-bench sizes the context to the test.
            n_ctx: test.n_prompt + test.n_gen + test.n_depth,
            n_batch: self.uint("n_batch")?,
            n_ubatch: self.uint("n_ubatch")?,
            threads: self.uint("n_threads")?,
            type_k: self.kv("type_k")?,
            type_v: self.kv("type_v")?,
            flash_attn: self.flash_attn(),
            op_offload: self.op_offload(),
            // llama-bench always runs with swa_full off.
            swa_full: false,
        })
    }

    /// What llama-bench says of the machine and model: CPU and GPU names,
    /// build, backends, model size and type; everything it does not record
    /// is left empty or zero.
    fn fingerprint(&self, model_file: String) -> Fingerprint {
        Fingerprint {
            host: HostInfo {
                hostname: String::new(),
                cpu_model: self.text("cpu_info"),
                physical_cores: 0,
                logical_cores: 0,
                ram_bytes: 0,
                os: String::new(),
                kernel: String::new(),
                arch: String::new(),
            },
            gpus: self.gpus(),
            gpu_note: None,
            backend: "llama-bench".into(),
            backend_version: LlamaCppBuild {
                number: self.int("build_number").unwrap_or(0).max(0) as u64,
                commit: self.text("build_commit"),
            }
            .label(),
            backend_build: self.text("backends"),
            backend_devices: Vec::new(),
            lmtune_version: String::new(),
            lmtune_commit: String::new(),
            model: self.model_fingerprint(model_file),
            host_bandwidth: None,
            host_bandwidth_by_threads: Vec::new(),
        }
    }

    /// The GPUs named in `gpu_info` (comma-separated), by name only.
    fn gpus(&self) -> Vec<GpuInfo> {
        self.text("gpu_info")
            .split(',')
            .map(str::trim)
            .filter(|g| !g.is_empty())
            .enumerate()
            .map(|(i, name)| GpuInfo {
                index: i as u32,
                name: name.to_string(),
                vram_total_bytes: 0,
                vram_free_bytes: 0,
                driver_version: String::new(),
                uuid: String::new(),
                theoretical_bandwidth_gb_per_s: None,
                max_sm_clock_mhz: None,
                max_memory_clock_mhz: None,
                pcie_link: None,
            })
            .collect()
    }

    /// The model: its `model_type` ("llama 8B Q4_K - Medium") gives the
    /// architecture (first word) and quant (last word); no hash, no layers.
    fn model_fingerprint(&self, file_name: String) -> ModelFingerprint {
        let model_type = self.text("model_type");
        let mut words = model_type.split_whitespace();
        ModelFingerprint {
            file_name,
            file_size_bytes: 0,
            weights_bytes: self.int("model_size").unwrap_or(0).max(0) as u64,
            sha256: String::new(),
            architecture: words.next().unwrap_or("").to_string(),
            n_params: self.int("model_n_params").unwrap_or(0).max(0) as u64,
            quant: model_type
                .split_whitespace()
                .last()
                .unwrap_or("")
                .to_string(),
            n_layer: 0,
            n_ctx_train: 0,
            synthetic: false,
            active_weights_bytes: None,
        }
    }
}
