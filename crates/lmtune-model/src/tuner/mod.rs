//! The closed-loop tuner: find the fastest setting of a scenario's space
//! while measuring only what the models say could still win.
//!
//! The space is the plan's points whose test matches the objective (pp or
//! tg, or both at one setting for balanced; [`Space`]). The tuner measures
//! one point per thread count (the largest micro-batch), then, for pp, the
//! smallest micro-batch at the best thread count, so the per-micro-batch
//! cost can be told apart. From then on it fits ms/token = c(threads) + γ /
//! n_ubatch ([`SpeedModel`]) to what it measured, and measures the
//! unmeasured candidate predicted fastest — but only while that prediction
//! beats the best measured point by more than the uncertainty (the measured
//! points' own 95% intervals, at least 3%). Then the best is compared back
//! to back with the runner-up that could beat it by the most (at least
//! once, at most 3 rounds, while a rival could still be faster by more than
//! the tolerance), judged by the ratio within each round ([`judge`]), so the
//! machine's drift between readings taken apart does not decide.
//!
//! With several `n_gpu_layers` in the space, the offload is settled first:
//! the largest value that fits the VRAM budget and the device, by bisection
//! that starts at the boundary the memory model predicts and checks its
//! neighbour (more offload is assumed faster, as it is whenever the GPU reads
//! faster than the CPU). For a mixture of experts whose space varies
//! `n_cpu_moe`, the search is two-dimensional: the fewest experts on the CPU
//! with every layer offloaded, then the best whole-layer offload, and the
//! faster of the two (back to back when they are close). The rest of the
//! search runs at that placement.
//!
//! The tuner decides; it does not measure. Every point goes through a
//! [`Measurer`] (in `lmtune tune`, the sweep and its worker, which record
//! each measurement like a sweep's). No I/O here.
//!
//! ```no_run
//! use lmtune_core::scenario::Point;
//! use lmtune_model::tuner::{search, Measurer, Objective, Space, TuneOptions};
//!
//! fn tune<M: Measurer>(points: &[Point], measurer: &mut M) -> Result<(), M::Error> {
//!     let space = Space::new(points, Objective::Tg);
//!     let options = TuneOptions {
//!         objective: Objective::Tg,
//!         tolerance: 0.03,
//!         time_budget_s: None,
//!         max_points: None,
//!         vram_budget_bytes: None,
//!     };
//!     let found = search(&space, &options, &|_| None, measurer)?;
//!     println!("{}", found.summary(None).to_json_text());
//!     Ok(())
//! }
//! ```

mod check;
mod duel;
mod explore;
mod offload;
mod space;
mod speed;
mod summary;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_moe;

use std::collections::BTreeMap;

use lmtune_core::record::Status;
use lmtune_core::scenario::Point;
use lmtune_core::stats::Summary;

pub use check::{Check, Grid};
pub use duel::{judge, DuelVerdict, Judgement, RoundVariance};
pub use space::{pooled, ubatch_eff, Candidate, Objective, Score, Space};
pub use speed::{SpeedModel, SpeedSample};
pub use summary::{
    CheckSummary, GridBest, Recommendation, SearchTotals, TuneSummary, TUNE_SUMMARY_SCHEMA,
};

/// What the tuner needs of one measurement of a point.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub status: Status,
    /// Tokens per second of each repetition.
    pub samples_ts: Vec<f64>,
    /// Their summary as the record gives it.
    pub tokens_per_s: Option<Summary>,
    /// Measuring time of the point, seconds.
    pub duration_s: f64,
    /// Peak GPU memory the point used, if the backend reports one.
    pub vram_used_bytes: Option<u64>,
    /// Layers the backend put on a GPU, if it says.
    pub layers_offloaded: Option<u32>,
}

/// Why a point is measured.
#[derive(Debug, Clone, Copy)]
pub enum Purpose<'a> {
    /// A step of the search (recorded with the tuner's results).
    Search { why: &'a str },
    /// The back-to-back check against a grid, round `round` (from 0) of
    /// `rounds` (kept apart from the tuner's results).
    Check { round: usize, rounds: usize },
}

/// Measures plan points for the tuner.
pub trait Measurer {
    type Error;

    /// Whether measuring should stop (the user interrupted).
    fn stopped(&self) -> bool;

