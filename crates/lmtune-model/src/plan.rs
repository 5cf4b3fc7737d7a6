//! The planner: for every `n_gpu_layers` from 0 to all, predicted memory on
//! each device, whether it fits the budgets, and predicted generation speed;
//! then the fastest setting that fits.

use lmtune_gguf::ModelAnatomy;
use serde::Serialize;

use crate::memory::{predict_memory_at, ContextShape, CpuBackend, MemoryPrediction, Placement};
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

    /// The GPU memory a plan may fill: the budget less its headroom.
    pub fn usable_vram(&self) -> u64 {
        self.usable(self.vram_bytes)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanRow {
    pub n_gpu_layers: u64,
    /// Routed experts of blocks 0..n kept in host memory (`--n-cpu-moe`);
    /// 0 for dense models and whole-layer offload.
    pub n_cpu_moe: u64,
    pub memory: MemoryPrediction,
    pub fits_vram: bool,
    pub fits_ram: bool,
    pub tg_tokens_per_s: f64,
    /// The GPU memory llama.cpp's own dry run of this row gives (its device
    /// buffers plus the driver's context), where it has a GPU to ask; what
    /// decides whether the row fits the VRAM budget then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dry_run_vram_bytes: Option<u64>,
}

impl PlanRow {
    pub fn fits(&self) -> bool {
        self.fits_vram && self.fits_ram
    }

    /// The VRAM that decides fitting: the dry run's, else the memory model's.
    pub fn vram_bytes(&self) -> u64 {
        self.dry_run_vram_bytes
            .unwrap_or_else(|| self.memory.gpu.total())
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
    let all = a.n_layer + 1;
    // Whole-layer offload 0..=all; for a mixture of experts also every layer
    // on the GPU with the routed experts of the first 1..=n_layer blocks in
    // host memory (llama.cpp's --n-cpu-moe): the offload space is 2-D.
    let moe = a.layers.iter().any(|l| !l.routed_experts.is_empty());
    // A plan for a GPU budget: even at n_gpu_layers 0 op offload puts a
    // compute buffer on it.
    let gpu = budgets.vram_bytes > 0;
    let placements = (0..=all)
        .map(|ngl| Placement::new(a, ngl).with_gpu(gpu))
        .chain(
            (1..=a.n_layer)
                .filter(|_| moe)
                .map(|n| Placement::new(a, all).with_cpu_moe(n).with_gpu(gpu)),
        );
    let rows: Vec<PlanRow> = placements
        .map(|placement| {
            let memory = predict_memory_at(a, placement, &ctx, cpu);
            PlanRow {
                n_gpu_layers: placement.n_gpu_layers,
                n_cpu_moe: placement.n_cpu_moe,
                fits_vram: memory.gpu.total() <= budgets.usable(budgets.vram_bytes),
                fits_ram: memory.host.total() <= budgets.usable(budgets.ram_bytes),
                tg_tokens_per_s: predict_tg(a, &memory.placement, &ctx, 0, &throughput),
                dry_run_vram_bytes: None,
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

/// Replaces the default estimates with fitted ones where the calibration has
/// them: the host memory beyond the structural terms (compute buffers and
/// overhead) from its memory fit, and CPU-only generation speed at `threads`
/// from its generation fit. Then re-decides what fits and what is best.
pub fn apply_calibration(plan: &mut Plan, cal: &crate::Calibration, threads: u32) -> Vec<String> {
    let mut applied = Vec::new();
    if let Some(mem) = &cal.memory {
        let u = plan.ctx.n_ubatch as f64;
        let ctx = plan.ctx.n_ctx as f64;
        let features = |name: &str| match name {
            "overhead_mib" => Some(1.0),
            "mib_per_ubatch_token" => Some(u),
            "mib_per_ubatch_token_per_1k_ctx" => Some(u * ctx / 1000.0),
            _ => None,
        };
        let residue_mib: Option<f64> = mem
            .coefficients
            .iter()
            .map(|c| features(&c.name).map(|f| c.value * f))
            .sum();
        if let Some(mib) = residue_mib {
            let bytes = (mib.max(0.0) * 1024.0 * 1024.0) as u64;
            for row in &mut plan.rows {
                row.memory.host.compute = 0;
                row.memory.host.overhead = bytes;
            }
            applied.push(format!("host memory beyond weights and KV: fitted {mib:.1} MiB (leave-one-out error {:.1}%)", mem.loo_mape.unwrap_or(f64::NAN) * 100.0));
        }
    }
    if let Some(tg) = &cal.tg {
        let name = format!("ms_per_token_at_{threads}_threads");
        // A held coefficient (0) is no time per token to plan with.
        if let Some(c) = tg
            .coefficients
            .iter()
            .find(|c| c.name == name && c.held.is_none())
        {
            if let Some(row) = plan.rows.iter_mut().find(|r| r.n_gpu_layers == 0) {
                row.tg_tokens_per_s = 1000.0 / c.value;
                applied.push(format!("CPU-only generation at {threads} threads: fitted {:.1} t/s (leave-one-out error {:.1}%)", row.tg_tokens_per_s, tg.loo_mape.unwrap_or(f64::NAN) * 100.0));
            }
        }
    }
    decide(plan);
    applied
}

/// Replaces the default host generation terms (η_cpu, t_fixed) with a
/// machine's fit across models at `threads` (or the nearest fitted count
/// below it) and predicts every row's generation again; offloaded layers
/// keep the default GPU terms. `None` when the fit has no thread count at
/// or below `threads`.
pub fn apply_machine_calibration(
    plan: &mut Plan,
    a: &ModelAnatomy,
    cal: &crate::MachineCalibration,
    threads: u32,
) -> Option<String> {
    let t = cal
        .threads
        .iter()
        .filter(|t| t.threads <= threads)
        .max_by_key(|t| t.threads)?;
    if plan.throughput.cpu_bandwidth_gb_per_s <= 0.0 || t.effective_gb_per_s <= 0.0 {
        return None;
    }
    plan.throughput.eta_cpu = t.effective_gb_per_s / plan.throughput.cpu_bandwidth_gb_per_s;
    plan.throughput.t_fixed_s = t.t_fixed_ms.max(0.0) / 1000.0;
    for row in &mut plan.rows {
        row.tg_tokens_per_s = predict_tg(a, &row.memory.placement, &plan.ctx, 0, &plan.throughput);
    }
    decide(plan);
    Some(format!(
        "host generation at {} thread(s): {:.1} GB/s effective and {:.2} ms fixed per token, fitted across {} models on {}{}",
        t.threads,
        t.effective_gb_per_s,
        t.t_fixed_ms,
        cal.models.len(),
        cal.machine,
        cal.leave_one_model_out_mape.map_or(String::new(), |e| format!(
            " (each model predicted from the others within {:.1}% on average)",
            e * 100.0
        ))
    ))
}

/// Sets each row's VRAM from llama.cpp's dry run (`vram[i]` for row i,
/// None where it had no answer) and re-decides what fits and what is best.
pub fn apply_dry_run(plan: &mut Plan, vram: &[Option<u64>]) {
    for (row, v) in plan.rows.iter_mut().zip(vram) {
        row.dry_run_vram_bytes = *v;
    }
    decide(plan);
}

/// What fits and the fastest of it, after the predictions changed.
fn decide(plan: &mut Plan) {
    let budgets = plan.budgets;
    for row in &mut plan.rows {
        row.fits_vram = row.vram_bytes() <= budgets.usable(budgets.vram_bytes);
        row.fits_ram = row.memory.host.total() <= budgets.usable(budgets.ram_bytes);
    }
    plan.recommended = plan
        .rows
        .iter()
        .enumerate()
        .filter(|(_, r)| r.fits())
        .max_by(|(_, x), (_, y)| x.tg_tokens_per_s.total_cmp(&y.tg_tokens_per_s))
        .map(|(i, _)| i);
}
