//! `lmtune tune`: find the fastest setting of a scenario's space while
//! measuring only what the models say could still win.
//!
//! The space is the scenario's points whose test matches the objective (pp
//! or tg). The tuner measures one point per thread count (the largest
//! micro-batch), then, for pp, the smallest micro-batch at the best thread
//! count, so the per-micro-batch cost can be told apart. From then on it
//! fits ms/token = c(threads) + γ / n_ubatch to what it measured, and
//! measures the unmeasured candidate predicted fastest — but only while that
//! prediction beats the best measured point by more than the uncertainty
//! (the measured points' own 95% intervals, at least 3%). Then the best is
//! compared back to back with the runner-up that could beat it by the most
//! (at least once, at most 3 rounds, while a rival could still be faster by
//! more than `--tolerance`), judged by the ratio within each round, so the
//! machine's drift between readings taken apart does not decide. Every
//! measurement is recorded like a sweep's.
//!
//! With several `n_gpu_layers` in the space, the offload is settled first:
//! the largest value that fits `--vram` and the device, by bisection that
//! starts at the boundary the memory model predicts and checks its
//! neighbour (more offload is assumed faster, as it is whenever the GPU reads
//! faster than the CPU). The rest of the search runs at that offload.
//!
//! Without a scenario, `--model` is tuned over a default CPU space (see
//! [`default_space`]); `--time-budget` stops measuring new points.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use anyhow::{bail, Context};
use lmtune_core::fingerprint::HostInfo;
use lmtune_core::knobs::TestKind;
use lmtune_core::record::{point_key, Record, Status};
use lmtune_core::scenario::{BackendKind, MachineFacts, Point, Scenario};
use lmtune_core::stats::{t_quantile, Summary};
use lmtune_model::{SpeedModel, SpeedSample};
use lmtune_report::{markdown_table, CsvSink, JsonlSink, RecordSink};

use super::run::{model_fingerprint, new_sweep};
use crate::cli::TuneArgs;
use crate::exit;
use crate::interrupt::{self, INTERRUPTED};
use crate::output::{default_out_dir, Progress};
use crate::sweep::PointResult;

/// The micro-batch a point really runs with.
fn ubatch_eff(p: &Point) -> u32 {
    let u = p.ctx.n_ubatch.min(p.ctx.n_batch).min(p.ctx.n_ctx);
    if p.test.kind() == TestKind::Pp {
        u.min(p.test.n_prompt.max(1))
    } else {
        u
    }
}

/// For each point, the point whose measurement stands for it. A generated
/// token is decoded alone whatever n_batch and n_ubatch are (they only split
/// the prompt), so tg points that differ only in them do the same work and
/// are measured once. The stand-in is the one with the largest micro-batch
/// (then batch), the setting that is also best for prompts. Other points
/// stand for themselves.
fn same_work(points: &[Point]) -> Vec<usize> {
    let key = |p: &Point| {
        let mut ctx = p.ctx.clone();
        ctx.n_batch = 0;
        ctx.n_ubatch = 0;
        // Op offload acts on batches of 32 tokens or more, never on a
        // generated token.
        ctx.op_offload = true;
        (p.load.clone(), ctx, p.test)
    };
    let mut stand_in: BTreeMap<_, usize> = BTreeMap::new();
    for (i, p) in points.iter().enumerate() {
        if p.test.kind() != TestKind::Tg {
            continue;
        }
        let rank = |p: &Point| (ubatch_eff(p), p.ctx.n_batch.min(p.ctx.n_ctx));
        stand_in
            .entry(key(p))
            .and_modify(|j| {
                if rank(p) > rank(&points[*j]) {
                    *j = i;
                }
            })
            .or_insert(i);
    }
    points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            if p.test.kind() == TestKind::Tg {
                stand_in[&key(p)]
            } else {
                i
            }
        })
        .collect()
}

/// The tuner's speed model over the measured points.
fn fit_model(measured: &[(&Point, f64)]) -> SpeedModel {
    let samples: Vec<SpeedSample> = measured
        .iter()
        .map(|(p, ms)| SpeedSample {
            threads: p.ctx.threads,
            ubatch: ubatch_eff(p),
            ms_per_token: *ms,
        })
        .collect();
    SpeedModel::fit(&samples)
}

/// Back-to-back rounds (the best against a rival) before recommending.
const MAX_REPEAT_ROUNDS: usize = 3;

/// A back-to-back round's variance of ln(rival / best) from its
/// repetitions, and the degrees of freedom behind it.
type RoundVariance = (f64, f64);

/// Back-to-back comparisons are decided at 90% one-sided (the bounds of an
/// 80% interval): the probability and its normal quantile.
const DECISION_P: f64 = 0.90;
const DECISION_Z: f64 = 1.2816;

/// Every ok measurement of each candidate, pooled.
fn pooled(measured: &[(usize, Record)]) -> BTreeMap<usize, Summary> {
    pooled_as(measured, |i| i)
}

/// Like `pooled`, with each point's samples filed under `key(point)`.
fn pooled_as(
    measured: &[(usize, Record)],
    key: impl Fn(usize) -> usize,
) -> BTreeMap<usize, Summary> {
    let mut samples: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    for (i, r) in measured {
        if r.status == Status::Ok {
            samples
                .entry(key(*i))
                .or_default()
                .extend(&r.measurement.samples_ts);
        }
    }
    samples
        .into_iter()
        .filter_map(|(i, s)| Some((i, Summary::of(&s)?)))
        .collect()
}

/// `90`, `90s`, `10m`, `1.5h` as seconds.
fn parse_duration(text: &str) -> anyhow::Result<f64> {
    let t = text.trim();
    let (number, unit) = match t.find(|c: char| c.is_ascii_alphabetic()) {
        Some(at) => t.split_at(at),
        None => (t, "s"),
    };
    let scale = match unit.trim() {
        "s" | "sec" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => bail!("--time-budget {text}: unknown unit {other:?}; use s, m or h (e.g. 10m)"),
    };
    match number.trim().parse::<f64>() {
        Ok(n) if n > 0.0 && n.is_finite() => Ok(n * scale),
        _ => bail!("--time-budget {text}: not a positive duration; write e.g. 90s, 10m or 1h"),
    }
}

/// `3%` or `3` as a fraction (0.03).
fn parse_tolerance(text: &str) -> anyhow::Result<f64> {
    let number = text.trim().trim_end_matches('%').trim();
    match number.parse::<f64>() {
        Ok(n) if (0.0..50.0).contains(&n) => Ok(n / 100.0),
        _ => bail!("--tolerance {text}: not a percentage from 0 to 50; write e.g. 3%"),
    }
}

