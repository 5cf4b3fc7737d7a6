//! Stage 5: checks across stages that need no model file: the axes a
//! backend does not have, and a workload that times something. The
//! [`Sweep`](super::axes::Sweep) reader calls the per-axis checks right after
//! reading each axis, so the first error of a file is the one it always was.

use std::ops::Range;

use super::axes::{Sweep, Workload};
use super::error::ErrorSite;
use super::{Axis, BackendSpec, ScenarioError, TensorPlacement};
use crate::knobs::{FlashAttn, KvType};

/// `sweep.op_offload` is llama.cpp's own switch.
pub(super) fn op_offload(
    site: &ErrorSite<'_>,
    op_offload: &Axis<bool>,
    backend: &BackendSpec,
) -> Result<(), ScenarioError> {
    if op_offload.explicit && !backend.has_op_offload() {
        return Err(site.at(
            op_offload.span.clone(),
            "sweep.op_offload",
            format!(
                "op offload is a switch of llama.cpp's own contexts; the \"{}\" backend has none",
                backend.name()
            ),
            "remove sweep.op_offload (for a llama-server, put --no-op-offload in [backend.openai] command)",
        ));
    }
    Ok(())
}

/// `sweep.swa_full` is llama.cpp's, in process or in a server.
pub(super) fn swa_full(
    site: &ErrorSite<'_>,
    swa_full: &Axis<bool>,
    backend: &BackendSpec,
) -> Result<(), ScenarioError> {
    if swa_full.explicit && !backend.has_swa_full() {
        return Err(site.at(
            swa_full.span.clone(),
            "sweep.swa_full",
            format!(
                "swa_full is llama.cpp's sliding-window cache switch; the \"{}\" backend has none",
                backend.name()
            ),
            "remove sweep.swa_full",
        ));
    }
    Ok(())
}

/// Tensor placement (`n_cpu_moe`, `cpu_moe`, `override_tensor`) is
/// llama.cpp's: candle places whole layers; the sim backend simulates expert
/// placement but not arbitrary patterns; in process, llama-cpp-2 offers
/// host-memory (CPU) overrides only.
pub(super) fn tensor_placement(
    site: &ErrorSite<'_>,
    spans: [&Option<Range<usize>>; 3],
    override_tensor: &Axis<String>,
    backend: &BackendSpec,
) -> Result<(), ScenarioError> {
    let keys = ["sweep.n_cpu_moe", "sweep.cpu_moe", "sweep.override_tensor"];
    let placement = backend.tensor_placement();
    if placement == TensorPlacement::LayersOnly {
        if let Some((span, key)) = spans.iter().zip(keys).find(|(s, _)| s.is_some()) {
            return Err(site.at(
                (*span).clone(),
                key,
                "the candle backend places whole layers; it has no tensor overrides",
                format!("remove {key}, or use kind = \"llama-cpp\" for expert offload"),
            ));
        }
    }
    if placement == TensorPlacement::ExpertsOnly && override_tensor.explicit {
        return Err(site.at(
            override_tensor.span.clone(),
            "sweep.override_tensor",
            "the sim backend simulates expert placement (n_cpu_moe, cpu_moe), not arbitrary tensor patterns",
            "use sweep.n_cpu_moe or sweep.cpu_moe with the sim backend",
        ));
    }
    if placement == TensorPlacement::HostOnly {
        for text in &override_tensor.values {
            let overrides = crate::knobs::parse_override_tensor(text).unwrap_or_default();
            if let Some(o) = overrides.iter().find(|o| !o.is_cpu()) {
                return Err(site.at(
                    override_tensor.span.clone(),
                    "sweep.override_tensor",
                    format!(
                        "{}={}: in process, lmtune can keep tensors in host memory (CPU) only (llama-cpp-2 has no device buffer-type overrides)",
                        o.pattern, o.buft
                    ),
                    "use =CPU, or measure a managed llama-server with \"-ot\", \"{override_tensor}\" in [backend.openai] command for device names",
                ));
            }
        }
    }
    Ok(())
}

