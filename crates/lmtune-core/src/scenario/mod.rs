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
//! n_gpu_layers = "all"    # default "all" (= n_layer + 1)
//! n_ctx = [1024]          # default: just what each test needs (as llama-bench)
//! n_batch = [64, 512]     # default 2048
//! n_ubatch = [64]         # default 512
//! threads = [1, 2]        # default "physical"
//! type_k = ["f16"]        # default f16; also type_v
//! flash_attn = ["auto"]   # auto | on | off | true | false
//! op_offload = [true]     # llama.cpp's op offload (llama-bench -nopo); default true
//! swa_full = [false]      # full-size sliding-window cache (llama-server --swa-full); default false
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

mod axis;
mod error;
mod plan;

pub use axis::IntOrKeyword;
pub use error::ScenarioError;
pub use plan::{MachineFacts, Plan, Point};

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::{Spanned, Value};

use crate::knobs::{FlashAttn, KvType};
use crate::openai::{OpenAiConfig, PromptMode};
use error::ErrorSite;

/// The scenario schema this version reads.
pub const SCENARIO_SCHEMA: i64 = 1;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    schema: Option<Spanned<i64>>,
    name: Option<String>,
    description: Option<String>,
    model: Option<Spanned<RawModel>>,
    backend: Option<Spanned<RawBackend>>,
    #[serde(default)]
    sweep: RawSweep,
    #[serde(default)]
    workload: RawWorkload,
    #[serde(default)]
    measure: RawMeasure,
    #[serde(default)]
    budget: RawBudget,
}

/// `[budget]`: the memory a user's machine has, declared so a bigger test
/// machine is held to it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBudget {
    /// e.g. "8GiB": GPU memory of the machine being planned for.
    vram: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    path: Option<Spanned<String>>,
    use_mmap: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBackend {
    kind: Spanned<String>,
    /// The declared hardware of `kind = "sim"`.
    sim: Option<Spanned<crate::sim::SimProfile>>,
    /// The server of `kind = "openai"`.
    openai: Option<Spanned<RawOpenAi>>,
    /// Settings of `kind = "candle"`.
    candle: Option<Spanned<RawCandle>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCandle {
    offload_device: Option<Spanned<String>>,
}

/// Settings of the candle backend (`[backend.candle]`), passed to its worker as JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CandleConfig {
    /// Where the blocks `n_gpu_layers` offloads go: `cuda:N` (default
    /// `cuda:0`), or `cpu`: a second CPU device, which runs the same split
    /// logic without a GPU (for testing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offload_device: Option<String>,
}

/// Where candle puts the blocks `n_gpu_layers` offloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffloadDevice {
    /// A second CPU device (the split without a GPU).
    Cpu,
    Cuda(usize),
}

impl CandleConfig {
    /// `offload_device`, parsed (default `cuda:0`); the error is the problem and its fix.
    pub fn offload(&self) -> Result<OffloadDevice, (String, String)> {
        match self.offload_device.as_deref() {
            None | Some("cuda") => Ok(OffloadDevice::Cuda(0)),
            Some("cpu") => Ok(OffloadDevice::Cpu),
            Some(d) => d
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(OffloadDevice::Cuda)
                .ok_or_else(|| (
                    format!("offload_device = {d:?} is not a device"),
                    "use \"cuda:0\" (a GPU) or \"cpu\" (a second CPU device, to test the split without a GPU)".into(),
                )),
        }
    }