/// The search space of `lmtune tune --model M` without a scenario: CPU
/// only, thread counts 1, 2, 4, … up to the physical cores plus the
/// physical and logical counts, n_batch {256, 512, 2048}, n_ubatch {64, 128,
/// 256, 512} (candle: none, it has no micro-batch), valid combinations, at
/// `ctx`; pp512 (or the context, if smaller) and tg128, 3 repetitions.
fn default_space(
    model: &Path,
    ctx: Option<u32>,
    backend: &str,
    host: &HostInfo,
) -> anyhow::Result<Scenario> {
    let kind = match BackendKind::from_name(backend) {
        Some(k @ (BackendKind::LlamaCpp | BackendKind::Candle)) => k.as_str(),
        _ => bail!(
            "--backend {backend}: tune runs llama-cpp or candle (for a server, write a scenario)"
        ),
    };
    let summary = lmtune_gguf::GgufFile::open(model)
        .and_then(|f| f.summary())
        .with_context(|| format!("{} is not a model lmtune can read", model.display()))?;
    let trained = u32::try_from(summary.n_ctx_train)
        .unwrap_or(u32::MAX)
        .max(1);
    let ctx = match ctx {
        Some(0) => bail!("--ctx 0: use at least 1"),
        Some(c) if c > trained => bail!(
            "--ctx {c} is larger than the {trained} tokens the model was trained on; use --ctx {trained} or less"
        ),
        Some(c) => c,
        None => 4096.min(trained),
    };
    let mut threads = vec![];
    let mut t = 1;
    while t < host.physical_cores {
        threads.push(t);
        t *= 2;
    }
    threads.extend([host.physical_cores.max(1), host.logical_cores.max(1)]);
    threads.sort_unstable();
    threads.dedup();
    let list = |v: &[u32]| {
        v.iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let path = serde_json::to_string(&model.display().to_string())?;
    let ubatch = if kind == "candle" {
        String::new()
    } else {
        "n_ubatch = [64, 128, 256, 512]\n".to_string()
    };
    let stem = model
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    let source = format!(
        "# Written by `lmtune tune --model`: the default CPU search space.\n\
         schema = 1\nname = {name}\n\n[model]\npath = {path}\n\n[backend]\nkind = \"{kind}\"\n\n\
         [sweep]\nn_gpu_layers = 0\nn_ctx = {ctx}\nn_batch = [256, 512, 2048]\n{ubatch}threads = [{threads}]\nskip_invalid = true\n\n\
         [workload]\nn_prompt = [{pp}]\nn_gen = [{tg}]\n\n[measure]\nrepetitions = 3\nwarmup = 1\n",
        name = serde_json::to_string(&stem)?,
        threads = list(&threads),
        pp = 512.min(ctx),
        tg = 128.min(ctx),
    );
    Ok(Scenario::parse(
        &PathBuf::from(format!("{stem}.toml")),
        &source,
    )?)
}

/// What the tuner maximizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Objective {
    Tg,
    Pp,
    /// Throughput of a whole request: its prompt (the pp test) and its
    /// generation (the tg test) at the same setting.
    Balanced,
}

impl Objective {
    fn label(self) -> &'static str {
        match self {
            Objective::Tg => metric(TestKind::Tg),
            Objective::Pp => metric(TestKind::Pp),
            Objective::Balanced => "balanced (a pp + tg request)",
        }
    }
}

/// A setting the tuner can recommend: its point in the plan for each test
/// the objective needs (indices into `plan.points`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Candidate {
    pp: Option<usize>,
    tg: Option<usize>,
}

impl Candidate {
    fn points(&self) -> impl Iterator<Item = usize> {
        self.pp.into_iter().chain(self.tg)
    }
}

/// A candidate's figure of merit: t/s with a 95% interval.
#[derive(Debug, Clone, Copy)]
struct Score {
    mean: f64,
    low: f64,
    high: f64,
    samples: usize,
}

impl Score {
    fn of(s: &Summary) -> Score {
        Score {
            mean: s.mean,
            low: s.ci95_low,
            high: s.ci95_high,
            samples: s.n,
        }
    }

    fn relative_half_width(&self) -> f64 {
        if self.mean > 0.0 {
            (self.high - self.low) / 2.0 / self.mean
        } else {
            f64::INFINITY
        }
    }

    /// Standard error of the mean relative to it (the 95% half-width over
    /// Student's t); infinite from one sample.
    fn relative_se(&self) -> f64 {
        if self.samples < 2 {
            f64::INFINITY
        } else {
            self.relative_half_width() / t_quantile(0.975, (self.samples - 1) as f64)
        }
    }

    /// Half the 95% interval in t/s; unknown (infinite) from one sample.
    fn half_width(&self) -> f64 {
        if self.samples < 2 {
            f64::INFINITY
        } else {
            (self.high - self.low) / 2.0
        }
    }

    /// How much `self` could beat `best` by, in t/s, at 95%: the difference
    /// of the means plus the two half-widths combined.
    fn could_beat(&self, best: &Score) -> f64 {
        self.mean - best.mean + self.half_width().hypot(best.half_width())
    }
}

/// Request t/s of `n_prompt` tokens at `pp` t/s then `n_gen` at `tg` t/s,
/// and each part's share of the request's time.
fn request_tps(n_prompt: f64, pp: f64, n_gen: f64, tg: f64) -> (f64, f64, f64) {
    let (t_pp, t_tg) = (n_prompt / pp, n_gen / tg);
    let total = t_pp + t_tg;
    ((n_prompt + n_gen) / total, t_pp / total, t_tg / total)
}

struct Space<'a> {
    points: &'a [Point],
    candidates: Vec<Candidate>,
    objective: Objective,
    /// The point whose measurement stands for each point (`same_work`, or
    /// each point itself where every reading is its own, as in a grid).
    stand_in: &'a [usize],
}

