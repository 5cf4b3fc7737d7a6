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
//!
//! A coefficient no point tells apart from the others (collinear columns)
//! is held at 0 and marked [`Held::Undetermined`]; in a fit of times
//! ([`fit_linear_nonneg`]) one the free fit makes negative (a negative time
//! per token or per byte, physically impossible) is held at 0, marked
//! [`Held::AtZero`], and the rest refitted. A point whose leave-one-out fit
//! cannot predict it (it alone measured a term) has no leave-one-out error.

use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Coefficient {
    pub name: String,
    pub value: f64,
    /// 95% confidence interval; `None` without residual degrees of freedom
    /// or when held.
    pub ci95_low: Option<f64>,
    pub ci95_high: Option<f64>,
    /// Why `value` is 0 and not the least-squares value; `None` when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<Held>,
}

/// A coefficient set to 0 instead of fitted.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Held {
    /// The free fit made it negative, which a time cannot be; held at 0
    /// and the other terms refitted.
    AtZero { free_value: f64 },
    /// No point tells it apart from the other terms.
    Undetermined,
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
    /// Points the leave-one-out errors cover: those the other points
    /// predict (a point that alone measured a term has no error).
    #[serde(default)]
    pub loo_n: usize,
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

/// The rank of `x`, singular values under 1e-9 of the largest counted as 0.
fn rank(x: &DMatrix<f64>) -> usize {
    if x.is_empty() {
        return 0;
    }
    let sv = x.clone().singular_values();
    let top = sv.max();
    sv.iter().filter(|&&v| v > top * 1e-9 && v > 0.0).count()
}

/// `x` restricted to `columns`.
fn columns_of(x: &DMatrix<f64>, columns: &[usize]) -> DMatrix<f64> {
    DMatrix::from_fn(x.nrows(), columns.len(), |i, k| x[(i, columns[k])])
}

/// Least squares over the columns the rows determine (each kept only if
/// it raises the rank, in order, so intercepts stay first), with
/// `nonneg` holding negative coefficients at 0 one at a time (the most
/// negative first): the coefficients (0 where held) and why each is held.
fn solve_held(
    x: &DMatrix<f64>,
    y: &DVector<f64>,
    nonneg: bool,
) -> Option<(DVector<f64>, Vec<Option<Held>>)> {
    let p = x.ncols();
    let mut held: Vec<Option<Held>> = vec![None; p];
    let mut kept: Vec<usize> = Vec::new();
    for (j, slot) in held.iter_mut().enumerate() {
        let mut with = kept.clone();
        with.push(j);
        if rank(&columns_of(x, &with)) > kept.len() {
            kept = with;
        } else {
            *slot = Some(Held::Undetermined);
        }
    }
    loop {
        let mut beta = DVector::zeros(p);
        if !kept.is_empty() {
            let b = solve(&columns_of(x, &kept), y)?;
            for (k, &j) in kept.iter().enumerate() {
                beta[j] = b[k];
            }
        }
        let worst = kept
            .iter()
            .copied()
            .filter(|&j| nonneg && beta[j] < -1e-12)
            .min_by(|&a, &b| beta[a].total_cmp(&beta[b]));
        match worst {
            Some(j) => {
                held[j] = Some(Held::AtZero {
                    free_value: beta[j],
                });
                kept.retain(|&k| k != j);
            }
            None => return Some((beta, held)),
        }
    }
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
    fit_with_outliers(what, names, rows, y, &target, false)
}

/// Like [`fit_linear`], for a fit whose every coefficient is a time (per
/// token, per byte, per micro-batch): one the free fit makes negative is
/// held at 0 ([`Held::AtZero`]) and the rest refitted.
pub fn fit_linear_nonneg(
    what: &str,
    names: &[&str],
    rows: &[Vec<f64>],
    y: &[f64],
    target: impl Fn(usize, f64) -> f64,
) -> Result<LinearFit, FitError> {
    fit_with_outliers(what, names, rows, y, &target, true)
}

fn fit_with_outliers(
    what: &str,
    names: &[&str],
    rows: &[Vec<f64>],
    y: &[f64],
    target: &dyn Fn(usize, f64) -> f64,
    nonneg: bool,
) -> Result<LinearFit, FitError> {
    let (n, p) = (rows.len(), names.len());
    let shape = Shape {
        exact_ok: false,
        nonneg,
    };
    let (all, _) = fit_once(what, names, rows, y, target, shape)?;
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
            shape,
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
    let shape = Shape {
        exact_ok: true,
        nonneg: false,
    };
    Ok(fit_once(what, names, rows, y, &target, shape)?.0)
}

/// How [`fit_once`] fits: `exact_ok` accepts as many rows as coefficients
/// (no intervals then); `nonneg` holds negative coefficients at 0.
#[derive(Clone, Copy)]
struct Shape {
    exact_ok: bool,
    nonneg: bool,
}

