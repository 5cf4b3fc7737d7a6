//! Stage 2: `[backend]`: which backend runs the points and its own section
//! (`[backend.sim]`, `[backend.openai]`, `[backend.candle]`).

use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use super::error::ErrorSite;
use super::raw::RawBackend;
use super::ScenarioError;
use crate::openai::OpenAiConfig;

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

/// `[backend]`, read: the kind and the settings of that kind.
pub(super) struct Backend {
    pub kind: BackendKind,
    pub sim: Option<crate::sim::SimProfile>,
    pub openai: Option<OpenAiConfig>,
    /// Where `[backend.openai] command` is written, for errors.
    pub openai_command_span: Option<Range<usize>>,
    pub candle: Option<CandleConfig>,
}

impl Backend {
    /// Reads `[backend]` (absent: llama-cpp). A backend's own section is
    /// checked before the kind, and only goes with that kind.
    pub(super) fn read(
        site: &ErrorSite<'_>,
        raw: Option<Spanned<RawBackend>>,
    ) -> Result<Backend, ScenarioError> {
        let mut backend = Backend {
            kind: BackendKind::LlamaCpp,
            sim: None,
            openai: None,
            openai_command_span: None,
            candle: None,
        };
        let Some(raw) = raw else {
            return Ok(backend);
        };
        let span = raw.span();
        let raw = raw.into_inner();
        let kind = raw.kind;
        if let Some(raw_openai) = raw.openai {
            if kind.get_ref() != "openai" {
                return Err(site.at(
                    Some(raw_openai.span()),
                    "backend.openai",
                    "a [backend.openai] section is given but kind is not \"openai\"",
                    "set kind = \"openai\" or remove [backend.openai]",
                ));
            }
            let (config, command_span) = super::openai::parse_openai(site, raw_openai)?;
            backend.openai = Some(config);
            backend.openai_command_span = command_span;
        }
        if let Some(settings) = raw.candle {
            backend.candle = Some(read_candle(site, settings, kind.get_ref())?);
        }
        if let Some(profile) = raw.sim {
            if kind.get_ref() != "sim" {
                return Err(site.at(
                    Some(profile.span()),
                    "backend.sim",
                    "a [backend.sim] profile is given but kind is not \"sim\"",
                    "set kind = \"sim\" or remove [backend.sim]",
                ));
            }
            backend.sim = Some(profile.into_inner());
        }
        backend.kind = match BackendKind::from_name(kind.get_ref()) {
            Some(BackendKind::LlamaCpp) => BackendKind::LlamaCpp,
            Some(BackendKind::Sim) => {
                backend
                    .sim
                    .get_or_insert_with(crate::sim::SimProfile::default);
                BackendKind::Sim
            }
            Some(BackendKind::OpenAi) => {
                if backend.openai.is_none() {
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
                backend.candle.get_or_insert_with(CandleConfig::default);
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
        };
        Ok(backend)
    }
}

/// `[backend.candle]`, which only goes with `kind = "candle"`.
fn read_candle(
    site: &ErrorSite<'_>,
    settings: Spanned<super::raw::RawCandle>,
    kind: &str,
) -> Result<CandleConfig, ScenarioError> {
    let span = settings.span();
    if kind != "candle" {
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
    Ok(settings)
}