impl Space<'_> {
    /// Every ok measurement pooled under the point that stands for it.
    fn pool(&self, measured: &[(usize, Record)]) -> BTreeMap<usize, Summary> {
        pooled_as(measured, |i| self.stand_in[i])
    }

    /// The reading of point `i` in `pooled` (keyed as `pool` keys it).
    fn reading<'p>(&self, pooled: &'p BTreeMap<usize, Summary>, i: usize) -> Option<&'p Summary> {
        pooled.get(&self.stand_in[i])
    }

    /// Whether every point of `c` (or one doing the same work) was measured.
    fn tried(&self, c: &Candidate, measured: &[(usize, Record)]) -> bool {
        c.points().all(|i| {
            measured
                .iter()
                .any(|(m, _)| self.stand_in[*m] == self.stand_in[i])
        })
    }

    /// The point whose knobs stand for the candidate (pp and tg share them).
    fn point(&self, c: &Candidate) -> &Point {
        &self.points[c.pp.or(c.tg).expect("a candidate has a point")]
    }

    /// The candidate's score from the measurements, if every point of it has one.
    fn score(&self, c: &Candidate, pooled: &BTreeMap<usize, Summary>) -> Option<Score> {
        match self.objective {
            Objective::Pp => self.reading(pooled, c.pp?).map(Score::of),
            Objective::Tg => self.reading(pooled, c.tg?).map(Score::of),
            Objective::Balanced => {
                let (pi, ti) = (c.pp?, c.tg?);
                let (pp, tg) = (self.reading(pooled, pi)?, self.reading(pooled, ti)?);
                let n_prompt = f64::from(self.points[pi].test.n_prompt);
                let n_gen = f64::from(self.points[ti].test.n_gen);
                let (mean, w_pp, w_tg) = request_tps(n_prompt, pp.mean, n_gen, tg.mean);
                // Each part's relative uncertainty, weighted by its share of the time.
                let rel = w_pp * pp.relative_ci_half_width() + w_tg * tg.relative_ci_half_width();
                Some(Score {
                    mean,
                    low: mean * (1.0 - rel),
                    high: mean * (1.0 + rel),
                    samples: pp.n.min(tg.n),
                })
            }
        }
    }

    /// Predicted score: measured parts as measured, the rest from the models.
    fn predicted(
        &self,
        c: &Candidate,
        pooled: &BTreeMap<usize, Summary>,
        models: &BTreeMap<TestKind, SpeedModel>,
    ) -> Option<f64> {
        let part = |i: usize| -> Option<f64> {
            if let Some(s) = self.reading(pooled, i) {
                return Some(s.mean);
            }
            let p = &self.points[i];
            models
                .get(&p.test.kind())?
                .tokens_per_s(p.ctx.threads, ubatch_eff(p))
        };
        match self.objective {
            Objective::Pp => part(c.pp?),
            Objective::Tg => part(c.tg?),
            Objective::Balanced => {
                let (pi, ti) = (c.pp?, c.tg?);
                let n_prompt = f64::from(self.points[pi].test.n_prompt);
                let n_gen = f64::from(self.points[ti].test.n_gen);
                Some(request_tps(n_prompt, part(pi)?, n_gen, part(ti)?).0)
            }
        }
    }

    /// One speed model per test kind, over its measured points.
    fn models(&self, pooled: &BTreeMap<usize, Summary>) -> BTreeMap<TestKind, SpeedModel> {
        let mut by_kind: BTreeMap<TestKind, Vec<(&Point, f64)>> = BTreeMap::new();
        for (&i, s) in pooled {
            let p = &self.points[i];
            if s.mean > 0.0 {
                by_kind
                    .entry(p.test.kind())
                    .or_default()
                    .push((p, 1000.0 / s.mean));
            }
        }
        by_kind
            .into_iter()
            .map(|(k, pairs)| (k, fit_model(&pairs)))
            .collect()
    }
}

/// The candidates of `objective` among `points`.
fn candidates_of(points: &[Point], objective: Objective) -> Vec<Candidate> {
    match objective {
        Objective::Pp | Objective::Tg => {
            let kind = if objective == Objective::Pp {
                TestKind::Pp
            } else {
                TestKind::Tg
            };
            points
                .iter()
                .enumerate()
                .filter(|(_, p)| p.test.kind() == kind)
                .map(|(i, _)| Candidate {
                    pp: (kind == TestKind::Pp).then_some(i),
                    tg: (kind == TestKind::Tg).then_some(i),
                })
                .collect()
        }
        Objective::Balanced => {
            // One candidate per setting (load + context) with a pp and a tg test.
            let mut settings: Vec<Candidate> = Vec::new();
            let mut keys = Vec::new();
            for (i, p) in points.iter().enumerate() {
                let key = (&p.load, &p.ctx);
                let at = match keys.iter().position(|k| *k == key) {
                    Some(at) => at,
                    None => {
                        keys.push(key);
                        settings.push(Candidate { pp: None, tg: None });
                        settings.len() - 1
                    }
                };
                match p.test.kind() {
                    TestKind::Pp => {
                        settings[at].pp.get_or_insert(i);
                    }
                    TestKind::Tg => {
                        settings[at].tg.get_or_insert(i);
                    }
                    TestKind::PpTg => {}
                }
            }
            settings
                .into_iter()
                .filter(|c| c.pp.is_some() && c.tg.is_some())
                .collect()
        }
    }
}

