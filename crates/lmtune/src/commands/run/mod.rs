//! `lmtune run`: validate a scenario, sweep it through a worker, record
//! every point as it finishes, print the table. `--resume DIR` continues an
//! interrupted run.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use lmtune_core::fingerprint::{detect_gpus, file_sha256, Fingerprint, HostInfo, ModelFingerprint};
use lmtune_core::record::{point_key, Record, Status};
use lmtune_core::scenario::{MachineFacts, Plan, Point, Scenario};
use lmtune_core::shard::PlanFile;

use lmtune_core::units::parse_size;
use lmtune_report::{
    markdown_table, read_jsonl, results_sinks, RecordSink, RESULTS_CSV, RESULTS_JSONL,
};

use crate::cli::RunArgs;
use crate::exit;
use crate::interrupt::{self, INTERRUPTED};
use crate::output::{default_out_dir, Progress};
use crate::runner::{LineSink, SpawnOptions};
use crate::sweep::{PointResult, Sweep};

use super::{run_listing, shard};

mod summary;
use summary::{print_doubts, print_failures, print_over_budget, print_resume_hint};

pub fn run(args: RunArgs) -> anyhow::Result<u8> {
    let (scenario, host, mut plan) = load_plan(&args)?;
    let shard = shard::resolve(args.shard.as_deref(), args.shard_count)?;
    let plan_file = shard::apply(&mut plan, shard);
    if args.dry_run {
        run_listing::print_plan(&plan, &plan_file, scenario.vram_budget_bytes);
        return Ok(exit::OK);
    }
    interrupt::install();

    let (out_dir, previous) = open_results_dir(&args, &scenario, &plan, &plan_file, &host)?;
    shard::write_plan_file(&out_dir, &plan_file)?;
    let mut sinks = results_sinks(&out_dir)?;

    let model = model_fingerprint(&plan)?;
    let todo = points_to_do(&plan, &previous, &model.sha256);

    let progress = Progress::new(todo.len() as u64);
    let already = plan.points.len() - todo.len();
    progress.note(&start_note(&plan, &args, already, &model, &out_dir));
    let mut sweep = new_sweep(
        &plan,
        host,
        model,
        &out_dir,
        args.verbose,
        &progress,
        &args.ggml_backend,
    );

    if !todo.is_empty() {
        progress.set_message("starting the worker");
        sweep.ensure_worker()?;
        same_environment(previous.last(), &mut sweep, &out_dir)?;
    }
    let (records, interrupted) = measure_all(&mut sweep, todo, &progress, &mut sinks, &out_dir)?;
    sweep.shutdown();
    progress.finish();
    drop(sinks);

    let table = latest_records(previous, records);
    if !table.is_empty() {
        print!("{}", markdown_table(&table));
    }
    let any_failed = print_failures(&table);
    print_doubts(&table);
    if let Some(budget) = scenario.vram_budget_bytes {
        print_over_budget(&table, budget);
    }
    eprintln!(
        "results: {} and {RESULTS_CSV}",
        out_dir.join(RESULTS_JSONL).display()
    );
    if let Some(name) = &args.save_baseline {
        save_baseline(&args, name, interrupted, &out_dir, &table)?;
    }
    if interrupted {
        print_resume_hint(&args, &plan, &table, &out_dir);
        return Ok(exit::INTERRUPTED);
    }
    Ok(if any_failed {
        exit::SOME_FAILED
    } else {
        exit::OK
    })
}

/// Loads the scenario (or the default one for `-m MODEL`), applies the
/// command-line overrides, and plans it on this host. Combinations the plan
/// dropped are noted on stderr.
fn load_plan(args: &RunArgs) -> anyhow::Result<(Scenario, HostInfo, Plan)> {
    let mut scenario = match (&args.scenario, &args.model) {
        (Some(file), _) => Scenario::load(file)?,
        (None, Some(model)) => default_scenario(model)?,
        (None, None) => anyhow::bail!("give a scenario file, or a model with -m/--model"),
    };
    if let Some(model) = &args.model {
        scenario.model_path = model.clone();
        scenario.model_span = None;
    }
    let host = HostInfo::detect();
    let mut plan = scenario.plan(MachineFacts {
        physical_cores: host.physical_cores,
        logical_cores: host.logical_cores,
    })?;
    if let Some(limit) = &args.worker_memory_limit {
        let bytes = parse_size(limit).map_err(|e| {
            anyhow::anyhow!("--worker-memory-limit: {e} (write e.g. 2GiB or 512MiB)")
        })?;
        plan.measure.worker_memory_limit_bytes = Some(bytes);
    }
    for reason in &plan.dropped {
        eprintln!("note: skipped a combination: {reason}");
    }
    Ok((scenario, host, plan))
}

