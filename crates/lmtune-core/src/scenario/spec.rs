//! [`BackendSpec`]: which backend runs the points, with that backend's own
//! settings, as one value. A scenario and a plan carry one; the worker
//! receives it serialized once, on its command line. Every decision that
//! depends on the backend is a method here, so callers ask a question
//! ("does its worker run one thread count?") instead of matching on the kind.
//!
//! ```
//! use lmtune_core::scenario::{BackendSpec, CandleConfig};
//!
//! let spec = BackendSpec::Candle(CandleConfig::default());
//! assert_eq!(spec.name(), "candle");
//! assert!(spec.worker_per_thread_count());
//! let json = serde_json::to_string(&spec).unwrap();
//! assert_eq!(serde_json::from_str::<BackendSpec>(&json).unwrap(), spec);
//! ```

use serde::{Deserialize, Serialize};

use crate::openai::OpenAiConfig;
use crate::sim::SimProfile;

/// Which backend runs the points (its name in scenarios, flags and records).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

    /// Runs in this process's worker from a model file (llama-cpp, candle),
    /// as opposed to a server or simulated numbers: what `generate` and
    /// `tune --model` take.
    pub fn is_in_process(self) -> bool {
        matches!(self, BackendKind::LlamaCpp | BackendKind::Candle)
    }
}

/// Settings of the llama-cpp backend. None come from the scenario: the
/// ggml backend libraries are a property of the machine (`--ggml-backend`,
/// `LMTUNE_GGML_BACKENDS`), added with [`BackendSpec::with_ggml_backends`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LlamaCppConfig {
    /// ggml backend libraries to load at run time.
    #[serde(default)]
    pub ggml_backends: Vec<std::path::PathBuf>,
}

/// Settings of the candle backend (`[backend.candle]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
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

/// The backend that runs the points and its settings: one variant per
/// backend, so a setting of one backend cannot ride along with another.
/// Serialized as `{"kind": "sim", "config": {…}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "config", rename_all = "kebab-case")]
pub enum BackendSpec {
    LlamaCpp(LlamaCppConfig),
    Candle(CandleConfig),
    /// An OpenAI-compatible server (`model_path` filled in from `[model]`).
    #[serde(rename = "openai")]
    OpenAi(OpenAiConfig),
    Sim(SimProfile),
}

impl Default for BackendSpec {
    /// A scenario without `[backend]` runs llama.cpp.
    fn default() -> Self {
        BackendSpec::LlamaCpp(LlamaCppConfig::default())
    }
}

/// How the points of a plan share a loaded model (or a started server).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadGrouping {
    /// The load parameters alone: one model load serves every context.
    ByLoad,
    /// A managed server takes its context and slots on its command line:
    /// one server per load, context and concurrency.
    ByServerLaunch,
    /// candle's worker sizes its thread pools once: one worker per load and
    /// thread count.
    ByLoadAndThreads,
}

/// Which tensor placement knobs (`n_cpu_moe`, `cpu_moe`, `override_tensor`)
/// a backend takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorPlacement {
    /// Whole layers only (candle).
    LayersOnly,
    /// Expert placement, simulated; no arbitrary patterns (sim).
    ExpertsOnly,
    /// Overrides into host memory (CPU) only: llama-cpp-2 has no device
    /// buffer-type overrides (llama.cpp in process).
    HostOnly,
    /// Whatever the server's command does with them (openai).
    Any,
}

/// What loading a point's model means, for progress messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadActivity {
    LoadModel,
    StartServer,
    ConnectServer,
}

impl BackendSpec {
    pub fn kind(&self) -> BackendKind {
        match self {
            BackendSpec::LlamaCpp(_) => BackendKind::LlamaCpp,
            BackendSpec::Candle(_) => BackendKind::Candle,
            BackendSpec::OpenAi(_) => BackendKind::OpenAi,
            BackendSpec::Sim(_) => BackendKind::Sim,
        }
    }

