//! The recommendation checked against a full grid of the same space
//! (`lmtune tune --against`): the grid's best and the recommendation are
//! measured again back to back, in alternating order (ABBA…) so that a
//! drift during the check hits both.

use std::collections::BTreeMap;
use std::path::PathBuf;

use lmtune_core::scenario::Point;
use lmtune_core::stats::Summary;

use super::space::{pooled, Candidate, Score, Space};
use super::summary::{CheckSummary, GridBest};
use super::{Measurer, Purpose, Reading};

/// A full grid of the tuner's space: what the tuner is checked against.
#[derive(Debug, Clone)]
pub struct Grid {
    pub path: PathBuf,
    /// Every ok sample of each plan point the grid has.
    pooled: BTreeMap<usize, Summary>,
    /// Measuring time of the grid's records, per plan point.
    time_s: BTreeMap<usize, f64>,
}

impl Grid {
    /// The grid from its readings of plan points (point index, reading).
    pub fn new(path: PathBuf, matched: &[(usize, Reading)]) -> Grid {
        let mut time_s: BTreeMap<usize, f64> = BTreeMap::new();
        for (i, r) in matched {
            *time_s.entry(*i).or_default() += r.duration_s;
        }
        Grid {
            path,
            pooled: pooled(matched),
            time_s,
        }
    }

    /// Measures the recommendation `pick` and the grid's best back to back,
    /// `rounds` times, and compares them. `space` is the whole space with
    /// every point reading its own (`Space::with_own_readings`). `None` when
    /// the grid has no ok reading of the space's candidates.
    pub fn check<M: Measurer>(
        &self,
        space: &Space,
        pick: &Candidate,
        rounds: usize,
        measurer: &mut M,
    ) -> Result<Option<Check>, M::Error> {
        let scored: Vec<(Candidate, Score)> = space
            .candidates
            .iter()
            .filter_map(|c| Some((*c, space.score(c, &self.pooled)?)))
            .collect();
        let Some((best, best_score)) = scored
            .iter()
            .copied()
            .max_by(|a, b| a.1.mean.total_cmp(&b.1.mean))
        else {
            return Ok(None);
        };
        let grid_time_s: f64 = space
            .candidates
            .iter()
            .flat_map(|c| c.points())
            .filter_map(|i| self.time_s.get(&i))
            .sum();
        let mut check = Check {
            path: self.path.clone(),
            covered: scored.len(),
            candidates: space.candidates.len(),
            grid_time_s,
            best: space.point(&best).clone(),
            best_grid: best_score,
            pick_grid: space.score(pick, &self.pooled),
            same_setting: best == *pick,
            rounds: 0,
            back_to_back: None,
        };
        if check.same_setting {
            return Ok(Some(check));
        }
        measurer.begin_check()?;
        let mut checked: Vec<(usize, Reading)> = Vec::new();
        'rounds: for round in 0..rounds {
            let order = if round % 2 == 0 {
                [pick, &best]
            } else {
                [&best, pick]
            };
            for c in order {
                for i in c.points() {
                    if measurer.stopped() {
                        break 'rounds;
                    }
                    let purpose = Purpose::Check { round, rounds };
                    let Some(reading) = measurer.measure(i, 1000 + round as u64, purpose)? else {
                        break 'rounds;
                    };
                    checked.push((i, reading));
                }
            }
            check.rounds = round + 1;
        }
        let pooled = pooled(&checked);
        if let (Some(a), Some(b)) = (space.score(pick, &pooled), space.score(&best, &pooled)) {
            check.back_to_back = Some((a, b));
        }
        Ok(Some(check))
    }
}

/// The recommendation against a full grid.
#[derive(Debug, Clone)]
pub struct Check {
    pub path: PathBuf,
    /// Candidates the grid has a reading of, of `candidates`.
    pub covered: usize,
    pub candidates: usize,
    pub grid_time_s: f64,
    /// The grid's best setting and its grid reading.
    pub best: Point,
    pub best_grid: Score,
    /// The recommendation's grid reading.
    pub pick_grid: Option<Score>,
    /// The recommendation is the grid's best setting: nothing to re-measure.
    pub same_setting: bool,
    pub rounds: usize,
    /// (recommendation, grid's best) measured back to back.
    pub back_to_back: Option<(Score, Score)>,
}

