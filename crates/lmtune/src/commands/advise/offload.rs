//! Verdicts on GPU offload: full residency against CPU-only, the
//! "proportional" penalty against the additive model (time per token is
//! the sum of each device's share), threads in hybrid mode. Without a GPU
//! the figures come from the sim backend: shown, labelled SIMULATED, and
//! never a verdict.

use lmtune_core::knobs::TestKind;
use lmtune_core::record::Record;

use super::claims::{
    compare, kind, mean, ran, ClaimId, ClaimVerdict, Effect, Outcome, Outcomes, Verdict,
};
use super::experiments::ExperimentId;

/// Share of offloadable layers a record ran on the GPU.
pub fn gpu_share(r: &Record) -> f64 {
    match &r.measurement.placement {
        Some(p) if p.layers_total > 0 => f64::from(p.layers_offloaded) / f64::from(p.layers_total),
        _ => {
            let total = r.fingerprint.model.n_layer + 1;
            (u64::from(r.load.n_gpu_layers).min(total)) as f64 / total as f64
        }
    }
}

/// tg t/s at a GPU share `f` by the two models: proportional (linear in
/// `f` between CPU-only and full offload) and additive (time per token is
/// the sum of each device's share of the work).
pub fn offload_models(cpu: f64, gpu: f64, f: f64) -> (f64, f64) {
    let proportional = cpu + f * (gpu - cpu);
    let additive = 1.0 / ((1.0 - f) / cpu + f / gpu);
    (proportional, additive)
}

/// The offload experiment's tg records, sorted by GPU share.
fn offload_points<'a>(records: &[&'a Record]) -> Vec<(f64, &'a Record)> {
    let mut v: Vec<(f64, &Record)> = kind(records, TestKind::Tg)
        .into_iter()
        .map(|r| (gpu_share(r), r))
        .collect();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    v
}

const SIM_NOTE: &str = "no GPU here: SIMULATED numbers (sim backend), not measurements";

/// Full offload against CPU-only.
pub fn full_gpu(o: &Outcomes) -> ClaimVerdict {
    let id = ClaimId::FullGpu;
    let (records, simulated) = match ran(o, id) {
        Ok(r) => r,
        Err(v) => return v,
    };
    let pts = offload_points(&records);
    let (Some((f0, cpu)), Some((f1, gpu))) = (pts.first(), pts.last()) else {
        return ClaimVerdict::new(id, Verdict::CannotTest, "no generation records", "");
    };
    if *f1 <= *f0 || *f1 == 0.0 {
        return ClaimVerdict::new(
            id,
            Verdict::CannotTest,
            "every point ran on the CPU: the backend has no GPU device (build with --features cuda, or load one with --ggml-backend)",
            "",
        );
    }
    let (c, _) = compare(cpu, gpu);
    let ratio = Effect {
        what: format!(
            "tg at {:.0}% vs {:.0}% of layers on the GPU",
            100.0 * f1,
            100.0 * f0
        ),
        value: 1.0 + c.relative_change,
        low: c.ci_low.map(|x| 1.0 + x),
        high: c.ci_high.map(|x| 1.0 + x),
        unit: "x",
    };
    let r = ratio.value;
    let reason = format!(
        "{:.1} t/s on the GPU, {:.1} t/s CPU-only: {r:.1}x",
        mean(gpu),
        mean(cpu)
    );
    let mut v = if simulated {
        ClaimVerdict::new(id, Verdict::CannotTest, format!("{SIM_NOTE}; {reason}"), "")
    } else if (3.0..=10.0).contains(&r)
        || ratio
            .low
            .zip(ratio.high)
            .is_some_and(|(l, h)| l <= 10.0 && h >= 3.0)
    {
        ClaimVerdict::new(
            id,
            Verdict::Holds,
            reason,
            "n_gpu_layers = all when the model fits",
        )
    } else {
        ClaimVerdict::new(
            id,
            Verdict::DoesNotHold,
            reason,
            "n_gpu_layers = all when the model fits; expect the measured ratio, not 3–10x",
        )
    };
    v.simulated = simulated;
    v.with(vec![ratio])
}

/// The middle points against the proportional line and the additive model.
pub fn offload_proportional(o: &Outcomes) -> ClaimVerdict {
    let id = ClaimId::OffloadProportional;
    let (records, simulated) = match ran(o, id) {
        Ok(r) => r,
        Err(v) => return v,
    };
    let pts = offload_points(&records);
    let (Some((f0, cpu)), Some((f1, gpu))) = (pts.first(), pts.last()) else {
        return ClaimVerdict::new(id, Verdict::CannotTest, "no generation records", "");
    };
    let middle: Vec<&(f64, &Record)> = pts.iter().filter(|(f, _)| f > f0 && f < f1).collect();
    if middle.is_empty() || *f1 == 0.0 {
        return ClaimVerdict::new(
            id,
            Verdict::CannotTest,
            "no partial offload was measured (no GPU device in the backend)",
            "",
        );
    }
    let (cpu, gpu) = (mean(cpu), mean(gpu));
    let (mut e_prop, mut e_add) = (0.0, 0.0);
    let mut words = Vec::new();
    for (f, r) in &middle {
        let m = mean(r);
        let (p, a) = offload_models(cpu, gpu, *f);
        e_prop += ((p - m) / m).powi(2);
        e_add += ((a - m) / m).powi(2);
        words.push(format!(
            "{:.0}%: {m:.1} t/s (proportional {p:.1}, additive {a:.1})",
            100.0 * f
        ));
    }
    let n = middle.len() as f64;
    let (e_prop, e_add) = ((e_prop / n).sqrt(), (e_add / n).sqrt());
    let effects = vec![
        Effect::exact(
            "RMS error of the proportional line",
            100.0 * e_prop,
            "% rms",
        ),
        Effect::exact("RMS error of the additive model", 100.0 * e_add, "% rms"),
    ];
    let reason = format!("share on the GPU → {}", words.join("; "));
    let verdict = if simulated {
        Verdict::CannotTest
    } else if e_prop <= e_add {
        Verdict::Holds
    } else {
        Verdict::DoesNotHold
    };
    let reason = if simulated {
        format!("{SIM_NOTE}; {reason}")
    } else {
        reason
    };
    let mut v = ClaimVerdict::new(
        id,
        verdict,
        reason,
        "estimate partial offload as time per token = CPU share / CPU t/s + GPU share / GPU t/s (lmtune plan does)",
    )
    .with(effects);
    v.simulated = simulated;
    v
}

/// Hybrid mode needs a GPU and a threads sweep at partial offload.
pub fn hybrid_threads(o: &Outcomes, physical: u32) -> ClaimVerdict {
    let id = ClaimId::HybridThreads;
    let simulated = matches!(
        o.get(&ExperimentId::Offload),
        Some(Outcome::Ran {
            simulated: true,
            ..
        })
    );
    let mut why = if simulated
        || !matches!(o.get(&ExperimentId::Offload), Some(Outcome::Ran { .. }))
    {
        "no GPU here, so there is no hybrid mode".to_string()
    } else {
        "advise does not sweep threads at partial offload yet (lmtune tune with a scenario of n_gpu_layers and threads does)".to_string()
    };
    if physical < 4 {
        why.push_str(&format!(
            "; this machine has {physical} physical cores, fewer than 4"
        ));
    }
    ClaimVerdict::new(
        id,
        Verdict::CannotTest,
        why,
        format!("threads = {physical} (the CPU-only best)"),
    )
}
