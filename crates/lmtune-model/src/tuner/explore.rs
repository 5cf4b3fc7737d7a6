//! Steps 1–3 of the search: one candidate per thread count, the smallest
//! micro-batch for prompts, then whatever the speed models predict could
//! beat the best measured by more than the uncertainty.

use super::space::{ubatch_eff, Candidate, Objective, Score, Space};
use super::{Measurer, Session};

pub(super) fn explore<M: Measurer>(
    space: &Space,
    session: &mut Session<M>,
) -> Result<(), M::Error> {
    one_per_thread_count(space, session)?;
    if space.objective != Objective::Tg {
        smallest_micro_batch(space, session)?;
    }
    while_predicted_better(space, session)
}

/// 1. One candidate per thread count, at its largest micro-batch.
fn one_per_thread_count<M: Measurer>(
    space: &Space,
    session: &mut Session<M>,
) -> Result<(), M::Error> {
    let mut threads: Vec<u32> = space
        .candidates
        .iter()
        .map(|c| space.point(c).ctx.threads)
        .collect();
    threads.sort_unstable();
    threads.dedup();
    for &t in &threads {
        let first = space
            .candidates
            .iter()
            .enumerate()
            .filter(|(_, c)| space.point(c).ctx.threads == t)
            .max_by_key(|(i, c)| (ubatch_eff(space.point(c)), std::cmp::Reverse(*i)));
        if let Some((_, c)) = first {
            let why = format!("thread count {t}, largest micro-batch");
            session.measure(space, c, &why, false, &[])?;
        }
    }
    Ok(())
}

/// 2. With pp in the objective: the smallest micro-batch at the best
///    thread count, to separate the per-micro-batch cost γ.
fn smallest_micro_batch<M: Measurer>(
    space: &Space,
    session: &mut Session<M>,
) -> Result<(), M::Error> {
    let pooled = space.pool(&session.measured);
    let best_t = space
        .candidates
        .iter()
        .filter_map(|c| Some((space.point(c).ctx.threads, space.score(c, &pooled)?.mean)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|x| x.0);
    let Some(best_t) = best_t else {
        return Ok(());
    };
    let largest = space
        .candidates
        .iter()
        .filter(|c| space.tried(c, &session.measured))
        .map(|c| ubatch_eff(space.point(c)))
        .max()
        .unwrap_or(0);
    let small: Option<&Candidate> = space
        .candidates
        .iter()
        .filter(|c| space.point(c).ctx.threads == best_t && !space.tried(c, &session.measured))
        .min_by_key(|c| ubatch_eff(space.point(c)));
    if let Some(c) = small {
        if ubatch_eff(space.point(c)) < largest {
            let why = "smallest micro-batch at the best thread count";
            session.measure(space, c, why, false, &[])?;
        }
    }
    Ok(())
}

/// 3. Measure while an untried candidate is predicted better beyond the uncertainty.
fn while_predicted_better<M: Measurer>(
    space: &Space,
    session: &mut Session<M>,
) -> Result<(), M::Error> {
    loop {
        let pooled = space.pool(&session.measured);
        let scores: Vec<Score> = space
            .candidates
            .iter()
            .filter_map(|c| space.score(c, &pooled))
            .collect();
        if scores.is_empty() {
            return Ok(());
        }
        let models = space.models(&pooled);
        let best = scores.iter().map(|s| s.mean).fold(0.0, f64::max);
        let uncertainty = scores
            .iter()
            .filter(|s| s.samples >= 2)
            .map(Score::relative_half_width)
            .fold(0.03, f64::max)
            .min(0.25);
        let next = space
            .candidates
            .iter()
            .filter(|c| !space.tried(c, &session.measured))
            .filter_map(|c| Some((c, space.predicted(c, &pooled, &models)?)))
            .filter(|&(_, predicted)| predicted > best * (1.0 + uncertainty))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        let Some((c, predicted)) = next else {
            return Ok(());
        };
        let why = format!(
            "predicted {predicted:.1} t/s > best {best:.1} + {:.0}%",
            uncertainty * 100.0
        );
        if !session.measure(space, c, &why, false, &[])? {
            return Ok(());
        }
    }
}
