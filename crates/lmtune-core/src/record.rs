//! The saved result of one point: a versioned record, one JSON line each.
//!
//! The saved format is kept apart from in-memory planning types and carries
//! `schema_version`, so later versions can read old result files.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::fingerprint::Fingerprint;
use crate::knobs::{ContextParams, LoadParams, Test};
use crate::stats::Summary;

/// Version of the record format written by this lmtune.
pub const RESULTS_SCHEMA_VERSION: u32 = 1;

/// How a point ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Measured; samples are valid.
    Ok,
    /// The model could not be loaded with this point's load parameters.
    LoadFailed,
    /// The context could not be created or a decode failed.
    Failed,
    /// Memory ran out: llama.cpp could not allocate the model, KV cache or
    /// compute buffers.
    Oom,
    /// The worker process died while running the point.
    Crashed,
    /// The point ran past its timeout; the worker was killed.
    Timeout,
    /// Not run: an earlier point showed it would fail the same way.
    Skipped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::LoadFailed => "load_failed",
            Status::Failed => "failed",
            Status::Oom => "oom",
            Status::Crashed => "crashed",
            Status::Timeout => "timeout",
            Status::Skipped => "skipped",
        }
    }
}

/// What the worker measured at one point.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// Wall time of each timed repetition, nanoseconds.
    pub samples_ns: Vec<u64>,
    /// Tokens per second of each repetition (timed tokens / wall time).
    pub samples_ts: Vec<f64>,
    /// The same repetitions as llama.cpp's own perf counters saw them
    /// (`llama_perf_context`), tokens per second; empty if unavailable.
    pub backend_perf_ts: Vec<f64>,
    /// Peak resident set size of the worker while this point ran (bytes).
    pub rss_peak_bytes: Option<u64>,
    /// Resident set size of the worker before the point's context existed.
    pub rss_before_bytes: Option<u64>,
    /// The context's values as llama.cpp applied them (it may clamp).
    pub n_ctx_actual: Option<u32>,
    pub n_batch_actual: Option<u32>,
    pub n_ubatch_actual: Option<u32>,
    /// Warnings and errors the backend logged during the point.
    pub backend_log: Vec<String>,
    /// Cores busy while the point ran: the worker's CPU seconds (user +
    /// system, every thread) over the wall time of the point, warm-up
    /// included. Absent for a server (its CPU is another process's) and in
    /// records of older versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_busy_cores: Option<f64>,
    /// Server measurements (the `openai` backend): latencies, token counts
    /// and where they came from. With a managed server, the RSS fields above
    /// are the server's process tree, not the worker's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<Box<ServerStats>>,
    /// GPU memory of a simulated GPU (the `sim` backend only), bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub simulated_vram_bytes: Option<u64>,
    /// Where the backend put the model's layers and its buffers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Box<Placement>>,
    /// Every backend parameter the point ran with, as passed (llama.cpp:
    /// its `llama.h` field names), so that a change of default in llama.cpp,
    /// llama-cpp-2 or lmtune shows in `compare` as an environment difference.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub backend_params: BTreeMap<String, String>,
    /// What the backend logged it applied (llama.cpp: the `llama_context:`
    /// settings it prints, e.g. `n_seq_max`, `kv_unified`; `swa_full` when it
    /// made the sliding-window cache full size).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub backend_applied: BTreeMap<String, String>,
    /// llama.cpp's own dry run of the point's setting (model and context
    /// created with `no_alloc`): what each buffer type would take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<Box<DryRun>>,
    /// `n_gpu_layers = "fit"`: what llama.cpp's own fit chose for the load,
    /// and what it saw (devices, free memory, margins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llama_fit: Option<Box<crate::llama_fit::LlamaFit>>,
}