pub fn run(args: TuneArgs) -> anyhow::Result<u8> {
    let objective = match args.objective.as_str() {
        "tg" => Objective::Tg,
        "pp" => Objective::Pp,
        "balanced" => Objective::Balanced,
        other => bail!(
            "--objective {other}: use tg (generation), pp (prompt processing) or balanced (a pp + tg request)"
        ),
    };
    let tolerance = parse_tolerance(&args.tolerance)?;
    if args.against.is_some() && args.check_rounds == 0 {
        bail!("--check-rounds 0: the check needs at least one round; use 1 or more (default 3)");
    }
    let budget_s = args
        .time_budget
        .as_deref()
        .map(parse_duration)
        .transpose()?;
    let vram_budget = args
        .vram
        .as_deref()
        .map(|v| {
            lmtune_core::units::parse_size(v)
                .map_err(|e| anyhow::anyhow!("--vram {v}: {e} (write e.g. 8GiB or 24GB)"))
        })
        .transpose()?;
    let host = HostInfo::detect();
    let mut scenario = match (&args.scenario, &args.model) {
        (Some(file), _) => Scenario::load(file)?,
        (None, Some(model)) => {
            if !model.is_file() {
                bail!(
                    "model file {} does not exist (for the test model run scripts/fetch-model.sh)",
                    model.display()
                );
            }
            default_space(model, args.ctx, &args.backend, &host)?
        }
        (None, None) => bail!("give a scenario file or --model"),
    };
    if let (Some(_), Some(model)) = (&args.scenario, &args.model) {
        scenario.model_path = model.clone();
        scenario.model_span = None;
    }
    // A budget the scenario declares holds unless --vram overrides it.
    let vram_budget = vram_budget.or(scenario.vram_budget_bytes);
    let source_name = args
        .scenario
        .clone()
        .unwrap_or_else(|| scenario.model_path.clone());
    let plan = scenario.plan(MachineFacts {
        physical_cores: host.physical_cores,
        logical_cores: host.logical_cores,
    })?;
    let stand_in = same_work(&plan.points);
    let mut space = Space {
        points: &plan.points,
        candidates: candidates_of(&plan.points, objective),
        objective,
        stand_in: &stand_in,
    };
    if space.candidates.is_empty() {
        bail!(
            "{} has no {} to tune for (set [workload] {})",
            source_name.display(),
            match objective {
                Objective::Tg => "tg test",
                Objective::Pp => "pp test",
                Objective::Balanced => "setting with both a pp and a tg test",
            },
            match objective {
                Objective::Tg => "n_gen > 0",
                Objective::Pp => "n_prompt > 0",
                Objective::Balanced => "n_prompt > 0 and n_gen > 0",
            }
        );
    }
    let n_candidates = space.candidates.len();
    // The whole space, before the offload search narrows it (for --against).
    let all_candidates = space.candidates.clone();
    let per_candidate = space.candidates[0].points().count();
    // For tg, candidates doing the same work are one setting to measure.
    if objective == Objective::Tg {
        space
            .candidates
            .retain(|c| c.tg.is_none_or(|i| stand_in[i] == i));
    }
    let n_distinct = space.candidates.len();
    let model = model_fingerprint(&plan)?;
    // Read the grid first: a bad --against fails before anything is created.
    let grid = args
        .against
        .as_deref()
        .map(|path| Grid::load(path, &plan.points, &model.sha256))
        .transpose()?;
    interrupt::install();
    let out_dir = args.out.clone().unwrap_or_else(|| {
        default_out_dir(
            Path::new("results"),
            &host.hostname,
            &format!("{}-tune-{}", plan.scenario_name, args.objective),
        )
    });
    if std::fs::metadata(out_dir.join("results.jsonl"))
        .map(|m| m.len() > 0)
        .unwrap_or(false)
    {
        bail!(
            "{} already holds results; choose another --out",
            out_dir.display()
        );
    }
    std::fs::create_dir_all(&out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;
    std::fs::write(out_dir.join("scenario.toml"), &scenario.source)
        .with_context(|| format!("cannot write into {}", out_dir.display()))?;
    let mut sinks: Vec<Box<dyn RecordSink>> = vec![
        Box::new(JsonlSink::create(&out_dir.join("results.jsonl"))?),
        Box::new(CsvSink::create(&out_dir.join("results.csv"))?),
    ];

    let progress = Progress::new((n_candidates * per_candidate) as u64);
    progress.note(&format!(
        "tuning {} for {} over {n_candidates} candidates → {}",
        plan.scenario_name,
        objective.label(),
        out_dir.display()
    ));
    let mut sweep = new_sweep(
        &plan,
        host,
        model,
        &out_dir,
        args.verbose,
        &progress,
        &args.ggml_backend,
    );
    sweep.ensure_worker()?;

    // (point index, record): every measurement, repeats included.
    let mut measured: Vec<(usize, Record)> = Vec::new();
    let mut trace: Vec<String> = Vec::new();
    let shared = (0..plan.points.len()).filter(|&i| stand_in[i] != i).count();
    if shared > 0 {
        trace.push(format!(
            "n_batch and n_ubatch only split the prompt: {shared} tg point(s) do the same work as another and share its measurement{}",
            if objective == Objective::Tg {
                format!(" ({n_distinct} distinct of {n_candidates} candidates)")
            } else {
                String::new()
            }
        ));
    }
    // Repeats of close candidates come on top of one measurement per point.
    let max_points = args
        .max_points
        .unwrap_or((n_candidates + 2 * MAX_REPEAT_ROUNDS) * per_candidate);
    let mut spent_s = 0.0;
    let mut measure_point = |i: usize,
                             why: &str,
                             measured: &mut Vec<(usize, Record)>,
                             trace: &mut Vec<String>|
     -> anyhow::Result<bool> {
        if INTERRUPTED.load(Ordering::SeqCst) || measured.len() >= max_points {
            return Ok(false);
        }
        if let Some(budget) = budget_s {
            if spent_s >= budget {
                if !trace.iter().any(|t| t.starts_with("time budget")) {
                    trace.push(format!(
                        "time budget of {budget:.0} s spent ({spent_s:.0} s): no more points"
                    ));
                }
                return Ok(false);
            }
        }
        let p = &plan.points[i];
        sweep.seed_salt = measured.iter().filter(|(m, _)| *m == i).count() as u64;
        progress.set_message(&format!(
            "{} threads={} n_ubatch={} ({why})",
            p.test.label(),
            p.ctx.threads,
            p.ctx.n_ubatch
        ));
        let record = match sweep.measure(p, &progress)? {
            PointResult::Recorded(r) => *r,
            PointResult::Interrupted => return Ok(false),
        };
        for sink in &mut sinks {
            sink.append(&record)?;
        }
        spent_s += record.duration_s;
        progress.point_done(&record);
        let result = match (&record.status, &record.tokens_per_s) {
            (Status::Ok, Some(s)) => format!("{:.2} ± {:.2} t/s", s.mean, s.sd),
            (status, _) => status.as_str().to_string(),
        };
        trace.push(format!(
            "{:>2}. {} threads={} n_batch={} n_ubatch={} n_ctx={}: {result}  [{why}]",
            measured.len() + 1,
            p.test.label(),
            p.ctx.threads,
            p.ctx.n_batch,
            p.ctx.n_ubatch,
            p.ctx.n_ctx
        ));
        measured.push((i, record));
        Ok(true)
    };
    // Measures the candidate's points; `again` re-measures those done
    // already, except the ones in `keep` (stand-ins whose reading holds).
    let mut measure = |c: &Candidate,
                       why: String,
                       again: bool,
                       keep: &[usize],
                       measured: &mut Vec<(usize, Record)>,
                       trace: &mut Vec<String>|
     -> anyhow::Result<bool> {
        for i in c.points() {
            let fresh = if again {
                !keep.contains(&stand_in[i])
            } else {
                !measured.iter().any(|(m, _)| stand_in[*m] == stand_in[i])
            };
            if fresh && !measure_point(stand_in[i], &why, measured, trace)? {
                return Ok(false);
            }
        }
        Ok(true)
    };

    // 0. Offload: the largest n_gpu_layers that fits the budget and the device.
    let mut ngls: Vec<u32> = space
        .candidates
        .iter()
        .map(|c| space.point(c).load.n_gpu_layers)
        .collect();
    ngls.sort_unstable();
    ngls.dedup();
    if ngls.len() > 1 {
        // The most memory-hungry candidate at each offload (largest context
        // and micro-batch), so what fits for it fits for every candidate there.
        let probe = |k: u32| -> Option<Candidate> {
            space
                .candidates
                .iter()
                .filter(|c| space.point(c).load.n_gpu_layers == k)
                .max_by_key(|c| {
                    let p = space.point(c);
                    (p.ctx.n_ctx, ubatch_eff(p), p.ctx.threads)
                })
                .copied()
        };
        let anatomy = lmtune_gguf::GgufFile::open(&plan.model_path)
            .and_then(|f| f.anatomy())
            .ok();
        let cpu = crate::predict::host_cpu_backend();
        let throughput = lmtune_model::ThroughputParams::with_bandwidths(20.0, 500.0);
        let predicted = |k: u32| -> Option<u64> {
            let c = probe(k)?;
            let a = anatomy.as_ref()?;
            Some(
                crate::predict::predict_point(a, space.point(&c), true, &throughput, &cpu)
                    .vram_bytes,
            )
        };
        let mib = |b: u64| b as f64 / 1048576.0;
        // Where the memory model puts the boundary.
        let start = match vram_budget {
            Some(budget) => ngls
                .iter()
                .rposition(|&k| predicted(k).is_none_or(|v| v <= budget))
                .unwrap_or(0),
            None => ngls.len() - 1,
        };
        let (mut lo, mut hi) = (-1isize, ngls.len() as isize);
        let mut next = Some(start as isize);
        // Measured minus predicted VRAM at the last offload that ran: the
        // model's per-layer slope is structural, its constant is what it misses.
        let mut offset: Option<i64> = None;
        // Set when the backend offloaded nothing at all (it has no GPU device).
        let mut no_gpu = false;
        while let Some(at) = next {
            let k = ngls[at as usize];
            let Some(c) = probe(k) else { break };
            let why = match (vram_budget, predicted(k)) {
                (Some(b), Some(v)) => format!(
                    "offload: predicted {:.0} MiB of VRAM, budget {:.0} MiB",
                    mib(v),
                    mib(b)
                ),
                (None, Some(v)) => format!("offload: predicted {:.0} MiB of VRAM", mib(v)),
                _ => "offload".to_string(),
            };
            if !measure(&c, why, true, &[], &mut measured, &mut trace)? {
                break;
            }
            // It fits if every point of it ran and stayed within the budget.
            let latest: Vec<&Record> = c
                .points()
                .filter_map(|i| {
                    measured
                        .iter()
                        .rev()
                        .find(|(m, _)| *m == stand_in[i])
                        .map(|(_, r)| r)
                })
                .collect();
            if k > 0
                && !latest.is_empty()
                && latest.iter().all(|r| {
                    r.measurement
                        .placement
                        .as_ref()
                        .is_some_and(|p| p.layers_offloaded == 0)
                })
            {
                trace.push(format!(
                    "    n_gpu_layers = {k}: the backend offloaded nothing (it has no GPU device), so n_gpu_layers changes nothing here"
                ));
                no_gpu = true;
                break;
            }
            let used = latest
                .iter()
                .filter_map(|r| Some(r.vram.as_ref()?.used_bytes()))
                .max();
            let fit = latest.len() == c.points().count()
                && latest.iter().all(|r| r.status == Status::Ok)
                && match (vram_budget, used) {
                    (Some(b), Some(u)) => u <= b,
                    _ => true,
                };
            if let (Some(u), Some(v)) = (used, predicted(k)) {
                offset = Some(u as i64 - v as i64);
            }
            trace.push(format!(
                "    n_gpu_layers = {k} {}{}",
                if fit { "fits" } else { "does not fit" },
                used.map_or(String::new(), |u| format!(" (measured {:.0} MiB)", mib(u)))
            ));
            if fit {
                lo = at;
            } else {
                hi = at;
            }
            next = if hi - lo <= 1 {
                None
            } else if let (Some(budget), Some(off)) = (vram_budget, offset) {
                // The memory model corrected by the measurement: the largest
                // offload it says fits, or the first one above what did.
                let fits_corrected = |i: isize| {
                    predicted(ngls[i as usize]).is_some_and(|v| v as i64 + off <= budget as i64)
                };
                Some(
                    ((lo + 1)..hi)
                        .rev()
                        .find(|&i| fits_corrected(i))
                        .unwrap_or(lo + 1),
                )
            } else if at == start as isize {
                // Check the model's boundary from the other side first.
                Some(if fit { at + 1 } else { at - 1 })
            } else {
                Some((lo + hi) / 2)
            };
        }
        if no_gpu {
            let k = ngls[0];
            trace.push(format!(
                "offload settled: n_gpu_layers = {k}, the smallest (no GPU device); tuning the rest there"
            ));
            space
                .candidates
                .retain(|c| space.points[c.pp.or(c.tg).unwrap_or(0)].load.n_gpu_layers == k);
        } else if lo < 0 {
            trace.push(format!(
                "no n_gpu_layers fits{}",
                vram_budget.map_or(String::new(), |b| format!(" {:.0} MiB", mib(b)))
            ));
            space.candidates.clear();
        } else {
            let k = ngls[lo as usize];
            trace.push(format!(
                "offload settled: n_gpu_layers = {k}, the largest that fits; tuning the rest there"
            ));
            space
                .candidates
                .retain(|c| space.points[c.pp.or(c.tg).unwrap_or(0)].load.n_gpu_layers == k);
        }
    }
    // 1. One candidate per thread count, at its largest micro-batch.
    let mut threads: Vec<u32> = space
        .candidates
        .iter()
        .map(|c| space.point(c).ctx.threads)
        .collect();
    threads.sort_unstable();
    threads.dedup();
    for &t in &threads {
        let first = space
            .candidates
            .iter()
            .enumerate()
            .filter(|(_, c)| space.point(c).ctx.threads == t)
            .max_by_key(|(i, c)| (ubatch_eff(space.point(c)), std::cmp::Reverse(*i)));
        if let Some((_, c)) = first {
            measure(
                c,
                format!("thread count {t}, largest micro-batch"),
                false,
                &[],
                &mut measured,
                &mut trace,
            )?;
        }
    }
    // 2. With pp in the objective: the smallest micro-batch at the best
    //    thread count, to separate the per-micro-batch cost γ.
    if objective != Objective::Tg {
        let pooled_now = space.pool(&measured);
        let best_t = space
            .candidates
            .iter()
            .filter_map(|c| {
                Some((
                    space.point(c).ctx.threads,
                    space.score(c, &pooled_now)?.mean,
                ))
            })
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|x| x.0);
        if let Some(best_t) = best_t {
            let largest = space
                .candidates
                .iter()
                .filter(|c| space.tried(c, &measured))
                .map(|c| ubatch_eff(space.point(c)))
                .max()
                .unwrap_or(0);
            let small = space
                .candidates
                .iter()
                .filter(|c| space.point(c).ctx.threads == best_t && !space.tried(c, &measured))
                .min_by_key(|c| ubatch_eff(space.point(c)));
            if let Some(c) = small {
                if ubatch_eff(space.point(c)) < largest {
                    measure(
                        c,
                        "smallest micro-batch at the best thread count".into(),
                        false,
                        &[],
                        &mut measured,
                        &mut trace,
                    )?;
                }
            }
        }
    }
    // 3. Measure while an untried candidate is predicted better beyond the uncertainty.
    loop {
        let pooled_now = space.pool(&measured);
        let scores: Vec<Score> = space
            .candidates
            .iter()
            .filter_map(|c| space.score(c, &pooled_now))
            .collect();
        if scores.is_empty() {
            break;
        }
        let models = space.models(&pooled_now);
        let best = scores.iter().map(|s| s.mean).fold(0.0, f64::max);
        let uncertainty = scores
            .iter()
            .filter(|s| s.samples >= 2)
            .map(Score::relative_half_width)
            .fold(0.03, f64::max)
            .min(0.25);
        let next = space
            .candidates
            .iter()
            .filter(|c| !space.tried(c, &measured))
            .filter_map(|c| Some((c, space.predicted(c, &pooled_now, &models)?)))
            .filter(|&(_, predicted)| predicted > best * (1.0 + uncertainty))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        let Some((c, predicted)) = next else { break };
        let why = format!(
            "predicted {predicted:.1} t/s > best {best:.1} + {:.0}%",
            uncertainty * 100.0
        );
        if !measure(c, why, false, &[], &mut measured, &mut trace)? {
            break;
        }
    }
    // 4. Settle the recommendation by back-to-back comparisons: the best
    //    so far (the champion) against the runner-up that could beat it by
    //    the most, measured one right after the other (alternating order),
    //    and judged by their ratio within each round. Readings taken apart
    //    differ by the machine's drift (on a shared VM, tens of percent
    //    between minutes), which intervals of repetitions taken seconds
    //    apart do not show; a ratio taken back to back cancels it. The first
    //    comparison always runs; later ones only while a rival could still
    //    beat the champion by more than the tolerance.
    let ranked = |measured: &[(usize, Record)]| -> Vec<(Candidate, Score)> {
        let pooled_now = space.pool(measured);
        let mut v: Vec<(Candidate, Score)> = space
            .candidates
            .iter()
            .filter_map(|c| Some((*c, space.score(c, &pooled_now)?)))
            .collect();
        v.sort_by(|a, b| b.1.mean.total_cmp(&a.1.mean));
        v
    };
    let mut champion: Option<Candidate> = ranked(&measured).first().map(|x| x.0);
    // Rivals the back-to-back rounds showed not to beat the champion by
    // more than the tolerance (or former champions).
    let mut settled: Vec<Candidate> = Vec::new();
    // (rival, ln(rival / champion) per round, and each round's variance of
    // it with its degrees of freedom) of the pair under comparison.
    let mut pair: Option<(Candidate, Vec<f64>, Vec<RoundVariance>)> = None;
    for round in 0..MAX_REPEAT_ROUNDS {
        let Some(champ) = champion else { break };
        let ranking = ranked(&measured);
        let Some(b) = ranking.iter().find(|x| x.0 == champ).map(|x| x.1) else {
            break;
        };
        let rival = match &pair {
            Some((r, _, _)) => Some(*r),
            None => ranking
                .iter()
                .filter(|(c, _)| *c != champ && !settled.contains(c))
                .max_by(|x, y| x.1.could_beat(&b).total_cmp(&y.1.could_beat(&b)))
                .and_then(|&(c, r)| {
                    let margin = r.could_beat(&b);
                    if round == 0 || margin > tolerance * b.mean {
                        Some(c)
                    } else {
                        trace.push(format!(
                            "no other measured candidate could beat the best {:.1} t/s by more than {:.0}% (closest: {:.1} t/s, at most {:+.1}% at 95%): no more comparisons",
                            b.mean,
                            tolerance * 100.0,
                            r.mean,
                            100.0 * margin / b.mean
                        ));
                        None
                    }
                }),
        };
        let Some(rival_c) = rival else { break };
        let r = ranking
            .iter()
            .find(|x| x.0 == rival_c)
            .map(|x| x.1)
            .expect("a rival is measured");
        let why = format!(
            "back to back: best {:.1} t/s against {:.1} t/s",
            b.mean, r.mean
        );
        // Both are measured again, every part (for balanced, pp and tg): a
        // part left at an older reading would bring the drift back into the
        // ratio. Except a part they share (the tg test, when they differ
        // only in n_batch and n_ubatch): its reading stands for both.
        let shared: Vec<usize> = champ
            .points()
            .map(|i| stand_in[i])
            .filter(|s| rival_c.points().any(|j| stand_in[j] == *s))
            .collect();
        let first = measured.len();
        let order = if round % 2 == 0 {
            [champ, rival_c]
        } else {
            [rival_c, champ]
        };
        let mut complete = true;
        for c in order {
            if !measure(&c, why.clone(), true, &shared, &mut measured, &mut trace)? {
                complete = false;
                break;
            }
        }
        if !complete {
            break;
        }
        // This round's readings, and the shared parts' with no width: the
        // same value in both, it adds nothing uncertain to the ratio.
        let mut this_round = space.pool(&measured[first..]);
        let all = space.pool(&measured);
        for s in &shared {
            if let Some(x) = all.get(s) {
                let fixed = Summary {
                    ci95_low: x.mean,
                    ci95_high: x.mean,
                    ..*x
                };
                this_round.insert(*s, fixed);
            }
        }
        let (Some(bs), Some(rs)) = (
            space.score(&champ, &this_round),
            space.score(&rival_c, &this_round),
        ) else {
            // A failed re-measurement: the rival cannot be judged; move on.
            settled.push(rival_c);
            pair = None;
            continue;
        };
        let (_, ratios, rounds) = pair.get_or_insert((rival_c, Vec::new(), Vec::new()));
        ratios.push((rs.mean / bs.mean).ln());
        // The round's variance of the log ratio from its repetitions, and
        // the degrees of freedom behind it.
        rounds.push((
            rs.relative_se().powi(2) + bs.relative_se().powi(2),
            (rs.samples + bs.samples).saturating_sub(2) as f64,
        ));
        let n = ratios.len();
        let mean_ln = ratios.iter().sum::<f64>() / n as f64;
        let q = mean_ln.exp();
        // Decided at 90% one-sided: a rival is settled when the chance it
        // beats the best by more than the tolerance is under 10%, and wins
        // when the chance it is slower is under 10%. Surer decisions cost
        // rounds the noise of a shared machine makes expensive. The
        // uncertainty is the rounds' repetitions pooled (Student's t), or
        // the spread between the rounds where that is wider (drift within a
        // round, which the ratio cannot cancel).
        let variance: f64 = rounds.iter().map(|r| r.0).sum();
        let dof: f64 = rounds.iter().map(|r| r.1).sum();
        let within = t_quantile(DECISION_P, dof.max(1.0)) * variance.sqrt() / n as f64;
        let between = match Summary::of(ratios) {
            Some(s) if n >= 2 => DECISION_Z * s.sd / (n as f64).sqrt(),
            _ => 0.0,
        };
        let half = if within.is_finite() {
            within.max(between)
        } else {
            f64::INFINITY
        };
        let (low, high) = ((mean_ln - half).exp(), (mean_ln + half).exp());
        let verdict = if high <= 1.0 + tolerance {
            settled.push(rival_c);
            pair = None;
            "it is not faster by more than the tolerance"
        } else if low > 1.0 {
            settled.push(champ);
            champion = Some(rival_c);
            pair = None;
            "it is faster: it becomes the best"
        } else {
            "not decided yet"
        };
        trace.push(format!(
            "    back to back, round {n}: {:.1} vs the best's {:.1} t/s; over the rounds {:.1}% of it (80% interval {:.1}–{:.1}%): {verdict}",
            rs.mean,
            bs.mean,
            100.0 * q,
            100.0 * low,
            100.0 * high
        ));
    }
    // Rounds ran out undecided: the back-to-back evidence decides.
    if let (Some((rival_c, ratios, _)), Some(_)) = (&pair, champion) {
        let q = (ratios.iter().sum::<f64>() / ratios.len() as f64).exp();
        if q > 1.0 {
            champion = Some(*rival_c);
        }
        trace.push(format!(
            "undecided after {} round(s) back to back ({:.1}%): within noise of each other; recommending the faster on average",
            ratios.len(),
            100.0 * q
        ));
    }
    let ranking: Vec<(Candidate, Score)> = {
        let mut r = ranked(&measured);
        if let Some(at) = champion.and_then(|c| r.iter().position(|x| x.0 == c)) {
            let winner = r.remove(at);
            r.insert(0, winner);
        }
        r
    };
    let pooled_now = space.pool(&measured);
    let spent: f64 = measured.iter().map(|(_, r)| r.duration_s).sum();
    // The check re-measures with the worker still up.
    let own_points: Vec<usize> = (0..plan.points.len()).collect();
    let check = match (&grid, ranking.first()) {
        (Some(grid), Some((pick, _))) if !INTERRUPTED.load(Ordering::SeqCst) => {
            let whole = Space {
                points: &plan.points,
                candidates: all_candidates.clone(),
                objective,
                // Every grid reading is its own point's.
                stand_in: &own_points,
            };
            Some(grid.check(
                &whole,
                pick,
                args.check_rounds,
                &mut sweep,
                &progress,
                &out_dir,
            )?)
        }
        _ => None,
    };
    sweep.shutdown();
    progress.finish();

    let records: Vec<Record> = measured.iter().map(|(_, r)| r.clone()).collect();
    if !records.is_empty() {
        print!("{}", markdown_table(&records));
    }
    println!("\nsearch trace:");
    for line in &trace {
        println!("  {line}");
    }
    let distinct = space
        .candidates
        .iter()
        .filter(|c| c.points().any(|i| measured.iter().any(|(m, _)| *m == i)))
        .count();
    let Some((c, s)) = ranking.first() else {
        println!("\nno candidate was measured successfully");
        write_summary(
            &out_dir,
            &serde_json::json!({
                "schema": 1,
                "objective": args.objective,
                "recommendation": null,
                "measurements": measured.len(),
                "measuring_time_s": spent,
                "trace": trace,
            }),
        )?;
        return Ok(exit::SOME_FAILED);
    };
    let p = space.point(c);
    // What the model fitted to the other measurements predicts for the
    // recommendation (held out, so it can be wrong).
    let others: BTreeMap<usize, Summary> = pooled_now
        .iter()
        .filter(|(i, _)| !c.points().any(|p| stand_in[p] == **i))
        .map(|(i, s)| (*i, *s))
        .collect();
    let predicted = space
        .predicted(c, &BTreeMap::new(), &space.models(&others))
        .filter(|v| v.is_finite() && *v > 0.0);
    println!(
        "\nrecommended for {}: threads={} n_batch={} n_ubatch={} n_ctx={} n_gpu_layers={} — measured {:.2} t/s (95% CI {:.2}–{:.2}, {} samples){}",
        objective.label(),
        p.ctx.threads,
        p.ctx.n_batch,
        p.ctx.n_ubatch,
        p.ctx.n_ctx,
        p.load.n_gpu_layers,
        s.mean,
        s.low,
        s.high,
        s.samples,
        predicted.map_or(String::new(), |v| format!(
            "; predicted {v:.2} ({:+.1}%) by the model of the other measurements",
            100.0 * (v / s.mean - 1.0)
        ))
    );
    if objective == Objective::Balanced {
        if let (Some(pi), Some(ti)) = (c.pp, c.tg) {
            if let (Some(pp), Some(tg)) = (
                space.reading(&pooled_now, pi),
                space.reading(&pooled_now, ti),
            ) {
                println!(
                    "  = a {} request: {} at {:.2} t/s, then {} at {:.2} t/s",
                    format_args!(
                        "{}+{}",
                        plan.points[pi].test.label(),
                        plan.points[ti].test.label()
                    ),
                    plan.points[pi].test.label(),
                    pp.mean,
                    plan.points[ti].test.label(),
                    tg.mean
                );
            }
        }
    }
    println!(
        "measured {distinct} of {n_candidates} candidates ({:.0}%; {} measurements) in {spent:.1} s; results in {}",
        100.0 * distinct as f64 / n_candidates as f64,
        measured.len(),
        out_dir.display()
    );
    if let Some(check) = &check {
        check.print(spent);
    }
    write_summary(
        &out_dir,
        &serde_json::json!({
            "schema": 1,
            "objective": args.objective,
            "tolerance": tolerance,
            "recommendation": {
                "n_gpu_layers": p.load.n_gpu_layers,
                "threads": p.ctx.threads,
                "n_ctx": p.ctx.n_ctx,
                "n_batch": p.ctx.n_batch,
                "n_ubatch": p.ctx.n_ubatch,
                "tokens_per_s": s.mean,
                "ci95": [s.low, s.high],
                "samples": s.samples,
                "predicted_tokens_per_s": predicted,
            },
            "candidates": n_candidates,
            "candidates_measured": distinct,
            "measurements": measured.len(),
            "measuring_time_s": spent,
            "check": check.as_ref().map(|c| c.to_json(spent)),
            "trace": trace,
        }),
    )?;
    Ok(if INTERRUPTED.load(Ordering::SeqCst) {
        exit::INTERRUPTED
    } else {
        exit::OK
    })
}

