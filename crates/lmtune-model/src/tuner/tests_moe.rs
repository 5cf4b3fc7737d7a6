//! The two-dimensional offload of a mixture of experts (n_gpu_layers ×
//! n_cpu_moe), driven by a fake MoE whose planted times and VRAM follow
//! where each block's attention and routed experts live.

use lmtune_core::record::Status;
use lmtune_core::scenario::Point;
use lmtune_core::stats::Summary;

use super::tests::{no_prediction, options, point, MIB, TG64};
use super::*;

/// A fake mixture of experts for the 2-D offload: 16 blocks, each 2 MiB of
/// attention and 32 MiB of routed experts of which a token reads 1/8;
/// `n_gpu_layers` offloads blocks from the last one down, `n_cpu_moe` keeps
/// the experts of blocks 0..N in host memory. Planted ms per token: host
/// bytes at 20 GB/s, device bytes at 500 GB/s, 2 ms fixed (threads at
/// 4 GB/s each up to 20); noise as the sim's.
struct MoeFormulaMeasurer<'a> {
    points: &'a [Point],
    seed: u64,
    noise: f64,
    device_vram_bytes: u64,
    calls: Vec<usize>,
}

const MOE_BLOCKS: u32 = 16;
const DENSE_BLOCK: u64 = 2 * MIB;
const EXPERTS_BLOCK: u64 = 32 * MIB;

/// (host bytes read per token, device bytes read per token, VRAM).
fn moe_placement(ngl: u32, n_cpu_moe: u32) -> (u64, u64, u64) {
    let (mut host, mut device, mut vram) = (0, 0, 100 * MIB);
    for il in 0..MOE_BLOCKS {
        let on_gpu = il >= MOE_BLOCKS - ngl.min(MOE_BLOCKS);
        let experts_on_gpu = on_gpu && il >= n_cpu_moe;
        let active = EXPERTS_BLOCK / 8;
        if on_gpu {
            device += DENSE_BLOCK;
            vram += DENSE_BLOCK;
        } else {
            host += DENSE_BLOCK;
        }
        if experts_on_gpu {
            device += active;
            vram += EXPERTS_BLOCK;
        } else {
            host += active;
        }
    }
    (host, device, vram)
}

fn moe_planted_ms(p: &Point) -> f64 {
    let (host, device, _) = moe_placement(p.load.n_gpu_layers, p.load.n_cpu_moe);
    let host_bw = 4e9 * f64::from(p.ctx.threads.min(5));
    host as f64 / host_bw * 1e3 + device as f64 / 500e9 * 1e3 + 2.0
}

impl Measurer for MoeFormulaMeasurer<'_> {
    type Error = std::convert::Infallible;

    fn stopped(&self) -> bool {
        false
    }

    fn measure(
        &mut self,
        i: usize,
        seed_salt: u64,
        _purpose: Purpose<'_>,
    ) -> Result<Option<Reading>, Self::Error> {
        self.calls.push(i);
        let p = &self.points[i];
        let (_, _, vram) = moe_placement(p.load.n_gpu_layers, p.load.n_cpu_moe);
        if vram > self.device_vram_bytes {
            return Ok(Some(Reading {
                status: Status::Oom,
                samples_ts: Vec::new(),
                tokens_per_s: None,
                duration_s: 0.001,
                vram_used_bytes: None,
                layers_offloaded: None,
            }));
        }
        let mut state = (self.seed ^ (i as u64).rotate_left(17) ^ (seed_salt << 32)) | 1;
        let mut normal = || {
            let mut uniform = || {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
            };
            let (u1, u2) = (uniform(), uniform());
            (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
        };
        let ms = moe_planted_ms(p);
        let samples_ts: Vec<f64> = (0..3)
            .map(|_| 1000.0 / (ms * (1.0 + self.noise * normal()).max(0.05)))
            .collect();
        Ok(Some(Reading {
            status: Status::Ok,
            tokens_per_s: Summary::of(&samples_ts),
            duration_s: samples_ts.iter().map(|ts| 64.0 / ts).sum(),
            samples_ts,
            vram_used_bytes: Some(vram),
            layers_offloaded: Some(p.load.n_gpu_layers.min(MOE_BLOCKS)),
        }))
    }
}

