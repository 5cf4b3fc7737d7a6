//! llama.cpp's own dry run: what a setting would take, per buffer type, from
//! a model and context created with `no_alloc = true` (the mechanism of
//! llama.cpp's `--fit`): nothing is allocated, the numbers are llama.cpp's
//! own allocator's, for every architecture it knows (sliding windows, MLA,
//! recurrent state, …) — the oracle the analytic planner is checked against.
//!
//! The breakdown is C++ API (`llama_get_memory_breakdown`); the build script
//! compiles `cpp/memory_breakdown.cpp`, its C face, against the vendored
//! source.

use std::ffi::{c_char, c_long, CStr};
use std::path::Path;
use std::time::Instant;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::LlamaModel;
use lmtune_core::knobs::LoadParams;
use lmtune_core::record::{DryRun, DryRunBuffer};

use super::log;
use crate::BackendError;

#[repr(C)]
struct MemoryRow {
    buffer_type: [c_char; 64],
    device: [c_char; 64],
    is_host: i32,
    model: usize,
    context: usize,
    compute: usize,
}

extern "C" {
    fn lmtune_memory_breakdown(
        ctx: *const llama_cpp_sys_2::llama_context,
        rows: *mut MemoryRow,
        cap: usize,
    ) -> c_long;
}

/// A model loaded with `no_alloc` (metadata and placement only), for dry
/// runs of its contexts.
pub struct DryModel {
    // Field order: the model drops before its parameters.
    model: LlamaModel,
    _params: super::model_params::ModelParams,
}

impl DryModel {
    /// Loads `path` as the real load would (`n_gpu_layers`), allocating nothing.
    pub fn load(
        backend: &LlamaBackend,
        path: &Path,
        load: &LoadParams,
    ) -> Result<DryModel, BackendError> {
        let params = super::model_params::ModelParams::new(load, true);
        log::take();
        log::quietly(|| LlamaModel::load_from_file(backend, path, params.get()))
            .map(|model| DryModel {
                model,
                _params: params,
            })
            .map_err(|e| {
                let log = log::take();
                // llama.cpp's own reason: "error loading model: …", else its
                // last error line.
                let reason = log
                    .iter()
                    .rev()
                    .find_map(|l| l.split("error loading model: ").nth(1))
                    .or(log.last().map(String::as_str))
                    .map_or_else(|| e.to_string(), str::to_string);
                BackendError::PointFailed {
                    message: format!("llama.cpp cannot load the model ({reason})"),
                    log,
                }
            })
    }

    /// What a context with `params` would take, per buffer type.
    pub fn context(&self, params: &LlamaContextParams) -> Result<DryRun, BackendError> {
        let start = Instant::now();
        // SAFETY: LlamaModel is #[repr(transparent)] over a non-null
        // `llama_model` pointer (llama-cpp-2 0.1.160, pinned exactly), which
        // stays valid while `self.model` lives.
        let model =
            unsafe { *std::ptr::from_ref(&self.model).cast::<*mut llama_cpp_sys_2::llama_model>() };
        log::take();
        // SAFETY: a valid model and a by-value parameter struct.
        let ctx =
            log::quietly(|| unsafe { llama_cpp_sys_2::llama_init_from_model(model, raw(params)) });
        if ctx.is_null() {
            let log = log::take();
            return Err(BackendError::PointFailed {
                message: format!(
                    "llama.cpp's dry run could not create the context{}",
                    log.last().map(|l| format!(": {l}")).unwrap_or_default()
                ),
                log,
            });
        }
        let rows = breakdown(ctx);
        // SAFETY: `ctx` came from llama_init_from_model and is freed once.
        log::quietly(|| unsafe { llama_cpp_sys_2::llama_free(ctx) });
        log::take();
        let buffers = rows.ok_or_else(|| BackendError::PointFailed {
            message: "llama.cpp's memory breakdown failed".into(),
            log: Vec::new(),
        })?;
        Ok(DryRun {
            buffers,
            ms: start.elapsed().as_secs_f64() * 1e3,
            error: None,
        })
    }
}

fn breakdown(ctx: *mut llama_cpp_sys_2::llama_context) -> Option<Vec<DryRunBuffer>> {
    let mut rows: Vec<MemoryRow> = Vec::new();
    loop {
        let cap = rows.capacity().max(16);
        rows.reserve_exact(cap);
        // SAFETY: room for `cap` rows; the C side writes at most that many
        // and returns how many there are.
        let n = unsafe { lmtune_memory_breakdown(ctx, rows.as_mut_ptr(), rows.capacity()) };
        let n = usize::try_from(n).ok()?;
        if n <= rows.capacity() {
            // SAFETY: the first `n` rows were written.
            unsafe { rows.set_len(n) };
            break;
        }
        rows.reserve_exact(n);
    }
    let text = |s: &[c_char]| {
        // SAFETY: snprintf NUL-terminated it within the array.
        unsafe { CStr::from_ptr(s.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    };
    Some(
        rows.iter()
            .map(|r| DryRunBuffer {
                buffer_type: text(&r.buffer_type),
                // ggml names no device for the plain CPU buffer type.
                device: Some(text(&r.device))
                    .filter(|d| !d.is_empty())
                    .unwrap_or_else(|| "CPU".into()),
                host: r.is_host != 0,
                model_bytes: r.model as u64,
                context_bytes: r.context as u64,
                compute_bytes: r.compute as u64,
            })
            .collect(),
    )
}

/// The C struct behind `params`, field by field through llama-cpp-2's
/// getters (it exposes no other way), over llama.cpp's defaults.
pub(super) fn raw(p: &LlamaContextParams) -> llama_cpp_sys_2::llama_context_params {
    // SAFETY: a plain constructor of a C struct by value.
    let mut c = unsafe { llama_cpp_sys_2::llama_context_default_params() };
    c.n_ctx = p.n_ctx().map_or(0, |n| n.get());
    c.n_batch = p.n_batch();
    c.n_ubatch = p.n_ubatch();
    c.n_seq_max = p.n_seq_max();
    c.n_threads = p.n_threads();
    c.n_threads_batch = p.n_threads_batch();
    c.flash_attn_type = p.flash_attention_policy();
    c.type_k = p.type_k().into();
    c.type_v = p.type_v().into();
    c.embeddings = p.embeddings();
    c.offload_kqv = p.offload_kqv();
    c.no_perf = p.no_perf();
    c.op_offload = p.op_offload();
    c.swa_full = p.swa_full();
    c.kv_unified = p.kv_unified();
    c
}