/// What llama.cpp's allocator says a setting takes, without allocating it
/// (`llama_get_memory_breakdown` of a `no_alloc` model and context: the
/// numbers llama.cpp's `--fit` works from).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DryRun {
    /// One row per buffer type (`CPU`, `CPU_Mapped`, `CPU_REPACK`, `CUDA0`, …).
    pub buffers: Vec<DryRunBuffer>,
    /// How long the dry run took (context creation and breakdown), ms.
    pub ms: f64,
    /// Why there is no breakdown, when the dry run failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One buffer type's share in a [`DryRun`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DryRunBuffer {
    pub buffer_type: String,
    /// The ggml device the buffer type belongs to (`CPU`, `CUDA0`, …).
    pub device: String,
    /// Host memory (the CPU's buffers, and pinned host buffers of a GPU).
    pub host: bool,
    /// Model weights.
    pub model_bytes: u64,
    /// The context's state: KV cache (and recurrent state).
    pub context_bytes: u64,
    /// Compute buffers.
    pub compute_bytes: u64,
}

impl DryRun {
    /// (model, context, compute) bytes over the buffers `keep` selects.
    pub fn sum(&self, keep: impl Fn(&DryRunBuffer) -> bool) -> (u64, u64, u64) {
        self.buffers
            .iter()
            .filter(|b| keep(b))
            .fold((0, 0, 0), |(m, c, k), b| {
                (m + b.model_bytes, c + b.context_bytes, k + b.compute_bytes)
            })
    }
}

/// Which device each group of layers ran on, and what the backend allocated
/// where, as the backend itself reported it (llama.cpp: its load and context
/// log lines; candle: its own placement).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Placement {
    /// Layers the backend offloaded to a GPU-like device, counting the
    /// output layer as llama.cpp does (`n_gpu_layers` as applied, 0 when
    /// the backend has no such device).
    pub layers_offloaded: u32,
    /// Offloadable layers: the blocks plus the output layer.
    pub layers_total: u32,
    /// Each group and its device, e.g. `blocks 0-20: CPU`, `output: CUDA0`.
    pub groups: Vec<String>,
    /// Buffers the backend allocated (model weights, KV cache, compute).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buffers: Vec<BufferSize>,
    /// How many pieces llama.cpp's scheduler cut the compute graph into, one
    /// per hand-over between devices (1: all on one device). Many splits at
    /// a partial offload, or any at `n_gpu_layers` 0, are op offload and
    /// device hops; llama.cpp users read them to diagnose an offload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graph_splits: Option<GraphSplits>,
    /// The KV caches llama.cpp created, as it logged them: one for most
    /// models; a global and a sliding-window one for models with
    /// sliding-window layers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kv_caches: Vec<KvCache>,
    /// Tensors placed by hand (`n_cpu_moe`, `cpu_moe`, `override_tensor`),
    /// per buffer type they went to, as llama.cpp logged each ("buffer type
    /// overridden to"); bytes from the GGUF header. Empty without overrides.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overridden: Vec<OverriddenTensors>,
}

/// The tensors llama.cpp put in one buffer type because an override named
/// them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverriddenTensors {
    /// llama.cpp's buffer type name (`CPU`, `CPU_REPACK`, `CUDA0`, …).
    pub buffer_type: String,
    pub tensors: u32,
    pub bytes: u64,
    /// Of `bytes`, the routed experts' (`*_exps`, `*_chexps`).
    pub expert_bytes: u64,
}

/// One KV cache: its cells (tokens it holds), the layers it serves, bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvCache {
    pub kind: KvCacheKind,
    pub cells: u32,
    pub layers: u32,
    pub bytes: u64,
}

/// Which layers a KV cache serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KvCacheKind {
    /// Every attention layer (a model without sliding-window layers).
    Unified,
    /// The global (full-context) layers of a sliding-window model.
    Global,
    /// The sliding-window layers: `window + n_ubatch` cells, padded to 256,
    /// unless `swa_full`.
    SlidingWindow,
}

/// Graph splits of a context's prompt (`pp`, a full micro-batch) and
/// generation (`tg`, one token) graphs, from llama.cpp's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphSplits {
    pub pp: u32,
    pub tg: u32,
}

