//! The advice `advise` checks, and its verdicts on speed. Pure: records in,
//! verdicts out (memory claims are in `memory.rs`).
//!
//! Two settings are compared with the regression gate's test (Welch's t on
//! the raw samples, [`compare_samples`]): a difference counts when its 95%
//! interval excludes zero and it is at least [`MATERIAL`]; it is "the same"
//! when the interval lies within ±[`MATERIAL`]; otherwise the measurements
//! are too noisy to say, and the claim cannot be tested here.

use std::collections::BTreeMap;

use lmtune_core::compare::{compare_samples, Change, Direction, GateParams};
use lmtune_core::knobs::TestKind;
use lmtune_core::record::{Record, Status};
use serde::Serialize;

use super::experiments::ExperimentId;

/// Smallest relative difference that counts.
pub const MATERIAL: f64 = 0.05;

const GATE: GateParams = GateParams {
    threshold: MATERIAL,
    alpha: 0.05,
};

/// One piece of advice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClaimId {
    FullGpu,
    OffloadProportional,
    ThreadsPhysical,
    SmtSlower,
    HybridThreads,
    Kv4k7b,
    Kv32k7b,
    KvQ8,
    Batch512,
    BatchMemory,
    BatchServer,
    QuantMemory,
    QuantFaster,
}

impl ClaimId {
    /// The advice in lmtune's words, and the figure it claims.
    pub fn advice(self) -> (&'static str, &'static str) {
        match self {
            ClaimId::FullGpu => (
                "Full GPU residency is much faster than CPU-only",
                "3–10x the tokens/s",
            ),
            ClaimId::OffloadProportional => (
                "The partial-offload penalty scales with the fraction of layers on the CPU",
                "t/s roughly proportional to the share of layers on the GPU",
            ),
            ClaimId::ThreadsPhysical => (
                "Set CPU threads to the physical core count",
                "physical cores is best",
            ),
            ClaimId::SmtSlower => (
                "Hyper-threading (all logical cores) is slower",
                "often 5–15% slower",
            ),
            ClaimId::HybridThreads => (
                "In hybrid (partial offload) mode fewer threads are best",
                "4–8 threads",
            ),
            ClaimId::Kv4k7b => (
                "A 4096-token context costs KV cache memory on a 7B model",
                "roughly 1–2 GB",
            ),
            ClaimId::Kv32k7b => (
                "A 32K context costs KV cache memory on a 7B model",
                "8–16 GB",
            ),
            ClaimId::KvQ8 => (
                "A q8_0 KV cache saves memory at little cost in speed",
                "about half of f16's memory",
            ),
            ClaimId::Batch512 => (
                "Batch 512 is enough for one chat user",
                "n_batch 512 ≈ 2048 for one client",
            ),
            ClaimId::BatchMemory => (
                "A larger batch costs little memory",
                "marginally higher peak memory at 1024–2048",
            ),
            ClaimId::BatchServer => (
                "Batch 1024–2048 raises aggregate throughput for a server with concurrent clients",
                "higher aggregate t/s at 4 clients",
            ),
            ClaimId::QuantMemory => ("Quantized models need less memory", "Q4 < Q5 < Q8 < F16"),
            ClaimId::QuantFaster => ("Quantized models run faster", "fewer bits, more tokens/s"),
        }
    }

    pub fn experiment(self) -> ExperimentId {
        match self {
            ClaimId::FullGpu | ClaimId::OffloadProportional | ClaimId::HybridThreads => {
                ExperimentId::Offload
            }
            ClaimId::ThreadsPhysical | ClaimId::SmtSlower => ExperimentId::Threads,
            ClaimId::Kv4k7b | ClaimId::Kv32k7b => ExperimentId::Context,
            ClaimId::KvQ8 => ExperimentId::KvType,
            ClaimId::Batch512 | ClaimId::BatchMemory => ExperimentId::Batch,
            ClaimId::BatchServer => ExperimentId::Concurrency,
            ClaimId::QuantMemory | ClaimId::QuantFaster => ExperimentId::Quant,
        }
    }
}

