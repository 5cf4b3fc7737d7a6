//! Running `advise`'s scenarios: the same sweep as `lmtune run` (worker,
//! records, results.jsonl and results.csv in `runs/<part>/`), the probe that
//! sizes the plan, and the synthetic models of the quantization experiment.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Instant;

use anyhow::{anyhow, bail, Context as _};
use lmtune_core::record::{Record, Status};
use lmtune_core::scenario::{MachineFacts, Point, Scenario};
use lmtune_gguf::GgufFile;

use super::claims::Outcome;
use super::experiments::{MachineSide, Planned, ProbeSpeeds};
use super::write::ExperimentSummary;
use super::Advise;
use crate::commands::run::{measure_all, model_fingerprint, new_sweep, prepare_results_dir};
use crate::interrupt::INTERRUPTED;
use crate::output::Progress;

/// llama-server, where it is built: LMTUNE_LLAMA_SERVER, PATH, or the cache
/// `scripts/build-llama-server.sh` fills.
pub fn find_llama_server() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("LMTUNE_LLAMA_SERVER").map(PathBuf::from) {
        return p.is_file().then_some(p);
    }
    if let Some(path) = std::env::var_os("PATH") {
        if let Some(p) = std::env::split_paths(&path)
            .map(|d| d.join("llama-server"))
            .find(|p| p.is_file())
        {
            return Some(p);
        }
    }
    let cache = std::env::var_os("LMTUNE_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/lmtune")))?;
    let mut found: Vec<PathBuf> = std::fs::read_dir(cache.join("llama-server"))
        .ok()?
        .filter_map(|e| Some(e.ok()?.path().join("llama-server")))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found.pop()
}

/// Runs one scenario through the sweep into `dir`; its records.
pub fn run_part(dir: &Path, name: &str, text: &str, cx: &Advise) -> anyhow::Result<Vec<Record>> {
    let scenario = Scenario::parse(&dir.join("scenario.toml"), text)
        .map_err(|e| anyhow!("advise's {name} scenario: {e}"))?;
    let plan = scenario.plan(MachineFacts {
        physical_cores: cx.host.physical_cores,
        logical_cores: cx.host.logical_cores,
    })?;
    prepare_results_dir(dir, &scenario.source, "choose another --out")?;
    let mut sinks = lmtune_report::results_sinks(dir)?;
    let model = model_fingerprint(&plan)?;
    let progress = Progress::new(plan.points.len() as u64);
    progress.note(&format!(
        "advise: {name} ({} points) → {}",
        plan.points.len(),
        dir.display()
    ));
    let mut sweep = new_sweep(
        &plan,
        cx.host.clone(),
        model,
        dir,
        cx.args.verbose,
        &progress,
        &[],
    );
    sweep.ensure_worker()?;
    let todo: Vec<&Point> = plan.points.iter().collect();
    let result = measure_all(&mut sweep, todo, &progress, &mut sinks, dir);
    sweep.shutdown();
    progress.finish();
    Ok(result?.0)
}

/// pp64 and tg16 at the physical cores: does the model load, and how fast
/// is it (what every estimate scales).
pub fn probe(dir: &Path, cx: &Advise, m: &MachineSide) -> anyhow::Result<ProbeSpeeds> {
    let text = format!(
        "# Written by `lmtune advise`: the probe.\nschema = 1\nname = \"advise-probe\"\n\n[model]\npath = {}\n\n\
         [sweep]\nn_gpu_layers = 0\nthreads = {}\n\n[workload]\nn_prompt = [64]\nn_gen = [16]\n\n[measure]\nrepetitions = 1\nwarmup = 1\n",
        serde_json::to_string(&cx.model_path.display().to_string())?,
        m.physical_cores
    );
    let start = Instant::now();
    let records = run_part(&dir.join("runs/probe"), "probe", &text, cx)?;
    let wall = start.elapsed().as_secs_f64();
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted during the probe");
    }
    if let Some(bad) = records.iter().find(|r| r.status != Status::Ok) {
        let why = bad
            .error
            .as_deref()
            .and_then(|e| e.lines().next())
            .unwrap_or("no reason recorded");
        bail!(
            "{} does not load or run here ({}): {why}",
            cx.model_path.display(),
            bad.status.as_str()
        );
    }
    let rate = |kind| {
        records
            .iter()
            .find(|r| r.workload.kind() == kind)
            .and_then(|r| r.tokens_per_s)
            .map(|s| s.mean)
            .ok_or_else(|| anyhow!("the probe recorded no {kind:?} measurement"))
    };
    let load_s = records.first().map_or(0.0, |r| r.model_load_ms / 1000.0);
    let points_s: f64 = records.iter().map(|r| r.duration_s).sum();
    Ok(ProbeSpeeds {
        pp_tokens_per_s: rate(lmtune_core::knobs::TestKind::Pp)?,
        tg_tokens_per_s: rate(lmtune_core::knobs::TestKind::Tg)?,
        load_s,
        part_overhead_s: (wall - points_s - load_s).max(0.5),
    })
}

