//! Ordinary least squares with what a reader needs to trust it: each
//! coefficient with a 95% interval, R², and leave-one-out prediction errors.
//! Pure; solved by SVD (nalgebra) so nearly collinear features do not blow up.
//!
//! A measurement the model misses by far more than it misses the rest (a
//! leave-one-out error over 5× the median and over 25%; one at a time, at
//! most a tenth of the points) is set aside as an outlier and the model
//! refitted without it;
//! the fit lists it, and keeps the error over all points next to the error
//! over the rest, so nothing disappears silently.

use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Coefficient {
    pub name: String,
    pub value: f64,
    /// 95% confidence interval; `None` without residual degrees of freedom.
    pub ci95_low: Option<f64>,
    pub ci95_high: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearFit {
    pub coefficients: Vec<Coefficient>,
    pub n: usize,
    pub r_squared: f64,
    /// Mean absolute percentage error of leave-one-out predictions of the
    /// target the caller cares about (see [`fit_linear`]).
    pub loo_mape: Option<f64>,
    pub loo_max_abs_pct: Option<f64>,
    /// Rows set aside as outliers, with their leave-one-out error in the
    /// fit over all rows; `n`, the coefficients and the errors above are
    /// those of the fit without them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outliers: Vec<Outlier>,
    /// Leave-one-out mean |error| over every row, outliers included (set
    /// only when there are outliers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loo_mape_all: Option<f64>,
}

/// A row the fit set aside.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outlier {
    /// Index into the rows given to [`fit_linear`].
    pub row: usize,
    pub loo_error: f64,
}

