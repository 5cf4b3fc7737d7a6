//! The tuner's search space: the candidates of an objective among a plan's
//! points, which points share a measurement, and a candidate's score from
//! the readings (measured) or from the speed models (predicted).

use std::collections::BTreeMap;

use lmtune_core::knobs::TestKind;
use lmtune_core::record::Status;
use lmtune_core::scenario::Point;
use lmtune_core::stats::{t_quantile, Summary};
use serde::{Deserialize, Serialize};

use super::speed::{SpeedModel, SpeedSample};
use super::Reading;

/// The micro-batch a point really runs with. Unlike
/// [`ContextParams::effective_ubatch`](lmtune_core::knobs::ContextParams::effective_ubatch)
/// this also clamps a pp test to its prompt on purpose: a prompt shorter
/// than the micro-batch is decoded in one smaller chunk, and the tuner ranks
/// and models points by the chunk they really decode.
pub fn ubatch_eff(p: &Point) -> u32 {
    let u = p.ctx.effective_ubatch();
    if p.test.kind() == TestKind::Pp {
        u.min(p.test.n_prompt.max(1))
    } else {
        u
    }
}

/// For each point, the point whose measurement stands for it. A generated
/// token is decoded alone whatever n_batch and n_ubatch are (they only split
/// the prompt), so tg points that differ only in them do the same work and
/// are measured once. The stand-in is the one with the largest micro-batch
/// (then batch), the setting that is also best for prompts. Other points
/// stand for themselves.
fn same_work(points: &[Point]) -> Vec<usize> {
    let key = |p: &Point| {
        let mut ctx = p.ctx.clone();
        ctx.n_batch = 0;
        ctx.n_ubatch = 0;
        // Op offload acts on batches of 32 tokens or more, never on a
        // generated token.
        ctx.op_offload = true;
        (p.load.clone(), ctx, p.test)
    };
    let mut stand_in: BTreeMap<_, usize> = BTreeMap::new();
    for (i, p) in points.iter().enumerate() {
        if p.test.kind() != TestKind::Tg {
            continue;
        }
        let rank = |p: &Point| (ubatch_eff(p), p.ctx.n_batch.min(p.ctx.n_ctx));
        stand_in
            .entry(key(p))
            .and_modify(|j| {
                if rank(p) > rank(&points[*j]) {
                    *j = i;
                }
            })
            .or_insert(i);
    }
    points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            if p.test.kind() == TestKind::Tg {
                stand_in[&key(p)]
            } else {
                i
            }
        })
        .collect()
}

/// What the tuner maximizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Objective {
    Tg,
    Pp,
    /// Throughput of a whole request: its prompt (the pp test) and its
    /// generation (the tg test) at the same setting.
    Balanced,
}

impl Objective {
    /// `tg`, `pp` or `balanced`, as `--objective` takes it.
    pub fn from_name(name: &str) -> Option<Objective> {
        match name {
            "tg" => Some(Objective::Tg),
            "pp" => Some(Objective::Pp),
            "balanced" => Some(Objective::Balanced),
            _ => None,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Objective::Tg => "generation (tg)",
            Objective::Pp => "prompt processing (pp)",
            Objective::Balanced => "balanced (a pp + tg request)",
        }
    }

    /// What a space needs for this objective, and the scenario setting
    /// that gives it.
    pub fn needs(self) -> (&'static str, &'static str) {
        match self {
            Objective::Tg => ("tg test", "n_gen > 0"),
            Objective::Pp => ("pp test", "n_prompt > 0"),
            Objective::Balanced => (
                "setting with both a pp and a tg test",
                "n_prompt > 0 and n_gen > 0",
            ),
        }
    }
}

/// A setting the tuner can recommend: its point in the plan for each test
/// the objective needs (indices into the plan's points).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Candidate {
    Pp(usize),
    Tg(usize),
    /// A pp and a tg point at the same setting (load and context).
    Balanced {
        pp: usize,
        tg: usize,
    },
}

impl Candidate {
    pub fn pp(&self) -> Option<usize> {
        match *self {
            Candidate::Pp(i) | Candidate::Balanced { pp: i, .. } => Some(i),
            Candidate::Tg(_) => None,
        }
    }

    pub fn tg(&self) -> Option<usize> {
        match *self {
            Candidate::Tg(i) | Candidate::Balanced { tg: i, .. } => Some(i),
            Candidate::Pp(_) => None,
        }
    }

    /// Its points, the pp one first.
    pub fn points(&self) -> impl Iterator<Item = usize> {
        self.pp().into_iter().chain(self.tg())
    }

    /// The point whose knobs stand for the candidate (pp and tg share them).
    fn knobs(&self) -> usize {
        match *self {
            Candidate::Pp(i) | Candidate::Tg(i) | Candidate::Balanced { pp: i, .. } => i,
        }
    }
}

