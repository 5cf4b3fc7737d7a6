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
//! (the measured points' own 95% intervals, at least 3%). Then, while the
//! best candidate's 95% interval overlaps a runner-up's, both are measured
//! again (samples pooled per candidate) so the ranking is not noise. Every
//! measurement is recorded like a sweep's.
//!
//! Without a scenario, `--model` is tuned over a default CPU space (see
//! [`default_space`]); `--time-budget` stops measuring new points.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use anyhow::{bail, Context};
use lmtune_core::fingerprint::HostInfo;
use lmtune_core::knobs::TestKind;
use lmtune_core::record::{Record, Status};
use lmtune_core::scenario::{MachineFacts, Point, Scenario};
use lmtune_core::stats::Summary;
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

/// Rounds of extra repetitions for candidates that cannot be told apart.
const MAX_REPEAT_ROUNDS: usize = 3;

/// Candidates whose 95% intervals are both narrower than this (relative
/// half-width) are equivalent for a recommendation even if they overlap.
const EQUIVALENT_CI: f64 = 0.01;

/// Every ok measurement of each candidate, pooled.
fn pooled(measured: &[(usize, Record)]) -> BTreeMap<usize, Summary> {
    let mut samples: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    for (i, r) in measured {
        if r.status == Status::Ok {
            samples
                .entry(*i)
                .or_default()
                .extend(&r.measurement.samples_ts);
        }
    }
    samples
        .into_iter()
        .filter_map(|(i, s)| Some((i, Summary::of(&s)?)))
        .collect()
}