/// The results directory and the records already in it: the `--resume`
/// directory (checked against this plan), or a fresh one from `--out` or the
/// default name, which must not hold an earlier run.
fn open_results_dir(
    args: &RunArgs,
    scenario: &Scenario,
    plan: &Plan,
    plan_file: &PlanFile,
    host: &HostInfo,
) -> anyhow::Result<(PathBuf, Vec<Record>)> {
    match &args.resume {
        Some(dir) => {
            shard::check_resume(dir, plan_file)?;
            Ok((dir.clone(), previous_run(dir, scenario)?))
        }
        None => {
            let dir = args.out.clone().unwrap_or_else(|| {
                default_out_dir(Path::new("results"), &host.hostname, &shard::dir_name(plan))
            });
            let taken = format!(
                "resume it with --resume {}, or choose another --out directory",
                dir.display()
            );
            prepare_results_dir(&dir, &scenario.source, &taken)?;
            Ok((dir, Vec::new()))
        }
    }
}

/// The plan's points not yet recorded ok for this model (all of them unless
/// resuming).
fn points_to_do<'p>(plan: &'p Plan, previous: &[Record], model_sha256: &str) -> Vec<&'p Point> {
    let done: HashSet<String> = previous
        .iter()
        .filter(|r| r.status == Status::Ok)
        .map(Record::point_key)
        .collect();
    plan.points
        .iter()
        .filter(|p| !done.contains(&point_key(&p.load, &p.ctx, &p.test, model_sha256)))
        .collect()
}

/// The line announcing the run: scenario, shard, point and load-group
/// counts, model file and results directory.
fn start_note(
    plan: &Plan,
    args: &RunArgs,
    already: usize,
    model: &ModelFingerprint,
    out_dir: &Path,
) -> String {
    format!(
        "{}{}: {} points in {} load group(s){}, {} → {}",
        plan.scenario_name,
        plan.shard
            .map(|s| format!(" shard {s}"))
            .unwrap_or_default(),
        plan.points.len(),
        plan.load_groups(),
        if args.resume.is_some() {
            format!(" ({already} already recorded ok)")
        } else {
            String::new()
        },
        model.file_name,
        out_dir.display()
    )
}

/// Saves the table as baseline `name` (`--save-baseline`), unless the run
/// was interrupted: a partial table would make a misleading baseline.
fn save_baseline(
    args: &RunArgs,
    name: &str,
    interrupted: bool,
    out_dir: &Path,
    table: &[Record],
) -> anyhow::Result<()> {
    if interrupted {
        eprintln!("not saving baseline {name:?}: the run was interrupted");
        return Ok(());
    }
    let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let path = lmtune_report::baseline::save_baseline(
        &lmtune_report::baseline::baseline_dir(),
        name,
        &out_dir.display().to_string(),
        &created,
        table.to_vec(),
        args.baseline_keep.max(1),
    )?;
    eprintln!("baseline {name:?} saved to {}", path.display());
    Ok(())
}

/// The latest record of every point, old and new (what the table shows).
fn latest_records(previous: Vec<Record>, records: Vec<Record>) -> Vec<Record> {
    let mut latest: BTreeMap<usize, Record> = BTreeMap::new();
    for r in previous.into_iter().chain(records) {
        latest.insert(r.point_index, r);
    }
    latest.into_values().collect()
}

/// Refuses to resume a run recorded in another environment (the sweep's
/// worker is stopped first).
fn same_environment(
    before: Option<&Record>,
    sweep: &mut Sweep,
    out_dir: &Path,
) -> anyhow::Result<()> {
    if let Some(before) = before {
        let changes = before.fingerprint.differences(&sweep.fingerprint);
        if !changes.is_empty() {
            sweep.shutdown();
            bail!(
                "cannot resume {}: it was recorded in another environment ({}); start a new run with --out instead of mixing results",
                out_dir.display(),
                changes.join("; ")
            );
        }
    }
    Ok(())
}

