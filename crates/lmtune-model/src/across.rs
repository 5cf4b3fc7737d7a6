//! Generation speed across models on one machine: the time per generated
//! token is the bytes it reads divided by an effective bandwidth, plus a
//! fixed cost,
//!
//! ms/token = t_fixed(threads) + GB/token × 1000 / BW_eff(threads),
//!
//! with BW_eff = η × the measured read bandwidth. Within one model the bytes
//! never change, so η and t_fixed cannot be told apart; across models of
//! different sizes they can. Fitted by least squares weighted to relative
//! error (a 7B model's 250 ms must not drown a 135M model's 8 ms), checked by
//! leaving each model out in turn and predicting it from the others, which
//! is what the fit is for: speeds of models never run on this machine.
//! Pure; CPU only (every layer on the host).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::fit::{fit_linear_all, FitError, LinearFit};

/// One measured generation point.
#[derive(Debug, Clone, PartialEq)]
pub struct TgObservation {
    pub model: String,
    pub threads: u32,
    /// Bytes read per generated token (weights and the KV cache so far).
    pub bytes_per_token: f64,
    pub ms_per_token: f64,
    /// The machine's measured read bandwidth at `threads`, GB/s, if known.
    pub read_gb_per_s: Option<f64>,
}

/// The fitted terms at one thread count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreadTerms {
    pub threads: u32,
    /// Bytes a token reads over the time they take, GB/s, with its 95%
    /// interval.
    pub effective_gb_per_s: f64,
    pub effective_gb_per_s_ci95: Option<[f64; 2]>,
    /// The effective over the measured read bandwidth (η), where measured.
    pub eta: Option<f64>,
    pub read_gb_per_s: Option<f64>,
    pub t_fixed_ms: f64,
    pub t_fixed_ms_ci95: Option<[f64; 2]>,
}

/// A model predicted from the fit of the other models.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldOutModel {
    pub model: String,
    pub points: usize,
    /// Mean |error| of the predicted t/s.
    pub mape: f64,
}

/// Generation speed of any model on one machine and backend (`lmtune fit`
/// over results of two or more models).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineCalibration {
    pub version: u32,
    pub machine: String,
    pub backend: String,
    pub models: Vec<String>,
    /// Coefficients `ms_fixed_at_{t}_threads` and `ms_per_gb_at_{t}_threads`
    /// over one row per model and thread count (their mean time; weighted
    /// least squares; errors are of t/s).
    pub fit: LinearFit,
    pub threads: Vec<ThreadTerms>,
    /// Each model predicted by the fit of the others.
    pub leave_one_model_out: Vec<HeldOutModel>,
    /// Mean |error| over every held-out point.
    pub leave_one_model_out_mape: Option<f64>,
    pub notes: Vec<String>,
}

fn fixed_name(t: u32) -> String {
    format!("ms_fixed_at_{t}_threads")
}

fn slope_name(t: u32) -> String {
    format!("ms_per_gb_at_{t}_threads")
}

/// Thread counts at which at least two different byte counts were measured.
fn identifiable(obs: &[&TgObservation]) -> Vec<u32> {
    let mut by_threads: BTreeMap<u32, Vec<f64>> = BTreeMap::new();
    for o in obs {
        let sizes = by_threads.entry(o.threads).or_default();
        if !sizes.iter().any(|b| (b - o.bytes_per_token).abs() < 1.0) {
            sizes.push(o.bytes_per_token);
        }
    }
    by_threads
        .into_iter()
        .filter(|(_, sizes)| sizes.len() >= 2)
        .map(|(t, _)| t)
        .collect()
}

/// Fits ms/token at `threads` over `obs` (those at other thread counts are
/// ignored), rows scaled by 1/ms so the residuals are relative.
fn fit_terms(obs: &[&TgObservation], threads: &[u32]) -> Result<LinearFit, FitError> {
    let names: Vec<String> = threads
        .iter()
        .flat_map(|&t| [fixed_name(t), slope_name(t)])
        .collect();
    let used: Vec<&&TgObservation> = obs
        .iter()
        .filter(|o| threads.contains(&o.threads))
        .collect();
    let rows: Vec<Vec<f64>> = used
        .iter()
        .map(|o| {
            threads
                .iter()
                .flat_map(|&t| {
                    if o.threads == t {
                        [
                            1.0 / o.ms_per_token,
                            o.bytes_per_token / 1e9 / o.ms_per_token,
                        ]
                    } else {
                        [0.0, 0.0]
                    }
                })
                .collect()
        })
        .collect();
    let y = vec![1.0; used.len()];
    let ms: Vec<f64> = used.iter().map(|o| o.ms_per_token).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    fit_linear_all(
        "generation across models",
        &names,
        &rows,
        &y,
        // A fitted value v stands for v × ms: the error that matters is in t/s.
        |i, v| 1000.0 / (v * ms[i]),
    )
}

