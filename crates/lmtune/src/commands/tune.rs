//! `lmtune tune`: find the fastest setting of a scenario's space while
//! measuring only what the models say could still win. The search is
//! [`lmtune_model::tuner`]; this command reads the flags, measures through
//! the sweep (every measurement recorded like a sweep's) and writes the
//! table, the trace and `tune.json`.
//!
//! Without a scenario, `--model` is tuned over a default CPU space (see
//! [`default_space::default_space`]); `--time-budget` stops measuring new
//! points.

mod default_space;
mod measurer;
mod options;
mod vram;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use anyhow::{anyhow, bail, Context};
use lmtune_core::fingerprint::HostInfo;
use lmtune_core::record::{point_key, Record};
use lmtune_core::scenario::{MachineFacts, Point, Scenario};
use lmtune_model::tuner::{self, Check, Grid, Search, Space};
use lmtune_report::markdown_table;

use super::run::{model_fingerprint, new_sweep, prepare_results_dir};
use crate::cli::TuneArgs;
use crate::exit;
use crate::interrupt::{self, INTERRUPTED};
use crate::output::{default_out_dir, Progress};
use measurer::SweepMeasurer;
pub(crate) use options::parse_duration;

/// The scenario to tune (the default space without one) and the file it
/// came from.
fn scenario(args: &TuneArgs, host: &HostInfo) -> anyhow::Result<(Scenario, PathBuf)> {
    let mut scenario = match (&args.scenario, &args.model) {
        (Some(file), _) => Scenario::load(file)?,
        (None, Some(model)) => {
            if !model.is_file() {
                bail!(
                    "model file {} does not exist (for the test model run scripts/fetch-model.sh)",
                    model.display()
                );
            }
            default_space::default_space(model, args.ctx, &args.backend, host)?
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
    Ok((scenario, source_name))
}

/// The grid of `--against`: its records of this space's points.
fn load_grid(path: &Path, points: &[Point], model_sha256: &str) -> anyhow::Result<Grid> {
    let (_, records) = lmtune_report::load_results(path)
        .map_err(|e| anyhow!("--against {}: {e}", path.display()))?;
    let n_records = records.len();
    let index: BTreeMap<String, usize> = points
        .iter()
        .enumerate()
        .map(|(i, p)| (point_key(&p.load, &p.ctx, &p.test, model_sha256), i))
        .collect();
    let matched: Vec<(usize, tuner::Reading)> = records
        .iter()
        .filter_map(|r| Some((*index.get(&r.point_key())?, measurer::reading(r))))
        .collect();
    if matched.is_empty() {
        bail!(
            "--against {}: none of its {} records is a point of this space (same model file, knobs and tests); run the grid with the same scenario and model",
            path.display(),
            n_records
        );
    }
    Ok(Grid::new(path.to_path_buf(), &matched))
}

pub fn run(args: TuneArgs) -> anyhow::Result<u8> {
    let mut options = options::options(&args)?;
    let host = HostInfo::detect();
    let (scenario, source_name) = scenario(&args, &host)?;
    // A budget the scenario declares holds unless --vram overrides it.
    options.vram_budget_bytes = options.vram_budget_bytes.or(scenario.vram_budget_bytes);
    let plan = scenario.plan(MachineFacts {
        physical_cores: host.physical_cores,
        logical_cores: host.logical_cores,
    })?;
    let space = Space::new(&plan.points, options.objective);
    if space.candidates.is_empty() {
        let (what, set) = options.objective.needs();
        bail!(
            "{} has no {what} to tune for (set [workload] {set})",
            source_name.display()
        );
    }
    let model = model_fingerprint(&plan)?;
    // Read the grid first: a bad --against fails before anything is created.
    let grid = args
        .against
        .as_deref()
        .map(|path| load_grid(path, &plan.points, &model.sha256))
        .transpose()?;
    interrupt::install();
    let out_dir = args.out.clone().unwrap_or_else(|| {
        default_out_dir(
            Path::new("results"),
            &host.hostname,
            &format!("{}-tune-{}", plan.scenario_name, args.objective),
        )
    });
    prepare_results_dir(&out_dir, &scenario.source, "choose another --out")?;
    let sinks = lmtune_report::results_sinks(&out_dir)?;

    let n_candidates = space.candidates.len();
    let progress = Progress::new((n_candidates * space.per_candidate()) as u64);
    progress.note(&format!(
        "tuning {} for {} over {n_candidates} candidates → {}",
        plan.scenario_name,
        options.objective.label(),
        out_dir.display()
    ));
    let sweep = new_sweep(
        &plan,
        host,
        model,
        &out_dir,
        args.verbose,
        &progress,
        &args.ggml_backend,
    );
    let mut measurer = SweepMeasurer::new(sweep, &plan.points, sinks, &progress, &out_dir);
    measurer.sweep.ensure_worker()?;
    let vram = vram::VramModel::new(&plan, &args.ggml_backend, &progress);
    let found = tuner::search(
        &space,
        &options,
        &|p: &Point| vram.predict(p),
        &mut measurer,
    )?;
    // The check re-measures with the worker still up.
    let check = match (&grid, found.ranking.first()) {
        (Some(grid), Some((pick, _))) if !INTERRUPTED.load(Ordering::SeqCst) => {
            let whole = space.with_own_readings();
            let check = grid.check(&whole, pick, args.check_rounds, &mut measurer)?;
            Some(check.ok_or_else(|| {
                anyhow!(
                    "--against {}: the grid has no ok measurement of this objective's candidates",
                    grid.path.display()
                )
            })?)
        }
        _ => None,
    };
    measurer.sweep.shutdown();
    progress.finish();

    let recommended = print_outcome(
        &found,
        check.as_ref(),
        &measurer.records,
        &out_dir,
        plan.model.n_layer,
    );
    write_summary(&out_dir, &found.summary(check.as_ref()).to_json_text())?;
    Ok(if !recommended {
        exit::SOME_FAILED
    } else if INTERRUPTED.load(Ordering::SeqCst) {
        exit::INTERRUPTED
    } else {
        exit::OK
    })
}

/// Prints the table, the trace, the recommendation and the check; false
/// when there is nothing to recommend.
fn print_outcome(
    found: &Search,
    check: Option<&Check>,
    records: &[Record],
    out_dir: &Path,
    n_layer: u64,
) -> bool {
    if !records.is_empty() {
        print!("{}", markdown_table(records));
    }
    println!("\nsearch trace:");
    for line in &found.trace {
        println!("  {line}");
    }
    let Some((c, s)) = found.ranking.first() else {
        println!("\nno candidate was measured successfully");
        return false;
    };
    let p = found.space.point(c);
    println!(
        "\nrecommended for {}: threads={} n_batch={} n_ubatch={} n_ctx={} n_gpu_layers={}{} — measured {:.2} t/s (95% CI {:.2}–{:.2}, {} samples){}",
        found.space.objective.label(),
        p.ctx.threads,
        p.ctx.n_batch,
        p.ctx.n_ubatch,
        p.ctx.n_ctx,
        p.load.n_gpu_layers,
        p.load.overrides_label(),
        s.mean,
        s.low,
        s.high,
        s.samples,
        found.held_out_prediction().map_or(String::new(), |v| format!(
            "; predicted {v:.2} ({:+.1}%) by the model of the other measurements",
            100.0 * (v / s.mean - 1.0)
        ))
    );
    if let Some([pp, tg]) = found.request_parts() {
        let (pp_label, tg_label) = (pp.point.test.label(), tg.point.test.label());
        println!(
            "  = a {pp_label}+{tg_label} request: {pp_label} at {:.2} t/s, then {tg_label} at {:.2} t/s",
            pp.tokens_per_s, tg.tokens_per_s
        );
    }
    // The same forms `plan` prints, with the measured pick's every knob.
    let settings = crate::paste::Settings {
        n_gpu_layers: u64::from(p.load.n_gpu_layers),
        n_cpu_moe: p.load.experts_on_host(n_layer),
        n_layer,
        n_ctx: u64::from(p.ctx.n_ctx),
        n_batch: Some(u64::from(p.ctx.n_batch)),
        n_ubatch: u64::from(p.ctx.n_ubatch),
        threads: Some(p.ctx.threads),
        type_k: p.ctx.type_k,
        type_v: p.ctx.type_v,
        flash_attn: p.ctx.flash_attn,
        op_offload: p.ctx.op_offload,
    };
    for line in crate::paste::lines(&settings) {
        println!("  {line}");
    }
    let (distinct, n_candidates) = (found.candidates_measured(), found.n_candidates);
    let spent = found.measuring_time_s();
    println!(
        "measured {distinct} of {n_candidates} candidates ({:.0}%; {} measurements) in {spent:.1} s; results in {}",
        100.0 * distinct as f64 / n_candidates as f64,
        found.measured.len(),
        out_dir.display()
    );
    if let Some(check) = check {
        for line in check.lines(spent) {
            println!("{line}");
        }
    }
    true
}

/// `tune.json`: the recommendation, the cost and the trace, for scripts.
fn write_summary(out_dir: &Path, text: &str) -> anyhow::Result<()> {
    let path = out_dir.join("tune.json");
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
}
