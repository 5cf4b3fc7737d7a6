//! The devices llama.cpp places layers on, and ggml backend libraries
//! loaded at run time (`--ggml-backend`).

use std::path::Path;

use super::log;
use crate::BackendError;

/// The devices llama.cpp offloads layers to by default: the GPUs, or else
/// the integrated GPUs (`llama_model_load`'s choice when none is given).
pub(super) fn default_gpus() -> Vec<llama_cpp_2::LlamaBackendDevice> {
    use llama_cpp_2::LlamaBackendDeviceType as Kind;
    let devices = llama_cpp_2::list_llama_ggml_backend_devices();
    let of = |kind: Kind| -> Vec<llama_cpp_2::LlamaBackendDevice> {
        devices
            .iter()
            .filter(|d| d.device_type == kind)
            .cloned()
            .collect()
    };
    let gpus = of(Kind::Gpu);
    if gpus.is_empty() {
        of(Kind::IntegratedGpu)
    } else {
        gpus
    }
}

/// The names of [`default_gpus`].
pub(super) fn gpu_devices() -> Vec<String> {
    default_gpus().into_iter().map(|d| d.name).collect()
}

/// Loads and registers one ggml backend library (`ggml_backend_load`), and
/// refuses one that registers no device (a GPU backend on a machine without
/// that GPU): a sweep would otherwise run every point on the CPU.
pub(super) fn load_ggml_backend(path: &Path) -> Result<(), BackendError> {
    let failed = |message: String| BackendError::Setup {
        message,
        log: log::take(),
    };
    if !path.is_file() {
        return Err(failed(format!("ggml backend {} does not exist (build it with scripts/build-ggml-backend.sh cuda|vulkan, or fix --ggml-backend / LMTUNE_GGML_BACKENDS)", path.display())));
    }
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| {
        failed(format!(
            "ggml backend path {} contains a NUL byte",
            path.display()
        ))
    })?;
    log::take();
    // SAFETY: a valid NUL-terminated path; ggml returns null on any failure.
    let reg = unsafe { llama_cpp_sys_2::ggml_backend_load(c_path.as_ptr()) };
    if reg.is_null() {
        let log = log::take();
        let reason = log
            .last()
            .cloned()
            .unwrap_or_else(|| "ggml_backend_load returned nothing".into());
        return Err(BackendError::Setup {
            message: format!(
                "cannot load ggml backend {}: {reason}{}",
                path.display(),
                load_hint(&reason)
            ),
            log,
        });
    }
    // SAFETY: `reg` is the non-null registration ggml just returned.
    let (devices, name) = unsafe {
        (
            llama_cpp_sys_2::ggml_backend_reg_dev_count(reg),
            std::ffi::CStr::from_ptr(llama_cpp_sys_2::ggml_backend_reg_name(reg))
                .to_string_lossy()
                .into_owned(),
        )
    };
    if devices == 0 {
        let log = log::take();
        let why = log.last().map(|l| format!(" ({l})")).unwrap_or_default();
        // ggml-vulkan leaves out CPU-type devices unless they are named.
        let vulkan = if name == "Vulkan" {
            " (ggml's Vulkan backend skips software devices such as Mesa's llvmpipe; GGML_VK_VISIBLE_DEVICES=0 selects one, to exercise the offload path without a GPU)"
        } else {
            ""
        };
        return Err(BackendError::Setup {
            message: format!(
                "ggml backend {} ({name}) loaded but found no device{why}: this machine has no GPU it can use, so every point would run on the CPU; drop --ggml-backend / LMTUNE_GGML_BACKENDS here{vulkan}",
                path.display()
            ),
            log,
        });
    }
    Ok(())
}

/// What to do about a backend library ggml could not load, from its reason.
fn load_hint(reason: &str) -> &'static str {
    if reason.contains("incompatible API version") {
        " — it was built from another llama.cpp version; build it from the source llama-cpp-sys-2 vendors (scripts/build-ggml-backend.sh)"
    } else if reason.contains("ggml_backend_init") {
        " — the file is not a ggml backend library"
    } else if reason.contains("libggml-base.so") && !cfg!(feature = "dynamic-link") {
        " — this lmtune has llama.cpp linked in, so a backend library cannot share its ggml; use the dynamic-link build (scripts/build-dynamic.sh: cargo build --release --features dynamic-link, with its libraries)"
    } else if reason.contains("libcuda.so") {
        " — the NVIDIA driver's library is not on this machine (no driver installed, or not on the library path)"
    } else if reason.contains("libcudart.so") || reason.contains("libcublas") {
        " — the CUDA runtime libraries it was built with are missing: install that CUDA toolkit version, or add its lib64 folder to LD_LIBRARY_PATH"
    } else {
        ""
    }
}
