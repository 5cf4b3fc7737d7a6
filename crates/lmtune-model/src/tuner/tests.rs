//! The tuner driven by a fake measurer that reads the sim backend's planted
//! formulas ([`SimProfile`]) instead of running points: the search must find
//! the planted optimum while measuring a small part of the space.

use lmtune_core::knobs::{ContextParams, LoadParams, Test};
use lmtune_core::record::Status;
use lmtune_core::scenario::Point;
use lmtune_core::sim::SimProfile;
use lmtune_core::stats::Summary;

use super::*;

/// Bytes read per generated token by the fake model.
const TG_BYTES_PER_TOKEN: u64 = 80_000_000;
pub(super) const MIB: u64 = 1 << 20;

/// A fake [`Measurer`]: each reading comes from the sim profile's planted
/// times with seeded Gaussian noise, in microseconds, with no worker and
/// no model. With `device_vram_bytes`, offloaded layers take VRAM and an
/// offload that does not fit is `oom`.
struct SimFormulaMeasurer<'a> {
    profile: SimProfile,
    points: &'a [Point],
    repetitions: usize,
    /// The simulated GPU: VRAM of a point is `vram_bytes(n_gpu_layers)`.
    device_vram_bytes: Option<u64>,
    /// The backend has no GPU device: nothing is offloaded.
    no_gpu: bool,
    /// Points measured so far (search and check).
    calls: Vec<(usize, &'static str)>,
    /// Stop after this many measurements.
    stop_after: Option<usize>,
}

fn vram_bytes(n_gpu_layers: u32) -> u64 {
    100 * MIB + u64::from(n_gpu_layers) * 10 * MIB
}

impl<'a> SimFormulaMeasurer<'a> {
    fn new(points: &'a [Point], seed: u64, noise: f64) -> Self {
        SimFormulaMeasurer {
            profile: SimProfile {
                cpu_bandwidth_gb_per_s: 10.0,
                eta: 0.6,
                t_fixed_ms: 3.0,
                pp_ms_per_token_1_thread: 8.0,
                pp_ms_per_ubatch: 50.0,
                noise,
                seed,
                ..SimProfile::default()
            },
            points,
            repetitions: 3,
            device_vram_bytes: None,
            no_gpu: false,
            calls: Vec::new(),
            stop_after: None,
        }
    }

    /// Planted ms per token of point `i` (GPU layers read for free).
    fn planted_ms(&self, i: usize) -> f64 {
        let p = &self.points[i];
        if p.test.n_gen > 0 {
            self.profile.tg_ms(TG_BYTES_PER_TOKEN, p.ctx.threads)
        } else {
            self.profile.pp_ms(p.ctx.threads, ubatch_eff(p))
        }
    }

    fn noise(&self, i: usize, seed_salt: u64) -> impl FnMut() -> f64 {
        let mut state = self.profile.seed ^ (i as u64).rotate_left(17) ^ (seed_salt << 32) ^ 0x5EED;
        state |= 1;
        move || {
            let mut uniform = || {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
            };
            let (u1, u2) = (uniform(), uniform());
            (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
        }
    }
}

impl Measurer for SimFormulaMeasurer<'_> {
    type Error = std::convert::Infallible;

    fn stopped(&self) -> bool {
        self.stop_after.is_some_and(|n| self.calls.len() >= n)
    }

    fn measure(
        &mut self,
        i: usize,
        seed_salt: u64,
        purpose: Purpose<'_>,
    ) -> Result<Option<Reading>, Self::Error> {
        let what = match purpose {
            Purpose::Search { .. } => "search",
            Purpose::Check { .. } => "check",
        };
        self.calls.push((i, what));
        let ngl = self.points[i].load.n_gpu_layers;
        let vram = self
            .device_vram_bytes
            .filter(|_| ngl > 0 && !self.no_gpu)
            .map(|_| vram_bytes(ngl));
        if let (Some(need), Some(have)) = (vram, self.device_vram_bytes) {
            if need > have {
                return Ok(Some(Reading {
                    status: Status::Oom,
                    samples_ts: Vec::new(),
                    tokens_per_s: None,
                    duration_s: 0.001,
                    vram_used_bytes: None,
                    layers_offloaded: None,
                }));
            }
        }
        let ms = self.planted_ms(i);
        let mut normal = self.noise(i, seed_salt);
        let samples_ts: Vec<f64> = (0..self.repetitions)
            .map(|_| 1000.0 / (ms * (1.0 + self.profile.noise * normal()).max(0.05)))
            .collect();
        Ok(Some(Reading {
            status: Status::Ok,
            tokens_per_s: Summary::of(&samples_ts),
            duration_s: samples_ts.iter().map(|ts| 64.0 / ts).sum(),
            samples_ts,
            vram_used_bytes: vram,
            layers_offloaded: self
                .device_vram_bytes
                .map(|_| if self.no_gpu { 0 } else { ngl }),
        }))
    }
}