/// A candidate's figure of merit: t/s with a 95% interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    pub mean: f64,
    pub low: f64,
    pub high: f64,
    pub samples: usize,
}

impl Score {
    pub fn of(s: &Summary) -> Score {
        Score {
            mean: s.mean,
            low: s.ci95_low,
            high: s.ci95_high,
            samples: s.n,
        }
    }

    pub fn relative_half_width(&self) -> f64 {
        if self.mean > 0.0 {
            (self.high - self.low) / 2.0 / self.mean
        } else {
            f64::INFINITY
        }
    }

    /// Standard error of the mean relative to it (the 95% half-width over
    /// Student's t); infinite from one sample.
    pub fn relative_se(&self) -> f64 {
        if self.samples < 2 {
            f64::INFINITY
        } else {
            self.relative_half_width() / t_quantile(0.975, (self.samples - 1) as f64)
        }
    }

    /// Half the 95% interval in t/s; unknown (infinite) from one sample.
    fn half_width(&self) -> f64 {
        if self.samples < 2 {
            f64::INFINITY
        } else {
            (self.high - self.low) / 2.0
        }
    }

    /// How much `self` could beat `best` by, in t/s, at 95%: the difference
    /// of the means plus the two half-widths combined.
    pub fn could_beat(&self, best: &Score) -> f64 {
        self.mean - best.mean + self.half_width().hypot(best.half_width())
    }
}

/// Request t/s of `n_prompt` tokens at `pp` t/s then `n_gen` at `tg` t/s,
/// and each part's share of the request's time.
fn request_tps(n_prompt: f64, pp: f64, n_gen: f64, tg: f64) -> (f64, f64, f64) {
    let (t_pp, t_tg) = (n_prompt / pp, n_gen / tg);
    let total = t_pp + t_tg;
    ((n_prompt + n_gen) / total, t_pp / total, t_tg / total)
}

/// Every ok reading of each point, pooled.
pub fn pooled(measured: &[(usize, Reading)]) -> BTreeMap<usize, Summary> {
    pooled_as(measured, |i| i)
}

/// Like `pooled`, with each point's samples filed under `key(point)`.
fn pooled_as(
    measured: &[(usize, Reading)],
    key: impl Fn(usize) -> usize,
) -> BTreeMap<usize, Summary> {
    let mut samples: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    for (i, r) in measured {
        if r.status == Status::Ok {
            samples.entry(key(*i)).or_default().extend(&r.samples_ts);
        }
    }
    samples
        .into_iter()
        .filter_map(|(i, s)| Some((i, Summary::of(&s)?)))
        .collect()
}

/// The candidates of an objective among a plan's points.
#[derive(Debug, Clone)]
pub struct Space<'a> {
    pub points: &'a [Point],
    pub candidates: Vec<Candidate>,
    pub objective: Objective,
    /// The point whose measurement stands for each point (`same_work`, or
    /// each point itself where every reading is its own, as in a grid).
    pub stand_in: Vec<usize>,
}

impl<'a> Space<'a> {
    /// Every candidate of `objective` among `points`; tg points that do the
    /// same work share one measurement.
    pub fn new(points: &'a [Point], objective: Objective) -> Space<'a> {
        Space {
            points,
            candidates: candidates_of(points, objective),
            objective,
            stand_in: same_work(points),
        }
    }

    /// The same candidates, each reading its own point's (as in a grid).
    pub fn with_own_readings(&self) -> Space<'a> {
        Space {
            stand_in: (0..self.points.len()).collect(),
            ..self.clone()
        }
    }

    /// Points measured per candidate: 2 for balanced, else 1.
    pub fn per_candidate(&self) -> usize {
        self.candidates.first().map_or(0, |c| c.points().count())
    }

    /// Every ok measurement pooled under the point that stands for it.
    pub fn pool(&self, measured: &[(usize, Reading)]) -> BTreeMap<usize, Summary> {
        pooled_as(measured, |i| self.stand_in[i])
    }

