//! Every row of the plan dry-run by llama.cpp, where its worker has a GPU:
//! the device buffers each offload would take (model and context created
//! with `no_alloc`, one worker for all rows) plus the driver's context
//! decide what fits, and the memory model's figures stay beside them.
//! Without a GPU device the dry run puts nothing on one, and the plan for
//! a `--vram` budget stays the memory model's.

use lmtune_core::knobs::ContextParams;
use lmtune_model::Plan;

use crate::cli::PlanArgs;
use crate::dry_run::{gpu_context_bytes, DryRunner};

/// Dry-runs every row when llama.cpp has a GPU device; the note saying
/// which source decided, or None when the memory model alone did.
pub fn apply(
    args: &PlanArgs,
    runner: &mut DryRunner,
    p: &mut Plan,
    ctx: &ContextParams,
) -> Option<String> {
    if p.budgets.vram_bytes == 0 {
        return None;
    }
    let device = runner.gpu()?;
    let context = gpu_context_bytes(&device);
    let started = std::time::Instant::now();
    let mut failed = None;
    let vram: Vec<Option<u64>> = p
        .rows
        .iter()
        .map(|r| {
            let load = super::load_params(r.n_gpu_layers, r.n_cpu_moe);
            match runner.device_vram(&args.model, &load, ctx, &device) {
                Ok(bytes) => Some(bytes),
                Err(e) => {
                    failed.get_or_insert(e);
                    None
                }
            }
        })
        .collect();
    let answered = vram.iter().filter(|v| v.is_some()).count();
    lmtune_model::apply_dry_run(p, &vram);
    let mut note = format!(
        "VRAM decided by llama.cpp's dry run of {answered} of {} rows on {} ({}), plus {} MiB of GPU context, in {:.1} s (column \"VRAM (llama.cpp)\"; the others are the memory model's)",
        p.rows.len(),
        device.name,
        device.description,
        context >> 20,
        started.elapsed().as_secs_f64()
    );
    if let Some(e) = failed {
        note.push_str(&format!(
            "; the other rows keep the memory model's figure (llama.cpp: {e})"
        ));
    }
    Some(note)
}
