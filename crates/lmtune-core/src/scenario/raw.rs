//! Stage 1: the raw TOML. Serde checks the keys and their types; errors
//! become one line naming the file, line and key. Also the `schema` check
//! and the `[model]` section.

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::{Spanned, Value};

use super::error::ErrorSite;
use super::{ScenarioError, SCENARIO_SCHEMA};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawScenario {
    pub(super) schema: Option<Spanned<i64>>,
    pub(super) name: Option<String>,
    pub(super) description: Option<String>,
    pub(super) model: Option<Spanned<RawModel>>,
    pub(super) backend: Option<Spanned<RawBackend>>,
    #[serde(default)]
    pub(super) sweep: RawSweep,
    #[serde(default)]
    pub(super) workload: RawWorkload,
    #[serde(default)]
    pub(super) measure: RawMeasure,
    #[serde(default)]
    pub(super) budget: RawBudget,
}

/// `[budget]`: the memory a user's machine has, declared so a bigger test
/// machine is held to it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBudget {
    /// e.g. "8GiB": GPU memory of the machine being planned for.
    pub(super) vram: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawModel {
    pub(super) path: Option<Spanned<String>>,
    pub(super) use_mmap: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBackend {
    pub(super) kind: Spanned<String>,
    /// The declared hardware of `kind = "sim"`.
    pub(super) sim: Option<Spanned<crate::sim::SimProfile>>,
    /// The server of `kind = "openai"`.
    pub(super) openai: Option<Spanned<RawOpenAi>>,
    /// Settings of `kind = "candle"`.
    pub(super) candle: Option<Spanned<RawCandle>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCandle {
    pub(super) offload_device: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOpenAi {
    pub(super) base_url: Option<Spanned<String>>,
    pub(super) command: Option<Spanned<Vec<String>>>,
    pub(super) model: Option<String>,
    pub(super) api_key_env: Option<Spanned<String>>,
    pub(super) ready_timeout_s: Option<Spanned<Value>>,
    pub(super) stall_timeout_s: Option<Spanned<Value>>,
    pub(super) connect_timeout_s: Option<Spanned<Value>>,
    pub(super) prompt: Option<Spanned<String>>,
}

pub(super) type AxisValue = Option<Spanned<Value>>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSweep {
    pub(super) n_gpu_layers: AxisValue,
    pub(super) n_ctx: AxisValue,
    pub(super) n_batch: AxisValue,
    pub(super) n_ubatch: AxisValue,
    pub(super) threads: AxisValue,
    pub(super) type_k: AxisValue,
    pub(super) type_v: AxisValue,
    pub(super) flash_attn: AxisValue,
    /// llama.cpp's op offload (llama-cpp only).
    pub(super) op_offload: AxisValue,
    /// llama.cpp's full-size sliding-window cache (llama-cpp, managed servers).
    pub(super) swa_full: AxisValue,
    /// llama.cpp's `--n-cpu-moe` (llama-cpp, sim, managed servers).
    pub(super) n_cpu_moe: AxisValue,
    /// llama.cpp's `--cpu-moe` (llama-cpp, sim, managed servers).
    pub(super) cpu_moe: AxisValue,
    /// llama-bench's `-ot` (llama-cpp with CPU, managed servers).
    pub(super) override_tensor: AxisValue,
    /// Parallel clients (servers only).
    pub(super) concurrency: AxisValue,
    /// Drop combinations that cannot run (n_ubatch > n_batch, a context too
    /// small for a test) instead of rejecting the scenario.
    pub(super) skip_invalid: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWorkload {
    pub(super) n_prompt: AxisValue,
    pub(super) n_gen: AxisValue,
    pub(super) n_depth: AxisValue,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMeasure {
    pub(super) repetitions: Option<Spanned<Value>>,
    pub(super) warmup: Option<Spanned<i64>>,
    pub(super) min_repetitions: Option<Spanned<i64>>,
    pub(super) max_repetitions: Option<Spanned<i64>>,
    /// Target relative half-width of the 95% CI for `repetitions = "auto"`.
    pub(super) ci_target: Option<Spanned<f64>>,
    pub(super) timeout_s: Option<Spanned<Value>>,
    pub(super) load_timeout_s: Option<Spanned<Value>>,
    /// e.g. "2GiB": the worker's address space is limited to this (RLIMIT_AS).
    pub(super) worker_memory_limit: Option<Spanned<String>>,
}

impl RawScenario {
    /// Parses the text and checks `schema`.
    pub(super) fn read(site: &ErrorSite<'_>) -> Result<RawScenario, ScenarioError> {
        let raw: RawScenario = toml::from_str(site.source).map_err(|e| toml_error(site, &e))?;
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
        Ok(raw)
    }
}

/// `[model]`, read: the model file (relative paths anchored at the
/// scenario file's folder) and `use_mmap`.
pub(super) struct ModelSection {
    pub path: PathBuf,
    pub span: Option<Range<usize>>,
    pub use_mmap: Option<Spanned<bool>>,
}

impl ModelSection {
    pub(super) fn read(
        site: &ErrorSite<'_>,
        model: Option<Spanned<RawModel>>,
    ) -> Result<ModelSection, ScenarioError> {
        let model = model.ok_or_else(|| {
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
        let span = Some(path.span());
        let path = PathBuf::from(path.into_inner());
        let path = if path.is_absolute() {
            path
        } else {
            site.file.parent().unwrap_or(Path::new(".")).join(path)
        };
        Ok(ModelSection {
            path,
            span,
            use_mmap: model.use_mmap,
        })
    }
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