/// Measures `todo` in order, appending each record to `sinks` as it
/// finishes; the records, and whether the user interrupted.
pub(crate) fn measure_all(
    sweep: &mut Sweep,
    todo: Vec<&Point>,
    progress: &Progress,
    sinks: &mut [Box<dyn RecordSink>],
    out_dir: &Path,
) -> anyhow::Result<(Vec<Record>, bool)> {
    let mut records = Vec::with_capacity(todo.len());
    for point in todo {
        if INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok((records, true));
        }
        progress.set_message(&format!("{} {}", point.test.label(), knob_summary(point)));
        let record = match sweep.measure(point, progress)? {
            PointResult::Recorded(record) => record,
            PointResult::Interrupted => return Ok((records, true)),
        };
        for sink in sinks.iter_mut() {
            sink.append(&record).with_context(|| {
                format!("cannot append to the results in {}", out_dir.display())
            })?;
        }
        progress.point_done(&record);
        records.push(*record);
    }
    Ok((records, false))
}

/// A new results directory `dir`: refused if it already holds results
/// (`taken` says what to do instead), else created, with the scenario kept
/// beside the results. Shared by `run` and `tune`.
pub(crate) fn prepare_results_dir(
    dir: &Path,
    scenario_source: &str,
    taken: &str,
) -> anyhow::Result<()> {
    let jsonl = dir.join(RESULTS_JSONL);
    if std::fs::metadata(&jsonl)
        .map(|m| m.len() > 0)
        .unwrap_or(false)
    {
        bail!("{} already holds results; {taken}", jsonl.display());
    }
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the results directory {}", dir.display()))?;
    std::fs::write(dir.join("scenario.toml"), scenario_source)
        .with_context(|| format!("cannot write into {}", dir.display()))
}

/// A sweep ready to measure `plan`'s points: the worker options, the
/// fingerprint (GPUs, bandwidth at every thread count, the model) and what
/// the per-point predictions need. Shared by `run` and `tune`.
pub(crate) fn new_sweep<'a>(
    plan: &'a Plan,
    host: HostInfo,
    model: ModelFingerprint,
    out_dir: &Path,
    verbose: bool,
    progress: &Progress,
    ggml_backends: &[PathBuf],
) -> Sweep<'a> {
    let args_verbose = verbose;
    let (gpus, gpu_note) = match detect_gpus() {
        Ok(g) => (g, None),
        Err(note) => (Vec::new(), Some(note.to_string())),
    };
    let echo: Option<LineSink> = args_verbose.then(|| {
        let p = progress.clone();
        Arc::new(move |line: &str| p.note(line)) as LineSink
    });
    let options = SpawnOptions {
        verbose: args_verbose,
        echo,
        memory_limit_bytes: plan.measure.worker_memory_limit_bytes,
        backend: plan
            .backend
            .clone()
            .with_ggml_backends(ggml_backend_libraries(ggml_backends)),
        threads: None,
    };
    progress.set_message("measuring memory bandwidth");
    let host_bandwidth = Some(lmtune_core::bandwidth::measure_triad(
        host.physical_cores,
        128 << 20,
        3,
    ));
    // Generation at t threads reaches the bandwidth of t threads, not the
    // machine's: measure it for every thread count the sweep uses.
    let mut thread_counts: Vec<u32> = plan.points.iter().map(|p| p.ctx.threads).collect();
    thread_counts.sort_unstable();
    thread_counts.dedup();
    let host_bandwidth_by_threads = thread_counts
        .iter()
        .map(|&t| lmtune_core::bandwidth::measure_triad(t, 128 << 20, 3))
        .collect();
    let fingerprint = Fingerprint {
        host_bandwidth,
        host_bandwidth_by_threads,
        host,
        gpus,
        gpu_note,
        backend: plan.backend.name().to_string(),
        backend_version: String::new(),
        backend_build: String::new(),
        backend_devices: Vec::new(),
        lmtune_version: lmtune_core::LMTUNE_VERSION.to_string(),
        lmtune_commit: env!("LMTUNE_GIT_COMMIT").to_string(),
        model,
    };
    let run_id = out_dir
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    // The model's anatomy and the bandwidths drive the prediction recorded
    // with every point; a model lmtune cannot describe is still measured.
    let anatomy = lmtune_gguf::GgufFile::open(&plan.model_path)
        .and_then(|f| f.anatomy())
        .ok();
    let gpu_bw = fingerprint
        .gpus
        .first()
        .and_then(|g| g.theoretical_bandwidth_gb_per_s)
        .unwrap_or(500.0);
    let throughput = lmtune_model::ThroughputParams::with_bandwidths(20.0, gpu_bw);
    Sweep::new(plan, run_id, options, fingerprint, anatomy, throughput)
}