impl LinearFit {
    pub fn predict(&self, x: &[f64]) -> f64 {
        self.coefficients
            .iter()
            .zip(x)
            .map(|(c, v)| c.value * v)
            .sum()
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FitError {
    #[error("{needed} points are needed to fit {what}, there are {have}")]
    TooFewPoints {
        what: String,
        needed: usize,
        have: usize,
    },
    #[error("the points do not vary in {0}: the coefficients cannot be told apart")]
    Degenerate(String),
}

fn solve(x: &DMatrix<f64>, y: &DVector<f64>) -> Option<DVector<f64>> {
    x.clone().svd(true, true).solve(y, 1e-12).ok()
}

/// Fits y ≈ Σ βⱼ·xⱼ. `names` name the columns of `rows`. `target` maps a
/// point's fitted y back to the quantity whose error matters (e.g. the
/// residue model predicts total memory = structural + residue) and is given
/// the row index; leave-one-out errors are reported on that quantity.
pub fn fit_linear(
    what: &str,
    names: &[&str],
    rows: &[Vec<f64>],
    y: &[f64],
    target: impl Fn(usize, f64) -> f64,
) -> Result<LinearFit, FitError> {
    let (n, p) = (rows.len(), names.len());
    let (all, _) = fit_once(what, names, rows, y, &target, false)?;
    // Set aside the worst row while it stands out, one at a time (a wild
    // point drags the fit, so the others' errors are judged again without it).
    let mut keep: Vec<usize> = (0..n).collect();
    let mut outliers = Vec::new();
    let mut fit;
    loop {
        let kept_rows: Vec<Vec<f64>> = keep.iter().map(|&i| rows[i].clone()).collect();
        let kept_y: Vec<f64> = keep.iter().map(|&i| y[i]).collect();
        let (f, errors) = fit_once(
            what,
            names,
            &kept_rows,
            &kept_y,
            &|k, v| target(keep[k], v),
            false,
        )?;
        fit = f;
        if outliers.len() + 1 > n / 10 || keep.len() < p + 3 {
            break;
        }
        let mut sorted: Vec<f64> = errors.iter().filter_map(|e| *e).collect();
        sorted.sort_by(f64::total_cmp);
        let Some(&median) = sorted.get(sorted.len() / 2) else {
            break;
        };
        let worst = errors
            .iter()
            .enumerate()
            .filter_map(|(k, e)| e.map(|e| (k, e)))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        match worst {
            Some((k, e)) if e > (5.0 * median).max(0.25) => {
                outliers.push(Outlier {
                    row: keep[k],
                    loo_error: e,
                });
                keep.remove(k);
            }
            _ => break,
        }
    }
    if outliers.is_empty() {
        return Ok(all);
    }
    fit.outliers = outliers;
    fit.loo_mape_all = all.loo_mape;
    Ok(fit)
}

/// Like [`fit_linear`], with no row set aside: for designs where a row
/// can be the only one to determine a coefficient (its leave-one-out error
/// is then unbounded and says nothing about the row).
pub fn fit_linear_all(
    what: &str,
    names: &[&str],
    rows: &[Vec<f64>],
    y: &[f64],
    target: impl Fn(usize, f64) -> f64,
) -> Result<LinearFit, FitError> {
    Ok(fit_once(what, names, rows, y, &target, true)?.0)
}

/// One least-squares fit, and each row's leave-one-out error. `exact_ok`
/// accepts as many rows as coefficients (no intervals then).
fn fit_once(
    what: &str,
    names: &[&str],
    rows: &[Vec<f64>],
    y: &[f64],
    target: &dyn Fn(usize, f64) -> f64,
    exact_ok: bool,
) -> Result<(LinearFit, Vec<Option<f64>>), FitError> {
    let (n, p) = (rows.len(), names.len());
    let needed = if exact_ok { p.max(1) } else { p + 1 };
    if n < needed {
        return Err(FitError::TooFewPoints {
            what: what.into(),
            needed,
            have: n,
        });
    }
    let x = DMatrix::from_fn(n, p, |i, j| rows[i][j]);
    let yv = DVector::from_column_slice(y);
    let beta = solve(&x, &yv).ok_or_else(|| FitError::Degenerate(what.into()))?;
    let fitted = &x * &beta;
    let residuals = &yv - &fitted;
    let sse = residuals.dot(&residuals);
    let mean = yv.mean();
    let sst = yv.iter().map(|v| (v - mean).powi(2)).sum::<f64>();
    let r_squared = if sst > 0.0 { 1.0 - sse / sst } else { 1.0 };
    let dof = n - p;
    let xtx_inv = (x.transpose() * &x).try_inverse();
    let t = StudentsT::new(0.0, 1.0, dof as f64)
        .map(|d| d.inverse_cdf(0.975))
        .ok();
    let coefficients = names
        .iter()
        .enumerate()
        .map(|(j, name)| {
            let half = match (&xtx_inv, t) {
                (Some(inv), Some(t)) if dof > 0 => {
                    Some(t * (sse / dof as f64 * inv[(j, j)]).max(0.0).sqrt())
                }
                _ => None,
            };
            Coefficient {
                name: name.to_string(),
                value: beta[j],
                ci95_low: half.map(|h| beta[j] - h),
                ci95_high: half.map(|h| beta[j] + h),
            }
        })
        .collect();

    // Leave-one-out: refit without each point, predict it.
    let mut by_row = vec![None; n];
    for (i, slot) in by_row.iter_mut().enumerate() {
        let keep: Vec<usize> = (0..n).filter(|&k| k != i).collect();
        let xi = DMatrix::from_fn(n - 1, p, |r, j| rows[keep[r]][j]);
        let yi = DVector::from_iterator(n - 1, keep.iter().map(|&k| y[k]));
        let Some(b) = solve(&xi, &yi) else { continue };
        let predicted = (0..p).map(|j| b[j] * rows[i][j]).sum::<f64>();
        let (truth, guess) = (target(i, y[i]), target(i, predicted));
        if truth != 0.0 {
            *slot = Some(((guess - truth) / truth).abs());
        }
    }
    let errors: Vec<f64> = by_row.iter().filter_map(|e| *e).collect();
    let loo_mape = (!errors.is_empty()).then(|| errors.iter().sum::<f64>() / errors.len() as f64);
    let loo_max_abs_pct = errors
        .iter()
        .cloned()
        .fold(None, |m: Option<f64>, e| Some(m.map_or(e, |m| m.max(e))));
    Ok((
        LinearFit {
            coefficients,
            n,
            r_squared,
            loo_mape,
            loo_max_abs_pct,
            outliers: Vec::new(),
            loo_mape_all: None,
        },
        by_row,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_planted_coefficients_exactly_without_noise() {
        let rows: Vec<Vec<f64>> = (0..20)
            .map(|i| vec![1.0, i as f64, (i * i) as f64 % 7.0])
            .collect();
        let y: Vec<f64> = rows.iter().map(|r| 3.0 + 2.0 * r[1] - 0.5 * r[2]).collect();
        let f = fit_linear("toy", &["a", "b", "c"], &rows, &y, |_, v| v).unwrap();
        for (c, want) in f.coefficients.iter().zip([3.0, 2.0, -0.5]) {
            assert!((c.value - want).abs() < 1e-9, "{c:?}");
        }
        assert!((f.r_squared - 1.0).abs() < 1e-12);
        assert!(f.loo_mape.unwrap() < 1e-9);
    }

    #[test]
    fn intervals_cover_the_truth_under_noise() {
        // Deterministic pseudo-noise of ±1.
        let rows: Vec<Vec<f64>> = (0..40).map(|i| vec![1.0, i as f64]).collect();
        let y: Vec<f64> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| 10.0 + 0.5 * r[1] + if i % 2 == 0 { 1.0 } else { -1.0 })
            .collect();
        let f = fit_linear("toy", &["a", "b"], &rows, &y, |_, v| v).unwrap();
        let b = &f.coefficients[1];
        assert!(
            b.ci95_low.unwrap() < 0.5 && 0.5 < b.ci95_high.unwrap(),
            "{b:?}"
        );
    }

    #[test]
    fn one_wild_point_is_set_aside_and_reported() {
        // y = 2 + 3x with ±1% alternating noise, and one point 40% low.
        let rows: Vec<Vec<f64>> = (0..20).map(|i| vec![1.0, i as f64]).collect();
        let mut y: Vec<f64> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| (2.0 + 3.0 * r[1]) * if i % 2 == 0 { 1.01 } else { 0.99 })
            .collect();
        y[7] *= 0.6;
        let f = fit_linear("toy", &["a", "b"], &rows, &y, |_, v| v).unwrap();
        assert_eq!(f.outliers.len(), 1);
        assert_eq!(f.outliers[0].row, 7);
        assert!(f.outliers[0].loo_error > 0.25);
        assert_eq!(f.n, 19);
        assert!((f.coefficients[1].value - 3.0).abs() < 0.05, "{f:?}");
        assert!(f.loo_mape.unwrap() < f.loo_mape_all.unwrap());
        // Plain noise sets nothing aside.
        y[7] = (2.0 + 3.0 * 7.0) * 0.99;
        let f = fit_linear("toy", &["a", "b"], &rows, &y, |_, v| v).unwrap();
        assert!(f.outliers.is_empty() && f.loo_mape_all.is_none());
    }

    #[test]
    fn too_few_points_is_an_error() {
        let e = fit_linear("memory", &["a", "b"], &[vec![1.0, 2.0]], &[1.0], |_, v| v).unwrap_err();
        assert!(matches!(
            e,
            FitError::TooFewPoints {
                needed: 3,
                have: 1,
                ..
            }
        ));
    }
}