/// `tune.json`: the recommendation, the cost and the trace, for scripts.
fn write_summary(out_dir: &Path, summary: &serde_json::Value) -> anyhow::Result<()> {
    let path = out_dir.join("tune.json");
    let text = serde_json::to_string_pretty(summary).expect("plain data serializes");
    std::fs::write(&path, text + "\n").with_context(|| format!("cannot write {}", path.display()))
}

/// A full grid of the tuner's space (`--against`): what the tuner is checked
/// against.
struct Grid {
    path: PathBuf,
    /// Every ok sample of each plan point the grid has.
    pooled: BTreeMap<usize, Summary>,
    /// Measuring time of the grid's records, per plan point.
    time_s: BTreeMap<usize, f64>,
}

impl Grid {
    fn load(path: &Path, points: &[Point], model_sha256: &str) -> anyhow::Result<Grid> {
        let (_, records) = lmtune_report::load_results(path)
            .map_err(|e| anyhow::anyhow!("--against {}: {e}", path.display()))?;
        let n_records = records.len();
        let index: BTreeMap<String, usize> = points
            .iter()
            .enumerate()
            .map(|(i, p)| (point_key(&p.load, &p.ctx, &p.test, model_sha256), i))
            .collect();
        let matched: Vec<(usize, Record)> = records
            .into_iter()
            .filter_map(|r| Some((*index.get(&r.point_key())?, r)))
            .collect();
        let mut time_s: BTreeMap<usize, f64> = BTreeMap::new();
        for (i, r) in &matched {
            *time_s.entry(*i).or_default() += r.duration_s;
        }
        if time_s.is_empty() {
            bail!(
                "--against {}: none of its {} records is a point of this space (same model file, knobs and tests); run the grid with the same scenario and model",
                path.display(),
                n_records
            );
        }
        Ok(Grid {
            path: path.to_path_buf(),
            pooled: pooled(&matched),
            time_s,
        })
    }

