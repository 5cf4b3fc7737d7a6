//! `run --dry-run`: the points a run would measure, without measuring.

use lmtune_core::scenario::Plan;
use lmtune_core::shard::PlanFile;

use super::run::{file_name, knob_summary};

/// The plan's points (this shard's, with the line that says which part of
/// the whole they are), with their timeouts and, under a VRAM budget, the
/// predicted VRAM of offloaded points.
pub(super) fn print_plan(plan: &Plan, plan_file: &PlanFile, vram_budget: Option<u64>) {
    println!(
        "{}: {} points in {} load group(s); model {} ({}, {} layers, trained on {} tokens)",
        plan.scenario_name,
        plan.points.len(),
        plan.load_groups(),
        file_name(&plan.model_path),
        plan.model.type_label(),
        plan.model.n_layer,
        plan.model.n_ctx_train
    );
    if let Some(line) = super::shard::summary(plan, plan_file) {
        println!("{line}");
    }
    // With a declared budget, the planner's VRAM for every offloaded point.
    let anatomy = vram_budget.and_then(|_| {
        lmtune_gguf::GgufFile::open(&plan.model_path)
            .and_then(|f| f.anatomy())
            .ok()
    });
    if let Some(budget) = vram_budget {
        println!(
            "VRAM budget {} ([budget] vram): points predicted over it are marked",
            lmtune_report::human_bytes(budget)
        );
    }
    let throughput = lmtune_model::ThroughputParams::with_bandwidths(20.0, 500.0);
    let cpu = crate::predict::host_cpu_backend();
    for p in &plan.points {
        let vram = match (&anatomy, vram_budget) {
            (Some(a), Some(budget)) if p.load.n_gpu_layers > 0 => {
                let v = crate::predict::predict_point(a, p, true, &throughput, &cpu).vram_bytes;
                format!(
                    "  predicted VRAM {}{}",
                    lmtune_report::human_bytes(v),
                    if v > budget { " OVER BUDGET" } else { "" }
                )
            }
            _ => String::new(),
        };
        println!(
            "  #{:<4} group {:<3} {:<16} {}  (timeout {:.0} s){vram}",
            p.index,
            p.load_group,
            p.test.label(),
            knob_summary(p),
            plan.measure.point_timeout_s(&p.test)
        );
    }
}
