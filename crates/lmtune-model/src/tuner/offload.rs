//! Step 0 of the search: where the weights go. For a dense model, the
//! largest `n_gpu_layers` that fits the VRAM budget and the device, by a
//! bisection that starts where the memory model puts the boundary and
//! corrects the model by what each offload measured.
//!
//! For a mixture of experts whose space varies `n_cpu_moe` (or `cpu_moe`)
//! the search is two-dimensional, as people offload such models: first the
//! smallest `n_cpu_moe` that fits with every layer of the space's largest
//! `n_gpu_layers` on the GPU (the same bisection, along the experts), then,
//! when some experts must stay on the CPU, the best whole-layer alternative
//! (`n_cpu_moe` at its smallest, the largest `n_gpu_layers` that fits). The
//! two are compared on what their probes measured and, where they are
//! within [`CLOSE`] of each other, back to back ([`super::duel::judge`]).
//! Points with fewer layers *and* experts on the CPU are never measured: they
//! hold less on the GPU than one of the two and read more from host memory.

use lmtune_core::record::Status;
use lmtune_core::scenario::Point;

use super::duel::{judge, measure_round, round_variance, DuelVerdict, Round};
use super::space::{ubatch_eff, Candidate, Space};
use super::{Measurer, Reading, Session, MAX_REPEAT_ROUNDS};

fn mib(b: u64) -> f64 {
    b as f64 / 1048576.0
}

/// Two placements whose probes measured further apart than this (the
/// faster over the slower, minus one) are not compared back to back.
pub const CLOSE: f64 = 0.25;

/// Where a point's weights live: what this step moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Placement {
    pub n_gpu_layers: u32,
    /// Blocks whose routed experts stay in host memory: `n_cpu_moe`, or
    /// [`ALL_EXPERTS`] for `cpu_moe`.
    pub n_cpu_moe: u32,
}

/// `cpu_moe`: every block's routed experts in host memory.
const ALL_EXPERTS: u32 = u32::MAX;

impl Placement {
    fn of(p: &Point) -> Placement {
        Placement {
            n_gpu_layers: p.load.n_gpu_layers,
            n_cpu_moe: if p.load.cpu_moe {
                ALL_EXPERTS
            } else {
                p.load.n_cpu_moe
            },
        }
    }

    fn label(self) -> String {
        match self.n_cpu_moe {
            0 => format!("n_gpu_layers = {}", self.n_gpu_layers),
            ALL_EXPERTS => format!("n_gpu_layers = {}, cpu_moe", self.n_gpu_layers),
            n => format!("n_gpu_layers = {}, n_cpu_moe = {n}", self.n_gpu_layers),
        }
    }
}

/// What one offload showed when measured.
enum Outcome {
    /// Every point ran and stayed within the budget, or not; with the
    /// largest VRAM a point used.
    Fits(bool, Option<u64>),
    /// The backend offloaded nothing: it has no GPU device.
    NoGpu,
}

/// A line of placements, each holding more on the GPU than the one before
/// (so the memory it needs grows along it), and the memory model's VRAM
/// for each.
struct Ladder<'s, 'a> {
    space: &'s Space<'a>,
    rungs: Vec<Placement>,
    predict_vram: &'s dyn Fn(&Point) -> Option<u64>,
    budget: Option<u64>,
}

impl Ladder<'_, '_> {
    /// The most memory-hungry candidate at placement `k` (largest context
    /// and micro-batch), so what fits for it fits for every candidate there.
    fn probe(&self, k: Placement) -> Option<Candidate> {
        let space = self.space;
        space
            .candidates
            .iter()
            .filter(|c| Placement::of(space.point(c)) == k)
            .max_by_key(|c| {
                let p = space.point(c);
                (p.ctx.n_ctx, ubatch_eff(p), p.ctx.threads)
            })
            .copied()
    }

    /// The memory model's VRAM at placement `k`.
    fn predicted(&self, k: Placement) -> Option<u64> {
        let c = self.probe(k)?;
        (self.predict_vram)(self.space.point(&c))
    }