/// n_gpu_layers 0..=16 × n_cpu_moe 0..=16 × threads 2/4: 578 tg points.
fn moe_space() -> Vec<Point> {
    let mut points = Vec::new();
    for ngl in 0..=MOE_BLOCKS {
        for n_cpu_moe in 0..=MOE_BLOCKS {
            for threads in [2, 4] {
                let mut p = point(points.len(), ngl, 512, 512, 512, threads, TG64);
                p.load = p.load.with_n_cpu_moe(n_cpu_moe);
                points.push(p);
            }
        }
    }
    points
}

#[test]
fn moe_offload_finds_every_layer_with_the_fewest_experts_on_the_cpu_over_many_seeds() {
    let points = moe_space();
    let space = Space::new(&points, Objective::Tg);
    // The memory model misses a constant 10 MiB.
    let predicted =
        |p: &Point| Some(moe_placement(p.load.n_gpu_layers, p.load.n_cpu_moe).2 - 10 * MIB);
    for held_back in [3u32, 9, 15] {
        let (_, _, vram) = moe_placement(MOE_BLOCKS, held_back);
        // The grid's best that fits, from the planted formula.
        let best = points
            .iter()
            .filter(|p| moe_placement(p.load.n_gpu_layers, p.load.n_cpu_moe).2 <= vram)
            .min_by(|a, b| moe_planted_ms(a).total_cmp(&moe_planted_ms(b)))
            .unwrap();
        assert_eq!(
            (
                best.load.n_gpu_layers,
                best.load.n_cpu_moe,
                best.ctx.threads
            ),
            (MOE_BLOCKS, held_back, 4)
        );
        for seed in 1..=20 {
            for budget in [Some(vram), None] {
                let mut fake = MoeFormulaMeasurer {
                    points: &points,
                    seed,
                    noise: 0.02,
                    device_vram_bytes: if budget.is_some() { u64::MAX } else { vram },
                    calls: Vec::new(),
                };
                let mut o = options(Objective::Tg);
                o.vram_budget_bytes = budget;
                let found = search(&space, &o, &predicted, &mut fake).unwrap();
                if seed == 1 {
                    // Seen with --nocapture.
                    println!(
                        "held back {held_back}, budget {budget:?}: {} measurements\n  {}",
                        fake.calls.len(),
                        found.trace.join("\n  ")
                    );
                }
                let (c, _) = found.ranking[0];
                let p = space.point(&c);
                assert_eq!(
                    (p.load.n_gpu_layers, p.load.n_cpu_moe, p.ctx.threads),
                    (MOE_BLOCKS, held_back, 4),
                    "held back {held_back}, seed {seed}, budget {budget:?}:\n{:#?}",
                    found.trace
                );
                assert!(
                    fake.calls.len() * 4 <= points.len(),
                    "held back {held_back}, seed {seed}: {} measurements:\n{:#?}",
                    fake.calls.len(),
                    found.trace
                );
                let r = found.summary(None).recommendation.unwrap();
                assert_eq!((r.n_gpu_layers, r.n_cpu_moe), (MOE_BLOCKS, held_back));
            }
        }
    }
}

#[test]
fn moe_offload_where_every_expert_fits_keeps_them_all_on_the_gpu() {
    let points = moe_space();
    let space = Space::new(&points, Objective::Tg);
    let mut fake = MoeFormulaMeasurer {
        points: &points,
        seed: 7,
        noise: 0.02,
        device_vram_bytes: u64::MAX,
        calls: Vec::new(),
    };
    let found = search(&space, &options(Objective::Tg), &no_prediction, &mut fake).unwrap();
    assert!(
        found.trace.iter().any(|t| t
            .starts_with("offload settled: n_gpu_layers = 16, every layer and its experts fit")),
        "{:#?}",
        found.trace
    );
    let r = found.summary(None).recommendation.unwrap();
    assert_eq!((r.n_gpu_layers, r.n_cpu_moe), (16, 0));
}
