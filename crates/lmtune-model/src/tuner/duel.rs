//! Step 4 of the search: settle the recommendation by back-to-back
//! comparisons. The best so far (the champion) meets the runner-up that
//! could beat it by the most, measured one right after the other
//! (alternating order), judged by their ratio within each round. Readings
//! taken apart differ by the machine's drift (on a shared VM, tens of
//! percent between minutes), which intervals of repetitions taken seconds
//! apart do not show; a ratio taken back to back cancels it. The first
//! comparison always runs; later ones only while a rival could still beat
//! the champion by more than the tolerance.

use lmtune_core::stats::{t_quantile, Summary};

use super::space::{Candidate, Score, Space};
use super::{Measurer, Session, MAX_REPEAT_ROUNDS};

/// A back-to-back round's variance of ln(rival / best) from its
/// repetitions, and the degrees of freedom behind it.
pub type RoundVariance = (f64, f64);

/// Back-to-back comparisons are decided at 90% one-sided (the bounds of an
/// 80% interval): the probability and its normal quantile.
const DECISION_P: f64 = 0.90;
const DECISION_Z: f64 = 1.2816;

/// What the rounds so far say of a rival against the best.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DuelVerdict {
    /// The rival is not faster by more than the tolerance: it is settled.
    NotFaster,
    /// The rival is faster: it becomes the best.
    Faster,
    /// Neither yet: another round, if any is left.
    Undecided,
}

impl DuelVerdict {
    pub fn describe(self) -> &'static str {
        match self {
            DuelVerdict::NotFaster => "it is not faster by more than the tolerance",
            DuelVerdict::Faster => "it is faster: it becomes the best",
            DuelVerdict::Undecided => "not decided yet",
        }
    }
}

/// The verdict with the ratio rival / best over the rounds and its 80%
/// interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Judgement {
    pub verdict: DuelVerdict,
    pub ratio: f64,
    pub low: f64,
    pub high: f64,
}

/// Judges a rival from ln(rival / best) of each round and each round's
/// variance of it. Decided at 90% one-sided: a rival is settled when the
/// chance it beats the best by more than `tolerance` is under 10%, and wins
/// when the chance it is slower is under 10%. Surer decisions cost rounds
/// the noise of a shared machine makes expensive. The uncertainty is the
/// rounds' repetitions pooled (Student's t), or the spread between the
/// rounds where that is wider (drift within a round, which the ratio cannot
/// cancel).
pub fn judge(ln_ratios: &[f64], rounds: &[RoundVariance], tolerance: f64) -> Judgement {
    let n = ln_ratios.len();
    let mean_ln = ln_ratios.iter().sum::<f64>() / n as f64;
    let variance: f64 = rounds.iter().map(|r| r.0).sum();
    let dof: f64 = rounds.iter().map(|r| r.1).sum();
    let within = t_quantile(DECISION_P, dof.max(1.0)) * variance.sqrt() / n as f64;
    let between = match Summary::of(ln_ratios) {
        Some(s) if n >= 2 => DECISION_Z * s.sd / (n as f64).sqrt(),
        _ => 0.0,
    };
    let half = if within.is_finite() {
        within.max(between)
    } else {
        f64::INFINITY
    };
    let (low, high) = ((mean_ln - half).exp(), (mean_ln + half).exp());
    let verdict = if high <= 1.0 + tolerance {
        DuelVerdict::NotFaster
    } else if low > 1.0 {
        DuelVerdict::Faster
    } else {
        DuelVerdict::Undecided
    };
    Judgement {
        verdict,
        ratio: mean_ln.exp(),
        low,
        high,
    }
}

/// A round's variance of ln(rival / best) from the repetitions of the
/// best's score `bs` and the rival's `rs`, and the degrees of freedom
/// behind it.
pub(super) fn round_variance(bs: &Score, rs: &Score) -> RoundVariance {
    (
        rs.relative_se().powi(2) + bs.relative_se().powi(2),
        (rs.samples + bs.samples).saturating_sub(2) as f64,
    )
}

/// The pair under comparison: the rival, ln(rival / champion) per round,
/// and each round's variance of it with its degrees of freedom.
struct Pair {
    rival: Candidate,
    ln_ratios: Vec<f64>,
    rounds: Vec<RoundVariance>,
}