    /// Measures point `point` of the plan; `seed_salt` gives a repeated
    /// measurement fresh random tokens. `None` when interrupted mid-point.
    fn measure(
        &mut self,
        point: usize,
        seed_salt: u64,
        purpose: Purpose<'_>,
    ) -> Result<Option<Reading>, Self::Error>;

    /// Called once before the check's first measurement.
    fn begin_check(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// Back-to-back rounds (the best against a rival) before recommending.
pub const MAX_REPEAT_ROUNDS: usize = 3;

/// How the search runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TuneOptions {
    pub objective: Objective,
    /// A rival slower by at most this fraction of the best is not worth
    /// comparing further (0.03: 3%).
    pub tolerance: f64,
    /// Stop measuring new points after this many seconds of measuring.
    pub time_budget_s: Option<f64>,
    /// At most this many measurements [default: one per candidate's point,
    /// plus two per back-to-back round].
    pub max_points: Option<usize>,
    /// The GPU memory the offload must stay within.
    pub vram_budget_bytes: Option<u64>,
}

/// The search's measurements so far and its trace, and the limits on
/// measuring more.
pub(crate) struct Session<'m, M: Measurer> {
    measurer: &'m mut M,
    max_points: usize,
    budget_s: Option<f64>,
    spent_s: f64,
    /// (point index, reading): every measurement, repeats included.
    pub measured: Vec<(usize, Reading)>,
    pub trace: Vec<String>,
}

impl<M: Measurer> Session<'_, M> {
    /// Measures point `i`; false when no more points may be measured.
    fn measure_point(&mut self, points: &[Point], i: usize, why: &str) -> Result<bool, M::Error> {
        if self.measurer.stopped() || self.measured.len() >= self.max_points {
            return Ok(false);
        }
        if let Some(budget) = self.budget_s {
            if self.spent_s >= budget {
                if !self.trace.iter().any(|t| t.starts_with("time budget")) {
                    self.trace.push(format!(
                        "time budget of {budget:.0} s spent ({:.0} s): no more points",
                        self.spent_s
                    ));
                }
                return Ok(false);
            }
        }
        let seed_salt = self.measured.iter().filter(|(m, _)| *m == i).count() as u64;
        let Some(reading) = self
            .measurer
            .measure(i, seed_salt, Purpose::Search { why })?
        else {
            return Ok(false);
        };
        self.spent_s += reading.duration_s;
        let result = match (&reading.status, &reading.tokens_per_s) {
            (Status::Ok, Some(s)) => format!("{:.2} ± {:.2} t/s", s.mean, s.sd),
            (status, _) => status.as_str().to_string(),
        };
        let p = &points[i];
        self.trace.push(format!(
            "{:>2}. {} threads={} n_batch={} n_ubatch={} n_ctx={}{}: {result}  [{why}]",
            self.measured.len() + 1,
            p.test.label(),
            p.ctx.threads,
            p.ctx.n_batch,
            p.ctx.n_ubatch,
            p.ctx.n_ctx,
            p.load.overrides_label()
        ));
        self.measured.push((i, reading));
        Ok(true)
    }

    /// Measures the candidate's points; `again` re-measures those done
    /// already, except the ones in `keep` (stand-ins whose reading holds).
    fn measure(
        &mut self,
        space: &Space,
        c: &Candidate,
        why: &str,
        again: bool,
        keep: &[usize],
    ) -> Result<bool, M::Error> {
        for i in c.points() {
            let s = space.stand_in[i];
            let fresh = if again {
                !keep.contains(&s)
            } else {
                !self.measured.iter().any(|(m, _)| space.stand_in[*m] == s)
            };
            if fresh && !self.measure_point(space.points, s, why)? {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// One test of a balanced recommendation's request and its measured t/s.
#[derive(Debug, Clone, Copy)]
pub struct RequestPart<'a> {
    pub point: &'a Point,
    pub tokens_per_s: f64,
}

/// What the search found.
#[derive(Debug, Clone)]
pub struct Search<'a> {
    /// The space as the search left it (at the settled offload).
    pub space: Space<'a>,
    /// Candidates in the whole space.
    pub n_candidates: usize,
    /// (point index, reading): every measurement, repeats included.
    pub measured: Vec<(usize, Reading)>,
    pub trace: Vec<String>,
    /// The measured candidates, the recommendation first.
    pub ranking: Vec<(Candidate, Score)>,
    pub tolerance: f64,
}

/// Searches `space` for its fastest candidate; `predict_vram` is the memory
/// model's VRAM for a point, where it has one.
pub fn search<'a, M: Measurer>(
    space: &Space<'a>,
    options: &TuneOptions,
    predict_vram: &dyn Fn(&Point) -> Option<u64>,
    measurer: &mut M,
) -> Result<Search<'a>, M::Error> {
    let n_candidates = space.candidates.len();
    let per_candidate = space.per_candidate();
    let mut space = space.clone();
    // For tg, candidates doing the same work are one setting to measure.
    if options.objective == Objective::Tg {
        let stand_in = &space.stand_in;
        space
            .candidates
            .retain(|c| c.tg().is_none_or(|i| stand_in[i] == i));
    }
    let n_distinct = space.candidates.len();
    let mut session = Session {
        measurer,
        // Repeats of close candidates come on top of one measurement per point.
        max_points: options
            .max_points
            .unwrap_or((n_candidates + 2 * MAX_REPEAT_ROUNDS) * per_candidate),
        budget_s: options.time_budget_s,
        spent_s: 0.0,
        measured: Vec::new(),
        trace: Vec::new(),
    };
    let shared = (0..space.points.len())
        .filter(|&i| space.stand_in[i] != i)
        .count();
    if shared > 0 {
        session.trace.push(format!(
            "n_batch and n_ubatch only split the prompt: {shared} tg point(s) do the same work as another and share its measurement{}",
            if options.objective == Objective::Tg {
                format!(" ({n_distinct} distinct of {n_candidates} candidates)")
            } else {
                String::new()
            }
        ));
    }
    offload::settle(
        &mut space,
        &mut session,
        options.vram_budget_bytes,
        predict_vram,
        options.tolerance,
    )?;
    explore::explore(&space, &mut session)?;
    let champion = duel::settle(&space, &mut session, options.tolerance)?;
    let mut ranking = space.ranked(&session.measured);
    if let Some(at) = champion.and_then(|c| ranking.iter().position(|x| x.0 == c)) {
        let winner = ranking.remove(at);
        ranking.insert(0, winner);
    }
    Ok(Search {
        space,
        n_candidates,
        measured: session.measured,
        trace: session.trace,
        ranking,
        tolerance: options.tolerance,
    })
}

