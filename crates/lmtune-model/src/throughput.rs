//! Generation speed from first principles: generation is memory-bound, so
//! the time per token is the bytes each device reads divided by its
//! effective bandwidth, plus a fixed cost per token:
//!
//! t = bytes_cpu / (η_cpu · BW_cpu) + bytes_gpu / (η_gpu · BW_gpu) + t_fixed
//!
//! With offload the terms add up, which is why interpolating t/s between 0
//! and full offload is wrong by 3–4x in the middle of the range.

use lmtune_gguf::ModelAnatomy;
use serde::Serialize;

use crate::memory::{ContextShape, Placement};

/// Effective-bandwidth factors and fixed costs. The defaults are starting
/// points, to be replaced by fitted values (`lmtune fit`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ThroughputParams {
    /// Host memory bandwidth, GB/s (measured STREAM triad).
    pub cpu_bandwidth_gb_per_s: f64,
    /// GPU memory bandwidth, GB/s (NVML theoretical, or assumed).
    pub gpu_bandwidth_gb_per_s: f64,
    /// Share of the CPU bandwidth a token's weight reads achieve. Default 0.7.
    pub eta_cpu: f64,
    /// Share of the GPU bandwidth. Default 0.75.
    pub eta_gpu: f64,
    /// Fixed cost per token (graph build, scheduling, sampling-free decode
    /// overhead), seconds. Default 1 ms; +2 ms when any layer is offloaded
    /// (kernel launches, host↔device transfer of the hidden state).
    pub t_fixed_s: f64,
    pub t_fixed_gpu_s: f64,
}

impl ThroughputParams {
    pub fn with_bandwidths(cpu_gb_per_s: f64, gpu_gb_per_s: f64) -> ThroughputParams {
        ThroughputParams {
            cpu_bandwidth_gb_per_s: cpu_gb_per_s,
            gpu_bandwidth_gb_per_s: gpu_gb_per_s,
            eta_cpu: 0.7,
            eta_gpu: 0.75,
            t_fixed_s: 1e-3,
            t_fixed_gpu_s: 2e-3,
        }
    }
}

/// Bytes read from each device per generated token at `depth` tokens of
/// context: every repeating layer's weights and its KV cache so far, the
/// output projection (`token_embd` again when tied), one row of `token_embd`.
pub fn bytes_per_token(
    a: &ModelAnatomy,
    placement: &Placement,
    ctx: &ContextShape,
    depth: u64,
) -> (u64, u64) {
    let (mut cpu, mut gpu) = (0u64, 0u64);
    // A mixture of experts reads only the experts a token is routed to.
    let routing = a.expert_routing();
    for (il, layer) in a.layers.iter().enumerate() {
        let kv = depth * a.kv_bytes_per_token_layer(il, ctx.type_k, ctx.type_v);
        let weights = layer.active_bytes(routing);
        if placement.layer_on_gpu(il as u64) {
            gpu += weights + kv;
            if !placement.experts_on_gpu(il as u64) {
                // Experts kept on the CPU (--n-cpu-moe) are read there.
                let experts = weights - (layer.tensors.bytes - layer.routed_experts.bytes);
                gpu -= experts;
                cpu += experts;
            }
        } else {
            cpu += weights + kv;
        }
    }
    let output = if a.tied_embeddings {
        a.input.bytes + a.output.bytes
    } else {
        a.output.bytes
    };
    if placement.output_on_gpu {
        gpu += output;
    } else {
        cpu += output;
    }
    cpu += a.input.bytes / a.n_vocab.max(1);
    (cpu, gpu)
}

/// Predicted generation tokens/s.
pub fn predict_tg(
    a: &ModelAnatomy,
    placement: &Placement,
    ctx: &ContextShape,
    depth: u64,
    p: &ThroughputParams,
) -> f64 {
    let (cpu, gpu) = bytes_per_token(a, placement, ctx, depth);
    let mut t = cpu as f64 / (p.eta_cpu * p.cpu_bandwidth_gb_per_s * 1e9) + p.t_fixed_s;
    if placement.n_gpu_layers > 0 {
        t += gpu as f64 / (p.eta_gpu * p.gpu_bandwidth_gb_per_s * 1e9) + p.t_fixed_gpu_s;
    }
    1.0 / t
}
