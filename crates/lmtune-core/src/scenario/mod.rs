//! Scenario files (TOML, schema 1): parse, then validate, then expand.
//!
//! ```toml
//! [model]
//! path = "../models/SmolLM2-135M-Instruct.Q4_1.gguf"   # relative to this file
//!
//! [backend]
//! kind = "llama-cpp"
//!
//! [sweep]                 # each axis: number, list, { from, to, step }, keyword
//! n_gpu_layers = "all"    # default "all" (= n_layer + 1); "fit": llama.cpp's fit decides
//! n_ctx = [1024]          # default: just what each test needs (as llama-bench)
//! n_batch = [64, 512]     # default 2048
//! n_ubatch = [64]         # default 512
//! threads = [1, 2]        # default "physical"
//! type_k = ["f16"]        # default f16; also type_v
//! flash_attn = ["auto"]   # auto | on | off | true | false
//! op_offload = [true]     # llama.cpp's op offload (llama-bench -nopo); default true
//! swa_full = [false]      # full-size sliding-window cache (llama-server --swa-full); default false
//! n_cpu_moe = [0, 8]      # MoE: routed experts of blocks 0..N on the CPU (--n-cpu-moe); or "all"
//! cpu_moe = [false]       # MoE: every block's routed experts on the CPU (--cpu-moe)
//! override_tensor = ['blk\.[0-3]\.ffn_.*_exps=CPU', "none"]   # llama-bench -ot
//!
//! [workload]              # pp tests for each n_prompt, tg tests for each n_gen
//! n_prompt = [512]
//! n_gen = [128]
//! n_depth = [0]
//!
//! [measure]
//! repetitions = 5         # or "auto" (repeat until the 95% CI is narrow)
//! warmup = 1
//! ```
//!
//! [`Scenario::parse`] checks syntax, keys and types; [`Scenario::plan`]
//! checks the values against the model file and the machine and expands the
//! cartesian product into [`Point`]s, ordered so that points sharing a loaded
//! model run together.
//!
//! Parsing runs in stages, one file each: `raw.rs` (TOML, `schema`,
//! `[model]`), `backend.rs` (`[backend]` into a [`BackendSpec`], whose
//! methods in `spec.rs` answer what depends on the backend; `openai.rs` for
//! its server),
//! `axes.rs` (every axis through one reader; values in `axis.rs`),
//! `measure.rs` (`[measure]`, `[budget]`), `validate.rs` (what a backend
//! does not have). Planning: `plan.rs` (checks against the model and the
//! machine), `expand.rs` (the cartesian product and its one check).

mod axes;
mod axis;
mod backend;
mod error;
mod expand;
mod measure;
mod openai;
mod plan;
mod raw;
mod spec;
mod validate;

pub use axis::{NGpuLayers, Threads};
pub use error::ScenarioError;
pub use plan::{MachineFacts, Plan, Point};
pub use spec::{
    BackendKind, BackendSpec, CandleConfig, LlamaCppConfig, LoadActivity, LoadGrouping,
    OffloadDevice, TensorPlacement,
};

use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::knobs::{FlashAttn, KvType};
use error::ErrorSite;

/// The scenario schema this version reads.
pub const SCENARIO_SCHEMA: i64 = 1;

/// How many times each point is measured.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum Repetitions {
    Fixed {
        count: u32,
    },
    /// Repeat until the 95% CI half-width is under `ci_target` × mean, between
    /// `min` and `max` repetitions.
    Auto {
        min: u32,
        max: u32,
        ci_target: f64,
    },
}