impl Search<'_> {
    /// Seconds spent measuring.
    pub fn measuring_time_s(&self) -> f64 {
        self.measured.iter().map(|(_, r)| r.duration_s).sum()
    }

    /// Candidates of the settled space with a point measured.
    pub fn candidates_measured(&self) -> usize {
        self.space
            .candidates
            .iter()
            .filter(|c| {
                c.points()
                    .any(|i| self.measured.iter().any(|(m, _)| *m == i))
            })
            .count()
    }

    /// What the speed models fitted to the other measurements predict for
    /// the recommendation (held out, so it can be wrong).
    pub fn held_out_prediction(&self) -> Option<f64> {
        let (c, _) = self.ranking.first()?;
        let others: BTreeMap<usize, Summary> = self
            .space
            .pool(&self.measured)
            .into_iter()
            .filter(|(i, _)| !c.points().any(|p| self.space.stand_in[p] == *i))
            .collect();
        self.space
            .predicted(c, &BTreeMap::new(), &self.space.models(&others))
            .filter(|v| v.is_finite() && *v > 0.0)
    }

    /// For a balanced recommendation: its pp and tg parts.
    pub fn request_parts(&self) -> Option<[RequestPart<'_>; 2]> {
        let (c, _) = self.ranking.first()?;
        let Candidate::Balanced { pp: pi, tg: ti } = *c else {
            return None;
        };
        let pooled = self.space.pool(&self.measured);
        let pp = self.space.reading(&pooled, pi)?.mean;
        let tg = self.space.reading(&pooled, ti)?.mean;
        Some([
            RequestPart {
                point: &self.space.points[pi],
                tokens_per_s: pp,
            },
            RequestPart {
                point: &self.space.points[ti],
                tokens_per_s: tg,
            },
        ])
    }
}
