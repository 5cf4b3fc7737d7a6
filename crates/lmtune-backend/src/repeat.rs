//! The repetition policy shared by all backends: a fixed count, or "auto"
//! (repeat until the 95% confidence interval is narrow enough).

use lmtune_core::record::Measurement;
use lmtune_core::scenario::Repetitions;
use lmtune_core::stats::Summary;

use crate::BackendError;

/// One timed repetition.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub ns: u64,
    /// Tokens/s as the backend's own counters saw the same repetition.
    pub backend_perf_ts: Option<f64>,
}

/// Runs `one(rep)` as often as `policy` asks and fills the sample fields of
/// a [`Measurement`]. `timed_tokens` converts times into tokens/s.
pub fn repeat(
    policy: Repetitions,
    timed_tokens: u32,
    progress: &mut dyn FnMut(u32),
    mut one: impl FnMut(u32) -> Result<Sample, BackendError>,
) -> Result<Measurement, BackendError> {
    let (min, max) = match policy {
        Repetitions::Fixed { count } => (count, count),
        Repetitions::Auto { min, max, .. } => (min.min(max), max),
    };
    let mut m = Measurement::default();
    for rep in 0..max {
        let sample = one(rep)?;
        m.samples_ns.push(sample.ns);
        m.samples_ts
            .push(f64::from(timed_tokens) / (sample.ns.max(1) as f64 / 1e9));
        if let Some(ts) = sample.backend_perf_ts {
            m.backend_perf_ts.push(ts);
        }
        progress(rep + 1);
        if let Repetitions::Auto { ci_target, .. } = policy {
            let narrow =
                Summary::of(&m.samples_ts).is_some_and(|s| s.relative_ci_half_width() <= ci_target);
            if rep + 1 >= min && narrow {
                break;
            }
        }
    }
    Ok(m)
}

/// The index of the largest value, the first one on ties (llama.cpp's greedy sampler).
pub fn argmax(values: &[f32]) -> u32 {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best as u32
}

/// Uniform random token ids (xorshift64*), like llama-bench's `rand() % n_vocab`;
/// the first token of a sequence is BOS when the model adds one. Shared by the
/// in-process backends so both feed the same kind of input.
pub struct RandomTokens {
    state: u64,
    n_vocab: u32,
    bos: Option<u32>,
}

impl RandomTokens {
    pub fn new(seed: u64, n_vocab: u32, bos: Option<u32>) -> RandomTokens {
        RandomTokens {
            state: seed | 1,
            n_vocab: n_vocab.max(1),
            bos,
        }
    }

    pub fn next_token(&mut self) -> u32 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        let r = self.state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32;
        (r % u64::from(self.n_vocab)) as u32
    }

    pub fn first(&mut self) -> u32 {
        self.bos.unwrap_or_else(|| self.next_token())
    }

    /// `n` tokens of a sequence; `start` is true for its first chunk.
    pub fn chunk(&mut self, n: usize, start: bool, out: &mut Vec<u32>) {
        out.clear();
        for i in 0..n {
            out.push(if start && i == 0 {
                self.first()
            } else {
                self.next_token()
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_count_runs_exactly_that_often() {
        let mut calls = 0;
        let m = repeat(Repetitions::Fixed { count: 4 }, 100, &mut |_| {}, |_| {
            calls += 1;
            Ok(Sample {
                ns: 1_000_000_000,
                backend_perf_ts: Some(99.0),
            })
        })
        .unwrap();
        assert_eq!(calls, 4);
        assert_eq!(m.samples_ts, vec![100.0; 4]);
        assert_eq!(m.backend_perf_ts.len(), 4);
    }

    #[test]
    fn auto_stops_at_min_when_stable_and_at_max_when_noisy() {
        let stable = repeat(
            Repetitions::Auto {
                min: 3,
                max: 50,
                ci_target: 0.02,
            },
            10,
            &mut |_| {},
            |_| {
                Ok(Sample {
                    ns: 1_000_000,
                    backend_perf_ts: None,
                })
            },
        )
        .unwrap();
        assert_eq!(stable.samples_ns.len(), 3);
        let noisy = repeat(
            Repetitions::Auto {
                min: 3,
                max: 7,
                ci_target: 0.001,
            },
            10,
            &mut |_| {},
            |rep| {
                Ok(Sample {
                    ns: 1_000_000 * (1 + u64::from(rep % 2)),
                    backend_perf_ts: None,
                })
            },
        )
        .unwrap();
        assert_eq!(noisy.samples_ns.len(), 7);
    }

    #[test]
    fn an_error_stops_the_repetitions() {
        let r = repeat(Repetitions::Fixed { count: 3 }, 1, &mut |_| {}, |rep| {
            if rep == 1 {
                Err(BackendError::PointFailed {
                    message: "boom".into(),
                    log: vec![],
                })
            } else {
                Ok(Sample {
                    ns: 1,
                    backend_perf_ts: None,
                })
            }
        });
        assert!(r.is_err());
    }
}