/// A line for the trace when the best candidate's interval still overlaps
/// another's after the repeats: the data cannot rank them.
fn still_tied(summaries: &BTreeMap<usize, Summary>) -> Option<String> {
    let (&bi, b) = summaries
        .iter()
        .max_by(|x, y| x.1.mean.total_cmp(&y.1.mean))?;
    let tied = summaries
        .iter()
        .filter(|(i, s)| **i != bi && s.ci95_high >= b.ci95_low)
        .count();
    (tied > 0).then(|| {
        format!(
            "{tied} other candidate(s) are within the best's 95% interval [{:.1}, {:.1}]: they are as good as the recommendation within noise",
            b.ci95_low, b.ci95_high
        )
    })
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
    let kind = match backend {
        "llama-cpp" | "llama.cpp" | "llamacpp" => "llama-cpp",
        "candle" => "candle",
        other => bail!(
            "--backend {other}: tune runs llama-cpp or candle (for a server, write a scenario)"
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

pub fn run(args: TuneArgs) -> anyhow::Result<u8> {
    let kind = match args.objective.as_str() {
        "tg" => TestKind::Tg,
        "pp" => TestKind::Pp,
        other => bail!("--objective {other}: use tg (generation) or pp (prompt processing)"),
    };
    let budget_s = args
        .time_budget
        .as_deref()
        .map(parse_duration)
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
    let source_name = args
        .scenario
        .clone()
        .unwrap_or_else(|| scenario.model_path.clone());
    let plan = scenario.plan(MachineFacts {
        physical_cores: host.physical_cores,
        logical_cores: host.logical_cores,
    })?;
    let candidates: Vec<&Point> = plan
        .points
        .iter()
        .filter(|p| p.test.kind() == kind)
        .collect();
    if candidates.is_empty() {
        bail!(
            "{} has no {} test to tune for (set [workload] {} > 0)",
            source_name.display(),
            args.objective,
            if kind == TestKind::Tg {
                "n_gen"
            } else {
                "n_prompt"
            }
        );
    }
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

    let model = model_fingerprint(&plan)?;
    let progress = Progress::new(candidates.len() as u64);
    progress.note(&format!(
        "tuning {} for {} over {} candidates → {}",
        plan.scenario_name,
        metric(kind),
        candidates.len(),
        out_dir.display()
    ));
    let mut sweep = new_sweep(&plan, host, model, &out_dir, args.verbose, &progress, &[]);
    sweep.ensure_worker()?;

    let mut measured: Vec<(usize, Record)> = Vec::new();
    let mut trace: Vec<String> = Vec::new();
    // Repeats of close candidates come on top of one measurement per candidate.
    let max_points = args
        .max_points
        .unwrap_or(candidates.len() + 2 * MAX_REPEAT_ROUNDS);
    let mut spent_s = 0.0;
    let mut measure = |i: usize,
                       why: String,
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
        let p = candidates[i];
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
            "{:>2}. threads={} n_batch={} n_ubatch={} n_ctx={}: {result}  [{why}]",
            measured.len() + 1,
            p.ctx.threads,
            p.ctx.n_batch,
            p.ctx.n_ubatch,
            p.ctx.n_ctx
        ));
        measured.push((i, record));
        Ok(true)
    };

    // 1. One point per thread count, at its largest micro-batch.
    let mut threads: Vec<u32> = candidates.iter().map(|p| p.ctx.threads).collect();
    threads.sort_unstable();
    threads.dedup();
    for &t in &threads {
        let best_u = candidates
            .iter()
            .enumerate()
            .filter(|(_, p)| p.ctx.threads == t)
            .max_by_key(|(i, p)| (ubatch_eff(p), std::cmp::Reverse(*i)));
        if let Some((i, _)) = best_u {
            measure(
                i,
                format!("thread count {t}, largest micro-batch"),
                &mut measured,
                &mut trace,
            )?;
        }
    }
    // 2. pp: the smallest micro-batch at the best thread count, to separate γ.
    if kind == TestKind::Pp {
        if let Some(best_t) = pooled(&measured)
            .iter()
            .map(|(i, s)| (candidates[*i].ctx.threads, s.mean))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|x| x.0)
        {
            let small = candidates
                .iter()
                .enumerate()
                .filter(|(i, p)| p.ctx.threads == best_t && !measured.iter().any(|(m, _)| m == i))
                .min_by_key(|(_, p)| ubatch_eff(p));
            if let Some((i, p)) = small {
                if ubatch_eff(p)
                    < measured
                        .iter()
                        .map(|(m, _)| ubatch_eff(candidates[*m]))
                        .max()
                        .unwrap_or(0)
                {
                    measure(
                        i,
                        "smallest micro-batch at the best thread count".into(),
                        &mut measured,
                        &mut trace,
                    )?;
                }
            }
        }
    }
    // 3. Measure while an unmeasured candidate is predicted better beyond the uncertainty.
    loop {
        let summaries = pooled(&measured);
        let pairs: Vec<(&Point, f64)> = summaries
            .iter()
            .map(|(i, s)| (candidates[*i], 1000.0 / s.mean))
            .collect();
        if pairs.is_empty() {
            break;
        }
        let model = fit_model(&pairs);
        let best = summaries.values().map(|s| s.mean).fold(0.0, f64::max);
        let uncertainty = summaries
            .values()
            .filter(|s| s.n >= 2)
            .map(Summary::relative_ci_half_width)
            .fold(0.03, f64::max)
            .min(0.25);
        let next = candidates
            .iter()
            .enumerate()
            .filter(|(i, _)| !measured.iter().any(|(m, _)| m == i))
            .filter_map(|(i, p)| Some((i, model.tokens_per_s(p.ctx.threads, ubatch_eff(p))?)))
            .filter(|&(_, predicted)| predicted > best * (1.0 + uncertainty))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        let Some((i, predicted)) = next else { break };
        if !measure(
            i,
            format!(
                "predicted {predicted:.1} t/s > best {best:.1} + {:.0}%",
                uncertainty * 100.0
            ),
            &mut measured,
            &mut trace,
        )? {
            break;
        }
    }
    // 4. Repeat the best and its closest rival while their 95% intervals
    //    overlap: one measurement each cannot rank them.
    for _ in 0..MAX_REPEAT_ROUNDS {
        let summaries = pooled(&measured);
        let Some((&bi, b)) = summaries
            .iter()
            .max_by(|x, y| x.1.mean.total_cmp(&y.1.mean))
        else {
            break;
        };
        let rival = summaries
            .iter()
            .filter(|(i, s)| **i != bi && s.ci95_high >= b.ci95_low)
            .max_by(|x, y| x.1.mean.total_cmp(&y.1.mean));
        let Some((&ri, r)) = rival else { break };
        if b.relative_ci_half_width().max(r.relative_ci_half_width()) <= EQUIVALENT_CI {
            trace.push(format!(
                "best {:.1} and candidate {:.1} overlap with intervals within ±{:.0}%: equivalent, no more repeats",
                b.mean,
                r.mean,
                EQUIVALENT_CI * 100.0
            ));
            break;
        }
        let why = format!(
            "repeat: best {:.1} [{:.1}, {:.1}] and candidate {:.1} [{:.1}, {:.1}] overlap",
            b.mean, b.ci95_low, b.ci95_high, r.mean, r.ci95_low, r.ci95_high
        );
        if !measure(bi, why.clone(), &mut measured, &mut trace)?
            || !measure(ri, why, &mut measured, &mut trace)?
        {
            break;
        }
    }
    if let Some(line) = still_tied(&pooled(&measured)) {
        trace.push(line);
    }
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
    let summaries = pooled(&measured);
    let best = summaries
        .iter()
        .max_by(|a, b| a.1.mean.total_cmp(&b.1.mean))
        .map(|(i, s)| (candidates[*i], s));
    let spent: f64 = records.iter().map(|r| r.duration_s).sum();
    let distinct = summaries.len();
    match best {
        None => {
            println!("\nno candidate was measured successfully");
            return Ok(exit::SOME_FAILED);
        }
        Some((p, s)) => {
            println!(
                "\nrecommended for {}: threads={} n_batch={} n_ubatch={} n_ctx={} n_gpu_layers={} — measured {:.2} ± {:.2} t/s (95% CI {:.2}–{:.2}, {} samples)",
                metric(kind),
                p.ctx.threads,
                p.ctx.n_batch,
                p.ctx.n_ubatch,
                p.ctx.n_ctx,
                p.load.n_gpu_layers,
                s.mean,
                s.sd,
                s.ci95_low,
                s.ci95_high,
                s.n
            );
            println!(
                "measured {distinct} of {} candidates ({:.0}%; {} measurements) in {spent:.1} s; results in {}",
                candidates.len(),
                100.0 * distinct as f64 / candidates.len() as f64,
                measured.len(),
                out_dir.display()
            );
        }
    }
    Ok(if INTERRUPTED.load(Ordering::SeqCst) {
        exit::INTERRUPTED
    } else {
        exit::OK
    })
}

fn metric(kind: TestKind) -> &'static str {
    if kind == TestKind::Tg {
        "generation (tg)"
    } else {
        "prompt processing (pp)"
    }
}