impl Placement {
    /// Bytes of every buffer on GPU memory (names that are not host ones:
    /// `CPU`, `CPU_Mapped`, `CPU_REPACK`, `CUDA_Host`, …).
    pub fn device_bytes(&self) -> u64 {
        self.buffers
            .iter()
            .filter(|b| !is_host_buffer(&b.device))
            .map(|b| b.bytes)
            .sum()
    }
}

/// Whether a ggml buffer type lives in host memory: the CPU's own and the
/// pinned host buffers GPU backends name `<backend>_Host`.
pub fn is_host_buffer(name: &str) -> bool {
    name.starts_with("CPU") || name.ends_with("_Host")
}

/// One buffer the backend allocated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BufferSize {
    /// The buffer type's name as the backend gives it (`CPU_Mapped`, `CUDA0`, `CUDA_Host`).
    pub device: String,
    pub kind: BufferKind,
    pub bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BufferKind {
    /// Model weights.
    Model,
    /// The KV cache.
    Kv,
    /// Compute (scratch) buffers of the graph.
    Compute,
    /// The logits/embeddings output buffer.
    Output,
}

/// What a point measured against an OpenAI-compatible server.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerStats {
    /// "managed" (lmtune started the server) or "external" (base_url).
    pub mode: String,
    pub base_url: String,
    /// The model name sent with the requests.
    pub model: String,
    /// Parallel clients.
    pub concurrency: u32,
    /// "tokens" (token ids sent: exact) or "text" (calibrated).
    pub prompt_mode: String,
    /// Where each token count came from, e.g. `generated: usage.completion_tokens`.
    pub token_counts: Vec<String>,
    /// Time to first token of every timed request, milliseconds.
    pub ttft_ms: Option<Summary>,
    /// Inter-token latency over every timed request's gaps, milliseconds.
    pub itl_ms_mean: Option<f64>,
    pub itl_ms_p50: Option<f64>,
    pub itl_ms_p99: Option<f64>,
    /// Generation speed of each request (tokens after the first / time from
    /// the first to the last), tokens/s.
    pub per_client_gen_tps: Option<Summary>,
    /// The server's own timings (llama-server `timings`, LM Studio `stats`).
    pub server_prompt_tps: Option<Summary>,
    pub server_gen_tps: Option<Summary>,
    /// Times the managed server was started again during this point.
    pub server_restarts: u32,
    pub server_pid: Option<u32>,
    /// Every timed request.
    pub requests: Vec<RequestStats>,
}

/// One timed request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestStats {
    pub rep: u32,
    pub client: u32,
    /// Prompt tokens as the server counted them (usage), or as sent.
    pub prompt_tokens: u64,
    /// Generated tokens (usage.completion_tokens, else streamed chunks).
    pub gen_tokens: u64,
    /// Streamed events that carried text.
    pub chunks: u64,
    pub ttft_ms: f64,
    pub total_ms: f64,
    pub gen_tps: Option<f64>,
    pub itl_ms_p50: Option<f64>,
    pub itl_ms_p99: Option<f64>,
    pub server_prompt_tps: Option<f64>,
    pub server_gen_tps: Option<f64>,
    /// Prompt tokens the server processed (timings.prompt_n) and reused from
    /// its cache (timings.cache_n).
    pub server_prompt_n: Option<u64>,
    pub server_cache_n: Option<u64>,
}

/// GPU memory around one point, from NVML.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VramUsage {
    /// Peak memory NVML attributed to the worker process, sampled while the
    /// point ran (summed over GPUs); `None` when the driver does not report
    /// per-process usage.
    pub worker_peak_bytes: Option<u64>,
    /// Device memory in use (all processes, summed over GPUs) before and after.
    pub device_used_before_bytes: u64,
    pub device_used_after_bytes: u64,
    /// Samples taken while the point ran.
    pub samples: u32,
}

impl VramUsage {
    /// What the point used: the worker's peak, or else the device's growth.
    pub fn used_bytes(&self) -> u64 {
        self.worker_peak_bytes.unwrap_or(
            self.device_used_after_bytes
                .saturating_sub(self.device_used_before_bytes),
        )
    }
}

