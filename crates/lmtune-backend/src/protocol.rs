//! The runner ↔ worker protocol: one JSON object per line.
//!
//! Runner → worker on stdin: [`Request`]. Worker → runner on its protocol
//! stream: [`Response`]. The worker writes nothing else there; the backend's
//! own output goes to stderr, which the runner keeps a tail of.

use std::path::PathBuf;

use lmtune_core::knobs::{ContextParams, LoadParams};
use lmtune_core::llama_fit::{FitRequest, LlamaFit};
use lmtune_core::openai::ServerLaunch;
use lmtune_core::record::{DryRun, Measurement};
use lmtune_core::scenario::{MeasureSpec, Point};
use serde::{Deserialize, Serialize};

use crate::{BackendError, BackendInfo};

/// Bump when a message changes shape; runner and worker are the same binary,
/// so a mismatch means a stale worker executable.
pub const PROTOCOL_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    Load {
        model: PathBuf,
        load: LoadParams,
        /// What a managed server is started with (the `openai` backend).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        launch: Option<ServerLaunch>,
    },
    Run {
        point: Point,
        measure: MeasureSpec,
        seed: u64,
    },
    /// llama.cpp's dry run of a setting (no model needs to be loaded).
    DryRun {
        model: PathBuf,
        load: LoadParams,
        ctx: ContextParams,
    },
    /// llama.cpp's own fit of a model and context to a memory target.
    LlamaFit {
        model: PathBuf,
        ctx: ContextParams,
        request: FitRequest,
    },
    Exit,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Response {
    Hello {
        protocol: u32,
        pid: u32,
        backend: BackendInfo,
    },
    /// The model is loaded; `load_seq` counts loads in this worker (1, 2, …).
    Loaded {
        load_seq: u64,
        load_ms: f64,
    },
    /// A timed repetition finished.
    Progress {
        rep: u32,
    },
    Done {
        measurement: Box<Measurement>,
    },
    DryRun {
        dry_run: Box<DryRun>,
    },
    LlamaFit {
        fit: Box<LlamaFit>,
    },
    Error {
        error: BackendError,
    },
}
