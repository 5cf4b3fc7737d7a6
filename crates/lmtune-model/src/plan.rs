//! The planner: for every `n_gpu_layers` from 0 to all, predicted memory on
//! each device, whether it fits the budgets, and predicted generation speed;
//! then the fastest setting that fits.

use lmtune_gguf::ModelAnatomy;
use serde::Serialize;

use crate::memory::{predict_memory, ContextShape, CpuBackend, MemoryPrediction};
use crate::throughput::{predict_tg, ThroughputParams};

/// Memory available to the model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Budgets {
    pub vram_bytes: u64,
    pub ram_bytes: u64,
    /// Fraction of each budget kept free (fragmentation, other programs,
    /// estimation error). Default 0.1.
    pub headroom: f64,
}

impl Budgets {
    fn usable(&self, bytes: u64) -> u64 {
        (bytes as f64 * (1.0 - self.headroom)) as u64
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanRow {
    pub n_gpu_layers: u64,
    pub memory: MemoryPrediction,
    pub fits_vram: bool,
    pub fits_ram: bool,
    pub tg_tokens_per_s: f64,
}

impl PlanRow {
    pub fn fits(&self) -> bool {
        self.fits_vram && self.fits_ram
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub ctx: ContextShape,
    pub budgets: Budgets,
    pub throughput: ThroughputParams,
    pub rows: Vec<PlanRow>,
    /// Index into `rows` of the fastest setting that fits.
    pub recommended: Option<usize>,
}

pub fn plan(
    a: &ModelAnatomy,
    ctx: ContextShape,
    budgets: Budgets,
    throughput: ThroughputParams,
    cpu: &CpuBackend,
) -> Plan {
    let rows: Vec<PlanRow> = (0..=a.n_layer + 1)
        .map(|ngl| {
            let memory = predict_memory(a, ngl, &ctx, cpu);
            PlanRow {
                n_gpu_layers: ngl,
                fits_vram: memory.gpu.total() <= budgets.usable(budgets.vram_bytes),
                fits_ram: memory.host.total() <= budgets.usable(budgets.ram_bytes),
                tg_tokens_per_s: predict_tg(a, &memory.placement, &ctx, 0, &throughput),
                memory,
            }
        })
        .collect();
    let recommended = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| r.fits())
        .max_by(|(_, x), (_, y)| x.tg_tokens_per_s.total_cmp(&y.tg_tokens_per_s))
        .map(|(i, _)| i);
    Plan {
        ctx,
        budgets,
        throughput,
        rows,
        recommended,
    }
}
