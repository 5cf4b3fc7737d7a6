//! The cost of a fit and of one tuner step (refit + scoring every candidate)
//! on a large grid. Run: cargo bench -p lmtune-model
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use lmtune_model::{fit_linear, SpeedModel, SpeedSample};

fn memory_fit(c: &mut Criterion) {
    for n in [40usize, 400, 4000] {
        let rows: Vec<Vec<f64>> = (0..n)
            .map(|i| {
                vec![
                    1.0,
                    (32 << (i % 5)) as f64,
                    ((32 << (i % 5)) * (512 << (i % 4))) as f64 / 1000.0,
                ]
            })
            .collect();
        let y: Vec<f64> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| 30.0 + 0.02 * r[1] + 0.004 * r[2] + (i % 7) as f64 * 0.01)
            .collect();
        // Leave-one-out refits n times, so this is the whole cost of `lmtune fit`.
        c.bench_function(&format!("memory fit with leave-one-out, {n} points"), |b| {
            b.iter(|| {
                fit_linear(
                    "memory",
                    &["a", "b", "c"],
                    black_box(&rows),
                    black_box(&y),
                    |_, v| v,
                )
                .unwrap()
            })
        });
    }
}

fn tuner_step(c: &mut Criterion) {
    // 64 thread counts × 10 micro-batches × 16 contexts × 4 batches = 40,960 candidates.
    let candidates: Vec<(u32, u32)> = (1..=64u32)
        .flat_map(|t| (0..10).map(move |k| (t, 16u32 << k)))
        .flat_map(|c| std::iter::repeat_n(c, 64))
        .collect();
    let measured: Vec<SpeedSample> = (1..=64u32)
        .map(|t| SpeedSample {
            threads: t,
            ubatch: 8192,
            ms_per_token: 8.0 / f64::from(t) + 0.01,
        })
        .chain([SpeedSample {
            threads: 8,
            ubatch: 16,
            ms_per_token: 5.0,
        }])
        .collect();
    c.bench_function(
        &format!("tuner step: refit + score {} candidates", candidates.len()),
        |b| {
            b.iter(|| {
                let m = SpeedModel::fit(black_box(&measured));
                candidates
                    .iter()
                    .filter_map(|&(t, u)| m.tokens_per_s(t, u))
                    .fold(0.0f64, f64::max)
            })
        },
    );
}

criterion_group!(benches, memory_fit, tuner_step);
criterion_main!(benches);
