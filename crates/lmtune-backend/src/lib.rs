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
//! use lmtune_core::scenario::BackendSpec;
//! // Inside the hidden worker mode of the binary:
//! let backend = create(BackendSpec::default(), false)?;
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
pub use lmtune_core::scenario::{BackendSpec, LlamaCppConfig};
use lmtune_core::scenario::{MeasureSpec, Point};
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

/// The one factory: the backend `spec` names, with its settings. `verbose`
/// passes the backend's informational logs through to stderr (warnings and
/// errors always are).
pub fn create(spec: BackendSpec, verbose: bool) -> Result<Box<dyn Backend>, BackendError> {
    match spec {
        #[cfg(feature = "llama-cpp")]
        BackendSpec::LlamaCpp(config) => Ok(Box::new(llama_cpp::LlamaCppBackend::new(
            verbose,
            &config.ggml_backends,
        )?)),
        #[cfg(not(feature = "llama-cpp"))]
        BackendSpec::LlamaCpp(_) => Err(BackendError::NotCompiled("llama-cpp".into())),
        BackendSpec::OpenAi(config) => Ok(Box::new(openai::OpenAiBackend::new(config, verbose)?)),
        #[cfg(feature = "candle")]
        BackendSpec::Candle(config) => Ok(Box::new(candle::CandleBackend::new(config, verbose)?)),
        #[cfg(not(feature = "candle"))]
        BackendSpec::Candle(_) => Err(BackendError::NotCompiled("candle".into())),
        BackendSpec::Sim(profile) => Ok(Box::new(sim::SimBackend::new(profile))),
    }
}