/// One least-squares fit, and each row's leave-one-out error.
fn fit_once(
    what: &str,
    names: &[&str],
    rows: &[Vec<f64>],
    y: &[f64],
    target: &dyn Fn(usize, f64) -> f64,
    shape: Shape,
) -> Result<(LinearFit, Vec<Option<f64>>), FitError> {
    let (n, p) = (rows.len(), names.len());
    let needed = if shape.exact_ok { p.max(1) } else { p + 1 };
    if n < needed {
        return Err(FitError::TooFewPoints {
            what: what.into(),
            needed,
            have: n,
        });
    }
    let x = DMatrix::from_fn(n, p, |i, j| rows[i][j]);
    let yv = DVector::from_column_slice(y);
    let (beta, held) =
        solve_held(&x, &yv, shape.nonneg).ok_or_else(|| FitError::Degenerate(what.into()))?;
    let fitted = &x * &beta;
    let residuals = &yv - &fitted;
    let sse = residuals.dot(&residuals);
    let mean = yv.mean();
    let sst = yv.iter().map(|v| (v - mean).powi(2)).sum::<f64>();
    let r_squared = if sst > 0.0 { 1.0 - sse / sst } else { 1.0 };
    // Intervals over the fitted columns only: a held one has none.
    let free: Vec<usize> = (0..p).filter(|&j| held[j].is_none()).collect();
    let dof = n.saturating_sub(free.len());
    let xf = columns_of(&x, &free);
    let xtx_inv = (xf.transpose() * &xf).try_inverse();
    let t = StudentsT::new(0.0, 1.0, dof as f64)
        .map(|d| d.inverse_cdf(0.975))
        .ok();
    let coefficients = names
        .iter()
        .enumerate()
        .map(|(j, name)| {
            let k = free.iter().position(|&f| f == j);
            let half = match (&xtx_inv, t, k) {
                (Some(inv), Some(t), Some(k)) if dof > 0 => {
                    Some(t * (sse / dof as f64 * inv[(k, k)]).max(0.0).sqrt())
                }
                _ => None,
            };
            Coefficient {
                name: name.to_string(),
                value: beta[j],
                ci95_low: half.map(|h| beta[j] - h),
                ci95_high: half.map(|h| beta[j] + h),
                held: held[j],
            }
        })
        .collect();

    // Leave-one-out: refit without each point, predict it.
    let mut by_row = vec![None; n];
    for (i, slot) in by_row.iter_mut().enumerate() {
        let keep: Vec<usize> = (0..n).filter(|&k| k != i).collect();
        let xi = DMatrix::from_fn(n - 1, p, |r, j| rows[keep[r]][j]);
        // Predictable only when its row lies in the others' span: else it
        // alone measured some term, and any prediction of it is arbitrary.
        let with_i = DMatrix::from_fn(n, p, |r, j| rows[if r < n - 1 { keep[r] } else { i }][j]);
        if rank(&with_i) > rank(&xi) {
            continue;
        }
        let yi = DVector::from_iterator(n - 1, keep.iter().map(|&k| y[k]));
        let Some((b, _)) = solve_held(&xi, &yi, shape.nonneg) else {
            continue;
        };
        let predicted = (0..p).map(|j| b[j] * rows[i][j]).sum::<f64>();
        let (truth, guess) = (target(i, y[i]), target(i, predicted));
        let error = ((guess - truth) / truth).abs();
        if truth != 0.0 && error.is_finite() {
            *slot = Some(error);
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
            loo_n: errors.len(),
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
    fn a_negative_time_is_held_at_zero_and_said_so() {
        // ms = 10 − 0.5·x: the free fit's slope is negative.
        let rows: Vec<Vec<f64>> = (0..6).map(|i| vec![1.0, i as f64]).collect();
        let y: Vec<f64> = rows.iter().map(|r| 10.0 - 0.5 * r[1]).collect();
        let free = fit_linear("toy", &["a", "b"], &rows, &y, |_, v| v).unwrap();
        assert!((free.coefficients[1].value + 0.5).abs() < 1e-9);
        assert_eq!(free.coefficients[1].held, None);
        let f = fit_linear_nonneg("toy", &["a", "b"], &rows, &y, |_, v| v).unwrap();
        let b = &f.coefficients[1];
        assert_eq!(b.value, 0.0);
        assert!(b.ci95_low.is_none());
        assert!(
            matches!(b.held, Some(Held::AtZero { free_value }) if (free_value + 0.5).abs() < 1e-9)
        );
        // The intercept takes the mean, with an interval.
        assert!((f.coefficients[0].value - 8.75).abs() < 1e-9, "{f:?}");
        assert!(f.coefficients[0].ci95_low.is_some());
    }

    #[test]
    fn a_point_that_alone_measured_a_term_has_no_leave_one_out_error() {
        // Two "thread counts": the second measured once. Without it, its
        // constant is unknown: no error for it (it was inf%), and the fit
        // says over how many points its error is.
        let rows = vec![
            vec![1.0, 0.0],
            vec![1.0, 0.0],
            vec![1.0, 0.0],
            vec![0.0, 1.0],
        ];
        let y = vec![10.0, 10.5, 9.5, 4.0];
        let f = fit_linear("toy", &["t1", "t2"], &rows, &y, |_, v| 1000.0 / v).unwrap();
        assert_eq!(f.loo_n, 3);
        assert!(f.loo_mape.unwrap().is_finite());
        assert!((f.coefficients[1].value - 4.0).abs() < 1e-9);
        // Only points alone at their terms: no error at all.
        let f = fit_linear_all("toy", &["t1", "t2"], &rows[2..], &y[2..], |_, v| v).unwrap();
        assert_eq!((f.loo_n, f.loo_mape), (0, None));
    }

    #[test]
    fn a_collinear_term_is_undetermined_not_zero_by_accident() {
        let rows: Vec<Vec<f64>> = (0..6)
            .map(|i| vec![1.0, i as f64, 2.0 * i as f64])
            .collect();
        let y: Vec<f64> = rows.iter().map(|r| 1.0 + r[1]).collect();
        let f = fit_linear("toy", &["a", "b", "c"], &rows, &y, |_, v| v).unwrap();
        assert_eq!(f.coefficients[2].held, Some(Held::Undetermined));
        assert!((f.coefficients[1].value - 1.0).abs() < 1e-9, "{f:?}");
        assert!(f.coefficients[1].ci95_low.is_some());
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
