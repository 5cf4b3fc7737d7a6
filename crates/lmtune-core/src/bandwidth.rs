//! Host memory bandwidth, measured with a STREAM-like triad
//! (`a[i] = b[i] + s·c[i]`, McCalpin's STREAM benchmark) and a read-only sum,
//! because token generation is memory-bound: tg t/s ≤ bandwidth / bytes read
//! per token. Generation streams weights without writing them back, so the
//! read-only rate is its ceiling (the triad also writes, and reads less per
//! second: on the dev VM 7B-shaped generation read 36 GB/s where the triad
//! moved 29 GB/s).

use std::time::Instant;

use serde::{Deserialize, Serialize};

/// The result of [`measure_triad`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bandwidth {
    pub threads: u32,
    /// Size of each of the three arrays.
    pub array_bytes: u64,
    pub repetitions: u32,
    /// Best repetition, as STREAM reports (GB/s = 1e9 bytes/s).
    pub best_gb_per_s: f64,
    pub median_gb_per_s: f64,
    /// Best read-only rate (sum over one array), GB/s.
    #[serde(default)]
    pub read_gb_per_s: Option<f64>,
}

impl Bandwidth {
    /// The ceiling for streaming weights: the read-only rate where measured.
    pub fn read_ceiling_gb_per_s(&self) -> f64 {
        self.read_gb_per_s.unwrap_or(self.best_gb_per_s)
    }
}

/// Runs the triad over three arrays of `array_bytes` each, split over
/// `threads`, `repetitions` times (after one untimed pass that faults the
/// pages in). Bytes moved per element: 24 (two reads, one write).
pub fn measure_triad(threads: u32, array_bytes: u64, repetitions: u32) -> Bandwidth {
    let threads = threads.max(1) as usize;
    let n = (array_bytes / 8).max(threads as u64 * 1024) as usize;
    let mut a = vec![0.0f64; n];
    let b = vec![1.0f64; n];
    let c = vec![2.0f64; n];
    let chunk = n.div_ceil(threads);
    let triad = |a: &mut [f64]| {
        std::thread::scope(|s| {
            for ((a, b), c) in a
                .chunks_mut(chunk)
                .zip(b.chunks(chunk))
                .zip(c.chunks(chunk))
            {
                s.spawn(move || {
                    for ((x, y), z) in a.iter_mut().zip(b).zip(c) {
                        *x = y + 3.0 * z;
                    }
                });
            }
        });
    };
    triad(&mut a);
    let mut rates = Vec::with_capacity(repetitions as usize);
    for _ in 0..repetitions.max(1) {
        let start = Instant::now();
        triad(&mut a);
        let secs = start.elapsed().as_secs_f64();
        std::hint::black_box(&a);
        rates.push(24.0 * n as f64 / secs / 1e9);
    }
    rates.sort_by(f64::total_cmp);
    // Read-only: sum b in parallel chunks (8 bytes per element).
    let read = |b: &[f64]| -> f64 {
        std::thread::scope(|s| {
            // Eight independent accumulators, so the adds vectorize and the
            // loop is bound by memory, not by the latency of one add chain.
            let handles: Vec<_> = b
                .chunks(chunk)
                .map(|c| {
                    s.spawn(move || {
                        let mut acc = [0.0f64; 8];
                        let mut blocks = c.chunks_exact(8);
                        for block in &mut blocks {
                            for (a, x) in acc.iter_mut().zip(block) {
                                *a += x;
                            }
                        }
                        acc.iter().sum::<f64>() + blocks.remainder().iter().sum::<f64>()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or(0.0)).sum()
        })
    };
    std::hint::black_box(read(&b));
    let mut read_best = 0.0f64;
    for _ in 0..repetitions.max(1) {
        let start = Instant::now();
        std::hint::black_box(read(&b));
        read_best = read_best.max(8.0 * n as f64 / start.elapsed().as_secs_f64() / 1e9);
    }
    Bandwidth {
        read_gb_per_s: Some(read_best),
        threads: threads as u32,
        array_bytes: n as u64 * 8,
        repetitions: rates.len() as u32,
        best_gb_per_s: rates[rates.len() - 1],
        median_gb_per_s: rates[rates.len() / 2],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triad_reports_a_plausible_rate() {
        let bw = measure_triad(1, 16 << 20, 3);
        assert_eq!(bw.repetitions, 3);
        // Any machine that runs this moves more than 0.1 GB/s and less than 10 TB/s.
        assert!(
            bw.best_gb_per_s > 0.1 && bw.best_gb_per_s < 10_000.0,
            "{bw:?}"
        );
        assert!(bw.median_gb_per_s <= bw.best_gb_per_s);
    }
}