fn coefficient(fit: &LinearFit, name: &str) -> Option<(f64, Option<[f64; 2]>)> {
    let c = fit.coefficients.iter().find(|c| c.name == name)?;
    let ci = c.ci95_low.zip(c.ci95_high).map(|(l, h)| [l, h]);
    Some((c.value, ci))
}

impl MachineCalibration {
    /// The fitted terms at `threads`.
    pub fn at(&self, threads: u32) -> Option<&ThreadTerms> {
        self.threads.iter().find(|t| t.threads == threads)
    }
}

/// Predicted ms per token at `threads` for a model reading `bytes_per_token`;
/// `None` at a thread count the fit has no terms for.
fn predict(fit: &LinearFit, threads: u32, bytes_per_token: f64) -> Option<f64> {
    let (fixed, _) = coefficient(fit, &fixed_name(threads))?;
    let (slope, _) = coefficient(fit, &slope_name(threads))?;
    Some(fixed + slope * bytes_per_token / 1e9)
}

/// Fits the machine's generation terms over observations of two or more
/// models. Thread counts measured on only one model size are left out (and
/// said so in `notes`).
pub fn fit_across_models(
    machine: &str,
    backend: &str,
    obs: &[TgObservation],
) -> Result<MachineCalibration, FitError> {
    // One row per model, thread count and byte count (the mean time), so a
    // model measured at twenty settings weighs as much as one measured once.
    let mut groups: BTreeMap<(String, u32, u64), Vec<&TgObservation>> = BTreeMap::new();
    for o in obs
        .iter()
        .filter(|o| o.ms_per_token > 0.0 && o.bytes_per_token > 0.0)
    {
        groups
            .entry((o.model.clone(), o.threads, o.bytes_per_token as u64))
            .or_default()
            .push(o);
    }
    let merged: Vec<TgObservation> = groups
        .into_values()
        .map(|g| TgObservation {
            ms_per_token: g.iter().map(|o| o.ms_per_token).sum::<f64>() / g.len() as f64,
            read_gb_per_s: g.iter().find_map(|o| o.read_gb_per_s),
            ..g[0].clone()
        })
        .collect();
    let all: Vec<&TgObservation> = merged.iter().collect();
    let mut models: Vec<String> = all.iter().map(|o| o.model.clone()).collect();
    models.sort();
    models.dedup();
    let threads = identifiable(&all);
    let mut notes = Vec::new();
    let mut measured_threads: Vec<u32> = all.iter().map(|o| o.threads).collect();
    measured_threads.sort_unstable();
    measured_threads.dedup();
    for t in measured_threads.iter().filter(|t| !threads.contains(t)) {
        notes.push(format!(
            "{t} threads: measured on one model size only; bandwidth and fixed cost cannot be told apart there, left out"
        ));
    }
    if threads.is_empty() {
        return Err(FitError::Degenerate(
            "generation across models (every thread count has one model size)".into(),
        ));
    }
    let fit = fit_terms(&all, &threads)?;
    let terms = threads
        .iter()
        .filter_map(|&t| {
            let (fixed, fixed_ci) = coefficient(&fit, &fixed_name(t))?;
            let (slope, slope_ci) = coefficient(&fit, &slope_name(t))?;
            let effective = 1000.0 / slope;
            let read = all
                .iter()
                .filter(|o| o.threads == t)
                .find_map(|o| o.read_gb_per_s);
            Some(ThreadTerms {
                threads: t,
                effective_gb_per_s: effective,
                // ms/GB from l to h is GB/s from 1000/h to 1000/l.
                effective_gb_per_s_ci95: slope_ci
                    .filter(|[l, _]| *l > 0.0)
                    .map(|[l, h]| [1000.0 / h, 1000.0 / l]),
                eta: read.map(|r| effective / r),
                read_gb_per_s: read,
                t_fixed_ms: fixed,
                t_fixed_ms_ci95: fixed_ci,
            })
        })
        .collect();
    // Each model from the others.
    let mut held_out = Vec::new();
    let mut errors = Vec::new();
    for m in &models {
        let (mine, others): (Vec<&TgObservation>, Vec<&TgObservation>) =
            all.iter().partition(|o| o.model == *m);
        let usable = identifiable(&others);
        if usable.is_empty() {
            continue;
        }
        let Ok(f) = fit_terms(&others, &usable) else {
            continue;
        };
        let e: Vec<f64> = mine
            .iter()
            .filter_map(|o| {
                let ms = predict(&f, o.threads, o.bytes_per_token)?;
                let (truth, guess) = (1000.0 / o.ms_per_token, 1000.0 / ms);
                Some(((guess - truth) / truth).abs())
            })
            .collect();
        if e.is_empty() {
            continue;
        }
        held_out.push(HeldOutModel {
            model: m.clone(),
            points: e.len(),
            mape: e.iter().sum::<f64>() / e.len() as f64,
        });
        errors.extend(e);
    }
    Ok(MachineCalibration {
        version: 1,
        machine: machine.into(),
        backend: backend.into(),
        models,
        fit,
        threads: terms,
        leave_one_model_out: held_out,
        leave_one_model_out_mape: (!errors.is_empty())
            .then(|| errors.iter().sum::<f64>() / errors.len() as f64),
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Planted: 20 GB/s effective at 1 thread, 30 at 2; 1.5 and 1.0 ms fixed.
    fn planted(model: &str, gb: f64, threads: u32, noise: f64) -> TgObservation {
        let (bw, fixed) = if threads == 1 {
            (20.0, 1.5)
        } else {
            (30.0, 1.0)
        };
        TgObservation {
            model: model.into(),
            threads,
            bytes_per_token: gb * 1e9,
            ms_per_token: (fixed + gb * 1000.0 / bw) * (1.0 + noise),
            read_gb_per_s: Some(if threads == 1 { 25.0 } else { 40.0 }),
        }
    }

    fn observations() -> Vec<TgObservation> {
        let mut obs = Vec::new();
        // Alternating ±1% noise, several points per model and thread count.
        for (k, (m, gb)) in [("small", 0.1), ("1b", 0.66), ("3b", 1.9), ("7b", 3.8)]
            .into_iter()
            .enumerate()
        {
            for t in [1, 2] {
                for rep in 0..3 {
                    let noise = if (k + rep + t as usize) % 2 == 0 {
                        0.01
                    } else {
                        -0.01
                    };
                    obs.push(planted(m, gb, t, noise));
                }
            }
        }
        obs
    }

    #[test]
    fn recovers_planted_bandwidth_and_fixed_cost_within_2_percent() {
        let c = fit_across_models("m", "b", &observations()).unwrap();
        assert_eq!(c.models.len(), 4);
        let one = c.at(1).unwrap();
        let two = c.at(2).unwrap();
        assert!(
            (one.effective_gb_per_s / 20.0 - 1.0).abs() < 0.02,
            "{one:?}"
        );
        assert!(
            (two.effective_gb_per_s / 30.0 - 1.0).abs() < 0.02,
            "{two:?}"
        );
        assert!((one.t_fixed_ms / 1.5 - 1.0).abs() < 0.05, "{one:?}");
        assert!((one.eta.unwrap() - 0.8).abs() < 0.02, "{one:?}");
        let [lo, hi] = one.effective_gb_per_s_ci95.unwrap();
        assert!(lo < 20.0 && 20.0 < hi, "{one:?}");
        // Every model is predicted from the other three within the noise.
        assert_eq!(c.leave_one_model_out.len(), 4);
        assert!(c.leave_one_model_out_mape.unwrap() < 0.03, "{c:?}");
        // And a model never seen.
        let ms = predict(&c.fit, 2, 13.0e9).unwrap();
        assert!(
            (ms / (1.0 + 13.0 * 1000.0 / 30.0) - 1.0).abs() < 0.02,
            "{ms}"
        );
        assert!(predict(&c.fit, 4, 1e9).is_none());
    }

    #[test]
    fn a_thread_count_with_one_model_size_is_left_out_and_said() {
        let mut obs = observations();
        obs.push(planted("small", 0.1, 8, 0.0));
        let c = fit_across_models("m", "b", &obs).unwrap();
        assert!(c.at(8).is_none());
        assert!(
            c.notes.iter().any(|n| n.starts_with("8 threads")),
            "{:?}",
            c.notes
        );
        // One model only: nothing can be fitted.
        let one: Vec<TgObservation> = obs.into_iter().filter(|o| o.model == "7b").collect();
        assert!(fit_across_models("m", "b", &one).is_err());
    }
}