/// How much slower than estimated the experiments so far ran: later
/// estimates are scaled by it (a busy machine stays within its budget).
#[derive(Debug, Default)]
pub struct Pace {
    estimated_s: f64,
    spent_s: f64,
}

impl Pace {
    pub fn factor(&self) -> f64 {
        if self.estimated_s > 0.0 {
            (self.spent_s / self.estimated_s).max(1.0)
        } else {
            1.0
        }
    }
}

fn over_budget(estimate_s: f64, left_s: f64) -> String {
    format!(
        "would take about {estimate_s:.0} s, more than the {:.0} s left of the time budget (give a larger --time-budget)",
        left_s.max(0.0)
    )
}

/// Runs a planned experiment if the time left still allows it (estimates
/// drift, see [`Pace`]); its outcome and summary. Quantization labels are
/// added to `labels`.
pub fn run_experiment(
    dir: &Path,
    cx: &Advise,
    planned: Planned,
    labels: &mut Vec<(String, String)>,
    pace: &mut Pace,
) -> anyhow::Result<(Outcome, ExperimentSummary)> {
    let e = match planned {
        Planned::NotHere { id, reason } => {
            let summary = ExperimentSummary {
                id,
                ran: false,
                simulated: false,
                reason: Some(reason.clone()),
                estimate_s: 0.0,
                spent_s: 0.0,
                runs: Vec::new(),
                notes: Vec::new(),
            };
            return Ok((Outcome::NotHere(reason), summary));
        }
        Planned::Run(e) if e.estimate_s() * pace.factor() > cx.left_s() => {
            let reason = over_budget(e.estimate_s() * pace.factor(), cx.left_s());
            return run_experiment(dir, cx, Planned::NotHere { id: e.id, reason }, labels, pace);
        }
        Planned::Run(e) => e,
    };
    let start = Instant::now();
    let mut records = Vec::new();
    let mut runs = Vec::new();
    let mut notes = e.notes.clone();
    for part in &e.parts {
        if INTERRUPTED.load(Ordering::SeqCst) {
            break;
        }
        if part.estimate_s * pace.factor() > cx.left_s() {
            notes.push(format!(
                "{} not run: it {}",
                part.name,
                over_budget(part.estimate_s * pace.factor(), cx.left_s())
            ));
            break;
        }
        if let Some(s) = &part.synth {
            write_synth(cx, &s.path, &s.quant)?;
            let file = s
                .path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            labels.push((file, s.label.clone()));
        }
        let rel = format!("runs/{}", part.name);
        records.extend(run_part(&dir.join(&rel), &part.name, &part.scenario, cx)?);
        runs.push(rel);
        if let Some(s) = &part.synth {
            let _ = std::fs::remove_file(&s.path);
        }
    }
    let spent_s = start.elapsed().as_secs_f64();
    pace.estimated_s += e.estimate_s();
    pace.spent_s += spent_s;
    let summary = ExperimentSummary {
        id: e.id,
        ran: true,
        simulated: e.simulated,
        reason: None,
        estimate_s: e.estimate_s(),
        spent_s,
        runs,
        notes,
    };
    Ok((
        Outcome::Ran {
            records,
            simulated: e.simulated,
        },
        summary,
    ))
}

/// The model's shape in `quant`, its tokenizer from the model itself.
fn write_synth(cx: &Advise, path: &Path, quant: &str) -> anyhow::Result<()> {
    let shape = super::synth_shape(&cx.anatomy)
        .ok_or_else(|| anyhow!("synth cannot write {}'s shape", cx.anatomy.architecture))?;
    let t =
        lmtune_gguf::synth::quant_type(quant).ok_or_else(|| anyhow!("unknown quant {quant}"))?;
    let donor = GgufFile::open(&cx.model_path)?;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    lmtune_gguf::synth::write_synthetic(
        path,
        &shape,
        t,
        &donor,
        &format!("lmtune-advise-{quant}"),
        1,
    )
    .with_context(|| format!("cannot write the synthetic model {}", path.display()))
}