/// Runs the back-to-back rounds; returns the champion.
pub(super) fn settle<M: Measurer>(
    space: &Space,
    session: &mut Session<M>,
    tolerance: f64,
) -> Result<Option<Candidate>, M::Error> {
    let mut champion: Option<Candidate> = space.ranked(&session.measured).first().map(|x| x.0);
    // Rivals the back-to-back rounds showed not to beat the champion by
    // more than the tolerance (or former champions).
    let mut settled: Vec<Candidate> = Vec::new();
    let mut pair: Option<Pair> = None;
    for round in 0..MAX_REPEAT_ROUNDS {
        let Some(champ) = champion else { break };
        let ranking = space.ranked(&session.measured);
        let Some(b) = ranking.iter().find(|x| x.0 == champ).map(|x| x.1) else {
            break;
        };
        let rival = match &pair {
            Some(p) => Some(p.rival),
            None => ranking
                .iter()
                .filter(|(c, _)| *c != champ && !settled.contains(c))
                .max_by(|x, y| x.1.could_beat(&b).total_cmp(&y.1.could_beat(&b)))
                .and_then(|&(c, r)| {
                    let margin = r.could_beat(&b);
                    if round == 0 || margin > tolerance * b.mean {
                        Some(c)
                    } else {
                        session.trace.push(format!(
                            "no other measured candidate could beat the best {:.1} t/s by more than {:.0}% (closest: {:.1} t/s, at most {:+.1}% at 95%): no more comparisons",
                            b.mean,
                            tolerance * 100.0,
                            r.mean,
                            100.0 * margin / b.mean
                        ));
                        None
                    }
                }),
        };
        let Some(rival_c) = rival else { break };
        let r = ranking
            .iter()
            .find(|x| x.0 == rival_c)
            .map(|x| x.1)
            .expect("a rival is measured");
        let why = format!(
            "back to back: best {:.1} t/s against {:.1} t/s",
            b.mean, r.mean
        );
        let (bs, rs) = match measure_round(space, session, [champ, rival_c], round, &why)? {
            Round::Stopped => break,
            Round::Failed => {
                // A failed re-measurement: the rival cannot be judged; move on.
                settled.push(rival_c);
                pair = None;
                continue;
            }
            Round::Scored(bs, rs) => (bs, rs),
        };
        let p = pair.get_or_insert(Pair {
            rival: rival_c,
            ln_ratios: Vec::new(),
            rounds: Vec::new(),
        });
        p.ln_ratios.push((rs.mean / bs.mean).ln());
        p.rounds.push(round_variance(&bs, &rs));
        let n = p.ln_ratios.len();
        let j = judge(&p.ln_ratios, &p.rounds, tolerance);
        match j.verdict {
            DuelVerdict::NotFaster => {
                settled.push(rival_c);
                pair = None;
            }
            DuelVerdict::Faster => {
                settled.push(champ);
                champion = Some(rival_c);
                pair = None;
            }
            DuelVerdict::Undecided => {}
        }
        session.trace.push(format!(
            "    back to back, round {n}: {:.1} vs the best's {:.1} t/s; over the rounds {:.1}% of it (80% interval {:.1}–{:.1}%): {}",
            rs.mean,
            bs.mean,
            100.0 * j.ratio,
            100.0 * j.low,
            100.0 * j.high,
            j.verdict.describe()
        ));
    }
    // Rounds ran out undecided: the back-to-back evidence decides.
    if let (Some(p), Some(_)) = (&pair, champion) {
        let q = (p.ln_ratios.iter().sum::<f64>() / p.ln_ratios.len() as f64).exp();
        if q > 1.0 {
            champion = Some(p.rival);
        }
        session.trace.push(format!(
            "undecided after {} round(s) back to back ({:.1}%): within noise of each other; recommending the faster on average",
            p.ln_ratios.len(),
            100.0 * q
        ));
    }
    Ok(champion)
}

/// What a back-to-back round gave.
pub(super) enum Round {
    /// Measuring stopped (interrupted, or out of points or time).
    Stopped,
    /// A point of the champion or the rival failed.
    Failed,
    /// The champion's and the rival's scores in this round.
    Scored(Score, Score),
}

/// Measures the champion and the rival one right after the other (the
/// order alternating by round).
pub(super) fn measure_round<M: Measurer>(
    space: &Space,
    session: &mut Session<M>,
    [champ, rival]: [Candidate; 2],
    round: usize,
    why: &str,
) -> Result<Round, M::Error> {
    // Both are measured again, every part (for balanced, pp and tg): a
    // part left at an older reading would bring the drift back into the
    // ratio. Except a part they share (the tg test, when they differ only
    // in n_batch and n_ubatch): its reading stands for both.
    let shared: Vec<usize> = champ
        .points()
        .map(|i| space.stand_in[i])
        .filter(|s| rival.points().any(|j| space.stand_in[j] == *s))
        .collect();
    let first = session.measured.len();
    let order = if round % 2 == 0 {
        [champ, rival]
    } else {
        [rival, champ]
    };
    for c in order {
        if !session.measure(space, &c, why, true, &shared)? {
            return Ok(Round::Stopped);
        }
    }
    // This round's readings, and the shared parts' with no width: the
    // same value in both, it adds nothing uncertain to the ratio.
    let mut this_round = space.pool(&session.measured[first..]);
    let all = space.pool(&session.measured);
    for s in &shared {
        if let Some(x) = all.get(s) {
            let fixed = Summary {
                ci95_low: x.mean,
                ci95_high: x.mean,
                ..*x
            };
            this_round.insert(*s, fixed);
        }
    }
    Ok(
        match (
            space.score(&champ, &this_round),
            space.score(&rival, &this_round),
        ) {
            (Some(bs), Some(rs)) => Round::Scored(bs, rs),
            _ => Round::Failed,
        },
    )
}
