//! Backends of lmtune and the worker process that hosts them.
//!
//! A backend loads a model and measures points. It always runs inside a
//! worker subprocess (the `lmtune` binary in a hidden mode), never in the
//! runner: llama.cpp can abort the whole process on a bad parameter, and a
//! crash must cost one point, not the sweep. The runner and the worker talk
//! JSON lines ([`protocol`]).
//!
//! ```no_run
//! use lmtune_backend::{create, worker};
//! use lmtune_core::scenario::BackendKind;
//! // Inside the hidden worker mode of the binary:
//! let backend = create(BackendKind::LlamaCpp, false, None)?;
//! worker::serve(backend)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod fault;
pub mod memory;
pub mod process;
pub mod protocol;
pub mod repeat;
pub mod worker;

#[cfg(feature = "candle")]
pub mod candle;
#[cfg(feature = "llama-cpp")]
mod llama_cpp;
mod openai;
mod sim;

use std::path::Path;

use lmtune_core::knobs::LoadParams;
use lmtune_core::openai::ServerLaunch;
use lmtune_core::record::Measurement;
use lmtune_core::scenario::{BackendKind, MeasureSpec, Point};
use serde::{Deserialize, Serialize};

/// Name, version and build of a backend, for fingerprints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendInfo {
    pub name: String,
    pub version: String,
    pub build: String,
    #[serde(default)]
    pub devices: Vec<lmtune_core::fingerprint::BackendDevice>,
}

/// Why a backend could not do what it was asked.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize, Deserialize)]
pub enum BackendError {
    #[error("model load failed: {message}")]
    LoadFailed { message: String, log: Vec<String> },
    #[error("{message}")]
    PointFailed { message: String, log: Vec<String> },
    /// An allocation failed (model, KV cache or compute buffers).
    #[error("out of memory: {message}")]
    OutOfMemory { message: String, log: Vec<String> },
    /// The backend itself could not be set up (a backend library, its settings).
    #[error("{message}")]
    Setup { message: String, log: Vec<String> },
    /// The server (a process the backend started) died.
    #[error("{message}")]
    ServerDied { message: String, log: Vec<String> },
    /// The backend gave up waiting (a stalled stream, a server that never became ready).
    #[error("{message}")]
    TimedOut { message: String, log: Vec<String> },
    #[error("no model is loaded (the runner must send `load` before `run`)")]
    NotLoaded,
    #[error("backend \"{0}\" is not compiled into this lmtune (rebuild with its cargo feature)")]
    NotCompiled(String),
}

/// One extension point: each backend measures points its own way.
pub trait Backend {
    fn info(&self) -> BackendInfo;

    /// Loads the model; replaces any model already loaded. `launch` is what
    /// a managed server is started with (the first point of the load group);
    /// in-process backends ignore it.
    fn load(
        &mut self,
        model: &Path,
        load: &LoadParams,
        launch: Option<&ServerLaunch>,
    ) -> Result<(), BackendError>;

    /// Measures one point on the loaded model (warm-up first, not counted).
    /// `progress` is called after each timed repetition with its number.
    fn run(
        &mut self,
        point: &Point,
        measure: &MeasureSpec,
        seed: u64,
        progress: &mut dyn FnMut(u32),
    ) -> Result<Measurement, BackendError>;

    /// Greedy decoding on the loaded model: the `n` most likely tokens after
    /// `prompt` (token ids), the prompt decoded in chunks of `n_batch`. For
    /// checking that two backends compute the same model (`lmtune generate`).
    fn greedy(&mut self, prompt: &[u32], n: u32, n_batch: u32) -> Result<Vec<u32>, BackendError> {
        let _ = (prompt, n, n_batch);
        Err(BackendError::Setup {
            message: format!("the {} backend cannot generate text", self.info().name),
            log: Vec::new(),
        })
    }

    /// The model's tokenizer (llama.cpp's): text to token ids, adding BOS
    /// when the model does, and ids back to text pieces.
    fn tokenize(&mut self, text: &str) -> Result<Vec<u32>, BackendError> {
        let _ = text;
        Err(BackendError::Setup {
            message: format!("the {} backend has no tokenizer", self.info().name),
            log: Vec::new(),
        })
    }