impl Repetitions {
    /// The most repetitions a point may take (for time estimates).
    pub fn max(&self) -> u32 {
        match *self {
            Repetitions::Fixed { count } => count,
            Repetitions::Auto { max, .. } => max,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MeasureSpec {
    pub repetitions: Repetitions,
    pub warmup: u32,
    /// Per-point time limit; `None`: scaled from the workload ([`MeasureSpec::point_timeout_s`]).
    pub timeout_s: Option<f64>,
    /// Time limit for loading the model.
    pub load_timeout_s: f64,
    /// Address-space limit for the worker (RLIMIT_AS), bytes; `None`: unlimited.
    pub worker_memory_limit_bytes: Option<u64>,
}

impl MeasureSpec {
    /// The time a point may take before its worker is killed: the explicit
    /// `timeout_s`, or 60 s plus a quarter second per token processed
    /// (warm-up and every repetition), which is lenient enough for 70B
    /// models on CPU and still ends a hang.
    pub fn point_timeout_s(&self, test: &crate::knobs::Test) -> f64 {
        self.timeout_s.unwrap_or_else(|| {
            let runs = f64::from(self.repetitions.max() + self.warmup);
            60.0 + 0.25 * test.tokens_in_context() as f64 * runs
        })
    }
}

/// An axis with the place it was written (for errors).
#[derive(Debug, Clone)]
pub struct Axis<T> {
    pub values: Vec<T>,
    pub span: Option<Range<usize>>,
    /// The user wrote it (as opposed to a default).
    pub explicit: bool,
}

/// A parsed scenario whose keys and types are right; values that depend on
/// the model or the machine are checked by [`Scenario::plan`].
#[derive(Debug, Clone)]
pub struct Scenario {
    pub file: PathBuf,
    pub source: String,
    pub name: String,
    pub description: Option<String>,
    pub model_path: PathBuf,
    pub model_span: Option<Range<usize>>,
    pub use_mmap: bool,
    /// Where `model.use_mmap` is written, when it is.
    pub use_mmap_span: Option<Range<usize>>,
    /// The backend and its settings (an openai server's `model_path` filled in).
    pub backend: BackendSpec,
    /// Where `[backend.openai] command` is written, for errors.
    pub openai_command_span: Option<Range<usize>>,
    pub n_gpu_layers: Axis<NGpuLayers>,
    /// `None` values: as many as each test needs.
    pub n_ctx: Option<Axis<u32>>,
    pub n_batch: Axis<u32>,
    pub n_ubatch: Axis<u32>,
    pub threads: Axis<Threads>,
    pub type_k: Axis<KvType>,
    pub type_v: Axis<KvType>,
    pub flash_attn: Axis<FlashAttn>,
    /// llama.cpp's op offload: on (its default) and/or off.
    pub op_offload: Axis<bool>,
    /// llama.cpp's full-size sliding-window cache: off (llama-bench's and
    /// llama-server's default) and/or on.
    pub swa_full: Axis<bool>,
    /// llama.cpp's `--n-cpu-moe`: routed experts of blocks 0..N in host memory.
    pub n_cpu_moe: Axis<NGpuLayers>,
    /// llama.cpp's `--cpu-moe`: every block's routed experts in host memory.
    pub cpu_moe: Axis<bool>,
    /// llama-bench's `-ot`, one canonical text per value ("" for none).
    pub override_tensor: Axis<String>,
    /// Parallel clients per point (servers only).
    pub concurrency: Axis<u32>,
    pub skip_invalid: bool,
    pub n_prompt: Axis<u32>,
    pub n_gen: Axis<u32>,
    pub n_depth: Axis<u32>,
    pub measure: MeasureSpec,
    /// `[budget] vram`: the tuner's default `--vram`; `lmtune run` flags the
    /// points that use more.
    pub vram_budget_bytes: Option<u64>,
}

impl Scenario {
    /// Reads and parses a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let source = std::fs::read_to_string(path).map_err(|e| ScenarioError {
            file: path.to_path_buf(),
            line: None,
            key: String::new(),
            problem: format!("cannot read the scenario file: {e}"),
            fix: "check the path (scenarios live in scenarios/, e.g. scenarios/quickstart.toml)"
                .into(),
        })?;
        Scenario::parse(path, &source)
    }

    /// Parses scenario text; `file` names it in errors and anchors relative
    /// model paths. The stages run in this order, so the first error of a
    /// file is always the same one: raw TOML and `schema`, `[model]`,
    /// `[backend]`, `[sweep]`, `[workload]`, the candle knobs, `[measure]`,
    /// `[budget]`.
    pub fn parse(file: &Path, source: &str) -> Result<Scenario, ScenarioError> {
        let site = ErrorSite { file, source };
        let raw = raw::RawScenario::read(&site)?;
        let model = raw::ModelSection::read(&site, raw.model)?;
        let mut backend = backend::Backend::read(&site, raw.backend)?;
        let mut sweep = axes::Sweep::read(&site, raw.sweep, &backend.spec)?;
        let workload = axes::Workload::read(&site, raw.workload)?;

        let use_mmap_span = model.use_mmap.as_ref().map(|m| m.span());
        let mut use_mmap = model.use_mmap.is_none_or(|m| m.into_inner());
        if backend.spec.has_fixed_cache_and_attention() {
            validate::candle(&site, &mut sweep, &mut use_mmap, use_mmap_span.clone())?;
        }

        let measure = measure::parse_measure(&site, raw.measure)?;
        let vram_budget_bytes = measure::parse_budget(&site, &raw.budget)?;
        let name = raw.name.unwrap_or_else(|| {
            file.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "scenario".into())
        });
        if let Some(openai) = backend.spec.openai_mut() {
            openai.model_path = Some(model.path.clone());
        }
        Ok(Scenario {
            file: file.to_path_buf(),
            source: source.to_string(),
            name,
            description: raw.description,
            model_path: model.path,
            model_span: model.span,
            use_mmap,
            use_mmap_span,
            backend: backend.spec,
            openai_command_span: backend.openai_command_span,
            n_gpu_layers: sweep.n_gpu_layers,
            n_ctx: sweep.n_ctx,
            n_batch: sweep.n_batch,
            n_ubatch: sweep.n_ubatch,
            threads: sweep.threads,
            type_k: sweep.type_k,
            type_v: sweep.type_v,
            flash_attn: sweep.flash_attn,
            op_offload: sweep.op_offload,
            swa_full: sweep.swa_full,
            n_cpu_moe: sweep.n_cpu_moe,
            cpu_moe: sweep.cpu_moe,
            override_tensor: sweep.override_tensor,
            concurrency: sweep.concurrency,
            skip_invalid: sweep.skip_invalid,
            n_prompt: workload.n_prompt,
            n_gen: workload.n_gen,
            n_depth: workload.n_depth,
            measure,
            vram_budget_bytes,
        })
    }

    pub(crate) fn site(&self) -> ErrorSite<'_> {
        ErrorSite {
            file: &self.file,
            source: &self.source,
        }
    }
}

#[cfg(test)]
mod tests;
