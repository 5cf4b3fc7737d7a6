//! The tuner's speed model: ms per token = c(threads) + γ / n_ubatch, fitted
//! from the points measured so far; `lmtune tune` refits it after every point.
//! Pure.

use std::collections::BTreeMap;

/// One measured point: threads, effective micro-batch, ms per token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpeedSample {
    pub threads: u32,
    pub ubatch: u32,
    pub ms_per_token: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SpeedModel {
    /// ms per token at each measured thread count, at an infinite micro-batch.
    pub c: BTreeMap<u32, f64>,
    /// ms per micro-batch, spread over its tokens.
    pub gamma: f64,
}

impl SpeedModel {
    /// γ is the median, over thread counts measured at two micro-batch sizes
    /// or more, of the slope of ms against 1/n_ubatch between the smallest
    /// and largest (never negative); c(threads) is the mean residue.
    pub fn fit(samples: &[SpeedSample]) -> SpeedModel {
        let mut by_threads: BTreeMap<u32, Vec<(f64, f64)>> = BTreeMap::new();
        for s in samples {
            by_threads
                .entry(s.threads)
                .or_default()
                .push((1.0 / f64::from(s.ubatch.max(1)), s.ms_per_token));
        }
        let mut slopes: Vec<f64> = by_threads
            .values()
            .filter_map(|pts| {
                let lo = pts.iter().min_by(|a, b| a.0.total_cmp(&b.0))?;
                let hi = pts.iter().max_by(|a, b| a.0.total_cmp(&b.0))?;
                (hi.0 > lo.0).then(|| (hi.1 - lo.1) / (hi.0 - lo.0))
            })
            .collect();
        slopes.sort_by(f64::total_cmp);
        let gamma = slopes
            .get(slopes.len() / 2)
            .copied()
            .unwrap_or(0.0)
            .max(0.0);
        let c = by_threads
            .into_iter()
            .map(|(t, pts)| {
                (
                    t,
                    pts.iter()
                        .map(|(inv_u, ms)| ms - gamma * inv_u)
                        .sum::<f64>()
                        / pts.len() as f64,
                )
            })
            .collect();
        SpeedModel { c, gamma }
    }

    /// Predicted tokens/s; `None` for a thread count never measured.
    pub fn tokens_per_s(&self, threads: u32, ubatch: u32) -> Option<f64> {
        let ms = self.c.get(&threads)? + self.gamma / f64::from(ubatch.max(1));
        (ms > 0.0).then(|| 1000.0 / ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_planted_constants_without_noise() {
        let planted = |t: u32, u: u32| 8.0 / f64::from(t.min(4)) + 50.0 / f64::from(u);
        let samples: Vec<SpeedSample> = [(1, 512), (2, 512), (4, 512), (4, 32)]
            .iter()
            .map(|&(t, u)| SpeedSample {
                threads: t,
                ubatch: u,
                ms_per_token: planted(t, u),
            })
            .collect();
        let m = SpeedModel::fit(&samples);
        assert!((m.gamma - 50.0).abs() < 1e-9);
        assert!((m.c[&2] - 4.0).abs() < 1e-9);
        let predicted = m.tokens_per_s(4, 128).unwrap();
        assert!((predicted - 1000.0 / planted(4, 128)).abs() < 1e-9);
        assert_eq!(m.tokens_per_s(3, 128), None);
    }
}