    /// Checks `offload_device`; the error is the problem and its fix.
    pub fn check(&self) -> Result<(), (String, String)> {
        self.offload().map(|_| ())
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOpenAi {
    base_url: Option<Spanned<String>>,
    command: Option<Spanned<Vec<String>>>,
    model: Option<String>,
    api_key_env: Option<Spanned<String>>,
    ready_timeout_s: Option<Spanned<Value>>,
    stall_timeout_s: Option<Spanned<Value>>,
    connect_timeout_s: Option<Spanned<Value>>,
    prompt: Option<Spanned<String>>,
}

type AxisValue = Option<Spanned<Value>>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSweep {
    n_gpu_layers: AxisValue,
    n_ctx: AxisValue,
    n_batch: AxisValue,
    n_ubatch: AxisValue,
    threads: AxisValue,
    type_k: AxisValue,
    type_v: AxisValue,
    flash_attn: AxisValue,
    /// llama.cpp's op offload (llama-cpp only).
    op_offload: AxisValue,
    /// llama.cpp's full-size sliding-window cache (llama-cpp, managed servers).
    swa_full: AxisValue,
    /// Parallel clients (servers only).
    concurrency: AxisValue,
    /// Drop combinations that cannot run (n_ubatch > n_batch, a context too
    /// small for a test) instead of rejecting the scenario.
    skip_invalid: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorkload {
    n_prompt: AxisValue,
    n_gen: AxisValue,
    n_depth: AxisValue,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMeasure {
    repetitions: Option<Spanned<Value>>,
    warmup: Option<Spanned<i64>>,
    min_repetitions: Option<Spanned<i64>>,
    max_repetitions: Option<Spanned<i64>>,
    /// Target relative half-width of the 95% CI for `repetitions = "auto"`.
    ci_target: Option<Spanned<f64>>,
    timeout_s: Option<Spanned<Value>>,
    load_timeout_s: Option<Spanned<Value>>,
    /// e.g. "2GiB": the worker's address space is limited to this (RLIMIT_AS).
    worker_memory_limit: Option<Spanned<String>>,
}

/// Which backend runs the points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackendKind {
    LlamaCpp,
    /// Deterministic, simulated numbers from a declared profile.
    Sim,
    /// An OpenAI-compatible HTTP server (llama-server, LM Studio, Ollama).
    #[serde(rename = "openai")]
    OpenAi,
    /// candle (pure Rust), in process.
    Candle,
}

impl BackendKind {
    /// The backend a scenario or a flag names (`llama.cpp` and `llamacpp`
    /// are accepted for `llama-cpp`).
    pub fn from_name(name: &str) -> Option<BackendKind> {
        match name {
            "llama-cpp" | "llama.cpp" | "llamacpp" => Some(BackendKind::LlamaCpp),
            "sim" => Some(BackendKind::Sim),
            "openai" => Some(BackendKind::OpenAi),
            "candle" => Some(BackendKind::Candle),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::LlamaCpp => "llama-cpp",
            BackendKind::Sim => "sim",
            BackendKind::OpenAi => "openai",
            BackendKind::Candle => "candle",
        }
    }
}

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
    pub backend: BackendKind,
    /// The profile of the `sim` backend.
    pub sim: Option<crate::sim::SimProfile>,
    /// The server settings of the `openai` backend (`model_path` filled in).
    pub openai: Option<OpenAiConfig>,
    /// Where `[backend.openai] command` is written, for errors.
    pub openai_command_span: Option<Range<usize>>,
    /// The settings of the `candle` backend.
    pub candle: Option<CandleConfig>,
    pub n_gpu_layers: Axis<IntOrKeyword>,
    /// `None` values: as many as each test needs.
    pub n_ctx: Option<Axis<u32>>,
    pub n_batch: Axis<u32>,
    pub n_ubatch: Axis<u32>,
    pub threads: Axis<IntOrKeyword>,
    pub type_k: Axis<KvType>,
    pub type_v: Axis<KvType>,
    pub flash_attn: Axis<FlashAttn>,
    /// llama.cpp's op offload: on (its default) and/or off.
    pub op_offload: Axis<bool>,
    /// llama.cpp's full-size sliding-window cache: off (llama-bench's and
    /// llama-server's default) and/or on.
    pub swa_full: Axis<bool>,
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
    /// model paths.
    pub fn parse(file: &Path, source: &str) -> Result<Scenario, ScenarioError> {
        let site = ErrorSite { file, source };
        let raw: RawScenario = toml::from_str(source).map_err(|e| toml_error(&site, &e))?;

        if let Some(schema) = &raw.schema {
            if *schema.get_ref() != SCENARIO_SCHEMA {
                return Err(site.at(
                    Some(schema.span()),
                    "schema",
                    format!("schema {} is not supported by this lmtune (it reads schema {SCENARIO_SCHEMA})", schema.get_ref()),
                    "upgrade lmtune, or set schema = 1 and check the keys against README.md",
                ));
            }
        }

        let model = raw.model.ok_or_else(|| {
            site.at(
                None,
                "model",
                "the [model] section is missing",
                "add [model] with path = \"path/to/model.gguf\"",
            )
        })?;
        let model_span = model.span();
        let model = model.into_inner();
        let path = model.path.ok_or_else(|| {
            site.at(
                Some(model_span.clone()),
                "model.path",
                "[model] has no `path`",
                "add path = \"path/to/model.gguf\" (relative to the scenario file)",
            )
        })?;
        let model_span = Some(path.span());
        let path = PathBuf::from(path.into_inner());
        let model_path = if path.is_absolute() {
            path
        } else {
            file.parent().unwrap_or(Path::new(".")).join(path)
        };

        let mut sim = None;
        let mut candle = None;
        let mut openai = None;
        let mut openai_command_span = None;
        let backend = match raw.backend {
            None => BackendKind::LlamaCpp,
            Some(b) => {
                let span = b.span();
                let b = b.into_inner();
                let kind = b.kind;
                if let Some(raw_openai) = b.openai {
                    if kind.get_ref() != "openai" {
                        return Err(site.at(
                            Some(raw_openai.span()),
                            "backend.openai",
                            "a [backend.openai] section is given but kind is not \"openai\"",
                            "set kind = \"openai\" or remove [backend.openai]",
                        ));
                    }
                    let (config, command_span) = parse_openai(&site, raw_openai)?;
                    openai = Some(config);
                    openai_command_span = command_span;
                }
                if let Some(settings) = b.candle {
                    let span = settings.span();
                    if kind.get_ref() != "candle" {
                        return Err(site.at(
                            Some(span),
                            "backend.candle",
                            "a [backend.candle] section is given but kind is not \"candle\"",
                            "set kind = \"candle\" or remove [backend.candle]",
                        ));
                    }
                    let device = settings.into_inner().offload_device;
                    let settings = CandleConfig {
                        offload_device: device.as_ref().map(|d| d.get_ref().clone()),
                    };
                    settings.check().map_err(|(problem, fix)| {
                        let at = device.as_ref().map_or(span, |d| d.span());
                        site.at(Some(at), "backend.candle.offload_device", problem, fix)
                    })?;
                    candle = Some(settings);
                }
                if let Some(profile) = b.sim {
                    if kind.get_ref() != "sim" {
                        return Err(site.at(
                            Some(profile.span()),
                            "backend.sim",
                            "a [backend.sim] profile is given but kind is not \"sim\"",
                            "set kind = \"sim\" or remove [backend.sim]",
                        ));
                    }
                    sim = Some(profile.into_inner());
                }
                match BackendKind::from_name(kind.get_ref()) {
                    Some(BackendKind::LlamaCpp) => BackendKind::LlamaCpp,
                    Some(BackendKind::Sim) => {
                        sim.get_or_insert_with(crate::sim::SimProfile::default);
                        BackendKind::Sim
                    }
                    Some(BackendKind::OpenAi) => {
                        if openai.is_none() {
                            return Err(site.at(
                                Some(span),
                                "backend.openai",
                                "kind = \"openai\" needs a [backend.openai] section saying which server",
                                "add [backend.openai] with base_url = \"http://127.0.0.1:1234/v1\" (a server you run) or command = [\"llama-server\", \"-m\", \"{model}\", \"--port\", \"{port}\"] (lmtune starts it)",
                            ));
                        }
                        BackendKind::OpenAi
                    }
                    Some(BackendKind::Candle) => {
                        candle.get_or_insert_with(CandleConfig::default);
                        BackendKind::Candle
                    }
                    None => {
                        let problem = format!("unknown backend \"{}\"", kind.get_ref());
                        return Err(site.at(
                            Some(kind.span()).or(Some(span)),
                            "backend.kind",
                            problem,
                            "use kind = \"llama-cpp\", \"candle\", \"openai\" (a server), or \"sim\" (simulated numbers)",
                        ));
                    }
                }
            }
        };

        let sweep = raw.sweep;
        let ints = |v: AxisValue,
                    key: &str,
                    keywords: &[&'static str],
                    min: u32,
                    default: Vec<IntOrKeyword>|
         -> Result<Axis<IntOrKeyword>, ScenarioError> {
            match v {
                None => Ok(Axis {
                    values: default,
                    span: None,
                    explicit: false,
                }),
                Some(v) => {
                    let span = v.span();
                    let values = axis::int_axis(v.get_ref(), keywords, min)
                        .map_err(|(p, f)| site.at(Some(span.clone()), key, p, f))?;
                    Ok(Axis {
                        values,
                        span: Some(span),
                        explicit: true,
                    })
                }
            }
        };
        let numbers = |axis: Axis<IntOrKeyword>| Axis {
            values: axis
                .values
                .iter()
                .map(|v| match v {
                    IntOrKeyword::Int(n) => *n,
                    IntOrKeyword::Keyword(_) => unreachable!("no keywords were allowed"),
                })
                .collect(),
            span: axis.span,
            explicit: axis.explicit,
        };
        let int = |n| vec![IntOrKeyword::Int(n)];

        let n_gpu_layers = ints(
            sweep.n_gpu_layers,
            "sweep.n_gpu_layers",
            &["all"],
            0,
            vec![IntOrKeyword::Keyword("all")],
        )?;
        let n_ctx = match sweep.n_ctx {
            None => None,
            some => Some(numbers(ints(some, "sweep.n_ctx", &[], 1, vec![])?)),
        };
        let n_batch = numbers(ints(sweep.n_batch, "sweep.n_batch", &[], 1, int(2048))?);
        let n_ubatch = numbers(ints(sweep.n_ubatch, "sweep.n_ubatch", &[], 1, int(512))?);
        let threads = ints(
            sweep.threads,
            "sweep.threads",
            &["physical", "logical"],
            1,
            vec![IntOrKeyword::Keyword("physical")],
        )?;

        let kv_axis = |v: AxisValue, key: &str| -> Result<Axis<KvType>, ScenarioError> {
            match v {
                None => Ok(Axis {
                    values: vec![KvType::F16],
                    span: None,
                    explicit: false,
                }),
                Some(v) => {
                    let span = v.span();
                    let values =
                        axis::choice_axis(v.get_ref(), |x| match x {
                            Value::String(s) => s.parse::<KvType>(),
                            _ => Err("write cache types as strings, e.g. [\"f16\", \"q8_0\"]"
                                .to_string()),
                        })
                        .map_err(|(p, f)| site.at(Some(span.clone()), key, p, f))?;
                    Ok(Axis {
                        values,
                        span: Some(span),
                        explicit: true,
                    })
                }
            }
        };
        let type_k = kv_axis(sweep.type_k, "sweep.type_k")?;
        let type_v = kv_axis(sweep.type_v, "sweep.type_v")?;
        let flash_attn = match sweep.flash_attn {
            None => Axis {
                values: vec![FlashAttn::Auto],
                span: None,
                explicit: false,
            },
            Some(v) => {
                let span = v.span();
                let values = axis::choice_axis(v.get_ref(), |x| match x {
                    Value::Boolean(true) => Ok(FlashAttn::On),
                    Value::Boolean(false) => Ok(FlashAttn::Off),
                    Value::String(s) => match s.to_ascii_lowercase().as_str() {
                        "auto" => Ok(FlashAttn::Auto),
                        "on" | "true" | "1" => Ok(FlashAttn::On),
                        "off" | "false" | "0" => Ok(FlashAttn::Off),
                        _ => Err("use \"auto\", \"on\" or \"off\" (or true / false)".into()),
                    },
                    _ => Err("use \"auto\", \"on\" or \"off\" (or true / false)".into()),
                })
                .map_err(|(p, f)| site.at(Some(span.clone()), "sweep.flash_attn", p, f))?;
                Axis {
                    values,
                    span: Some(span),
                    explicit: true,
                }
            }
        };

        let op_offload = bool_axis(sweep.op_offload, "sweep.op_offload", true, &site)?;
        if op_offload.explicit && backend != BackendKind::LlamaCpp {
            return Err(site.at(
                op_offload.span.clone(),
                "sweep.op_offload",
                format!(
                    "op offload is a switch of llama.cpp's own contexts; the \"{}\" backend has none",
                    backend.as_str()
                ),
                "remove sweep.op_offload (for a llama-server, put --no-op-offload in [backend.openai] command)",
            ));
        }
        let swa_full = bool_axis(sweep.swa_full, "sweep.swa_full", false, &site)?;
        if swa_full.explicit && !matches!(backend, BackendKind::LlamaCpp | BackendKind::OpenAi) {
            return Err(site.at(
                swa_full.span.clone(),
                "sweep.swa_full",
                format!(
                    "swa_full is llama.cpp's sliding-window cache switch; the \"{}\" backend has none",
                    backend.as_str()
                ),
                "remove sweep.swa_full",
            ));
        }

        let concurrency = numbers(ints(
            sweep.concurrency,
            "sweep.concurrency",
            &[],
            1,
            int(1),
        )?);
        if backend != BackendKind::OpenAi && concurrency.values.iter().any(|&c| c > 1) {
            return Err(site.at(
                concurrency.span.clone(),
                "sweep.concurrency",
                format!(
                    "concurrent clients need a server, but the backend is \"{}\"",
                    backend.as_str()
                ),
                "remove sweep.concurrency, or measure a server with kind = \"openai\"",
            ));
        }

        let workload = raw.workload;
        let n_prompt = numbers(ints(
            workload.n_prompt,
            "workload.n_prompt",
            &[],
            0,
            int(512),
        )?);
        let n_gen = numbers(ints(workload.n_gen, "workload.n_gen", &[], 0, int(128))?);
        let n_depth = numbers(ints(workload.n_depth, "workload.n_depth", &[], 0, int(0))?);
        if n_prompt.values.iter().chain(&n_gen.values).all(|&n| n == 0) {
            let span = n_prompt.span.clone().or(n_gen.span.clone());
            return Err(site.at(
                span,
                "workload",
                "every n_prompt and n_gen is 0, so nothing would be timed",
                "set n_prompt (prompt processing) and/or n_gen (generation) to at least 1",
            ));
        }

        let use_mmap_span = model.use_mmap.as_ref().map(|m| m.span());
        let mut use_mmap = model.use_mmap.is_none_or(|m| m.into_inner());
        let (mut type_k, mut type_v, mut flash_attn) = (type_k, type_v, flash_attn);
        if backend == BackendKind::Candle {
            check_candle_knobs(
                &site,
                &n_ubatch,
                [&type_k, &type_v],
                &flash_attn,
                use_mmap.then_some(use_mmap_span.clone()),
            )?;
            // What candle does, so records say it: an f32 cache, plain
            // attention, weights read into memory.
            type_k.values = vec![KvType::F32];
            type_v.values = vec![KvType::F32];
            flash_attn.values = vec![FlashAttn::Off];
            use_mmap = false;
        }

        let measure = parse_measure(&site, raw.measure)?;
        let vram_budget_bytes = match &raw.budget.vram {
            None => None,
            Some(v) => Some(crate::units::parse_size(v.get_ref()).map_err(|e| {
                site.at(
                    Some(v.span()),
                    "budget.vram",
                    e,
                    "write the GPU memory to plan for, like \"8GiB\" or \"24GiB\"",
                )
            })?),
        };
        if vram_budget_bytes == Some(0) {
            let span = raw.budget.vram.as_ref().map(|v| v.span());
            return Err(site.at(
                span,
                "budget.vram",
                "a VRAM budget of 0 leaves nothing to offload",
                "remove [budget] vram for a CPU-only machine, or give the GPU's memory, e.g. \"8GiB\"",
            ));
        }
        let name = raw.name.unwrap_or_else(|| {
            file.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "scenario".into())
        });

        let openai = openai.map(|mut o: OpenAiConfig| {
            o.model_path = Some(model_path.clone());
            o
        });
        Ok(Scenario {
            file: file.to_path_buf(),
            source: source.to_string(),
            name,
            description: raw.description,
            model_path,
            model_span,
            use_mmap,
            use_mmap_span,
            backend,
            sim,
            openai,
            openai_command_span,
            candle,
            n_gpu_layers,
            n_ctx,
            n_batch,
            n_ubatch,
            threads,
            type_k,
            type_v,
            flash_attn,
            op_offload,
            swa_full,
            concurrency,
            skip_invalid: sweep.skip_invalid.unwrap_or(false),
            n_prompt,
            n_gen,
            n_depth,
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

/// A number of seconds in (0, 7 days], or `None` when the key is absent.
/// Knobs candle does not have are rejected, not silently ignored.
fn check_candle_knobs(
    site: &ErrorSite<'_>,
    n_ubatch: &Axis<u32>,
    kv: [&Axis<KvType>; 2],
    flash_attn: &Axis<FlashAttn>,
    mmap: Option<Option<Range<usize>>>,
) -> Result<(), ScenarioError> {
    if n_ubatch.explicit {
        return Err(site.at(
            n_ubatch.span.clone(),
            "sweep.n_ubatch",
            "the candle backend has no micro-batches: it decodes each n_batch chunk of the prompt at once",
            "remove sweep.n_ubatch and sweep n_batch instead (candle records n_ubatch = n_batch)",
        ));
    }
    for (axis, key) in kv.into_iter().zip(["sweep.type_k", "sweep.type_v"]) {
        if let Some(t) = axis
            .values
            .iter()
            .find(|t| **t != KvType::F32)
            .filter(|_| axis.explicit)
        {
            return Err(site.at(
                axis.span.clone(),
                key,
                format!("the candle backend keeps its KV cache in f32; it has no {t} cache"),
                format!("remove {key} (candle records f32), or use the llama-cpp backend to sweep cache types"),
            ));
        }
    }
    if flash_attn.explicit && flash_attn.values.iter().any(|f| *f != FlashAttn::Off) {
        return Err(site.at(
            flash_attn.span.clone(),
            "sweep.flash_attn",
            "the candle backend computes attention with plain matmuls; it has no flash-attention switch",
            "remove sweep.flash_attn (candle records \"off\"), or use the llama-cpp backend to sweep it",
        ));
    }
    if let Some(Some(span)) = mmap {
        return Err(site.at(
            Some(span),
            "model.use_mmap",
            "the candle backend reads the weights into memory; it cannot mmap them",
            "remove model.use_mmap (candle records use_mmap = false)",
        ));
    }
    Ok(())
}

fn seconds_value(
    site: &ErrorSite<'_>,
    v: &Option<Spanned<Value>>,
    key: &str,
) -> Result<Option<f64>, ScenarioError> {
    let Some(v) = v else { return Ok(None) };
    let secs = match v.get_ref() {
        Value::Integer(n) => *n as f64,
        Value::Float(f) => *f,
        _ => f64::NAN,
    };
    if secs.is_finite() && secs > 0.0 && secs <= 7.0 * 86_400.0 {
        Ok(Some(secs))
    } else {
        Err(site.at(
            Some(v.span()),
            key,
            format!("{} is not a time limit in seconds", v.get_ref()),
            "write a number of seconds greater than 0, e.g. 300",
        ))
    }
}

fn parse_openai(
    site: &ErrorSite<'_>,
    raw: Spanned<RawOpenAi>,
) -> Result<(OpenAiConfig, Option<Range<usize>>), ScenarioError> {
    let span = raw.span();
    let raw = raw.into_inner();
    let mut config = OpenAiConfig::default();
    let mut command_span = None;
    match (&raw.base_url, &raw.command) {
        (Some(_), Some(c)) => {
            return Err(site.at(
                Some(c.span()),
                "backend.openai.command",
                "both base_url (a server you run) and command (a server lmtune starts) are given",
                "keep one: base_url to measure a running server, command to let lmtune start one per configuration",
            ))
        }
        (None, None) => {
            return Err(site.at(
                Some(span),
                "backend.openai",
                "[backend.openai] says neither base_url nor command",
                "add base_url = \"http://127.0.0.1:1234/v1\" (a server you run) or command = [\"llama-server\", \"-m\", \"{model}\", \"--port\", \"{port}\"] (lmtune starts it)",
            ))
        }
        (Some(url), None) => {
            let u = url.get_ref().trim_end_matches('/');
            if u.starts_with("https://") {
                return Err(site.at(
                    Some(url.span()),
                    "backend.openai.base_url",
                    "https is not supported by this lmtune (local servers speak plain HTTP)",
                    "use the server's http:// address, e.g. http://127.0.0.1:1234/v1",
                ));
            }
            let Some(rest) = u.strip_prefix("http://") else {
                return Err(site.at(
                    Some(url.span()),
                    "backend.openai.base_url",
                    format!("{:?} is not an http:// URL", url.get_ref()),
                    "write the API root with its scheme, e.g. http://127.0.0.1:1234/v1",
                ));
            };
            if rest.is_empty() || rest.starts_with('/') {
                return Err(site.at(
                    Some(url.span()),
                    "backend.openai.base_url",
                    format!("{:?} has no host", url.get_ref()),
                    "write the API root with its host and port, e.g. http://127.0.0.1:1234/v1",
                ));
            }
            config.base_url = Some(u.to_string());
        }
        (None, Some(cmd)) => {
            let args = cmd.get_ref();
            if args.is_empty() || args[0].trim().is_empty() {
                return Err(site.at(
                    Some(cmd.span()),
                    "backend.openai.command",
                    "the command is empty",
                    "write the server's command line as a list, e.g. [\"llama-server\", \"-m\", \"{model}\", \"--port\", \"{port}\"]",
                ));
            }
            let probe = crate::openai::ServerLaunch {
                load: crate::knobs::LoadParams {
                    n_cpu_moe: 0,
                    n_gpu_layers: 0,
                    use_mmap: true,
                },
                ctx: crate::knobs::ContextParams {
                    n_ctx: 1,
                    n_batch: 1,
                    n_ubatch: 1,
                    threads: 1,
                    type_k: KvType::F16,
                    type_v: KvType::F16,
                    flash_attn: FlashAttn::Auto,
                    op_offload: true,
                    swa_full: false,
                },
                parallel: 1,
            }
            .values("m", "127.0.0.1", 1);
            for arg in args {
                crate::openai::substitute(arg, &probe).map_err(|e| {
                    site.at(
                        Some(cmd.span()),
                        "backend.openai.command",
                        e,
                        "use the placeholders listed in README.md (section \"Servers\"); write {{ and }} for literal braces",
                    )
                })?;
            }
            if !crate::openai::used_placeholders(args).iter().any(|p| p == "port") {
                return Err(site.at(
                    Some(cmd.span()),
                    "backend.openai.command",
                    "the command has no {port}, so lmtune cannot tell the server where to listen",
                    "pass the port, e.g. \"--port\", \"{port}\" (llama-server) — lmtune picks a free loopback port",
                ));
            }
            command_span = Some(cmd.span());
            config.command = Some(args.clone());
        }
    }
    config.model = raw.model;
    if let Some(env) = raw.api_key_env {
        let name = env.get_ref();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(site.at(
                Some(env.span()),
                "backend.openai.api_key_env",
                format!("{name:?} is not an environment variable name"),
                "name the variable that holds the key, e.g. api_key_env = \"OPENAI_API_KEY\" (never the key itself)",
            ));
        }
        config.api_key_env = Some(name.clone());
    }
    if let Some(s) = seconds_value(site, &raw.ready_timeout_s, "backend.openai.ready_timeout_s")? {
        config.ready_timeout_s = s;
    }
    if let Some(s) = seconds_value(site, &raw.stall_timeout_s, "backend.openai.stall_timeout_s")? {
        config.stall_timeout_s = s;
    }
    if let Some(s) = seconds_value(
        site,
        &raw.connect_timeout_s,
        "backend.openai.connect_timeout_s",
    )? {
        config.connect_timeout_s = s;
    }
    if let Some(p) = raw.prompt {
        config.prompt =
            match p.get_ref().as_str() {
                "auto" => PromptMode::Auto,
                "tokens" => PromptMode::Tokens,
                "text" => PromptMode::Text,
                other => return Err(site.at(
                    Some(p.span()),
                    "backend.openai.prompt",
                    format!("unknown prompt mode {other:?}"),
                    "use \"auto\" (token ids when the server takes them), \"tokens\" or \"text\"",
                )),
            };
    }
    Ok((config, command_span))
}

fn parse_measure(site: &ErrorSite<'_>, raw: RawMeasure) -> Result<MeasureSpec, ScenarioError> {
    let count = |v: &Option<Spanned<i64>>,
                 key: &str,
                 min: i64,
                 default: i64|
     -> Result<u32, ScenarioError> {
        match v {
            None => Ok(default as u32),
            Some(v) => {
                let n = *v.get_ref();
                if n < min || n > 100_000 {
                    Err(site.at(
                        Some(v.span()),
                        key,
                        format!("{n} is out of range"),
                        format!("use a whole number from {min} to 100000"),
                    ))
                } else {
                    Ok(n as u32)
                }
            }
        }
    };
    let warmup = count(&raw.warmup, "measure.warmup", 0, 1)?;
    let min = count(&raw.min_repetitions, "measure.min_repetitions", 2, 3)?;
    let max = count(&raw.max_repetitions, "measure.max_repetitions", 1, 20)?;
    let repetitions = match &raw.repetitions {
        None => Repetitions::Fixed { count: 5 },
        Some(v) => match v.get_ref() {
            Value::Integer(n) if (1..=100_000).contains(n) => {
                Repetitions::Fixed { count: *n as u32 }
            }
            Value::String(s) if s == "auto" => {
                if min > max {
                    let span = raw.min_repetitions.as_ref().map(|s| s.span());
                    return Err(site.at(
                        span,
                        "measure.min_repetitions",
                        format!("min_repetitions ({min}) is larger than max_repetitions ({max})"),
                        "make min_repetitions <= max_repetitions",
                    ));
                }
                let ci_target = match &raw.ci_target {
                    None => 0.02,
                    Some(t) if *t.get_ref() > 0.0 && *t.get_ref() < 1.0 => *t.get_ref(),
                    Some(t) => {
                        return Err(site.at(
                            Some(t.span()),
                            "measure.ci_target",
                            format!("{} is not a fraction between 0 and 1", t.get_ref()),
                            "write e.g. ci_target = 0.02 for ±2% of the mean",
                        ))
                    }
                };
                Repetitions::Auto {
                    min,
                    max,
                    ci_target,
                }
            }
            other => {
                return Err(site.at(
                    Some(v.span()),
                    "measure.repetitions",
                    format!("{other} is not a repetition count"),
                    "write a whole number of at least 1, or \"auto\"",
                ));
            }
        },
    };
    let seconds = |v: &Option<Spanned<Value>>, key: &str| seconds_value(site, v, key);
    let timeout_s = seconds(&raw.timeout_s, "measure.timeout_s")?;
    let load_timeout_s = seconds(&raw.load_timeout_s, "measure.load_timeout_s")?.unwrap_or(600.0);
    let worker_memory_limit_bytes = match &raw.worker_memory_limit {
        None => None,
        Some(v) => Some(crate::units::parse_size(v.get_ref()).map_err(|e| {
            site.at(
                Some(v.span()),
                "measure.worker_memory_limit",
                e,
                "write a size like \"2GiB\", \"512MiB\" or \"8GB\"",
            )
        })?),
    };
    Ok(MeasureSpec {
        repetitions,
        warmup,
        timeout_s,
        load_timeout_s,
        worker_memory_limit_bytes,
    })
}

/// Turns a TOML/serde error into a one-line scenario error.
fn toml_error(site: &ErrorSite<'_>, e: &toml::de::Error) -> ScenarioError {
    let span = e.span();
    let message = e.message().trim().replace('\n', " ");
    let key = span
        .as_ref()
        .map(|s| key_at(site.source, s.start))
        .unwrap_or_default();
    let fix = if message.starts_with("unknown field") {
        "remove the key or fix its spelling (the keys are listed in README.md, section \"Scenario files\")"
    } else if message.starts_with("invalid type") {
        "give the key a value of the expected type (see README.md, section \"Scenario files\")"
    } else if message.starts_with("missing field") {
        "add the missing key"
    } else {
        "fix the TOML syntax at that line"
    };
    site.at(span, &key, message, fix)
}

/// The dotted key (`section.key`) of the `key = value` line holding byte
/// `offset`, or "" when that line is not an assignment.
fn key_at(source: &str, offset: usize) -> String {
    let offset = offset.min(source.len());
    let line_start = source[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = source[line_start..].lines().next().unwrap_or("");
    let Some((key, _)) = line.split_once('=') else {
        return String::new();
    };
    let key = key.trim().trim_matches('"');
    if key.is_empty() || key.contains(char::is_whitespace) {
        return String::new();
    }
    let section = source[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && !l.starts_with("[["))
        .map(|l| l.trim_matches(['[', ']']).trim().to_string());
    match section {
        Some(section) => format!("{section}.{key}"),
        None => key.to_string(),
    }
}

#[cfg(test)]
mod tests;

/// A true/false axis (`true`, `false`, "on", "off"), `default` when absent.
fn bool_axis(
    raw: AxisValue,
    key: &str,
    default: bool,
    site: &ErrorSite<'_>,
) -> Result<Axis<bool>, ScenarioError> {
    let Some(v) = raw else {
        return Ok(Axis {
            values: vec![default],
            span: None,
            explicit: false,
        });
    };
    let span = v.span();
    let values = axis::choice_axis(v.get_ref(), |x| match x {
        Value::Boolean(b) => Ok(*b),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "on" | "true" | "1" => Ok(true),
            "off" | "false" | "0" => Ok(false),
            _ => Err("use true / false (or \"on\" / \"off\")".into()),
        },
        _ => Err("use true / false (or \"on\" / \"off\")".into()),
    })
    .map_err(|(p, f)| site.at(Some(span.clone()), key, p, f))?;
    Ok(Axis {
        values,
        span: Some(span),
        explicit: true,
    })
}
