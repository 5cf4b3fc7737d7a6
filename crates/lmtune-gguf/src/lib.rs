//! GGUF files: a metadata reader that stays safe on hostile input, the
//! model anatomy it yields, and a writer for synthetic models.
//!
//! lmtune reads GGUF files before anything loads them: to validate a scenario
//! (`n_ctx` against the trained context, `n_gpu_layers` against the layer
//! count) and to describe the model in every result record. A file handed to
//! a benchmark tool may be truncated, corrupted or crafted, so this reader
//! never trusts a length, count or offset it has not checked against the bytes
//! that are really there, bounds every allocation, and returns a typed
//! [`GgufError`] instead of panicking.
//!
//! ```no_run
//! let file = lmtune_gguf::GgufFile::open("models/SmolLM2-135M-Instruct.Q4_1.gguf")?;
//! let summary = file.summary()?;
//! println!("{} layers, trained on {} tokens", summary.n_layer, summary.n_ctx_train);
//! # Ok::<(), lmtune_gguf::GgufError>(())
//! ```

mod anatomy;
mod reader;
mod summary;
pub mod synth;
mod types;
mod writer;

pub use anatomy::{
    is_routed_expert, Experts, KvNotModelled, Layer, ModelAnatomy, TensorGroup, SYNTHETIC_KEY,
};
pub use reader::{GgufFile, Limits, MetadataValue, TensorInfo};
pub use summary::ModelSummary;
pub use types::{file_type_name, GgmlType};
pub use writer::{write_gguf, TensorSpec, WriteError};

use std::path::PathBuf;

/// Why a GGUF file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("cannot open {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("I/O error while reading {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a GGUF file (its first bytes are {found:?}, a GGUF file starts with \"GGUF\")")]
    BadMagic { path: PathBuf, found: [u8; 4] },
    #[error("{path} has GGUF version {version}; lmtune reads versions 2 and 3 (re-convert the model with a current llama.cpp)")]
    UnsupportedVersion { path: PathBuf, version: u32 },
    #[error("{path} is truncated: {what} at byte {offset} needs {needed} bytes but the file ends at byte {file_len} (re-download or re-convert the model)")]
    Truncated {
        path: PathBuf,
        what: String,
        offset: u64,
        needed: u64,
        file_len: u64,
    },
    #[error("{path} is corrupt: {what} (at byte {offset})")]
    Corrupt {
        path: PathBuf,
        what: String,
        offset: u64,
    },
    #[error("{path}: {what} exceeds lmtune's limit of {limit} (at byte {offset}); the file is corrupt or not a model lmtune can describe")]
    LimitExceeded {
        path: PathBuf,
        what: String,
        limit: u64,
        offset: u64,
    },
    #[error("{path}: metadata key `{key}` is missing; {hint}")]
    MissingKey {
        path: PathBuf,
        key: String,
        hint: String,
    },
    #[error("{path}: metadata key `{key}` has type {found}, expected {expected}")]
    WrongType {
        path: PathBuf,
        key: String,
        found: &'static str,
        expected: &'static str,
    },
}
