//! Why the candle backend could not read, place or run a model.

/// What went wrong reading the model, placing it or running it; each
/// message is the one a user sees after "candle could not load …".
#[derive(Debug, thiserror::Error)]
pub enum CandleError {
    #[error("the GGUF metadata has no {0}")]
    MissingKey(String),
    #[error("{key}: {source}")]
    BadValue {
        key: String,
        source: candle_core::Error,
    },
    #[error("the candle backend runs llama-architecture models; this one is {0:?} (use the llama-cpp backend for it)")]
    NotLlama(String),
    #[error("the candle backend does not run mixture-of-experts models ({0} experts); use the llama-cpp backend")]
    MixtureOfExperts(usize),
    #[error(
        "inconsistent attention shape: {n_head} heads, {n_kv_head} KV heads, {n_embd} embedding"
    )]
    AttentionShape {
        n_head: usize,
        n_kv_head: usize,
        n_embd: usize,
    },
    #[error(
        "partial RoPE ({rope_dim} of {head_dim} dimensions) is not supported by the candle backend"
    )]
    PartialRope { rope_dim: usize, head_dim: usize },
    #[error("the model has no token_embd.weight tensor")]
    NoTokenEmbeddings,
    #[error("placement has {placement} blocks, the model {model}")]
    PlacementMismatch { placement: usize, model: usize },
    #[error("n_gpu_layers > 0 puts blocks on cuda:{0}, but this lmtune was not compiled with CUDA support for candle (rebuild with `cargo build --release --features candle-cuda`, or set n_gpu_layers = 0)")]
    CudaNotCompiled(usize),
    #[error("candle cannot open cuda:{device}: {source}")]
    CudaOpen {
        device: usize,
        source: candle_core::Error,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("tensor {name}: {source}")]
    Tensor {
        name: String,
        source: candle_core::Error,
    },
    #[error("the prompt is empty")]
    EmptyPrompt,
    #[error("{0}")]
    Candle(#[from] candle_core::Error),
}

impl CandleError {
    /// Whether an allocation (host or device) failed.
    pub fn is_out_of_memory(&self) -> bool {
        match self {
            CandleError::BadValue { source, .. }
            | CandleError::CudaOpen { source, .. }
            | CandleError::Tensor { source, .. }
            | CandleError::Candle(source) => is_out_of_memory(source),
            _ => false,
        }
    }
}

/// Whether candle reports an allocation failure. candle wraps the CUDA
/// driver's errors as text (`DriverError(CUDA_ERROR_OUT_OF_MEMORY, "out of
/// memory")`), with no kind to match on; this is the one place that reads it.
pub fn is_out_of_memory(e: &candle_core::Error) -> bool {
    let text = e.to_string();
    text.contains("out of memory") || text.contains("OUT_OF_MEMORY")
}
