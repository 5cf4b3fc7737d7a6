//! llama.cpp's own fit (`common_fit_params` in its `common` library, what
//! `llama-server --fit` runs, through llama-cpp-sys-2's
//! `llama_rs_fit_params`): from a memory target per device it picks
//! `n_gpu_layers`, the tensor split and tensor overrides, loading the model
//! with `no_alloc` as often as it needs. The raw call rather than
//! llama-cpp-2's `fit_params`: that wrapper keeps the tensor split and the
//! overrides' buffer types to itself.

use std::ffi::{CStr, CString};
use std::path::Path;
use std::time::Instant;

use llama_cpp_2::context::params::LlamaContextParams;
use lmtune_core::llama_fit::{
    FitDevice, FitOverride, FitRequest, FitTarget, LlamaFit, LLAMA_SERVER_FIT_MARGIN,
};

use super::{devices, dry_run, log};
use crate::BackendError;

/// Runs llama.cpp's fit of `path` with a context like `ctx` for `request`.
pub fn fit(
    path: &Path,
    ctx: &LlamaContextParams,
    request: &FitRequest,
) -> Result<LlamaFit, BackendError> {
    let start = Instant::now();
    let c_path =
        CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| BackendError::Setup {
            message: format!("model path {} contains a NUL byte", path.display()),
            log: Vec::new(),
        })?;
    // SAFETY: plain queries of compile-time limits.
    let (max_devices, max_overrides) = unsafe {
        (
            llama_cpp_sys_2::llama_max_devices(),
            llama_cpp_sys_2::llama_max_tensor_buft_overrides(),
        )
    };
    let gpus = devices::default_gpus();
    let devices: Vec<FitDevice> = gpus
        .iter()
        .map(|d| {
            let free = d.memory_free as u64;
            FitDevice {
                name: d.name.clone(),
                description: d.description.clone(),
                free_bytes: free,
                total_bytes: d.memory_total as u64,
                margin_bytes: match request.target {
                    FitTarget::Margin(m) => m,
                    FitTarget::Budget(b) => free.saturating_sub(b),
                },
            }
        })
        .collect();
    // Without a GPU, llama.cpp's fit reads margins[0] as the host's.
    let mut margins = vec![0usize; max_devices.max(1)];
    if devices.is_empty() {
        margins[0] = match request.target {
            FitTarget::Margin(m) => m,
            FitTarget::Budget(_) => LLAMA_SERVER_FIT_MARGIN,
        } as usize;
    }
    for (m, d) in margins.iter_mut().zip(&devices) {
        *m = usize::try_from(d.margin_bytes).unwrap_or(usize::MAX);
    }
    let mut split = vec![0f32; max_devices.max(1)];
    let mut overrides = vec![
        llama_cpp_sys_2::llama_model_tensor_buft_override {
            pattern: std::ptr::null(),
            buft: std::ptr::null_mut(),
        };
        max_overrides + 1
    ];
    // SAFETY: plain constructor of a C struct by value.
    let mut mparams = unsafe { llama_cpp_sys_2::llama_model_default_params() };
    let mut cparams = dry_run::raw(ctx);
    log::take();
    // SAFETY: every buffer has the length llama.cpp's fit writes into
    // (llama_max_devices floats and margins, llama_max_tensor_buft_overrides
    // overrides plus the terminator); the path is NUL-terminated; no extra
    // model. The parameter structs are ours and live across the call.
    let status = log::quietly(|| unsafe {
        llama_cpp_sys_2::llama_rs_fit_params(
            c_path.as_ptr(),
            &mut mparams,
            &mut cparams,
            split.as_mut_ptr(),
            overrides.as_mut_ptr(),
            margins.as_mut_ptr(),
            request.n_ctx_min,
            std::ptr::null(),
            llama_cpp_sys_2::GGML_LOG_LEVEL_ERROR,
        )
    });
    let log = log::take();
    if status != 0 && status != 1 {
        let reason = log
            .iter()
            .rev()
            .find_map(|l| l.split("error loading model: ").nth(1))
            .or(log.last().map(String::as_str))
            .unwrap_or("no reason logged")
            .to_string();
        return Err(BackendError::PointFailed {
            message: format!(
                "llama.cpp's fit could not read {} ({reason})",
                path.display()
            ),
            log,
        });
    }
    let overrides = if mparams.tensor_buft_overrides.is_null() {
        Vec::new()
    } else {
        overrides
            .iter()
            .take_while(|o| !o.pattern.is_null())
            .map(|o| FitOverride {
                // SAFETY: fit's patterns are NUL-terminated strings in
                // static storage of common/fit.cpp.
                pattern: unsafe { CStr::from_ptr(o.pattern) }
                    .to_string_lossy()
                    .into_owned(),
                buffer_type: if o.buft.is_null() {
                    "CPU".into()
                } else {
                    // SAFETY: a buffer type ggml registered; its name is static.
                    unsafe { CStr::from_ptr(llama_cpp_sys_2::ggml_backend_buft_name(o.buft)) }
                        .to_string_lossy()
                        .into_owned()
                },
            })
            .collect()
    };
    let tensor_split = if mparams.tensor_split.is_null() || devices.len() < 2 {
        Vec::new()
    } else {
        split[..devices.len()].to_vec()
    };
    Ok(LlamaFit {
        fits: status == 0,
        n_gpu_layers: mparams.n_gpu_layers,
        tensor_split,
        overrides,
        n_ctx: cparams.n_ctx,
        devices,
        ms: start.elapsed().as_secs_f64() * 1e3,
    })
}