impl Check {
    /// The recommendation over the grid's best (back to back when measured,
    /// 1 when they are the same setting) with its 95% relative uncertainty.
    pub fn ratio(&self) -> Option<(f64, f64)> {
        match self.back_to_back {
            Some((a, b)) => Some((
                a.mean / b.mean,
                a.relative_half_width().hypot(b.relative_half_width()),
            )),
            None if self.same_setting => Some((1.0, 0.0)),
            None => None,
        }
    }

    /// The check as the tuner's text output shows it, line by line, with
    /// the tuner's own measuring time `spent_s`.
    pub fn lines(&self, spent_s: f64) -> Vec<String> {
        let b = &self.best;
        let mut lines = vec![
            format!(
                "\ncheck against {} ({} of {} candidates measured there, {:.1} s of measuring):",
                self.path.display(),
                self.covered,
                self.candidates,
                self.grid_time_s
            ),
            format!(
                "  grid's best: threads={} n_batch={} n_ubatch={} n_ctx={} n_gpu_layers={} at {:.2} t/s",
                b.ctx.threads, b.ctx.n_batch, b.ctx.n_ubatch, b.ctx.n_ctx, b.load.n_gpu_layers, self.best_grid.mean
            ),
        ];
        lines.push(match self.pick_grid {
            Some(p) => format!(
                "  the recommendation read {:.2} t/s in the grid: {:.1}% of its best (two runs apart)",
                p.mean,
                100.0 * p.mean / self.best_grid.mean
            ),
            None => "  the grid has no reading of the recommendation".to_string(),
        });
        lines.push(match (self.back_to_back, self.ratio()) {
            (Some((a, g)), Some((ratio, unc))) => format!(
                "  back to back, {} alternating rounds: recommendation {:.2} t/s, grid's best {:.2} t/s: {:.1}% (±{:.1}%)",
                self.rounds,
                a.mean,
                g.mean,
                100.0 * ratio,
                100.0 * ratio * unc
            ),
            (None, Some(_)) => "  the recommendation is the grid's best setting: 100%".to_string(),
            _ => "  the back-to-back check did not complete".to_string(),
        });
        if self.grid_time_s > 0.0 {
            lines.push(format!(
                "  tuning measured for {spent_s:.1} s: {:.0}% of the grid's {:.1} s",
                100.0 * spent_s / self.grid_time_s,
                self.grid_time_s
            ));
        }
        lines
    }

    /// The check as `tune.json` keeps it.
    pub fn summary(&self, spent_s: f64) -> CheckSummary {
        let b = &self.best;
        CheckSummary {
            grid: self.path.display().to_string(),
            grid_candidates: self.covered,
            grid_measuring_time_s: self.grid_time_s,
            time_fraction: (self.grid_time_s > 0.0).then(|| spent_s / self.grid_time_s),
            grid_best: GridBest {
                n_gpu_layers: b.load.n_gpu_layers,
                n_cpu_moe: b.load.n_cpu_moe,
                cpu_moe: b.load.cpu_moe,
                threads: b.ctx.threads,
                n_ctx: b.ctx.n_ctx,
                n_batch: b.ctx.n_batch,
                n_ubatch: b.ctx.n_ubatch,
                grid_tokens_per_s: self.best_grid.mean,
            },
            recommendation_grid_tokens_per_s: self.pick_grid.map(|p| p.mean),
            back_to_back_rounds: self.rounds,
            back_to_back_tokens_per_s: self.back_to_back.map(|(a, g)| [a.mean, g.mean]),
            ratio: self.ratio().map(|r| r.0),
            ratio_ci95_relative: self.ratio().map(|r| r.1),
        }
    }
}