/// Concurrent clients need a server.
pub(super) fn concurrency(
    site: &ErrorSite<'_>,
    concurrency: &Axis<u32>,
    backend: &BackendSpec,
) -> Result<(), ScenarioError> {
    if !backend.is_server() && concurrency.values.iter().any(|&c| c > 1) {
        return Err(site.at(
            concurrency.span.clone(),
            "sweep.concurrency",
            format!(
                "concurrent clients need a server, but the backend is \"{}\"",
                backend.name()
            ),
            "remove sweep.concurrency, or measure a server with kind = \"openai\"",
        ));
    }
    Ok(())
}

/// At least one n_prompt or n_gen is not 0.
pub(super) fn workload_times_something(
    site: &ErrorSite<'_>,
    w: &Workload,
) -> Result<(), ScenarioError> {
    if w.n_prompt
        .values
        .iter()
        .chain(&w.n_gen.values)
        .all(|&n| n == 0)
    {
        let span = w.n_prompt.span.clone().or(w.n_gen.span.clone());
        return Err(site.at(
            span,
            "workload",
            "every n_prompt and n_gen is 0, so nothing would be timed",
            "set n_prompt (prompt processing) and/or n_gen (generation) to at least 1",
        ));
    }
    Ok(())
}

/// Rejects the knobs candle does not have, then sets them to what candle
/// does, so records say it: an f32 cache, plain attention, weights read into
/// memory (`use_mmap` becomes false).
pub(super) fn candle(
    site: &ErrorSite<'_>,
    sweep: &mut Sweep,
    use_mmap: &mut bool,
    use_mmap_span: Option<Range<usize>>,
) -> Result<(), ScenarioError> {
    check_candle_knobs(
        site,
        &sweep.n_ubatch,
        [&sweep.type_k, &sweep.type_v],
        &sweep.flash_attn,
        use_mmap.then_some(use_mmap_span),
    )?;
    sweep.type_k.values = vec![KvType::F32];
    sweep.type_v.values = vec![KvType::F32];
    sweep.flash_attn.values = vec![FlashAttn::Off];
    *use_mmap = false;
    Ok(())
}

/// Knobs candle does not have are rejected, not silently ignored.
fn check_candle_knobs(
    site: &ErrorSite<'_>,
    n_ubatch: &Axis<u32>,
    kv: [&Axis<KvType>; 2],
    flash_attn: &Axis<FlashAttn>,
    mmap: Option<Option<Range<usize>>>,
) -> Result<(), ScenarioError> {
    if n_ubatch.explicit {
        return Err(site.at(
            n_ubatch.span.clone(),
            "sweep.n_ubatch",
            "the candle backend has no micro-batches: it decodes each n_batch chunk of the prompt at once",
            "remove sweep.n_ubatch and sweep n_batch instead (candle records n_ubatch = n_batch)",
        ));
    }
    for (axis, key) in kv.into_iter().zip(["sweep.type_k", "sweep.type_v"]) {
        if let Some(t) = axis
            .values
            .iter()
            .find(|t| **t != KvType::F32)
            .filter(|_| axis.explicit)
        {
            return Err(site.at(
                axis.span.clone(),
                key,
                format!("the candle backend keeps its KV cache in f32; it has no {t} cache"),
                format!("remove {key} (candle records f32), or use the llama-cpp backend to sweep cache types"),
            ));
        }
    }
    if flash_attn.explicit && flash_attn.values.iter().any(|f| *f != FlashAttn::Off) {
        return Err(site.at(
            flash_attn.span.clone(),
            "sweep.flash_attn",
            "the candle backend computes attention with plain matmuls; it has no flash-attention switch",
            "remove sweep.flash_attn (candle records \"off\"), or use the llama-cpp backend to sweep it",
        ));
    }
    if let Some(Some(span)) = mmap {
        return Err(site.at(
            Some(span),
            "model.use_mmap",
            "the candle backend reads the weights into memory; it cannot mmap them",
            "remove model.use_mmap (candle records use_mmap = false)",
        ));
    }
    Ok(())
}