    /// Where the memory model puts the boundary: the most offloaded rung it
    /// says fits the budget (the last of all without one).
    fn start(&self) -> usize {
        match self.budget {
            Some(budget) => self
                .rungs
                .iter()
                .rposition(|&k| self.predicted(k).is_none_or(|v| v <= budget))
                .unwrap_or(0),
            None => self.rungs.len() - 1,
        }
    }

    fn why(&self, k: Placement) -> String {
        match (self.budget, self.predicted(k)) {
            (Some(b), Some(v)) => format!(
                "offload: predicted {:.0} MiB of VRAM, budget {:.0} MiB",
                mib(v),
                mib(b)
            ),
            (None, Some(v)) => format!("offload: predicted {:.0} MiB of VRAM", mib(v)),
            _ => "offload".to_string(),
        }
    }

    /// Judges placement `k` from the latest reading of each point of `c`.
    fn outcome(&self, k: Placement, c: &Candidate, measured: &[(usize, Reading)]) -> Outcome {
        let latest: Vec<&Reading> = c
            .points()
            .filter_map(|i| {
                measured
                    .iter()
                    .rev()
                    .find(|(m, _)| *m == self.space.stand_in[i])
                    .map(|(_, r)| r)
            })
            .collect();
        if k.n_gpu_layers > 0
            && !latest.is_empty()
            && latest.iter().all(|r| r.layers_offloaded == Some(0))
        {
            return Outcome::NoGpu;
        }
        let used = latest.iter().filter_map(|r| r.vram_used_bytes).max();
        // It fits if every point of it ran and stayed within the budget.
        // A device whose memory nothing measured (no NVML: Vulkan, Metal) is
        // held to the prediction — llama.cpp's dry run where there is one.
        let fit = latest.len() == c.points().count()
            && latest.iter().all(|r| r.status == Status::Ok)
            && match (self.budget, used) {
                (Some(b), Some(u)) => u <= b,
                (Some(b), None) => self.predicted(k).is_none_or(|v| v <= b),
                (None, _) => true,
            };
        Outcome::Fits(fit, used)
    }

    /// The next rung to measure, with `lo` the highest known to fit and
    /// `hi` the lowest known not to (indices into `rungs`).
    fn next(
        &self,
        (at, start): (isize, usize),
        fit: bool,
        (lo, hi): (isize, isize),
        offset: Option<i64>,
    ) -> Option<isize> {
        if hi - lo <= 1 {
            None
        } else if let (Some(budget), Some(off)) = (self.budget, offset) {
            // The memory model corrected by the measurement: the highest
            // rung it says fits, or the first one above what did.
            let fits_corrected = |i: isize| {
                self.predicted(self.rungs[i as usize])
                    .is_some_and(|v| v as i64 + off <= budget as i64)
            };
            Some(
                ((lo + 1)..hi)
                    .rev()
                    .find(|&i| fits_corrected(i))
                    .unwrap_or(lo + 1),
            )
        } else if at == start as isize {
            // Check the model's boundary from the other side first.
            Some(if fit { at + 1 } else { at - 1 })
        } else {
            Some((lo + hi) / 2)
        }
    }
}

/// Where a bisection ended.
enum Settled {
    /// The most offloaded rung that fits.
    Largest(Placement),
    /// No rung fits.
    NoneFits,
    /// The backend has no GPU device.
    NoGpu,
}

/// Settles the placement when the space has several and narrows the
/// space's candidates to it.
pub(super) fn settle<M: Measurer>(
    space: &mut Space,
    session: &mut Session<M>,
    budget: Option<u64>,
    predict_vram: &dyn Fn(&Point) -> Option<u64>,
    tolerance: f64,
) -> Result<(), M::Error> {
    let mut placements: Vec<Placement> = space
        .candidates
        .iter()
        .map(|c| Placement::of(space.point(c)))
        .collect();
    placements.sort_unstable();
    placements.dedup();
    if placements.len() <= 1 {
        return Ok(());
    }
    let ladder = |rungs: Vec<Placement>| Ladder {
        space: &*space,
        rungs,
        predict_vram,
        budget,
    };
    let over_budget = || budget.map_or(String::new(), |b| format!(" {:.0} MiB", mib(b)));
    let keep = if placements.iter().any(|p| p.n_cpu_moe > 0) {
        experts_then_layers(&placements, &ladder, session, tolerance)?
    } else {
        let layers = ladder(placements.clone());
        match bisect(&layers, session)? {
            Settled::NoGpu => {
                let k = placements[0];
                session.trace.push(format!(
                    "offload settled: {}, the smallest (no GPU device); tuning the rest there",
                    k.label()
                ));
                Some(k)
            }
            Settled::NoneFits => {
                session
                    .trace
                    .push(format!("no n_gpu_layers fits{}", over_budget()));
                None
            }
            Settled::Largest(k) => {
                session.trace.push(format!(
                    "offload settled: {}, the largest that fits; tuning the rest there",
                    k.label()
                ));
                Some(k)
            }
        }
    };
    match keep {
        Some(k) => {
            let points = space.points;
            space
                .candidates
                .retain(|c| Placement::of(&points[c.points().next().unwrap_or(0)]) == k);
        }
        None => space.candidates.clear(),
    }
    Ok(())
}

