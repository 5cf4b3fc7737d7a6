//! Comparing two measurements of the same point: is the change real, and is
//! it large enough to matter? Pure: no I/O.
//!
//! The test is Welch's t-test on the raw samples, with the
//! Welch–Satterthwaite degrees of freedom: benchmark points have few samples
//! (3–10), and their variances differ between runs (a noisy neighbour
//! widens one side only), which Welch handles and the pooled t-test does not;
//! a bootstrap needs more samples than a point has to be trusted.
//!
//! The relative change and its 95% interval are (current − base) / base
//! mean, from the interval of the difference of means. A verdict is
//! `Regressed` only when the change is significant *and* the whole interval
//! lies beyond the threshold in the bad direction — a fixed-ratio gate with
//! no statistics drowns in noise, a p-value alone flags 0.5% changes.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};

/// Which way is better for a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Throughput: more is better.
    HigherIsBetter,
    /// Latency: less is better.
    LowerIsBetter,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Verdict {
    Improved,
    Regressed,
    NoChange,
    Inconclusive,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Improved => "Improved",
            Verdict::Regressed => "Regressed",
            Verdict::NoChange => "NoChange",
            Verdict::Inconclusive => "Inconclusive",
        }
    }
}

/// The gate's settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GateParams {
    /// Smallest relative change that matters, e.g. 0.05 for 5%.
    pub threshold: f64,
    /// Significance level of the test, e.g. 0.05.
    pub alpha: f64,
}

/// The comparison of one metric at one point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub base_mean: f64,
    pub current_mean: f64,
    pub base_n: usize,
    pub current_n: usize,
    /// (current − base) / base.
    pub relative_change: f64,
    /// 95%… (1 − alpha) interval of the relative change; `None` when it cannot be computed.
    pub ci_low: Option<f64>,
    pub ci_high: Option<f64>,
    pub p_value: Option<f64>,
    pub verdict: Verdict,
    /// Why the verdict is what it is, for humans.
    pub reason: String,
}

/// Compares raw samples of one metric.
pub fn compare_samples(
    base: &[f64],
    current: &[f64],
    direction: Direction,
    gate: GateParams,
) -> Change {
    let (nb, nc) = (base.len(), current.len());
    let mean = |x: &[f64]| x.iter().sum::<f64>() / x.len().max(1) as f64;
    let var = |x: &[f64], m: f64| {
        if x.len() < 2 {
            f64::NAN
        } else {
            x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (x.len() - 1) as f64
        }
    };
    let (mb, mc) = (mean(base), mean(current));
    let relative_change = if mb != 0.0 { (mc - mb) / mb } else { f64::NAN };
    let mut change = Change {
        base_mean: mb,
        current_mean: mc,
        base_n: nb,
        current_n: nc,
        relative_change,
        ci_low: None,
        ci_high: None,
        p_value: None,
        verdict: Verdict::Inconclusive,
        reason: String::new(),
    };
    if nb < 2 || nc < 2 || mb <= 0.0 || !relative_change.is_finite() {
        change.reason = format!("needs at least 2 samples on each side (have {nb} and {nc})");
        return change;
    }
    let (vb, vc) = (var(base, mb) / nb as f64, var(current, mc) / nc as f64);
    let se = (vb + vc).sqrt();
    let diff = mc - mb;
    let (p_value, half) = if se == 0.0 {
        // Identical samples on both sides: no noise to test against.
        (if diff == 0.0 { 1.0 } else { 0.0 }, 0.0)
    } else {
        let df = (vb + vc).powi(2) / (vb.powi(2) / (nb - 1) as f64 + vc.powi(2) / (nc - 1) as f64);
        let t_dist = StudentsT::new(0.0, 1.0, df.max(1.0)).expect("valid degrees of freedom");
        let t = diff / se;
        let p = 2.0 * (1.0 - t_dist.cdf(t.abs()));
        (p, t_dist.inverse_cdf(1.0 - gate.alpha / 2.0) * se)
    };
    // A rate or a latency cannot fall below zero: clamp the interval at −100%.
    let (lo, hi) = (
        ((diff - half) / mb).max(-1.0),
        ((diff + half) / mb).max(-1.0),
    );
    change.ci_low = Some(lo);
    change.ci_high = Some(hi);
    change.p_value = Some(p_value);
    decide(&mut change, p_value, direction, gate);
    change
}

