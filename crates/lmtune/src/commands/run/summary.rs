//! What `lmtune run` prints after the sweep: failures, doubtful points,
//! points over the memory budget, and how to resume an interrupted run.

use std::path::Path;

use lmtune_core::record::{Record, Status};
use lmtune_core::scenario::Plan;
use lmtune_core::stats::{Doubts, NOISY_CI_HALF_WIDTH};

use crate::cli::RunArgs;
use crate::interrupt;

/// Notes on stderr the points that used more VRAM than the scenario's
/// `[budget] vram` (they would not fit on the machine it describes).
pub(super) fn print_over_budget(table: &[Record], budget: u64) {
    let over: Vec<&Record> = table
        .iter()
        .filter(|r| r.vram.as_ref().is_some_and(|v| v.used_bytes() > budget))
        .collect();
    if !over.is_empty() {
        eprintln!(
            "note: {} point(s) used more VRAM than the scenario's [budget] vram of {} (they would not fit on that machine):",
            over.len(),
            lmtune_report::human_bytes(budget)
        );
    }
    for r in over {
        eprintln!(
            "  point {} ({} {}): {}",
            r.point_index,
            r.test,
            knob_summary_record(r),
            lmtune_report::human_bytes(r.vram.as_ref().map_or(0, |v| v.used_bytes()))
        );
    }
}

/// Tells on stderr how much of an interrupted run was recorded, and the
/// command that resumes it.
pub(super) fn print_resume_hint(args: &RunArgs, plan: &Plan, table: &[Record], out_dir: &Path) {
    let missing = plan.points.len() - table.iter().filter(|r| r.status == Status::Ok).count();
    eprintln!(
        "interrupted by {}: {} of {} points recorded ok; resume with:\n  {}",
        interrupt::signal_name(),
        plan.points.len() - missing,
        plan.points.len(),
        resume_command(args, out_dir, plan.shard)
    );
}

/// Prints each failed point with its reason, and a note when points asked
/// for an offload that never happened; whether any point failed.
pub(super) fn print_failures(table: &[Record]) -> bool {
    let failed: Vec<&Record> = table.iter().filter(|r| r.status != Status::Ok).collect();
    for r in &failed {
        let reason = r
            .error
            .as_deref()
            .unwrap_or("")
            .lines()
            .next()
            .unwrap_or("");
        eprintln!(
            "point {} ({} {}): {}: {reason}",
            r.point_index,
            r.test,
            knob_summary_record(r),
            r.status.as_str()
        );
    }
    // n_gpu_layers asks; the backend decides. Say so when nothing moved.
    let not_offloaded = table
        .iter()
        .filter(|r| {
            r.load.n_gpu_layers > 0
                && r.measurement
                    .placement
                    .as_ref()
                    .is_some_and(|p| p.layers_offloaded == 0)
        })
        .count();
    if not_offloaded > 0 {
        eprintln!(
            "note: {not_offloaded} point(s) asked for n_gpu_layers > 0 but ran entirely on the CPU: the backend has no GPU device (llama-cpp: load one with --ggml-backend PATH from the dynamic-link build, see scripts/gpu-bundle.sh, or build with --features cuda)"
        );
    }
    !failed.is_empty()
}

/// One line per point whose mean needs a second look (the table's "check"
/// column, the rule `report` warns by), and what to do about it.
pub(super) fn print_doubts(table: &[Record]) {
    let doubtful: Vec<(&Record, Doubts)> = table
        .iter()
        .filter(|r| r.status == Status::Ok)
        .filter_map(|r| {
            let d = Doubts::of(r.tokens_per_s.as_ref()?, &r.measurement.samples_ts);
            (!d.is_empty()).then_some((r, d))
        })
        .collect();
    for (r, d) in &doubtful {
        eprintln!(
            "point {} ({} {}): {}",
            r.point_index,
            r.test,
            knob_summary_record(r),
            d.label()
        );
    }
    if !doubtful.is_empty() {
        eprintln!(
            "note: {} point(s) are noisy (95% CI wider than ±{:.0}% of the mean) or had outlier repetitions (the table's check column): measure them again with more repetitions ([measure] repetitions = 10, or \"auto\") on a quiet machine",
            doubtful.len(),
            NOISY_CI_HALF_WIDTH * 100.0
        );
    }
}

pub(super) fn resume_command(
    args: &RunArgs,
    out_dir: &Path,
    shard: Option<lmtune_core::shard::Shard>,
) -> String {
    let quote = |p: &Path| {
        let s = p.display().to_string();
        if s.contains(|c: char| c.is_whitespace() || c == '\'') {
            format!("'{}'", s.replace('\'', "'\\''"))
        } else {
            s
        }
    };
    let mut cmd = match &args.scenario {
        Some(file) => format!("lmtune run {} --resume {}", quote(file), quote(out_dir)),
        None => format!("lmtune run --resume {}", quote(out_dir)),
    };
    if let Some(model) = &args.model {
        cmd.push_str(&format!(" --model {}", quote(model)));
    }
    if let Some(shard) = shard {
        cmd.push_str(&format!(" --shard {shard}"));
    }
    if let Some(limit) = &args.worker_memory_limit {
        cmd.push_str(&format!(" --worker-memory-limit {limit}"));
    }
    if let Some(name) = &args.save_baseline {
        cmd.push_str(&format!(
            " --save-baseline {name} --baseline-keep {}",
            args.baseline_keep
        ));
    }
    cmd
}

pub(super) fn knob_summary_record(r: &Record) -> String {
    lmtune_core::knobs::knob_label(&r.load, &r.ctx, true)
}
