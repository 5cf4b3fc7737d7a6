//! Summary statistics of repeated measurements. Pure: no I/O.
//!
//! Confidence intervals use Student's t distribution, since a point has few
//! samples. Outliers are labelled with the modified z-score of Iglewicz and
//! Hoaglin (1993): M = 0.6745 (x − median) / MAD, |M| > 3.5 is an outlier.
//! They are reported, never removed.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};

/// Threshold on |modified z-score| above which a sample is labelled an outlier.
pub const OUTLIER_Z: f64 = 3.5;

/// Mean, spread and a 95% confidence interval of a set of samples.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub n: usize,
    pub mean: f64,
    /// Sample standard deviation (n − 1); 0 for one sample.
    pub sd: f64,
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// 95% confidence interval of the mean; equal to the mean for one sample.
    pub ci95_low: f64,
    pub ci95_high: f64,
}

impl Summary {
    /// Summarizes `samples`; `None` when there are none or any is not finite.
    pub fn of(samples: &[f64]) -> Option<Summary> {
        if samples.is_empty() || samples.iter().any(|x| !x.is_finite()) {
            return None;
        }
        let n = samples.len();
        let mean = samples.iter().sum::<f64>() / n as f64;
        let sd = if n > 1 {
            (samples.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
        } else {
            0.0
        };
        let half = ci95_half_width(sd, n);
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        Some(Summary {
            n,
            mean,
            sd,
            median: median_sorted(&sorted),
            min: sorted[0],
            max: sorted[n - 1],
            ci95_low: mean - half,
            ci95_high: mean + half,
        })
    }

    /// Half-width of the 95% CI relative to the mean (∞ when the mean is 0).
    pub fn relative_ci_half_width(&self) -> f64 {
        if self.mean == 0.0 {
            f64::INFINITY
        } else {
            (self.ci95_high - self.ci95_low) / 2.0 / self.mean.abs()
        }
    }
}

/// Student's t quantile `p` (e.g. 0.975) with `dof` degrees of freedom;
/// the normal quantile for infinite `dof`, NaN for none.
pub fn t_quantile(p: f64, dof: f64) -> f64 {
    StudentsT::new(0.0, 1.0, dof)
        .map(|d| d.inverse_cdf(p))
        .unwrap_or(f64::NAN)
}

/// Half-width of a two-sided 95% CI of the mean for `n` samples with
/// standard deviation `sd`.
pub fn ci95_half_width(sd: f64, n: usize) -> f64 {
    if n < 2 {
        return 0.0;
    }
    let t = StudentsT::new(0.0, 1.0, (n - 1) as f64)
        .map(|d| d.inverse_cdf(0.975))
        .unwrap_or(f64::NAN);
    t * sd / (n as f64).sqrt()
}

fn median_sorted(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// Indices of samples whose modified z-score exceeds [`OUTLIER_Z`] (none for
/// fewer than 5 samples).
pub fn outliers(samples: &[f64]) -> Vec<usize> {
    // With fewer than 5 samples the MAD is too unstable to call anything an outlier.
    if samples.len() < 5 {
        return Vec::new();
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let median = median_sorted(&sorted);
    let mut deviations: Vec<f64> = samples.iter().map(|x| (x - median).abs()).collect();
    deviations.sort_by(f64::total_cmp);
    let mad = median_sorted(&deviations);
    if mad == 0.0 {
        // More than half the samples are identical: anything else stands out,
        // but a z-score is undefined. Label nothing rather than everything.
        return Vec::new();
    }
    samples
        .iter()
        .enumerate()
        .filter(|(_, x)| (0.6745 * (*x - median) / mad).abs() > OUTLIER_Z)
        .map(|(i, _)| i)
        .collect()
}

/// A point whose 95% CI half-width is more than this share of its mean is
/// noisy: its mean cannot be told from one 10% away.
pub const NOISY_CI_HALF_WIDTH: f64 = 0.10;

/// Why a point's mean needs a second look: the one rule `run`'s table and
/// `report` flag points by.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Doubts {
    /// The 95% CI half-width relative to the mean, when over
    /// [`NOISY_CI_HALF_WIDTH`] (two samples or more).
    pub noisy_ci_half_width: Option<f64>,
    /// Repetitions that jumped away from the others ([`outliers`]).
    pub outliers: Vec<usize>,
}

impl Doubts {
    /// The doubts about a point summarized by `s` from `samples`.
    pub fn of(s: &Summary, samples: &[f64]) -> Doubts {
        let relative = s.relative_ci_half_width();
        Doubts {
            noisy_ci_half_width: (s.n >= 2 && relative > NOISY_CI_HALF_WIDTH).then_some(relative),
            outliers: outliers(samples),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.noisy_ci_half_width.is_none() && self.outliers.is_empty()
    }

    /// A table cell: "noisy ±81%", "outliers [3]", or both; "" when none.
    pub fn label(&self) -> String {
        let mut parts = Vec::new();
        if let Some(h) = self.noisy_ci_half_width {
            parts.push(format!("noisy ±{:.0}%", h * 100.0));
        }
        if !self.outliers.is_empty() {
            parts.push(format!("outliers {:?}", self.outliers));
        }
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubts_flag_a_wide_interval_and_jumps_only() {
        let steady = [100.0, 101.0, 99.0, 100.0, 100.5];
        let s = Summary::of(&steady).unwrap();
        assert!(Doubts::of(&s, &steady).is_empty());
        assert_eq!(Doubts::of(&s, &steady).label(), "");
        let wide = [40.0, 160.0, 100.0];
        let s = Summary::of(&wide).unwrap();
        let d = Doubts::of(&s, &wide);
        assert!(d.noisy_ci_half_width.unwrap() > 1.0, "{d:?}");
        assert!(d.label().starts_with("noisy ±"), "{}", d.label());
        let jump = [100.0, 101.0, 99.0, 100.0, 100.5, 100.2, 60.0];
        let s = Summary::of(&jump).unwrap();
        assert_eq!(Doubts::of(&s, &jump).outliers, vec![6]);
        // One sample has no interval: not noisy.
        let one = Summary::of(&[5.0]).unwrap();
        assert!(Doubts::of(&one, &[5.0]).is_empty());
    }

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn known_values() {
        let s = Summary::of(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]).unwrap();
        assert_eq!(s.mean, 5.0);
        assert!(close(s.sd, 2.138_089_935, 1e-6), "{}", s.sd);
        assert_eq!(s.median, 4.5);
        // t(0.975, 7) = 2.364624; half = 2.364624 * 2.13809 / sqrt(8)
        assert!(
            close(s.ci95_high - s.mean, 1.787_485, 1e-4),
            "{}",
            s.ci95_high - s.mean
        );
    }

    #[test]
    fn one_sample_has_zero_width() {
        let s = Summary::of(&[3.0]).unwrap();
        assert_eq!((s.sd, s.ci95_low, s.ci95_high), (0.0, 3.0, 3.0));
    }

    #[test]
    fn empty_or_nan_is_none() {
        assert!(Summary::of(&[]).is_none());
        assert!(Summary::of(&[1.0, f64::NAN]).is_none());
    }

    #[test]
    fn outlier_is_labelled_not_removed() {
        let samples = [100.0, 101.0, 99.0, 100.5, 99.5, 40.0];
        assert_eq!(outliers(&samples), vec![5]);
        assert_eq!(Summary::of(&samples).unwrap().n, 6);
    }

    #[test]
    fn ci_contains_mean_and_shrinks_with_more_samples() {
        let few = Summary::of(&[9.0, 11.0, 10.0]).unwrap();
        let many = Summary::of(&[9.0, 11.0, 10.0, 9.0, 11.0, 10.0, 9.0, 11.0, 10.0]).unwrap();
        assert!(few.ci95_low < few.mean && few.mean < few.ci95_high);
        assert!(many.relative_ci_half_width() < few.relative_ci_half_width());
    }
}