    /// Measures the recommendation and the grid's best back to back and
    /// compares them.
    fn check(
        &self,
        space: &Space,
        pick: &Candidate,
        rounds: usize,
        sweep: &mut crate::sweep::Sweep,
        progress: &Progress,
        out_dir: &Path,
    ) -> anyhow::Result<Check> {
        let scored: Vec<(Candidate, Score)> = space
            .candidates
            .iter()
            .filter_map(|c| Some((*c, space.score(c, &self.pooled)?)))
            .collect();
        let (best, best_score) = scored
            .iter()
            .copied()
            .max_by(|a, b| a.1.mean.total_cmp(&b.1.mean))
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "--against {}: the grid has no ok measurement of this objective's candidates",
                    self.path.display()
                )
            })?;
        let grid_time_s: f64 = space
            .candidates
            .iter()
            .flat_map(|c| c.points())
            .filter_map(|i| self.time_s.get(&i))
            .sum();
        let mut check = Check {
            path: self.path.clone(),
            covered: scored.len(),
            candidates: space.candidates.len(),
            grid_time_s,
            best: space.point(&best).clone(),
            best_grid: best_score,
            pick_grid: space.score(pick, &self.pooled),
            same_setting: best == *pick,
            rounds: 0,
            back_to_back: None,
        };
        if check.same_setting {
            return Ok(check);
        }
        // Alternate the order (ABBA…) so a drift during the check hits both.
        let mut sink = JsonlSink::create(&out_dir.join("check.jsonl"))
            .with_context(|| format!("cannot write into {}", out_dir.display()))?;
        let mut checked: Vec<(usize, Record)> = Vec::new();
        'rounds: for round in 0..rounds {
            let order = if round % 2 == 0 {
                [pick, &best]
            } else {
                [&best, pick]
            };
            for c in order {
                for i in c.points() {
                    if INTERRUPTED.load(Ordering::SeqCst) {
                        break 'rounds;
                    }
                    let p = &space.points[i];
                    sweep.seed_salt = 1000 + round as u64;
                    progress.set_message(&format!(
                        "check {}/{rounds}: {} threads={} n_ubatch={}",
                        round + 1,
                        p.test.label(),
                        p.ctx.threads,
                        p.ctx.n_ubatch
                    ));
                    let record = match sweep.measure(p, progress)? {
                        PointResult::Recorded(r) => *r,
                        PointResult::Interrupted => break 'rounds,
                    };
                    sink.append(&record)?;
                    checked.push((i, record));
                }
            }
            check.rounds = round + 1;
        }
        let pooled = pooled(&checked);
        if let (Some(a), Some(b)) = (space.score(pick, &pooled), space.score(&best, &pooled)) {
            check.back_to_back = Some((a, b));
        }
        Ok(check)
    }
}

