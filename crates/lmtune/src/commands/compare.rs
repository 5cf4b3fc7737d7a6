//! `lmtune compare`: the regression gate.

use std::io::Write;

use anyhow::{anyhow, bail, Context};
use lmtune_core::compare::GateParams;
use lmtune_report::baseline::{baseline_dir, load_baseline};
use lmtune_report::compare::{compare_records, Metric};
use lmtune_report::{load_results, CompareFormat};

use crate::cli::CompareArgs;
use crate::exit;

pub fn run(args: CompareArgs) -> anyhow::Result<u8> {
    // With --baseline the one path is CURRENT; otherwise BASE... CURRENT.
    let (base_paths, current_path) = match (&args.baseline, args.paths.as_slice()) {
        (Some(_), [current]) => (Vec::new(), current.clone()),
        (Some(_), _) => bail!("with --baseline NAME give only the CURRENT results"),
        (None, [bases @ .., current]) if !bases.is_empty() => (bases.to_vec(), current.clone()),
        (None, _) => bail!("give BASE and CURRENT results (or --baseline NAME and CURRENT)"),
    };
    let threshold = parse_fraction(&args.threshold).ok_or_else(|| {
        anyhow!(
            "--threshold {}: write a percentage like 5% or a fraction like 0.05",
            args.threshold
        )
    })?;
    if !(0.0 < args.alpha && args.alpha < 0.5) {
        bail!("--alpha {} must be between 0 and 0.5", args.alpha);
    }
    let metrics = Metric::parse_list(&args.metric).map_err(|e| anyhow!("--metric: {e}"))?;
    let Some(format) = CompareFormat::parse(&args.format) else {
        bail!("--format {}: use table, md, json or junit", args.format);
    };

    let base = match &args.baseline {
        Some(name) => load_baseline(&baseline_dir(), name)?.records,
        None => {
            let mut records = Vec::new();
            for path in &base_paths {
                records.extend(
                    load_results(path)
                        .with_context(|| {
                            format!("cannot read the base results {}", path.display())
                        })?
                        .1,
                );
            }
            records
        }
    };
    let current = load_results(&current_path)
        .with_context(|| format!("cannot read the current results {}", current_path.display()))?
        .1;
    let comparison = compare_records(
        &base,
        &current,
        &metrics,
        GateParams {
            threshold,
            alpha: args.alpha,
        },
        args.allow_different_environment,
    )?;
    std::io::stdout().write_all(&format.exporter().serialize(&comparison)?)?;
    Ok(if comparison.regressed() {
        exit::SOME_FAILED
    } else {
        exit::OK
    })
}

pub(crate) fn parse_fraction(s: &str) -> Option<f64> {
    let s = s.trim();
    let v = match s.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().ok()? / 100.0,
        None => s.parse::<f64>().ok()?,
    };
    (v > 0.0 && v < 1.0).then_some(v)
}
