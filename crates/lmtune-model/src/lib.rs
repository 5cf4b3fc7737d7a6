//! Models of local LLM inference: memory per device and generation speed,
//! from the model's anatomy and the hardware, the planner built on them,
//! and the closed-loop tuner ([`tuner`]). Pure code: no I/O.
//!
//! ```no_run
//! # fn anatomy() -> lmtune_gguf::ModelAnatomy { unimplemented!() }
//! use lmtune_gguf::GgmlType;
//! use lmtune_model::{plan, Budgets, ContextShape, ThroughputParams};
//! let ctx = ContextShape { n_ctx: 4096, n_ubatch: 512, type_k: GgmlType(1), type_v: GgmlType(1), flash_attn: true, swa_full: false, op_offload: true };
//! let budgets = Budgets { vram_bytes: 8 << 30, ram_bytes: 32 << 30, headroom: 0.1 };
//! let p = plan(&anatomy(), ctx, budgets, ThroughputParams::with_bandwidths(50.0, 900.0), &Default::default());
//! println!("recommended n_gpu_layers: {:?}", p.recommended.map(|i| p.rows[i].n_gpu_layers));
//! ```

mod across;
mod fit;
mod memory;
mod plan;
mod throughput;
pub mod tuner;

pub use across::{fit_across_models, HeldOutModel, MachineCalibration, TgObservation, ThreadTerms};
pub use fit::{
    fit_linear, fit_linear_all, fit_linear_nonneg, Coefficient, FitError, Held, LinearFit,
};
pub use memory::{
    compute_buffer_bytes, op_offload_device_bytes, predict_memory, predict_memory_at,
    resident_bytes, touched_compute_bytes, ContextShape, CpuBackend, MemoryBreakdown,
    MemoryPrediction, Placement, GPU_OVERHEAD_BYTES, HOST_OVERHEAD_BYTES, OP_OFFLOAD_MIN_BATCH,
};
pub use plan::{
    apply_calibration, apply_dry_run, apply_machine_calibration, plan, Budgets, Plan, PlanRow,
};

/// Fitted models for one machine, backend and model (`lmtune fit`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Calibration {
    pub version: u32,
    pub machine: String,
    pub backend: String,
    pub model: String,
    /// Peak RSS residue (MiB) over the structural terms.
    pub memory: Option<LinearFit>,
    /// VRAM residue (MiB) over the offloaded weights and KV cache.
    #[serde(default)]
    pub vram: Option<LinearFit>,
    /// Milliseconds per generated token.
    pub tg: Option<LinearFit>,
    /// Milliseconds per prompt token.
    pub pp: Option<LinearFit>,
    pub notes: Vec<String>,
}
pub use throughput::{bytes_per_token, predict_tg, ThroughputParams};
pub use tuner::{SpeedModel, SpeedSample};

#[cfg(test)]
mod tests;
