//! How long the E-Divisive search takes on one series of 30, 300 and 3,000
//! commits (issue 23: `history changes` and the change-point note of
//! `history check` on long histories). A script, not a timed test:
//! `cargo run --release -p lmtune-history --example bench_edivisive [N...]`
//! (default: 30 300 3000).
//!
//! Each series is 100 t/s with 5% Gaussian noise and a 10% slowdown at its
//! middle commit, so that the search finds one step (999 permutations) and
//! then tests both sides (stopping early, as they have no step).

use std::time::Instant;

use lmtune_history::edivisive::{change_points, EDivisiveParams, SplitMix};

/// Gaussian noise (Box–Muller).
fn normal(rng: &mut SplitMix) -> f64 {
    let u = rng.unit().max(1e-300);
    let v = rng.unit();
    (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut sizes: Vec<usize> = std::env::args()
        .skip(1)
        .map(|s| s.parse())
        .collect::<Result<_, _>>()?;
    if sizes.is_empty() {
        sizes = vec![30, 300, 3000];
    }
    let p = EDivisiveParams::default();
    for n in sizes {
        let mut rng = SplitMix::new(n as u64);
        let x: Vec<f64> = (0..n)
            .map(|i| {
                let level = if i >= n / 2 { 90.0 } else { 100.0 };
                level * (1.0 + 0.05 * normal(&mut rng))
            })
            .collect();
        let repeats = (3000 / n).clamp(1, 20);
        let t = Instant::now();
        let mut found = Vec::new();
        for _ in 0..repeats {
            found = change_points(&x, &p);
        }
        let each = t.elapsed().as_secs_f64() / repeats as f64;
        let at: Vec<String> = found
            .iter()
            .map(|c| format!("{} (p = {:.3})", c.index, c.p_value))
            .collect();
        println!(
            "{n} commits: {:.4} s per search (mean of {repeats}); change points at {}",
            each,
            at.join(", ")
        );
    }
    Ok(())
}
