//! Stage 4: `[measure]` (repetitions, warm-up, time and memory limits) and
//! `[budget]`.

use toml::{Spanned, Value};

use super::error::ErrorSite;
use super::raw::{RawBudget, RawMeasure};
use super::{MeasureSpec, Repetitions, ScenarioError};

pub(super) fn parse_measure(
    site: &ErrorSite<'_>,
    raw: RawMeasure,
) -> Result<MeasureSpec, ScenarioError> {
    let count = |v: &Option<Spanned<i64>>,
                 key: &str,
                 min: i64,
                 default: i64|
     -> Result<u32, ScenarioError> {
        match v {
            None => Ok(default as u32),
            Some(v) => {
                let n = *v.get_ref();
                if n < min || n > 100_000 {
                    Err(site.at(
                        Some(v.span()),
                        key,
                        format!("{n} is out of range"),
                        format!("use a whole number from {min} to 100000"),
                    ))
                } else {
                    Ok(n as u32)
                }
            }
        }
    };
    let warmup = count(&raw.warmup, "measure.warmup", 0, 1)?;
    let min = count(&raw.min_repetitions, "measure.min_repetitions", 2, 3)?;
    let max = count(&raw.max_repetitions, "measure.max_repetitions", 1, 20)?;
    let repetitions = match &raw.repetitions {
        None => Repetitions::Fixed { count: 5 },
        Some(v) => match v.get_ref() {
            Value::Integer(n) if (1..=100_000).contains(n) => {
                Repetitions::Fixed { count: *n as u32 }
            }
            Value::String(s) if s == "auto" => {
                if min > max {
                    let span = raw.min_repetitions.as_ref().map(|s| s.span());
                    return Err(site.at(
                        span,
                        "measure.min_repetitions",
                        format!("min_repetitions ({min}) is larger than max_repetitions ({max})"),
                        "make min_repetitions <= max_repetitions",
                    ));
                }
                let ci_target = match &raw.ci_target {
                    None => 0.02,
                    Some(t) if *t.get_ref() > 0.0 && *t.get_ref() < 1.0 => *t.get_ref(),
                    Some(t) => {
                        return Err(site.at(
                            Some(t.span()),
                            "measure.ci_target",
                            format!("{} is not a fraction between 0 and 1", t.get_ref()),
                            "write e.g. ci_target = 0.02 for ±2% of the mean",
                        ))
                    }
                };
                Repetitions::Auto {
                    min,
                    max,
                    ci_target,
                }
            }
            other => {
                return Err(site.at(
                    Some(v.span()),
                    "measure.repetitions",
                    format!("{other} is not a repetition count"),
                    "write a whole number of at least 1, or \"auto\"",
                ));
            }
        },
    };
    let seconds = |v: &Option<Spanned<Value>>, key: &str| seconds_value(site, v, key);
    let timeout_s = seconds(&raw.timeout_s, "measure.timeout_s")?;
    let load_timeout_s = seconds(&raw.load_timeout_s, "measure.load_timeout_s")?.unwrap_or(600.0);
    let worker_memory_limit_bytes = match &raw.worker_memory_limit {
        None => None,
        Some(v) => Some(crate::units::parse_size(v.get_ref()).map_err(|e| {
            site.at(
                Some(v.span()),
                "measure.worker_memory_limit",
                e.to_string(),
                "write a size like \"2GiB\", \"512MiB\" or \"8GB\"",
            )
        })?),
    };
    Ok(MeasureSpec {
        repetitions,
        warmup,
        timeout_s,
        load_timeout_s,
        worker_memory_limit_bytes,
    })
}

/// A number of seconds in (0, 7 days], or `None` when the key is absent.
pub(super) fn seconds_value(
    site: &ErrorSite<'_>,
    v: &Option<Spanned<Value>>,
    key: &str,
) -> Result<Option<f64>, ScenarioError> {
    let Some(v) = v else { return Ok(None) };
    let secs = match v.get_ref() {
        Value::Integer(n) => *n as f64,
        Value::Float(f) => *f,
        _ => f64::NAN,
    };
    if secs.is_finite() && secs > 0.0 && secs <= 7.0 * 86_400.0 {
        Ok(Some(secs))
    } else {
        Err(site.at(
            Some(v.span()),
            key,
            format!("{} is not a time limit in seconds", v.get_ref()),
            "write a number of seconds greater than 0, e.g. 300",
        ))
    }
}

/// `[budget] vram`, in bytes; a budget of 0 is rejected.
pub(super) fn parse_budget(
    site: &ErrorSite<'_>,
    raw: &RawBudget,
) -> Result<Option<u64>, ScenarioError> {
    let vram_budget_bytes = match &raw.vram {
        None => None,
        Some(v) => Some(crate::units::parse_size(v.get_ref()).map_err(|e| {
            site.at(
                Some(v.span()),
                "budget.vram",
                e.to_string(),
                "write the GPU memory to plan for, like \"8GiB\" or \"24GiB\"",
            )
        })?),
    };
    if vram_budget_bytes == Some(0) {
        let span = raw.vram.as_ref().map(|v| v.span());
        return Err(site.at(
            span,
            "budget.vram",
            "a VRAM budget of 0 leaves nothing to offload",
            "remove [budget] vram for a CPU-only machine, or give the GPU's memory, e.g. \"8GiB\"",
        ));
    }
    Ok(vram_budget_bytes)
}