pub(super) fn point(
    index: usize,
    ngl: u32,
    n_ctx: u32,
    n_batch: u32,
    n_ubatch: u32,
    threads: u32,
    test: Test,
) -> Point {
    // From JSON, as a record holds them: knobs added later take their defaults.
    let ctx: ContextParams = serde_json::from_value(serde_json::json!({
        "n_ctx": n_ctx,
        "n_batch": n_batch,
        "n_ubatch": n_ubatch,
        "threads": threads,
        "type_k": "f16",
        "type_v": "f16",
        "flash_attn": "auto",
    }))
    .expect("valid context parameters");
    Point {
        index,
        load_group: 0,
        load: LoadParams::new(ngl, true),
        ctx,
        test,
    }
}

const PP512: Test = Test {
    n_prompt: 512,
    n_gen: 0,
    n_depth: 0,
    concurrency: 1,
};
pub(super) const TG64: Test = Test {
    n_prompt: 0,
    n_gen: 64,
    n_depth: 0,
    concurrency: 1,
};

/// The space of `tests/tune.rs`: 6 thread counts × 9 (n_batch, n_ubatch)
/// pairs × 2 n_ctx = 108 settings, each with a pp512 and a tg64 point.
fn cpu_space() -> Vec<Point> {
    let mut points = Vec::new();
    for n_ctx in [512, 2048] {
        for n_batch in [256, 512] {
            for n_ubatch in [32, 64, 128, 256, 512] {
                if n_ubatch > n_batch {
                    continue;
                }
                for threads in [1, 2, 3, 4, 6, 8] {
                    for test in [PP512, TG64] {
                        points.push(point(
                            points.len(),
                            0,
                            n_ctx,
                            n_batch,
                            n_ubatch,
                            threads,
                            test,
                        ));
                    }
                }
            }
        }
    }
    points
}

pub(super) fn options(objective: Objective) -> TuneOptions {
    TuneOptions {
        objective,
        tolerance: 0.03,
        time_budget_s: None,
        max_points: None,
        vram_budget_bytes: None,
    }
}

pub(super) fn no_prediction(_: &Point) -> Option<u64> {
    None
}

#[test]
fn finds_the_planted_optimum_measuring_a_quarter_of_the_space_over_many_seeds() {
    let points = cpu_space();
    for objective in [Objective::Pp, Objective::Tg, Objective::Balanced] {
        let space = Space::new(&points, objective);
        assert_eq!(space.candidates.len(), 108);
        for seed in 1..=8 {
            let mut fake = SimFormulaMeasurer::new(&points, seed, 0.02);
            let found = search(&space, &options(objective), &no_prediction, &mut fake).unwrap();
            assert!(
                fake.calls.len() * 4 <= 108 * space.per_candidate(),
                "{objective:?} seed {seed}: {} measurements",
                fake.calls.len()
            );
            let (c, _) = found.ranking[0];
            let p = space.point(&c);
            // The planted optimum: 4+ threads (saturation), and for prompts the largest micro-batch.
            assert!(
                p.ctx.threads >= 4,
                "{objective:?} seed {seed}: {:?}\n{:#?}",
                p.ctx,
                found.trace
            );
            if objective != Objective::Tg {
                let planted = fake.profile.pp_ms(p.ctx.threads, ubatch_eff(p));
                let optimum = fake.profile.pp_ms(4, 512);
                assert!(
                    optimum >= 0.99 * planted,
                    "{objective:?} seed {seed}: {:?}",
                    p.ctx
                );
            }
            let summary = found.summary(None);
            assert_eq!(summary.measurements, fake.calls.len());
            assert!(summary.recommendation.is_some() && summary.totals.is_some());
        }
    }
}

#[test]
fn tg_points_differing_only_in_the_prompt_split_are_measured_once() {
    let points = cpu_space();
    let space = Space::new(&points, Objective::Tg);
    let mut fake = SimFormulaMeasurer::new(&points, 3, 0.02);
    let found = search(&space, &options(Objective::Tg), &no_prediction, &mut fake).unwrap();
    assert!(
        found.trace[0].contains("(12 distinct of 108 candidates)"),
        "{}",
        found.trace[0]
    );
    for (i, _) in &fake.calls {
        let c = &points[*i].ctx;
        assert_eq!((c.n_batch, c.n_ubatch), (512, 512), "{c:?}");
    }
}