    /// The backend's name in scenarios and records (`llama-cpp`, …).
    pub fn name(&self) -> &'static str {
        self.kind().as_str()
    }

    /// The default settings of `kind`; `None` for openai, which needs its
    /// server named.
    pub fn default_of(kind: BackendKind) -> Option<BackendSpec> {
        match kind {
            BackendKind::LlamaCpp => Some(BackendSpec::LlamaCpp(LlamaCppConfig::default())),
            BackendKind::Candle => Some(BackendSpec::Candle(CandleConfig::default())),
            BackendKind::Sim => Some(BackendSpec::Sim(SimProfile::default())),
            BackendKind::OpenAi => None,
        }
    }

    /// The server settings, for the openai backend.
    pub fn openai(&self) -> Option<&OpenAiConfig> {
        match self {
            BackendSpec::OpenAi(config) => Some(config),
            _ => None,
        }
    }

    /// The server settings, for the openai backend, to change.
    pub fn openai_mut(&mut self) -> Option<&mut OpenAiConfig> {
        match self {
            BackendSpec::OpenAi(config) => Some(config),
            _ => None,
        }
    }

    /// The same spec with these ggml backend libraries to load (llama-cpp
    /// only; the other backends load none).
    pub fn with_ggml_backends(mut self, libraries: Vec<std::path::PathBuf>) -> BackendSpec {
        if let BackendSpec::LlamaCpp(config) = &mut self {
            config.ggml_backends = libraries;
        }
        self
    }

    /// The same spec with this offload device (candle only; `--offload-device`).
    pub fn with_offload_device(mut self, device: Option<String>) -> BackendSpec {
        if let BackendSpec::Candle(config) = &mut self {
            config.offload_device = device;
        }
        self
    }

    /// Checks the settings that can be wrong (candle's offload device); the
    /// error is the problem and its fix.
    pub fn check(&self) -> Result<(), (String, String)> {
        match self {
            BackendSpec::Candle(config) => config.check(),
            _ => Ok(()),
        }
    }

    /// lmtune starts the server itself, once per launch (openai with `command`).
    pub fn manages_server(&self) -> bool {
        self.openai().is_some_and(|o| o.command.is_some())
    }

    /// What loading a model means for this backend.
    pub fn load_activity(&self) -> LoadActivity {
        match self.openai() {
            Some(_) if self.manages_server() => LoadActivity::StartServer,
            Some(_) => LoadActivity::ConnectServer,
            None => LoadActivity::LoadModel,
        }
    }

    /// How points share a load.
    pub fn load_grouping(&self) -> LoadGrouping {
        match self {
            BackendSpec::Candle(_) => LoadGrouping::ByLoadAndThreads,
            _ if self.manages_server() => LoadGrouping::ByServerLaunch,
            _ => LoadGrouping::ByLoad,
        }
    }

    /// The worker runs one thread count (candle sizes its pools once per
    /// process), so another count needs another worker.
    pub fn worker_per_thread_count(&self) -> bool {
        self.load_grouping() == LoadGrouping::ByLoadAndThreads
    }

    /// A server: started with one context for all its tests, and the only
    /// backend with concurrent clients.
    pub fn is_server(&self) -> bool {
        matches!(self, BackendSpec::OpenAi(_))
    }

    /// Has llama.cpp's own fit (`n_gpu_layers = "fit"`).
    pub fn has_llama_fit(&self) -> bool {
        matches!(self, BackendSpec::LlamaCpp(_))
    }

    /// Has llama.cpp's dry run (model and context created with `no_alloc`):
    /// what each device's buffers would take, before loading.
    pub fn has_dry_run(&self) -> bool {
        matches!(self, BackendSpec::LlamaCpp(_))
    }

    /// Has llama.cpp's op offload switch on its own contexts.
    pub fn has_op_offload(&self) -> bool {
        matches!(self, BackendSpec::LlamaCpp(_))
    }

    /// Has llama.cpp's full-size sliding-window cache (in process or in a server).
    pub fn has_swa_full(&self) -> bool {
        matches!(self, BackendSpec::LlamaCpp(_) | BackendSpec::OpenAi(_))
    }

    /// Splits a batch into micro-batches (candle decodes each n_batch chunk at once).
    pub fn has_micro_batches(&self) -> bool {
        !matches!(self, BackendSpec::Candle(_))
    }

    /// Can map the weights (candle reads them into memory).
    pub fn can_mmap(&self) -> bool {
        !matches!(self, BackendSpec::Candle(_))
    }

    /// Has a fixed f32 cache, plain attention and no mmap (candle): those
    /// knobs are rejected when swept and recorded as what it does.
    pub fn has_fixed_cache_and_attention(&self) -> bool {
        matches!(self, BackendSpec::Candle(_))
    }

    /// The model architectures it runs; `None`: any llama.cpp runs.
    pub fn architectures(&self) -> Option<&'static [&'static str]> {
        match self {
            BackendSpec::Candle(_) => Some(&["llama"]),
            _ => None,
        }
    }

    /// Which tensor placement knobs it takes.
    pub fn tensor_placement(&self) -> TensorPlacement {
        match self {
            BackendSpec::LlamaCpp(_) => TensorPlacement::HostOnly,
            BackendSpec::Candle(_) => TensorPlacement::LayersOnly,
            BackendSpec::OpenAi(_) => TensorPlacement::Any,
            BackendSpec::Sim(_) => TensorPlacement::ExpertsOnly,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spec_serializes_once_and_reads_back() {
        let specs = [
            BackendSpec::default().with_ggml_backends(vec!["/lib/libggml-cuda.so".into()]),
            BackendSpec::Candle(CandleConfig {
                offload_device: Some("cpu".into()),
            }),
            BackendSpec::OpenAi(OpenAiConfig {
                base_url: Some("http://127.0.0.1:1/v1".into()),
                ..OpenAiConfig::default()
            }),
            BackendSpec::Sim(SimProfile::default()),
        ];
        for spec in specs {
            let json = serde_json::to_string(&spec).unwrap();
            assert!(
                json.starts_with(&format!("{{\"kind\":\"{}\"", spec.name())),
                "{json}"
            );
            assert_eq!(serde_json::from_str::<BackendSpec>(&json).unwrap(), spec);
        }
    }

    #[test]
    fn only_candle_needs_a_worker_per_thread_count() {
        for kind in [BackendKind::LlamaCpp, BackendKind::Candle, BackendKind::Sim] {
            let spec = BackendSpec::default_of(kind).unwrap();
            assert_eq!(spec.kind(), kind);
            assert_eq!(spec.worker_per_thread_count(), kind == BackendKind::Candle);
        }
    }

    #[test]
    fn a_managed_server_groups_by_launch_an_external_one_by_load() {
        let external = BackendSpec::OpenAi(OpenAiConfig {
            base_url: Some("http://127.0.0.1:1/v1".into()),
            ..OpenAiConfig::default()
        });
        assert_eq!(external.load_grouping(), LoadGrouping::ByLoad);
        assert_eq!(external.load_activity(), LoadActivity::ConnectServer);
        let managed = BackendSpec::OpenAi(OpenAiConfig {
            command: Some(vec!["llama-server".into(), "{port}".into()]),
            ..OpenAiConfig::default()
        });
        assert_eq!(managed.load_grouping(), LoadGrouping::ByServerLaunch);
        assert_eq!(managed.load_activity(), LoadActivity::StartServer);
    }
}