/// What lmtune's models predicted for a point before it ran, kept next to
/// the measurement so every prediction's error can be read off the results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointPrediction {
    /// Which model made it (the planner's structural model with its default
    /// constants, or a fitted calibration).
    pub source: String,
    /// Expected peak RSS of the worker (host allocations minus buffers a
    /// one-output decode never touches).
    pub rss_bytes: u64,
    /// Host bytes allocated (what decides host out-of-memory).
    pub host_alloc_bytes: u64,
    /// The part of `host_alloc_bytes` llama.cpp allocates as buffers
    /// (weights, repacked weights, KV cache, compute), without the process's
    /// own overhead: what its dry run (`Measurement::dry_run`) answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_buffers_bytes: Option<u64>,
    /// GPU bytes allocated; 0 without offload.
    pub vram_bytes: u64,
    /// The part of `vram_bytes` the backend allocates as buffers (weights,
    /// KV cache, compute: what llama.cpp logs, `Placement::device_bytes`),
    /// without the fixed context overhead; absent without offload and in
    /// records of older versions.
    #[serde(default)]
    pub vram_buffers_bytes: Option<u64>,
    /// Generation speed, for tg tests.
    pub tg_tokens_per_s: Option<f64>,
    /// Bytes read from memory per generated token (weights + KV at the
    /// test's depth), for tg tests: the roofline's numerator.
    #[serde(default)]
    pub tg_bytes_per_token: Option<u64>,
}

/// A stable key for "the same point": knobs, workload and model file. Used
/// to match a resumed run's points to the records it already has.
pub fn point_key(
    load: &LoadParams,
    ctx: &ContextParams,
    test: &Test,
    model_sha256: &str,
) -> String {
    serde_json::to_string(&(load, ctx, test, model_sha256)).expect("plain data serializes")
}

impl Record {
    pub fn point_key(&self) -> String {
        point_key(
            &self.load,
            &self.ctx,
            &self.workload,
            &self.fingerprint.model.sha256,
        )
    }
}

/// One line of `results.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub schema_version: u32,
    /// Identifies the run (the results directory name).
    pub run_id: String,
    pub scenario: String,
    /// sha256 of the scenario file's text (shards of one scenario share
    /// it); absent in records of older versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario_sha256: Option<String>,
    /// The part of the scenario this run measured (`run --shard I/N`);
    /// absent for a whole run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<crate::shard::Shard>,
    pub point_index: usize,
    pub load_group: usize,
    pub status: Status,
    /// Why the point did not succeed.
    pub error: Option<String>,
    pub backend: String,
    pub model: String,
    #[serde(flatten)]
    pub load: LoadParams,
    #[serde(flatten)]
    pub ctx: ContextParams,
    pub test: String,
    #[serde(flatten)]
    pub workload: Test,
    pub warmup: u32,
    /// Number of timed repetitions (= `samples_ns.len()`).
    pub repetitions: usize,
    /// Summary of `samples_ts`; absent when the point failed.
    pub tokens_per_s: Option<Summary>,
    /// Summary of `backend_perf_ts`.
    pub backend_perf_tokens_per_s: Option<Summary>,
    /// Indices of samples labelled as outliers (median/MAD); kept in the samples.
    pub outliers: Vec<usize>,
    /// Which model load of the worker served this point (1 = first load);
    /// all points of a load group share it.
    pub model_load_seq: u64,
    /// How long that model load took, milliseconds.
    pub model_load_ms: f64,
    pub started_at: String,
    pub duration_s: f64,
    /// GPU memory while the point ran (NVML); absent without an NVIDIA GPU.
    #[serde(default)]
    pub vram: Option<VramUsage>,
    /// The prediction made before the point ran.
    #[serde(default)]
    pub prediction: Option<PointPrediction>,
    #[serde(flatten)]
    pub measurement: Measurement,
    pub fingerprint: Fingerprint,
}