/// One thread count, n_gpu_layers 0..=31 on a simulated GPU of 400 MiB:
/// 100 MiB + 10 MiB per layer, so 30 layers fit.
fn gpu_space() -> Vec<Point> {
    (0..=31)
        .flat_map(|ngl| [2, 4].map(|t| (ngl, t)))
        .enumerate()
        .map(|(i, (ngl, t))| point(i, ngl, 512, 512, 64, t, TG64))
        .collect()
}

#[test]
fn offload_settles_at_the_largest_that_fits_the_budget_and_the_device() {
    let points = gpu_space();
    let space = Space::new(&points, Objective::Tg);
    // The memory model misses a constant 25 MiB; its per-layer slope is right.
    let predicted = |p: &Point| Some(vram_bytes(p.load.n_gpu_layers) - 25 * MIB);
    for (budget, want) in [(Some(250 * MIB), 15), (Some(333 * MIB), 23), (None, 30)] {
        let mut fake = SimFormulaMeasurer::new(&points, 5, 0.02);
        fake.device_vram_bytes = Some(400 * MIB);
        let mut o = options(Objective::Tg);
        o.vram_budget_bytes = budget;
        let found = search(&space, &o, &predicted, &mut fake).unwrap();
        let settled = format!("offload settled: n_gpu_layers = {want}, the largest that fits");
        assert!(
            found.trace.iter().any(|t| t.starts_with(&settled)),
            "{budget:?}: {:#?}",
            found.trace
        );
        let (c, _) = found.ranking[0];
        assert_eq!(space.point(&c).load.n_gpu_layers, want);
        assert!(
            fake.calls.len() * 4 <= points.len(),
            "{budget:?}: {} measurements",
            fake.calls.len()
        );
    }
}

#[test]
fn offload_without_a_gpu_device_settles_at_the_smallest() {
    let points = gpu_space();
    let space = Space::new(&points, Objective::Tg);
    let mut fake = SimFormulaMeasurer::new(&points, 5, 0.02);
    fake.device_vram_bytes = Some(400 * MIB);
    fake.no_gpu = true;
    let found = search(&space, &options(Objective::Tg), &no_prediction, &mut fake).unwrap();
    assert!(
        found
            .trace
            .iter()
            .any(|t| t.contains("the backend offloaded nothing (it has no GPU device)")),
        "{:#?}",
        found.trace
    );
    let (c, _) = found.ranking[0];
    assert_eq!(space.point(&c).load.n_gpu_layers, 0);
}

#[test]
fn a_stopped_measurer_ends_the_search_without_a_recommendation() {
    let points = cpu_space();
    let space = Space::new(&points, Objective::Pp);
    let mut fake = SimFormulaMeasurer::new(&points, 1, 0.02);
    fake.stop_after = Some(0);
    let found = search(&space, &options(Objective::Pp), &no_prediction, &mut fake).unwrap();
    assert!(found.ranking.is_empty() && found.measured.is_empty());
    let summary = found.summary(None);
    assert_eq!(summary.recommendation, None);
    let json: serde_json::Value = serde_json::from_str(&summary.to_json_text()).unwrap();
    let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "measurements",
            "measuring_time_s",
            "objective",
            "recommendation",
            "schema",
            "trace"
        ]
    );
}

#[test]
fn the_time_budget_and_max_points_stop_measuring() {
    let points = cpu_space();
    let space = Space::new(&points, Objective::Pp);
    let mut fake = SimFormulaMeasurer::new(&points, 1, 0.02);
    let mut o = options(Objective::Pp);
    o.max_points = Some(4);
    let found = search(&space, &o, &no_prediction, &mut fake).unwrap();
    assert_eq!(found.measured.len(), 4);
    let mut fake = SimFormulaMeasurer::new(&points, 1, 0.02);
    let mut o = options(Objective::Pp);
    o.time_budget_s = Some(1e-9);
    let found = search(&space, &o, &no_prediction, &mut fake).unwrap();
    assert_eq!(found.measured.len(), 1);
    assert!(found
        .trace
        .iter()
        .any(|t| t.starts_with("time budget of 0 s spent")));
}