/// The answer to one piece of advice on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Holds,
    DoesNotHold,
    CannotTest,
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Holds => "holds",
            Verdict::DoesNotHold => "does not hold",
            Verdict::CannotTest => "cannot be tested here",
        }
    }
}

/// A measured (or exact) quantity behind a verdict, with its 95% interval
/// where it has one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Effect {
    pub what: String,
    pub value: f64,
    pub low: Option<f64>,
    pub high: Option<f64>,
    pub unit: &'static str,
}

impl Effect {
    pub fn exact(what: impl Into<String>, value: f64, unit: &'static str) -> Effect {
        Effect {
            what: what.into(),
            value,
            low: None,
            high: None,
            unit,
        }
    }

    /// The relative change of a comparison, in percent.
    pub fn change(what: impl Into<String>, c: &Change) -> Effect {
        Effect {
            what: what.into(),
            value: 100.0 * c.relative_change,
            low: c.ci_low.map(|x| 100.0 * x),
            high: c.ci_high.map(|x| 100.0 * x),
            unit: "%",
        }
    }

    pub fn text(&self) -> String {
        let v = |x: f64| {
            if self.unit == "%" {
                format!("{x:+.1}")
            } else if x.abs() >= 100.0 {
                format!("{x:.0}")
            } else {
                format!("{x:.2}")
            }
        };
        let unit = if self.unit == "%" {
            "%".to_string()
        } else {
            format!(" {}", self.unit)
        };
        match (self.low, self.high) {
            (Some(l), Some(h)) => format!(
                "{}: {}{unit} (95% CI {}…{}{unit})",
                self.what,
                v(self.value),
                v(l),
                v(h)
            ),
            _ => format!("{}: {}{unit}", self.what, v(self.value)),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ClaimVerdict {
    pub id: ClaimId,
    pub advice: &'static str,
    pub figure: &'static str,
    pub experiment: ExperimentId,
    pub verdict: Verdict,
    /// Numbers from the sim backend, not measurements.
    pub simulated: bool,
    pub effects: Vec<Effect>,
    /// The numbers in words, or why it cannot be tested here.
    pub reason: String,
    /// What to set instead (or "keep it").
    pub instead: String,
}

impl ClaimVerdict {
    pub fn new(
        id: ClaimId,
        verdict: Verdict,
        reason: impl Into<String>,
        instead: impl Into<String>,
    ) -> Self {
        let (advice, figure) = id.advice();
        ClaimVerdict {
            id,
            advice,
            figure,
            experiment: id.experiment(),
            verdict,
            simulated: false,
            effects: Vec::new(),
            reason: reason.into(),
            instead: instead.into(),
        }
    }

    pub fn with(mut self, effects: Vec<Effect>) -> Self {
        self.effects = effects;
        self
    }
}

/// What each experiment produced.
#[derive(Debug, Clone)]
pub enum Outcome {
    Ran {
        records: Vec<Record>,
        simulated: bool,
    },
    NotHere(String),
}

pub type Outcomes = BTreeMap<ExperimentId, Outcome>;

/// The experiment's ok records, or the verdict that it did not run.
pub fn ran(o: &Outcomes, id: ClaimId) -> Result<(Vec<&Record>, bool), ClaimVerdict> {
    match o.get(&id.experiment()) {
        Some(Outcome::Ran { records, simulated }) => {
            let ok: Vec<&Record> = records.iter().filter(|r| r.status == Status::Ok).collect();
            if ok.is_empty() {
                let why = records
                    .iter()
                    .find_map(|r| r.error.as_deref())
                    .and_then(|e| e.lines().next())
                    .unwrap_or("no point was recorded");
                return Err(ClaimVerdict::new(
                    id,
                    Verdict::CannotTest,
                    format!(
                        "the {} experiment measured nothing: {why}",
                        id.experiment().as_str()
                    ),
                    "",
                ));
            }
            Ok((ok, *simulated))
        }
        Some(Outcome::NotHere(why)) => {
            Err(ClaimVerdict::new(id, Verdict::CannotTest, why.clone(), ""))
        }
        None => Err(ClaimVerdict::new(
            id,
            Verdict::CannotTest,
            "not planned",
            "",
        )),
    }
}

/// How a setting compares with a base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Difference {
    Faster,
    Slower,
    Same,
    TooNoisy,
}

pub fn compare(base: &Record, current: &Record) -> (Change, Difference) {
    let c = compare_samples(
        &base.measurement.samples_ts,
        &current.measurement.samples_ts,
        Direction::HigherIsBetter,
        GATE,
    );
    let d = match (c.ci_low, c.ci_high) {
        (Some(lo), _) if lo > 0.0 && c.relative_change >= MATERIAL => Difference::Faster,
        (_, Some(hi)) if hi < 0.0 && c.relative_change <= -MATERIAL => Difference::Slower,
        (Some(lo), Some(hi)) if lo >= -MATERIAL && hi <= MATERIAL => Difference::Same,
        // Significant but small, or not significant with a small change:
        // nothing that matters either way.
        (Some(lo), Some(hi))
            if (lo > 0.0 || hi < 0.0 || c.relative_change.abs() < MATERIAL / 2.0)
                && c.relative_change.abs() < MATERIAL =>
        {
            Difference::Same
        }
        _ => Difference::TooNoisy,
    };
    (c, d)
}

pub fn mean(r: &Record) -> f64 {
    r.tokens_per_s.map_or(0.0, |s| s.mean)
}

/// Records of one test kind.
pub fn kind<'a>(records: &[&'a Record], k: TestKind) -> Vec<&'a Record> {
    records
        .iter()
        .copied()
        .filter(|r| r.workload.kind() == k)
        .collect()
}

