//! `lmtune tune`'s flags as the tuner's options, each checked with a
//! message that names the flag and the fix.

use anyhow::{anyhow, bail};
use lmtune_model::tuner::{Objective, TuneOptions};

use crate::cli::TuneArgs;

/// `90`, `90s`, `10m`, `1.5h` as seconds.
pub(crate) fn parse_duration(text: &str) -> anyhow::Result<f64> {
    let t = text.trim();
    let (number, unit) = match t.find(|c: char| c.is_ascii_alphabetic()) {
        Some(at) => t.split_at(at),
        None => (t, "s"),
    };
    let scale = match unit.trim() {
        "s" | "sec" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => bail!("--time-budget {text}: unknown unit {other:?}; use s, m or h (e.g. 10m)"),
    };
    match number.trim().parse::<f64>() {
        Ok(n) if n > 0.0 && n.is_finite() => Ok(n * scale),
        _ => bail!("--time-budget {text}: not a positive duration; write e.g. 90s, 10m or 1h"),
    }
}

/// `3%` or `3` as a fraction (0.03).
fn parse_tolerance(text: &str) -> anyhow::Result<f64> {
    let number = text.trim().trim_end_matches('%').trim();
    match number.parse::<f64>() {
        Ok(n) if (0.0..50.0).contains(&n) => Ok(n / 100.0),
        _ => bail!("--tolerance {text}: not a percentage from 0 to 50; write e.g. 3%"),
    }
}

/// The flags as the tuner's options (the VRAM budget from `--vram` only;
/// the scenario's applies when the flag is absent).
pub(super) fn options(args: &TuneArgs) -> anyhow::Result<TuneOptions> {
    let objective = Objective::from_name(&args.objective).ok_or_else(|| {
        anyhow!(
            "--objective {}: use tg (generation), pp (prompt processing) or balanced (a pp + tg request)",
            args.objective
        )
    })?;
    let tolerance = parse_tolerance(&args.tolerance)?;
    if args.max_points == Some(0) {
        bail!("--max-points 0: the tuner needs at least 1 point to measure; give 1 or more, or leave it out for no limit");
    }
    if args.against.is_some() && args.check_rounds == 0 {
        bail!("--check-rounds 0: the check needs at least one round; use 1 or more (default 3)");
    }
    let time_budget_s = args
        .time_budget
        .as_deref()
        .map(parse_duration)
        .transpose()?;
    let vram_budget_bytes = args
        .vram
        .as_deref()
        .map(|v| {
            lmtune_core::units::parse_size(v)
                .map_err(|e| anyhow!("--vram {v}: {e} (write e.g. 8GiB or 24GB)"))
        })
        .transpose()?;
    Ok(TuneOptions {
        objective,
        tolerance,
        time_budget_s,
        max_points: args.max_points,
        vram_budget_bytes,
    })
}
