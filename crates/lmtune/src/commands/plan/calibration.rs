//! `plan --calibration FILE`: the fitted terms of `lmtune fit` replace
//! the default estimates, per model and for this machine across models.

use std::path::Path;

use anyhow::{bail, Context};
use lmtune_core::fingerprint::HostInfo;
use lmtune_gguf::ModelAnatomy;
use lmtune_model::Plan;

use crate::cli::PlanArgs;

/// Applies the calibration file at `path` to `p`, a note per change.
pub fn apply(
    path: &Path,
    args: &PlanArgs,
    a: &ModelAnatomy,
    p: &mut Plan,
    notes: &mut Vec<String>,
) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--calibration: cannot read {}", path.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("--calibration {}: not JSON", path.display()))?;
    if v.get("format").and_then(|f| f.as_str()) != Some("lmtune-calibration") {
        bail!("--calibration {}: not an lmtune calibration (make one with `lmtune fit RESULTS -o FILE`)", path.display());
    }
    let cals: Vec<lmtune_model::Calibration> = serde_json::from_value(v["calibrations"].clone())
        .with_context(|| format!("--calibration {}", path.display()))?;
    // Older files have no "machines".
    let machines: Vec<lmtune_model::MachineCalibration> = match v.get("machines") {
        Some(m) => serde_json::from_value(m.clone())
            .with_context(|| format!("--calibration {}: machines", path.display()))?,
        None => Vec::new(),
    };
    let file = args
        .model
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let host = HostInfo::detect();
    let this_machine = host.label();
    // Generation of any model on this machine, from the fit across models.
    match machines
        .iter()
        .find(|m| m.machine == this_machine && m.backend == "llama-cpp")
    {
        Some(m) => match lmtune_model::apply_machine_calibration(p, a, m, host.physical_cores) {
            Some(line) => notes.push(format!("calibrated: {line}")),
            None => notes.push(format!(
                "{}: the fit across models has no terms at {} threads or fewer",
                path.display(),
                host.physical_cores
            )),
        },
        None if !machines.is_empty() => notes.push(format!(
            "{}: its fit across models is for {}, not this machine ({this_machine}); not used",
            path.display(),
            machines
                .iter()
                .map(|m| m.machine.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
        None => {}
    }
    match cals.iter().find(|c| c.model.starts_with(&file)) {
        Some(cal) => {
            let threads = host.physical_cores;
            for line in lmtune_model::apply_calibration(p, cal, threads) {
                notes.push(format!("calibrated: {line}"));
            }
        }
        None => notes.push(format!(
            "{} has no calibration for {file}; using the default estimates",
            path.display()
        )),
    }
    Ok(())
}
