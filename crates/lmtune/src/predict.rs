//! Predictions recorded next to each measurement: the planner's models
//! applied to the point's knobs, before it runs.

use lmtune_core::knobs::{FlashAttn, TestKind};
use lmtune_core::record::PointPrediction;
use lmtune_core::scenario::Point;
use lmtune_gguf::ModelAnatomy;
use lmtune_model::{
    bytes_per_token, predict_memory_at, predict_tg, resident_bytes, ContextShape, CpuBackend,
    Placement, ThroughputParams,
};

/// Name of the prediction source in records.
pub const SOURCE: &str = "lmtune-model structural defaults v1";

/// `gpu_offload`: whether the backend has a GPU device; without one,
/// llama.cpp keeps every layer on the CPU whatever `n_gpu_layers` says.
pub fn predict_point(
    a: &ModelAnatomy,
    point: &Point,
    gpu_offload: bool,
    throughput: &ThroughputParams,
    cpu: &CpuBackend,
) -> PointPrediction {
    let c = &point.ctx;
    let ctx = ContextShape {
        n_ctx: u64::from(c.n_ctx),
        n_ubatch: u64::from(c.effective_ubatch()),
        type_k: c.type_k.ggml_type(),
        type_v: c.type_v.ggml_type(),
        // "auto" enables flash attention where the device supports it (CPU does).
        flash_attn: c.flash_attn != FlashAttn::Off,
        swa_full: c.swa_full,
        op_offload: c.op_offload,
    };
    let ngl = if gpu_offload {
        u64::from(point.load.n_gpu_layers)
    } else {
        0
    };
    let placement = Placement::new(a, ngl)
        .with_cpu_moe(point.load.experts_on_host(a.n_layer))
        .with_gpu(gpu_offload);
    let m = predict_memory_at(a, placement, &ctx, cpu);
    let is_tg = point.test.kind() == TestKind::Tg;
    // Average depth over the generated tokens.
    let depth = u64::from(point.test.n_depth) + u64::from(point.test.n_gen) / 2;
    let tg = is_tg.then(|| predict_tg(a, &m.placement, &ctx, depth, throughput));
    let tg_bytes = is_tg.then(|| {
        let (cpu, gpu) = bytes_per_token(a, &m.placement, &ctx, depth);
        cpu + gpu
    });
    // With nothing offloaded but a GPU there, op offload's compute buffer.
    let (vram_bytes, vram_buffers) = (m.gpu.total(), m.gpu.buffers());
    PointPrediction {
        source: SOURCE.into(),
        rss_bytes: resident_bytes(
            a,
            &m,
            &ctx,
            u64::from(point.test.n_prompt),
            u64::from(point.test.n_gen),
            u64::from(point.test.n_depth),
        ),
        host_alloc_bytes: m.host.total(),
        host_buffers_bytes: Some(m.host.buffers()),
        vram_bytes,
        vram_buffers_bytes: (vram_buffers > 0).then_some(vram_buffers),
        tg_tokens_per_s: tg,
        tg_bytes_per_token: tg_bytes,
    }
}

/// This machine's CPU backend traits (which weight types llama.cpp repacks).
pub fn host_cpu_backend() -> CpuBackend {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let flags = cpuinfo
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            matches!(k.trim(), "flags" | "Features").then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    CpuBackend::from_cpu_flags(std::env::consts::ARCH, &flags)
}