/// The ggml backend libraries a llama-cpp worker loads: the flag's, then
/// LMTUNE_GGML_BACKENDS' (':'-separated).
pub fn ggml_backend_libraries(ggml_backends: &[PathBuf]) -> Vec<PathBuf> {
    let mut backends = ggml_backends.to_vec();
    if let Some(env) = std::env::var_os("LMTUNE_GGML_BACKENDS") {
        backends.extend(std::env::split_paths(&env).filter(|p| !p.as_os_str().is_empty()));
    }
    backends
}

/// The records of the run in `dir`, after checking it ran this scenario.
fn previous_run(dir: &Path, scenario: &Scenario) -> anyhow::Result<Vec<Record>> {
    let saved = dir.join("scenario.toml");
    let text = std::fs::read_to_string(&saved).with_context(|| {
        format!(
            "cannot resume {}: it has no scenario.toml, so it is not an lmtune results directory",
            dir.display()
        )
    })?;
    if text != scenario.source {
        bail!(
            "cannot resume {}: {} differs from the scenario it was started with ({}); resume with that scenario, or start a new run with --out",
            dir.display(),
            scenario.file.display(),
            saved.display()
        );
    }
    let jsonl = dir.join(RESULTS_JSONL);
    if !jsonl.exists() {
        return Ok(Vec::new());
    }
    Ok(read_jsonl(&jsonl)?)
}

pub(crate) fn model_fingerprint(plan: &Plan) -> anyhow::Result<ModelFingerprint> {
    let file_size_bytes = std::fs::metadata(&plan.model_path)
        .with_context(|| format!("cannot read {}", plan.model_path.display()))?
        .len();
    let sha256 = file_sha256(&plan.model_path)
        .with_context(|| format!("cannot hash {}", plan.model_path.display()))?;
    let m = &plan.model;
    Ok(ModelFingerprint {
        file_name: file_name(&plan.model_path),
        file_size_bytes,
        weights_bytes: m.weights_bytes,
        sha256,
        architecture: m.architecture.clone(),
        n_params: m.n_params,
        quant: m.quant.clone(),
        n_layer: m.n_layer,
        n_ctx_train: m.n_ctx_train,
        synthetic: m.synthetic,
        active_weights_bytes: lmtune_gguf::GgufFile::open(&plan.model_path)
            .and_then(|f| f.anatomy())
            .ok()
            .filter(|a| a.experts.is_some())
            .map(|a| a.active_weights_bytes()),
    })
}

pub(super) fn knob_summary(p: &Point) -> String {
    lmtune_core::knobs::knob_label(&p.load, &p.ctx, true)
}

pub(super) fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| PathBuf::from(path).display().to_string())
}

/// `run -m MODEL` without a scenario: llama-bench's default test (pp512 and
/// tg128, every layer offloaded, the physical cores, 5 repetitions).
fn default_scenario(model: &Path) -> anyhow::Result<Scenario> {
    let stem = model
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    let path = std::path::absolute(model).unwrap_or_else(|_| model.to_path_buf());
    let source = format!(
        "# Written by `lmtune run --model`: llama-bench's default test.\n\
         schema = 1\nname = {name}\n\n[model]\npath = {path}\n\n\
         [workload]\nn_prompt = [512]\nn_gen = [128]\n\n[measure]\nrepetitions = 5\nwarmup = 1\n",
        name = serde_json::to_string(&stem)?,
        path = serde_json::to_string(&path.display().to_string())?,
    );
    Ok(Scenario::parse(
        &PathBuf::from(format!("{stem}.toml")),
        &source,
    )?)
}