/// The recommendation against a full grid.
struct Check {
    path: PathBuf,
    covered: usize,
    candidates: usize,
    grid_time_s: f64,
    /// The grid's best setting and its grid reading.
    best: Point,
    best_grid: Score,
    /// The recommendation's grid reading.
    pick_grid: Option<Score>,
    /// The recommendation is the grid's best setting: nothing to re-measure.
    same_setting: bool,
    rounds: usize,
    /// (recommendation, grid's best) measured back to back.
    back_to_back: Option<(Score, Score)>,
}

impl Check {
    /// The recommendation over the grid's best (back to back when measured,
    /// 1 when they are the same setting) with its 95% relative uncertainty.
    fn ratio(&self) -> Option<(f64, f64)> {
        match self.back_to_back {
            Some((a, b)) => Some((
                a.mean / b.mean,
                a.relative_half_width().hypot(b.relative_half_width()),
            )),
            None if self.same_setting => Some((1.0, 0.0)),
            None => None,
        }
    }

    fn print(&self, spent_s: f64) {
        let b = &self.best;
        println!(
            "\ncheck against {} ({} of {} candidates measured there, {:.1} s of measuring):",
            self.path.display(),
            self.covered,
            self.candidates,
            self.grid_time_s
        );
        println!(
            "  grid's best: threads={} n_batch={} n_ubatch={} n_ctx={} n_gpu_layers={} at {:.2} t/s",
            b.ctx.threads, b.ctx.n_batch, b.ctx.n_ubatch, b.ctx.n_ctx, b.load.n_gpu_layers, self.best_grid.mean
        );
        match self.pick_grid {
            Some(p) => println!(
                "  the recommendation read {:.2} t/s in the grid: {:.1}% of its best (two runs apart)",
                p.mean,
                100.0 * p.mean / self.best_grid.mean
            ),
            None => println!("  the grid has no reading of the recommendation"),
        }
        match (self.back_to_back, self.ratio()) {
            (Some((a, g)), Some((ratio, unc))) => println!(
                "  back to back, {} alternating rounds: recommendation {:.2} t/s, grid's best {:.2} t/s: {:.1}% (±{:.1}%)",
                self.rounds,
                a.mean,
                g.mean,
                100.0 * ratio,
                100.0 * ratio * unc
            ),
            (None, Some(_)) => println!("  the recommendation is the grid's best setting: 100%"),
            _ => println!("  the back-to-back check did not complete"),
        }
        if self.grid_time_s > 0.0 {
            println!(
                "  tuning measured for {spent_s:.1} s: {:.0}% of the grid's {:.1} s",
                100.0 * spent_s / self.grid_time_s,
                self.grid_time_s
            );
        }
    }