/// The two-dimensional search of a mixture of experts: the fewest experts
/// on the CPU with every layer on the GPU, then (when some must stay) the
/// best whole-layer offload, and the faster of the two.
fn experts_then_layers<'s, 'a, M: Measurer>(
    placements: &[Placement],
    ladder: &dyn Fn(Vec<Placement>) -> Ladder<'s, 'a>,
    session: &mut Session<M>,
    tolerance: f64,
) -> Result<Option<Placement>, M::Error> {
    let top = placements.iter().map(|p| p.n_gpu_layers).max().unwrap_or(0);
    let least = placements.iter().map(|p| p.n_cpu_moe).min().unwrap_or(0);
    // Along the experts: more blocks' experts on the GPU at each rung.
    let mut experts: Vec<Placement> = placements
        .iter()
        .copied()
        .filter(|p| p.n_gpu_layers == top)
        .collect();
    experts.sort_by_key(|p| std::cmp::Reverse(p.n_cpu_moe));
    // Along the layers, with the fewest experts held back.
    let layers: Vec<Placement> = placements
        .iter()
        .copied()
        .filter(|p| p.n_cpu_moe == least)
        .collect();
    session.trace.push(format!(
        "mixture of experts, {} placements: first the fewest experts on the CPU at n_gpu_layers = {top}, then the best whole-layer offload",
        placements.len()
    ));
    let experts = ladder(experts);
    let by_experts = match bisect(&experts, session)? {
        Settled::NoGpu => {
            let k = layers[0];
            session.trace.push(format!(
                "offload settled: {}, the smallest (no GPU device: where the experts go changes nothing); tuning the rest there",
                k.label()
            ));
            return Ok(Some(k));
        }
        Settled::Largest(k) if k.n_cpu_moe == least => {
            session.trace.push(format!(
                "offload settled: {}, every layer and its experts fit; tuning the rest there",
                k.label()
            ));
            return Ok(Some(k));
        }
        Settled::Largest(k) => Some(k),
        Settled::NoneFits => None,
    };
    let layers = ladder(layers);
    let by_layers = match bisect(&layers, session)? {
        Settled::Largest(k) => Some(k),
        Settled::NoneFits | Settled::NoGpu => None,
    };
    let keep = match (by_experts, by_layers) {
        (Some(e), Some(l)) => Some(faster(&experts, e, &layers, l, session, tolerance)?),
        (e, l) => e.or(l),
    };
    session.trace.push(match keep {
        Some(k) => format!(
            "offload settled: {}{}; tuning the rest there",
            k.label(),
            if Some(k) == by_experts {
                ", the fewest experts on the CPU that fit"
            } else {
                ", the largest whole-layer offload that fits"
            }
        ),
        None => "no placement fits".to_string(),
    });
    Ok(keep)
}