fn test_name(k: TestKind) -> &'static str {
    match k {
        TestKind::Pp => "prompt processing",
        TestKind::Tg => "generation",
        TestKind::PpTg => "pp+tg",
    }
}

/// Physical cores against the fastest thread count, for pp and tg.
pub fn threads_physical(o: &Outcomes, physical: u32) -> ClaimVerdict {
    let id = ClaimId::ThreadsPhysical;
    let (records, _) = match ran(o, id) {
        Ok(r) => r,
        Err(v) => return v,
    };
    let mut effects = Vec::new();
    let mut words = Vec::new();
    let mut losses = Vec::new();
    let mut noisy = false;
    let mut best_threads = BTreeMap::new();
    for k in [TestKind::Pp, TestKind::Tg] {
        let rs = kind(&records, k);
        let Some(phys) = rs.iter().find(|r| r.ctx.threads == physical) else {
            continue;
        };
        let Some(best) = rs.iter().max_by(|a, b| mean(a).total_cmp(&mean(b))) else {
            continue;
        };
        best_threads.insert(k, best.ctx.threads);
        let list = rs
            .iter()
            .map(|r| format!("{} threads {:.1}", r.ctx.threads, mean(r)))
            .collect::<Vec<_>>()
            .join(", ");
        words.push(format!("{} t/s: {list}", test_name(k)));
        // The fastest other count against the physical one: a loss when
        // physical is not the best, the margin it wins by when it is.
        let Some(other) = rs
            .iter()
            .filter(|r| r.ctx.threads != physical)
            .max_by(|a, b| mean(a).total_cmp(&mean(b)))
        else {
            continue;
        };
        let (c, d) = compare(phys, other);
        effects.push(Effect::change(
            format!(
                "{}: {} threads vs {physical} (physical)",
                test_name(k),
                other.ctx.threads
            ),
            &c,
        ));
        let best = other;
        match d {
            Difference::Faster => losses.push(format!(
                "{} threads is faster for {}",
                best.ctx.threads,
                test_name(k)
            )),
            Difference::TooNoisy => noisy = true,
            _ => {}
        }
    }
    if words.is_empty() {
        return ClaimVerdict::new(
            id,
            Verdict::CannotTest,
            format!("no ok record at {physical} threads"),
            "",
        );
    }
    let reason = words.join("; ");
    let (verdict, instead) = if !losses.is_empty() {
        let t = best_threads.get(&TestKind::Tg).copied().unwrap_or(physical);
        (
            Verdict::DoesNotHold,
            format!("threads = {t} ({})", losses.join("; ")),
        )
    } else if noisy {
        (
            Verdict::CannotTest,
            "measure again on a quiet machine with more repetitions".into(),
        )
    } else {
        (Verdict::Holds, format!("threads = {physical}"))
    };
    let reason = if noisy && verdict == Verdict::CannotTest {
        format!("too noisy to tell the thread counts apart: {reason}")
    } else {
        reason
    };
    ClaimVerdict::new(id, verdict, reason, instead).with(effects)
}