    fn to_json(&self, spent_s: f64) -> serde_json::Value {
        let b = &self.best;
        serde_json::json!({
            "grid": self.path.display().to_string(),
            "grid_candidates": self.covered,
            "grid_measuring_time_s": self.grid_time_s,
            "time_fraction": (self.grid_time_s > 0.0).then(|| spent_s / self.grid_time_s),
            "grid_best": {
                "n_gpu_layers": b.load.n_gpu_layers,
                "threads": b.ctx.threads,
                "n_ctx": b.ctx.n_ctx,
                "n_batch": b.ctx.n_batch,
                "n_ubatch": b.ctx.n_ubatch,
                "grid_tokens_per_s": self.best_grid.mean,
            },
            "recommendation_grid_tokens_per_s": self.pick_grid.map(|p| p.mean),
            "back_to_back_rounds": self.rounds,
            "back_to_back_tokens_per_s": self.back_to_back.map(|(a, g)| [a.mean, g.mean]),
            "ratio": self.ratio().map(|r| r.0),
            "ratio_ci95_relative": self.ratio().map(|r| r.1),
        })
    }
}

fn metric(kind: TestKind) -> &'static str {
    if kind == TestKind::Tg {
        "generation (tg)"
    } else {
        "prompt processing (pp)"
    }
}
