//! Step 0 of the search: the largest `n_gpu_layers` that fits the VRAM
//! budget and the device, by a bisection that starts where the memory model
//! puts the boundary and corrects the model by what each offload measured.

use lmtune_core::record::Status;
use lmtune_core::scenario::Point;

use super::space::{ubatch_eff, Candidate, Space};
use super::{Measurer, Reading, Session};

fn mib(b: u64) -> f64 {
    b as f64 / 1048576.0
}

/// What one offload showed when measured.
enum Outcome {
    /// Every point ran and stayed within the budget, or not; with the
    /// largest VRAM a point used.
    Fits(bool, Option<u64>),
    /// The backend offloaded nothing: it has no GPU device.
    NoGpu,
}

/// The offloads of the space and the memory model's VRAM for each.
struct Offloads<'s, 'a> {
    space: &'s Space<'a>,
    /// The space's `n_gpu_layers` values, ascending.
    ngls: Vec<u32>,
    predict_vram: &'s dyn Fn(&Point) -> Option<u64>,
    budget: Option<u64>,
}

impl Offloads<'_, '_> {
    /// The most memory-hungry candidate at offload `k` (largest context and
    /// micro-batch), so what fits for it fits for every candidate there.
    fn probe(&self, k: u32) -> Option<Candidate> {
        let space = self.space;
        space
            .candidates
            .iter()
            .filter(|c| space.point(c).load.n_gpu_layers == k)
            .max_by_key(|c| {
                let p = space.point(c);
                (p.ctx.n_ctx, ubatch_eff(p), p.ctx.threads)
            })
            .copied()
    }

    /// The memory model's VRAM at offload `k`.
    fn predicted(&self, k: u32) -> Option<u64> {
        let c = self.probe(k)?;
        (self.predict_vram)(self.space.point(&c))
    }

    /// Where the memory model puts the boundary: the largest offload it
    /// says fits the budget (the largest of all without one).
    fn start(&self) -> usize {
        match self.budget {
            Some(budget) => self
                .ngls
                .iter()
                .rposition(|&k| self.predicted(k).is_none_or(|v| v <= budget))
                .unwrap_or(0),
            None => self.ngls.len() - 1,
        }
    }

    fn why(&self, k: u32) -> String {
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

    /// Judges offload `k` from the latest reading of each point of `c`.
    fn outcome(&self, k: u32, c: &Candidate, measured: &[(usize, Reading)]) -> Outcome {
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
        if k > 0 && !latest.is_empty() && latest.iter().all(|r| r.layers_offloaded == Some(0)) {
            return Outcome::NoGpu;
        }
        let used = latest.iter().filter_map(|r| r.vram_used_bytes).max();
        // It fits if every point of it ran and stayed within the budget.
        let fit = latest.len() == c.points().count()
            && latest.iter().all(|r| r.status == Status::Ok)
            && match (self.budget, used) {
                (Some(b), Some(u)) => u <= b,
                _ => true,
            };
        Outcome::Fits(fit, used)
    }

    /// The next offload to measure, with `lo` the largest known to fit and
    /// `hi` the smallest known not to (indices into `ngls`).
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
            // The memory model corrected by the measurement: the largest
            // offload it says fits, or the first one above what did.
            let fits_corrected = |i: isize| {
                self.predicted(self.ngls[i as usize])
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

/// Where the bisection ended.
enum Settled {
    /// The largest offload that fits (an index into `ngls`).
    Largest(usize),
    /// No offload fits.
    NoneFits,
    /// The backend has no GPU device.
    NoGpu,
}

/// Settles the offload when the space has several and narrows the space's
/// candidates to it.
pub(super) fn settle<M: Measurer>(
    space: &mut Space,
    session: &mut Session<M>,
    budget: Option<u64>,
    predict_vram: &dyn Fn(&Point) -> Option<u64>,
) -> Result<(), M::Error> {
    let mut ngls: Vec<u32> = space
        .candidates
        .iter()
        .map(|c| space.point(c).load.n_gpu_layers)
        .collect();
    ngls.sort_unstable();
    ngls.dedup();
    if ngls.len() <= 1 {
        return Ok(());
    }
    let offloads = Offloads {
        space: &*space,
        ngls,
        predict_vram,
        budget,
    };
    let settled = bisect(&offloads, session)?;
    let ngls = offloads.ngls;
    let keep = match settled {
        Settled::NoGpu => {
            let k = ngls[0];
            session.trace.push(format!(
                "offload settled: n_gpu_layers = {k}, the smallest (no GPU device); tuning the rest there"
            ));
            Some(k)
        }
        Settled::NoneFits => {
            session.trace.push(format!(
                "no n_gpu_layers fits{}",
                budget.map_or(String::new(), |b| format!(" {:.0} MiB", mib(b)))
            ));
            None
        }
        Settled::Largest(at) => {
            let k = ngls[at];
            session.trace.push(format!(
                "offload settled: n_gpu_layers = {k}, the largest that fits; tuning the rest there"
            ));
            Some(k)
        }
    };
    match keep {
        Some(k) => {
            let points = space.points;
            space
                .candidates
                .retain(|c| points[c.points().next().unwrap_or(0)].load.n_gpu_layers == k);
        }
        None => space.candidates.clear(),
    }
    Ok(())
}

fn bisect<M: Measurer>(o: &Offloads, session: &mut Session<M>) -> Result<Settled, M::Error> {
    let start = o.start();
    let (mut lo, mut hi) = (-1isize, o.ngls.len() as isize);
    let mut next = Some(start as isize);
    // Measured minus predicted VRAM at the last offload that ran: the
    // model's per-layer slope is structural, its constant is what it misses.
    let mut offset: Option<i64> = None;
    while let Some(at) = next {
        let k = o.ngls[at as usize];
        let Some(c) = o.probe(k) else { break };
        if !session.measure(o.space, &c, &o.why(k), true, &[])? {
            break;
        }
        let (fit, used) = match o.outcome(k, &c, &session.measured) {
            Outcome::NoGpu => {
                session.trace.push(format!(
                    "    n_gpu_layers = {k}: the backend offloaded nothing (it has no GPU device), so n_gpu_layers changes nothing here"
                ));
                return Ok(Settled::NoGpu);
            }
            Outcome::Fits(fit, used) => (fit, used),
        };
        if let (Some(u), Some(v)) = (used, o.predicted(k)) {
            offset = Some(u as i64 - v as i64);
        }
        session.trace.push(format!(
            "    n_gpu_layers = {k} {}{}",
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
    Ok(usize::try_from(lo).map_or(Settled::NoneFits, Settled::Largest))
}