/// All logical cores against the physical count.
pub fn smt_slower(o: &Outcomes, physical: u32, logical: u32) -> ClaimVerdict {
    let id = ClaimId::SmtSlower;
    if logical <= physical {
        return ClaimVerdict::new(
            id,
            Verdict::CannotTest,
            format!("no SMT here: {physical} physical cores = {logical} logical"),
            format!("threads = {physical}"),
        );
    }
    let (records, _) = match ran(o, id) {
        Ok(r) => r,
        Err(v) => return v,
    };
    let mut effects = Vec::new();
    let mut diffs = Vec::new();
    for k in [TestKind::Pp, TestKind::Tg] {
        let rs = kind(&records, k);
        let at = |t: u32| rs.iter().find(|r| r.ctx.threads == t).copied();
        let (Some(p), Some(l)) = (at(physical), at(logical)) else {
            continue;
        };
        let (c, d) = compare(p, l);
        effects.push(Effect::change(
            format!("{}: {logical} vs {physical} threads", test_name(k)),
            &c,
        ));
        diffs.push(d);
    }
    let verdict = if diffs.is_empty() || diffs.contains(&Difference::TooNoisy) {
        Verdict::CannotTest
    } else if diffs.iter().all(|d| *d == Difference::Slower) {
        Verdict::Holds
    } else {
        Verdict::DoesNotHold
    };
    let reason = effects
        .iter()
        .map(Effect::text)
        .collect::<Vec<_>>()
        .join("; ");
    let instead = if diffs.contains(&Difference::Faster) {
        format!("threads = {logical} (the logical cores are faster here)")
    } else {
        format!("threads = {physical}")
    };
    ClaimVerdict::new(
        id,
        verdict,
        if reason.is_empty() {
            "no paired measurements".into()
        } else {
            reason
        },
        instead,
    )
    .with(effects)
}

/// Concurrent clients through llama-server at n_batch 512 and 2048.
pub fn batch_server(o: &Outcomes) -> ClaimVerdict {
    let id = ClaimId::BatchServer;
    let (records, _) = match ran(o, id) {
        Ok(r) => r,
        Err(v) => return v,
    };
    let mut effects = Vec::new();
    let mut diffs = Vec::new();
    for k in [TestKind::Pp, TestKind::Tg] {
        let rs = kind(&records, k);
        let at = |b: u32| {
            rs.iter()
                .find(|r| r.ctx.n_batch == b && r.workload.concurrency == 4)
                .copied()
        };
        let (Some(small), Some(large)) = (at(512), at(2048)) else {
            continue;
        };
        let (c, d) = compare(small, large);
        effects.push(Effect::change(
            format!(
                "{} aggregate t/s at 4 clients: n_batch 2048 vs 512",
                test_name(k)
            ),
            &c,
        ));
        diffs.push(d);
    }
    let verdict = if diffs.is_empty() || diffs.contains(&Difference::TooNoisy) {
        Verdict::CannotTest
    } else if diffs.contains(&Difference::Faster) {
        Verdict::Holds
    } else {
        Verdict::DoesNotHold
    };
    let reason = effects
        .iter()
        .map(Effect::text)
        .collect::<Vec<_>>()
        .join("; ");
    let instead = if verdict == Verdict::Holds {
        "-b 2048 -ub 2048 for a shared server"
    } else {
        "-b 512 -ub 512 is enough"
    };
    ClaimVerdict::new(
        id,
        verdict,
        if reason.is_empty() {
            "no paired server measurements".into()
        } else {
            reason
        },
        instead,
    )
    .with(effects)
}

#[cfg(test)]
#[path = "claims_tests.rs"]
mod tests;