/// Compares one current value (one run's mean, when the run is the unit)
/// with base samples (earlier runs' means). Welch's test needs a variance on
/// each side and one run has none, so this is Student's two-sample test with
/// the current side's variance taken from the base — the pooled test with
/// n = 1, df = n_base − 1; its interval is the prediction interval of one
/// new run. Verdicts follow the same rules as [`compare_samples`].
pub fn compare_one_run(
    base: &[f64],
    current: f64,
    direction: Direction,
    gate: GateParams,
) -> Change {
    let nb = base.len();
    let mb = base.iter().sum::<f64>() / nb.max(1) as f64;
    let relative_change = if mb != 0.0 {
        (current - mb) / mb
    } else {
        f64::NAN
    };
    let mut change = Change {
        base_mean: mb,
        current_mean: current,
        base_n: nb,
        current_n: 1,
        relative_change,
        ci_low: None,
        ci_high: None,
        p_value: None,
        verdict: Verdict::Inconclusive,
        reason: String::new(),
    };
    if nb < 2 || mb <= 0.0 || !relative_change.is_finite() {
        change.reason = format!("needs at least 2 base samples (have {nb})");
        return change;
    }
    let var_b = base.iter().map(|v| (v - mb).powi(2)).sum::<f64>() / (nb - 1) as f64;
    let se = (var_b * (1.0 + 1.0 / nb as f64)).sqrt();
    let diff = current - mb;
    let (p_value, half) = if se == 0.0 {
        (if diff == 0.0 { 1.0 } else { 0.0 }, 0.0)
    } else {
        let t_dist = StudentsT::new(0.0, 1.0, (nb - 1) as f64).expect("valid degrees of freedom");
        let p = 2.0 * (1.0 - t_dist.cdf((diff / se).abs()));
        (p, t_dist.inverse_cdf(1.0 - gate.alpha / 2.0) * se)
    };
    change.ci_low = Some(((diff - half) / mb).max(-1.0));
    change.ci_high = Some(((diff + half) / mb).max(-1.0));
    change.p_value = Some(p_value);
    decide(&mut change, p_value, direction, gate);
    change
}

