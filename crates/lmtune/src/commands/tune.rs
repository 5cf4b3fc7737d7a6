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
//! (the measured points' own 95% intervals, at least 3%). Every measured
//! point is recorded like a sweep's.

use std::path::Path;
use std::sync::atomic::Ordering;

use anyhow::{bail, Context};
use lmtune_core::fingerprint::HostInfo;
use lmtune_core::knobs::TestKind;
use lmtune_core::record::{Record, Status};
use lmtune_core::scenario::{MachineFacts, Point, Scenario};
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

pub fn run(args: TuneArgs) -> anyhow::Result<u8> {
    let kind = match args.objective.as_str() {
        "tg" => TestKind::Tg,
        "pp" => TestKind::Pp,
        other => bail!("--objective {other}: use tg (generation) or pp (prompt processing)"),
    };
    let mut scenario = Scenario::load(&args.scenario)?;
    if let Some(model) = &args.model {
        scenario.model_path = model.clone();
        scenario.model_span = None;
    }
    let host = HostInfo::detect();
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
            args.scenario.display(),
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
    let max_points = args.max_points.unwrap_or(candidates.len());
    let mut measure = |i: usize,
                       why: String,
                       measured: &mut Vec<(usize, Record)>,
                       trace: &mut Vec<String>|
     -> anyhow::Result<bool> {
        if INTERRUPTED.load(Ordering::SeqCst) || measured.len() >= max_points {
            return Ok(false);
        }
        let p = candidates[i];
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
    let tps = |r: &Record| {
        r.tokens_per_s
            .as_ref()
            .filter(|_| r.status == Status::Ok)
            .map(|s| s.mean)
    };
    // 2. pp: the smallest micro-batch at the best thread count, to separate γ.
    if kind == TestKind::Pp {
        if let Some(best_t) = measured
            .iter()
            .filter_map(|(i, r)| Some((candidates[*i].ctx.threads, tps(r)?)))
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
        let pairs: Vec<(&Point, f64)> = measured
            .iter()
            .filter_map(|(i, r)| Some((candidates[*i], 1000.0 / tps(r)?)))
            .collect();
        if pairs.is_empty() {
            break;
        }
        let model = fit_model(&pairs);
        let best = measured
            .iter()
            .filter_map(|(_, r)| tps(r))
            .fold(0.0, f64::max);
        let uncertainty = measured
            .iter()
            .filter_map(|(_, r)| {
                r.tokens_per_s
                    .as_ref()
                    .filter(|s| s.n >= 2)
                    .map(|s| s.relative_ci_half_width())
            })
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
    let best = measured
        .iter()
        .filter_map(|(i, r)| Some((candidates[*i], r, tps(r)?)))
        .max_by(|a, b| a.2.total_cmp(&b.2));
    let spent: f64 = records.iter().map(|r| r.duration_s).sum();
    match best {
        None => {
            println!("\nno candidate was measured successfully");
            return Ok(exit::SOME_FAILED);
        }
        Some((p, r, t)) => {
            let sd = r.tokens_per_s.as_ref().map_or(0.0, |s| s.sd);
            println!(
                "\nrecommended for {}: threads={} n_batch={} n_ubatch={} n_ctx={} n_gpu_layers={} — measured {t:.2} ± {sd:.2} t/s",
                metric(kind),
                p.ctx.threads,
                p.ctx.n_batch,
                p.ctx.n_ubatch,
                p.ctx.n_ctx,
                p.load.n_gpu_layers
            );
            println!(
                "measured {} of {} candidates ({:.0}%) in {spent:.1} s; results in {}",
                measured.len(),
                candidates.len(),
                100.0 * measured.len() as f64 / candidates.len() as f64,
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