    /// The reading of point `i` in `pooled` (keyed as `pool` keys it).
    pub fn reading<'p>(
        &self,
        pooled: &'p BTreeMap<usize, Summary>,
        i: usize,
    ) -> Option<&'p Summary> {
        pooled.get(&self.stand_in[i])
    }

    /// Whether every point of `c` (or one doing the same work) was measured.
    pub fn tried(&self, c: &Candidate, measured: &[(usize, Reading)]) -> bool {
        c.points().all(|i| {
            measured
                .iter()
                .any(|(m, _)| self.stand_in[*m] == self.stand_in[i])
        })
    }

    /// The point whose knobs stand for the candidate (pp and tg share them).
    pub fn point(&self, c: &Candidate) -> &'a Point {
        &self.points[c.knobs()]
    }

    /// The candidate's score from the measurements, if every point of it has one.
    pub fn score(&self, c: &Candidate, pooled: &BTreeMap<usize, Summary>) -> Option<Score> {
        match *c {
            Candidate::Pp(i) | Candidate::Tg(i) => self.reading(pooled, i).map(Score::of),
            Candidate::Balanced { pp: pi, tg: ti } => {
                let (pp, tg) = (self.reading(pooled, pi)?, self.reading(pooled, ti)?);
                let n_prompt = f64::from(self.points[pi].test.n_prompt);
                let n_gen = f64::from(self.points[ti].test.n_gen);
                let (mean, w_pp, w_tg) = request_tps(n_prompt, pp.mean, n_gen, tg.mean);
                // Each part's relative uncertainty, weighted by its share of the time.
                let rel = w_pp * pp.relative_ci_half_width() + w_tg * tg.relative_ci_half_width();
                Some(Score {
                    mean,
                    low: mean * (1.0 - rel),
                    high: mean * (1.0 + rel),
                    samples: pp.n.min(tg.n),
                })
            }
        }
    }

    /// Predicted score: measured parts as measured, the rest from the models.
    pub fn predicted(
        &self,
        c: &Candidate,
        pooled: &BTreeMap<usize, Summary>,
        models: &BTreeMap<TestKind, SpeedModel>,
    ) -> Option<f64> {
        let part = |i: usize| -> Option<f64> {
            if let Some(s) = self.reading(pooled, i) {
                return Some(s.mean);
            }
            let p = &self.points[i];
            models
                .get(&p.test.kind())?
                .tokens_per_s(p.ctx.threads, ubatch_eff(p))
        };
        match *c {
            Candidate::Pp(i) | Candidate::Tg(i) => part(i),
            Candidate::Balanced { pp: pi, tg: ti } => {
                let n_prompt = f64::from(self.points[pi].test.n_prompt);
                let n_gen = f64::from(self.points[ti].test.n_gen);
                Some(request_tps(n_prompt, part(pi)?, n_gen, part(ti)?).0)
            }
        }
    }

    /// One speed model per test kind, over its measured points.
    pub fn models(&self, pooled: &BTreeMap<usize, Summary>) -> BTreeMap<TestKind, SpeedModel> {
        let mut by_kind: BTreeMap<TestKind, Vec<SpeedSample>> = BTreeMap::new();
        for (&i, s) in pooled {
            let p = &self.points[i];
            if s.mean > 0.0 {
                by_kind.entry(p.test.kind()).or_default().push(SpeedSample {
                    threads: p.ctx.threads,
                    ubatch: ubatch_eff(p),
                    ms_per_token: 1000.0 / s.mean,
                });
            }
        }
        by_kind
            .into_iter()
            .map(|(k, samples)| (k, SpeedModel::fit(&samples)))
            .collect()
    }

    /// The measured candidates, best first.
    pub fn ranked(&self, measured: &[(usize, Reading)]) -> Vec<(Candidate, Score)> {
        let pooled = self.pool(measured);
        let mut v: Vec<(Candidate, Score)> = self
            .candidates
            .iter()
            .filter_map(|c| Some((*c, self.score(c, &pooled)?)))
            .collect();
        v.sort_by(|a, b| b.1.mean.total_cmp(&a.1.mean));
        v
    }
}

/// The candidates of `objective` among `points`.
fn candidates_of(points: &[Point], objective: Objective) -> Vec<Candidate> {
    let of_kind = |kind: TestKind| {
        points
            .iter()
            .enumerate()
            .filter(move |(_, p)| p.test.kind() == kind)
    };
    match objective {
        Objective::Pp => of_kind(TestKind::Pp)
            .map(|(i, _)| Candidate::Pp(i))
            .collect(),
        Objective::Tg => of_kind(TestKind::Tg)
            .map(|(i, _)| Candidate::Tg(i))
            .collect(),
        Objective::Balanced => {
            // One candidate per setting (load + context) with a pp and a tg test.
            let mut settings: Vec<(Option<usize>, Option<usize>)> = Vec::new();
            let mut keys = Vec::new();
            for (i, p) in points.iter().enumerate() {
                let key = (&p.load, &p.ctx);
                let at = match keys.iter().position(|k| *k == key) {
                    Some(at) => at,
                    None => {
                        keys.push(key);
                        settings.push((None, None));
                        settings.len() - 1
                    }
                };
                match p.test.kind() {
                    TestKind::Pp => {
                        settings[at].0.get_or_insert(i);
                    }
                    TestKind::Tg => {
                        settings[at].1.get_or_insert(i);
                    }
                    TestKind::PpTg => {}
                }
            }
            settings
                .into_iter()
                .filter_map(|s| match s {
                    (Some(pp), Some(tg)) => Some(Candidate::Balanced { pp, tg }),
                    _ => None,
                })
                .collect()
        }
    }
}