/// The verdict from the interval and the p-value, the one rule both tests share.
fn decide(change: &mut Change, p_value: f64, direction: Direction, gate: GateParams) {
    let (lo, hi) = (
        change.ci_low.unwrap_or(f64::NAN),
        change.ci_high.unwrap_or(f64::NAN),
    );
    // Express "good" as positive for the verdict.
    let (good_lo, good_hi) = match direction {
        Direction::HigherIsBetter => (lo, hi),
        Direction::LowerIsBetter => (-hi, -lo),
    };
    let significant = p_value < gate.alpha;
    let t = gate.threshold;
    let pct = |x: f64| format!("{:+.1}%", x * 100.0);
    (change.verdict, change.reason) = if significant && good_hi < -t {
        (Verdict::Regressed, format!("significant (p = {p_value:.3}) and the whole interval [{}, {}] is worse than −{:.1}%", pct(lo), pct(hi), t * 100.0))
    } else if significant && good_lo > t {
        (Verdict::Improved, format!("significant (p = {p_value:.3}) and the whole interval [{}, {}] is better than +{:.1}%", pct(lo), pct(hi), t * 100.0))
    } else if good_lo >= -t && good_hi <= t {
        (
            Verdict::NoChange,
            format!(
                "the interval [{}, {}] lies within ±{:.1}%",
                pct(lo),
                pct(hi),
                t * 100.0
            ),
        )
    } else {
        (Verdict::Inconclusive, format!("p = {p_value:.3}; the interval [{}, {}] crosses the ±{:.1}% threshold: more repetitions would decide", pct(lo), pct(hi), t * 100.0))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    const GATE: GateParams = GateParams {
        threshold: 0.05,
        alpha: 0.05,
    };

    /// Deterministic normal samples (xorshift + Box–Muller).
    struct Normal(u64);
    impl Normal {
        fn uniform(&mut self) -> f64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
        fn sample(&mut self, mean: f64, sd: f64) -> f64 {
            let (u1, u2) = (self.uniform().max(1e-300), self.uniform());
            mean + sd * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
        }
        fn samples(&mut self, n: usize, mean: f64, sd: f64) -> Vec<f64> {
            (0..n).map(|_| self.sample(mean, sd)).collect()
        }
    }

    #[test]
    fn welch_matches_a_known_result() {
        // Reference: scipy 1.x, stats.ttest_ind(a, b, equal_var=False) on
        // these samples gives t = -3.90434, df = 8.85694, p = 0.0037083.
        let a = [19.8, 20.4, 19.6, 17.8, 18.5, 18.9];
        let b = [20.1, 21.5, 21.9, 20.8, 22.3];
        let c = compare_samples(&a, &b, Direction::HigherIsBetter, GATE);
        let p = c.p_value.unwrap();
        assert!((p - 0.003_708_279).abs() < 1e-8, "p = {p}");
    }

    #[test]
    fn one_run_against_a_history_matches_a_known_result() {
        // Base mean 100, s² = 2.5, one run at 95: t = −5 / √(2.5 · 1.2) =
        // −2.88675 on 4 df; the closed form of Student's t with 4 df gives
        // the two-sided p = 0.0447086.
        let base = [100.0, 102.0, 98.0, 101.0, 99.0];
        let c = compare_one_run(&base, 95.0, Direction::HigherIsBetter, GATE);
        let p = c.p_value.unwrap();
        assert!((p - 0.044_708_587).abs() < 1e-7, "p = {p}");
        assert_eq!(c.current_n, 1);
        let slow = compare_one_run(&base, 80.0, Direction::HigherIsBetter, GATE);
        assert_eq!(slow.verdict, Verdict::Regressed, "{}", slow.reason);
        let same = compare_one_run(&base, 100.5, Direction::HigherIsBetter, GATE);
        assert_ne!(same.verdict, Verdict::Regressed, "{}", same.reason);
        assert_eq!(
            compare_one_run(&[100.0], 50.0, Direction::HigherIsBetter, GATE).verdict,
            Verdict::Inconclusive
        );
    }

    #[test]
    fn direction_decides_good_and_bad() {
        let base = [100.0, 101.0, 99.0, 100.5, 99.5];
        let slower = [80.0, 81.0, 79.0, 80.5, 79.5];
        assert_eq!(
            compare_samples(&base, &slower, Direction::HigherIsBetter, GATE).verdict,
            Verdict::Regressed
        );
        assert_eq!(
            compare_samples(&base, &slower, Direction::LowerIsBetter, GATE).verdict,
            Verdict::Improved
        );
    }

    #[test]
    fn small_significant_changes_are_not_regressions() {
        let base = [100.0, 100.1, 99.9, 100.0, 100.05];
        let current = [98.0, 98.1, 97.9, 98.0, 98.05];
        let c = compare_samples(&base, &current, Direction::HigherIsBetter, GATE);
        assert!(c.p_value.unwrap() < 0.001);
        assert_eq!(c.verdict, Verdict::NoChange, "{}", c.reason);
    }

    #[test]
    fn too_few_samples_are_inconclusive() {
        assert_eq!(
            compare_samples(&[100.0], &[50.0, 51.0], Direction::HigherIsBetter, GATE).verdict,
            Verdict::Inconclusive
        );
    }

    /// A/A: both sides from the same distribution. The gate may only cry
    /// "Regressed" at most `alpha` of the time (it does far less, since it
    /// also needs the interval beyond the threshold).
    #[test]
    fn false_regression_rate_on_1000_aa_pairs_is_below_alpha() {
        let mut rng = Normal(42);
        let mut regressed = 0;
        for _ in 0..1000 {
            let a = rng.samples(5, 100.0, 5.0);
            let b = rng.samples(5, 100.0, 5.0);
            if compare_samples(&a, &b, Direction::HigherIsBetter, GATE).verdict
                == Verdict::Regressed
            {
                regressed += 1;
            }
        }
        assert!(
            regressed as f64 / 1000.0 <= GATE.alpha,
            "{regressed} of 1000"
        );
        println!("A/A false regressions: {regressed} of 1000");
    }

    /// Planted 10% slowdowns with realistic noise (3% sd, 5 repetitions, as
    /// measured on the dev VM) are caught almost always.
    #[test]
    fn planted_ten_percent_slowdowns_are_detected() {
        let mut rng = Normal(7);
        let mut detected = 0;
        for _ in 0..1000 {
            let a = rng.samples(5, 100.0, 3.0);
            let b = rng.samples(5, 90.0, 2.7);
            if compare_samples(&a, &b, Direction::HigherIsBetter, GATE).verdict
                == Verdict::Regressed
            {
                detected += 1;
            }
        }
        println!("planted 10% slowdowns detected: {detected} of 1000");
        assert!(detected >= 500, "{detected} of 1000");
    }
}