    /// What `model` loaded with `load` and a context of `ctx` would take,
    /// per buffer type, without allocating it (llama.cpp's dry run). Loads
    /// nothing else: the loaded model, if any, stays.
    fn dry_run(
        &mut self,
        model: &Path,
        load: &LoadParams,
        ctx: &lmtune_core::knobs::ContextParams,
    ) -> Result<lmtune_core::record::DryRun, BackendError> {
        let _ = (model, load, ctx);
        Err(BackendError::Setup {
            message: format!(
                "the {} backend has no dry run (llama.cpp's no_alloc): only llama-cpp answers",
                self.info().name
            ),
            log: Vec::new(),
        })
    }

    /// llama.cpp's own fit (`common_fit_params`) of `model` with a context
    /// like `ctx` to `request`'s memory target. Loads nothing that stays.
    fn llama_fit(
        &mut self,
        model: &Path,
        ctx: &lmtune_core::knobs::ContextParams,
        request: &lmtune_core::llama_fit::FitRequest,
    ) -> Result<lmtune_core::llama_fit::LlamaFit, BackendError> {
        let _ = (model, ctx, request);
        Err(BackendError::Setup {
            message: format!(
                "the {} backend has no fit: only llama-cpp runs llama.cpp's common_fit_params",
                self.info().name
            ),
            log: Vec::new(),
        })
    }

    fn detokenize(&mut self, tokens: &[u32]) -> Result<Vec<String>, BackendError> {
        let _ = tokens;
        Err(BackendError::Setup {
            message: format!("the {} backend has no tokenizer", self.info().name),
            log: Vec::new(),
        })
    }
}

/// Settings of the llama-cpp backend, passed to its worker as JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LlamaCppConfig {
    /// ggml backend libraries to load at run time (`--ggml-backend`, `LMTUNE_GGML_BACKENDS`).
    #[serde(default)]
    pub ggml_backends: Vec<std::path::PathBuf>,
}

/// The one factory: a backend for `kind`. `verbose` passes the backend's
/// informational logs through to stderr (warnings and errors always are);
/// `config` is the backend's own settings as JSON (the `sim` profile).
pub fn create(
    kind: BackendKind,
    verbose: bool,
    config: Option<&str>,
) -> Result<Box<dyn Backend>, BackendError> {
    match kind {
        #[cfg(feature = "llama-cpp")]
        BackendKind::LlamaCpp => {
            let config: LlamaCppConfig = match config {
                Some(json) => serde_json::from_str(json).map_err(|e| BackendError::Setup {
                    message: format!("invalid llama-cpp settings: {e}"),
                    log: Vec::new(),
                })?,
                None => LlamaCppConfig::default(),
            };
            Ok(Box::new(llama_cpp::LlamaCppBackend::new(
                verbose,
                &config.ggml_backends,
            )?))
        }
        #[cfg(not(feature = "llama-cpp"))]
        BackendKind::LlamaCpp => {
            let _ = verbose;
            Err(BackendError::NotCompiled("llama-cpp".into()))
        }
        BackendKind::OpenAi => {
            let config: lmtune_core::openai::OpenAiConfig = match config {
                Some(json) => serde_json::from_str(json).map_err(|e| BackendError::Setup {
                    message: format!("invalid openai settings: {e}"),
                    log: Vec::new(),
                })?,
                None => {
                    return Err(BackendError::Setup {
                        message: "the openai backend needs its [backend.openai] settings".into(),
                        log: Vec::new(),
                    })
                }
            };
            Ok(Box::new(openai::OpenAiBackend::new(config, verbose)?))
        }
        #[cfg(feature = "candle")]
        BackendKind::Candle => {
            let config: candle::CandleConfig = match config {
                Some(json) => serde_json::from_str(json).map_err(|e| BackendError::Setup {
                    message: format!("invalid candle settings: {e}"),
                    log: Vec::new(),
                })?,
                None => candle::CandleConfig::default(),
            };
            Ok(Box::new(candle::CandleBackend::new(config, verbose)?))
        }
        #[cfg(not(feature = "candle"))]
        BackendKind::Candle => Err(BackendError::NotCompiled("candle".into())),
        BackendKind::Sim => {
            let profile = match config {
                Some(json) => serde_json::from_str(json).map_err(|e| BackendError::LoadFailed {
                    message: format!("invalid sim profile: {e}"),
                    log: Vec::new(),
                })?,
                None => lmtune_core::sim::SimProfile::default(),
            };
            Ok(Box::new(sim::SimBackend::new(profile)))
        }
    }
}