/// The faster of the experts' pick `e` and the whole-layer pick `l`, from
/// their probes' measurements; back to back when those are close.
fn faster<M: Measurer>(
    experts: &Ladder,
    e: Placement,
    layers: &Ladder,
    l: Placement,
    session: &mut Session<M>,
    tolerance: f64,
) -> Result<Placement, M::Error> {
    let space = experts.space;
    let (Some(ce), Some(cl)) = (experts.probe(e), layers.probe(l)) else {
        return Ok(e);
    };
    let pooled = space.pool(&session.measured);
    let (Some(se), Some(sl)) = (space.score(&ce, &pooled), space.score(&cl, &pooled)) else {
        return Ok(e);
    };
    // The faster as measured apart is the champion; the other the rival.
    let (mut champ, mut rival) = if se.mean >= sl.mean {
        ((e, ce), (l, cl))
    } else {
        ((l, cl), (e, ce))
    };
    let apart = se.mean.max(sl.mean) / se.mean.min(sl.mean) - 1.0;
    session.trace.push(format!(
        "    {}: {:.1} t/s against {}: {:.1} t/s ({:.0}% apart){}",
        e.label(),
        se.mean,
        l.label(),
        sl.mean,
        100.0 * apart,
        if apart > CLOSE {
            ": not close, no back-to-back comparison"
        } else {
            ": close, compared back to back"
        }
    ));
    if apart > CLOSE {
        return Ok(champ.0);
    }
    let (mut ln_ratios, mut rounds) = (Vec::new(), Vec::new());
    for round in 0..MAX_REPEAT_ROUNDS {
        let why = format!(
            "placement back to back: {} against {}",
            champ.0.label(),
            rival.0.label()
        );
        let (bs, rs) = match measure_round(space, session, [champ.1, rival.1], round, &why)? {
            Round::Scored(bs, rs) => (bs, rs),
            Round::Stopped | Round::Failed => break,
        };
        ln_ratios.push((rs.mean / bs.mean).ln());
        rounds.push(round_variance(&bs, &rs));
        let j = judge(&ln_ratios, &rounds, tolerance);
        session.trace.push(format!(
            "    back to back, round {}: {} {:.1} vs {} {:.1} t/s; over the rounds {:.1}% (80% interval {:.1}–{:.1}%): {}",
            ln_ratios.len(),
            rival.0.label(),
            rs.mean,
            champ.0.label(),
            bs.mean,
            100.0 * j.ratio,
            100.0 * j.low,
            100.0 * j.high,
            j.verdict.describe()
        ));
        match j.verdict {
            DuelVerdict::NotFaster => return Ok(champ.0),
            DuelVerdict::Faster => return Ok(rival.0),
            DuelVerdict::Undecided => {}
        }
    }
    // Undecided: the back-to-back evidence, on average, decides.
    if !ln_ratios.is_empty() && ln_ratios.iter().sum::<f64>() > 0.0 {
        std::mem::swap(&mut champ, &mut rival);
    }
    Ok(champ.0)
}

fn bisect<M: Measurer>(o: &Ladder, session: &mut Session<M>) -> Result<Settled, M::Error> {
    let start = o.start();
    let (mut lo, mut hi) = (-1isize, o.rungs.len() as isize);
    let mut next = Some(start as isize);
    // Measured minus predicted VRAM at the last rung that ran: the model's
    // slope is structural, its constant is what it misses.
    let mut offset: Option<i64> = None;
    while let Some(at) = next {
        let k = o.rungs[at as usize];
        let Some(c) = o.probe(k) else { break };
        if !session.measure(o.space, &c, &o.why(k), true, &[])? {
            break;
        }
        let (fit, used) = match o.outcome(k, &c, &session.measured) {
            Outcome::NoGpu => {
                session.trace.push(format!(
                    "    {}: the backend offloaded nothing (it has no GPU device), so n_gpu_layers changes nothing here",
                    k.label()
                ));
                return Ok(Settled::NoGpu);
            }
            Outcome::Fits(fit, used) => (fit, used),
        };
        if let (Some(u), Some(v)) = (used, o.predicted(k)) {
            offset = Some(u as i64 - v as i64);
        }
        session.trace.push(format!(
            "    {} {}{}",
            k.label(),
            if fit { "fits" } else { "does not fit" },
            used.map_or(String::new(), |u| format!(" (measured {:.0} MiB)", mib(u)))
        ));
        if fit {
            lo = at;
        } else {
            hi = at;
        }
        next = o.next((at, start), fit, (lo, hi), offset);
    }
    Ok(usize::try_from(lo).map_or(Settled::NoneFits, |i| Settled::Largest(o.rungs[i])))
}