#[test]
fn the_check_measures_the_pick_and_the_grids_best_back_to_back() {
    let points = cpu_space();
    let space = Space::new(&points, Objective::Pp);
    // A grid of every point, from the same planted formulas.
    let mut grid_fake = SimFormulaMeasurer::new(&points, 2, 0.02);
    let matched: Vec<(usize, Reading)> = (0..points.len())
        .map(|i| {
            (
                i,
                grid_fake
                    .measure(i, 0, Purpose::Search { why: "grid" })
                    .unwrap()
                    .unwrap(),
            )
        })
        .collect();
    let grid = Grid::new("grid".into(), &matched);
    let whole = space.with_own_readings();
    // A pick that is not the grid's best: 1 thread.
    let pick = *whole
        .candidates
        .iter()
        .find(|c| whole.point(c).ctx.threads == 1)
        .unwrap();
    let mut fake = SimFormulaMeasurer::new(&points, 2, 0.02);
    let check = grid.check(&whole, &pick, 2, &mut fake).unwrap().unwrap();
    assert_eq!(check.rounds, 2);
    assert_eq!(fake.calls.iter().filter(|c| c.1 == "check").count(), 4);
    let (ratio, _) = check.ratio().unwrap();
    assert!(ratio < 0.5, "1 thread against 4+: {ratio}");
    assert_eq!(check.covered, 108);
    let summary = check.summary(1.0);
    assert_eq!(summary.back_to_back_rounds, 2);
    assert!(check.lines(1.0)[0].contains("check against grid (108 of 108 candidates"));
}

#[test]
fn judge_decides_at_90_percent_one_sided() {
    // Four rounds of 10% faster, tight: the rival wins.
    let tight = [(1e-4, 4.0); 4];
    let j = judge(&[0.1f64.ln_1p(); 4], &tight, 0.03);
    assert_eq!(j.verdict, DuelVerdict::Faster);
    assert!((j.ratio - 1.1).abs() < 1e-9);
    // Equal, tight: not faster by more than the tolerance.
    let j = judge(&[0.0; 2], &tight[..2], 0.03);
    assert_eq!(j.verdict, DuelVerdict::NotFaster);
    // Equal but wide: undecided.
    let j = judge(&[0.0], &[(0.01, 4.0)], 0.03);
    assert_eq!(j.verdict, DuelVerdict::Undecided);
    assert!(j.low < 1.0 && j.high > 1.03);
    // One sample per side: the variance is unknown, the interval infinite.
    let j = judge(&[0.5], &[(f64::INFINITY, 0.0)], 0.03);
    assert_eq!((j.verdict, j.high), (DuelVerdict::Undecided, f64::INFINITY));
}

#[test]
fn tune_json_keeps_its_keys_in_order_and_reads_back() {
    let points = cpu_space();
    let space = Space::new(&points, Objective::Balanced);
    let mut fake = SimFormulaMeasurer::new(&points, 4, 0.02);
    let found = search(
        &space,
        &options(Objective::Balanced),
        &no_prediction,
        &mut fake,
    )
    .unwrap();
    let summary = found.summary(None);
    let text = summary.to_json_text();
    assert!(text.ends_with("}\n"));
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "candidates",
            "candidates_measured",
            "check",
            "measurements",
            "measuring_time_s",
            "objective",
            "recommendation",
            "schema",
            "tolerance",
            "trace"
        ]
    );
    assert_eq!(json["objective"], "balanced");
    assert_eq!(json["schema"], TUNE_SUMMARY_SCHEMA);
    let back: TuneSummary = serde_json::from_str(&text).unwrap();
    assert_eq!(back, summary);
    assert!(found.request_parts().is_some());
}

#[test]
fn offload_where_none_fits_recommends_nothing() {
    // Every offload (1..=31 layers) needs at least 110 MiB.
    let points: Vec<Point> = gpu_space()
        .into_iter()
        .filter(|p| p.load.n_gpu_layers > 0)
        .enumerate()
        .map(|(i, p)| Point { index: i, ..p })
        .collect();
    let space = Space::new(&points, Objective::Tg);
    let mut fake = SimFormulaMeasurer::new(&points, 5, 0.02);
    fake.device_vram_bytes = Some(400 * MIB);
    let mut o = options(Objective::Tg);
    o.vram_budget_bytes = Some(50 * MIB);
    let found = search(
        &space,
        &o,
        &|p| Some(vram_bytes(p.load.n_gpu_layers)),
        &mut fake,
    )
    .unwrap();
    assert!(
        found
            .trace
            .iter()
            .any(|t| t == "no n_gpu_layers fits 50 MiB"),
        "{:#?}",
        found.trace
    );
    assert!(found.ranking.is_empty() && found.space.candidates.is_empty());
    assert_eq!(found.summary(None).recommendation, None);
}
