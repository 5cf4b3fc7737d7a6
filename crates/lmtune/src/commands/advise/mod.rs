//! `lmtune advise`: common advice about local LLM settings (LM Studio's
//! tuning guide and the like), tested on this machine and model. A probe,
//! then a short planned set of experiments that fit the time budget, each
//! a scenario run by the same sweep as `lmtune run` (results in
//! `runs/<part>/`), then a verdict per claim: holds, does not hold, or
//! cannot be tested here and why. `advise.md`, `advise.json` and charts.
//!
//! Nothing is half-written: the report is built in a sibling directory and
//! renamed into `--out` at the end; on an error it is removed.

mod charts;
mod claims;
mod experiments;
mod memory;
mod offload;
mod runs;
mod write;

#[cfg(test)]
mod test_records;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Instant;

use anyhow::{anyhow, bail, Context};
use lmtune_core::fingerprint::{detect_gpus, HostInfo};
use lmtune_core::units::parse_size;
use lmtune_gguf::{GgmlType, GgufFile, ModelAnatomy};

use crate::cli::AdviseArgs;
use crate::exit;
use crate::interrupt::{self, INTERRUPTED};
use claims::{ClaimId, ClaimVerdict, Outcome, Outcomes};
use experiments::{ExperimentId, MachineSide, ModelSide, Planned};
use memory::KvShape;
use write::{AdviseReport, KvSection, MachineSummary};

/// Below this no experiment can run (the probe alone takes a few seconds).
const MIN_BUDGET_S: f64 = 20.0;

pub fn run(args: AdviseArgs) -> anyhow::Result<u8> {
    let budget_s = super::tune::parse_duration(&args.time_budget)?;
    let vram = args
        .vram
        .as_deref()
        .map(|v| parse_size(v).map_err(|e| anyhow!("--vram: {e} (write e.g. 8GiB or 24GB)")))
        .transpose()?;
    if !args.model.is_file() {
        bail!("model file {} does not exist", args.model.display());
    }
    let model_path = std::path::absolute(&args.model).unwrap_or_else(|_| args.model.clone());
    let anatomy = GgufFile::open(&model_path)
        .and_then(|f| f.anatomy())
        .map_err(|e| {
            anyhow!(
                "{} is not a model lmtune can read: {e}",
                model_path.display()
            )
        })?;
    if budget_s < MIN_BUDGET_S {
        bail!(
            "--time-budget {}: too small for any experiment (the probe alone takes a few seconds); give at least {MIN_BUDGET_S:.0}s",
            args.time_budget
        );
    }
    let host = HostInfo::detect();
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| Path::new("reports/advise").join(&host.hostname));
    if out.exists()
        && std::fs::read_dir(&out)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        bail!(
            "--out {} already exists; remove it or choose another directory",
            out.display()
        );
    }
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "advise".into());
    // Absolute: the scenarios name files under it (the synthetic models).
    let staging = std::path::absolute(&out)
        .unwrap_or_else(|_| out.clone())
        .with_file_name(format!(".{name}.partial-{}", std::process::id()));
    std::fs::create_dir_all(&staging)
        .with_context(|| format!("cannot create {}", staging.display()))?;
    interrupt::install();
    let cx = Advise {
        args: &args,
        model_path,
        anatomy,
        host,
        vram,
        budget_s,
        started: Instant::now(),
        load_average_1m: std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|l| l.split_whitespace().next()?.parse().ok()),
    };
    let report = match advise_into(&staging, &cx) {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    if INTERRUPTED.load(Ordering::SeqCst) {
        let _ = std::fs::remove_dir_all(&staging);
        eprintln!("interrupted: nothing written");
        return Ok(exit::INTERRUPTED);
    }
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    if out.exists() {
        // An empty directory the user made for it.
        let _ = std::fs::remove_dir(&out);
    }
    std::fs::rename(&staging, &out)
        .with_context(|| format!("cannot move the report into {}", out.display()))?;
    if args.json {
        print!("{}", report.to_json());
    } else {
        print_summary(&report);
        println!("report: {}", out.join("advise.md").display());
    }
    Ok(exit::OK)
}

/// What one `advise` needs throughout.
pub(super) struct Advise<'a> {
    args: &'a AdviseArgs,
    model_path: PathBuf,
    anatomy: ModelAnatomy,
    host: HostInfo,
    vram: Option<u64>,
    budget_s: f64,
    started: Instant,
    load_average_1m: Option<f64>,
}

impl Advise<'_> {
    pub(super) fn left_s(&self) -> f64 {
        self.budget_s - self.started.elapsed().as_secs_f64()
    }
}

fn advise_into(dir: &Path, cx: &Advise) -> anyhow::Result<AdviseReport> {
    let gpus = detect_gpus();
    let gpu_line = match &gpus {
        Ok(g) if !g.is_empty() => format!(
            "{} ({})",
            g[0].name,
            lmtune_report::human_bytes(g[0].vram_total_bytes)
        ),
        Ok(_) => "none".to_string(),
        Err(_) => "none (no NVIDIA GPU detected)".to_string(),
    };
    let gpu_vram = gpus
        .as_ref()
        .ok()
        .and_then(|g| g.first())
        .map(|g| g.vram_total_bytes);
    let machine = MachineSide {
        physical_cores: cx.host.physical_cores.max(1),
        logical_cores: cx.host.logical_cores.max(1),
        gpu: gpu_vram.is_some(),
        vram_bytes: cx.vram.or(gpu_vram).unwrap_or(8 << 30),
        ram_bytes: cx.host.ram_bytes,
        llama_server: runs::find_llama_server(),
    };
    let model = model_side(&cx.model_path, &cx.anatomy);
    let speeds = runs::probe(dir, cx, &machine)?;
    let scratch = dir.join("scratch");
    let planned = experiments::fit_budget(
        experiments::plan_all(&machine, &model, &speeds, &scratch),
        cx.left_s(),
    );
    if let Some(cheapest) = cheapest_skipped(&planned) {
        bail!(
            "--time-budget {}: too small for any experiment on this model (the cheapest, {}, takes about {:.0} s here after a {:.0} s probe); give a larger --time-budget",
            cx.args.time_budget,
            cheapest.0.as_str(),
            cheapest.1,
            cx.started.elapsed().as_secs_f64()
        );
    }
    let mut outcomes = Outcomes::new();
    let mut summaries = Vec::new();
    let mut quant_labels = Vec::new();
    let mut pace = runs::Pace::default();
    for p in planned {
        if INTERRUPTED.load(Ordering::SeqCst) {
            break;
        }
        let (outcome, summary) = runs::run_experiment(dir, cx, p, &mut quant_labels, &mut pace)?;
        outcomes.insert(summary.id, outcome);
        summaries.push(summary);
    }
    let _ = std::fs::remove_dir_all(&scratch);
    let sevens: Vec<KvShape> = ["llama-7b", "llama3-8b"]
        .iter()
        .filter_map(|n| KvShape::preset(n))
        .collect();
    let own = own_kv_shape(&cx.model_path, &cx.anatomy);
    let context_records = match outcomes.get(&ExperimentId::Context) {
        Some(Outcome::Ran { records, .. }) => records.clone(),
        _ => Vec::new(),
    };
    let f16 = GgmlType(1);
    let rows = memory::kv_rows(
        &experiments::CONTEXTS,
        |n| cx.anatomy.kv_bytes(n, 512, false, f16, f16, |_| true),
        &context_records,
        cx.anatomy.n_ctx_train,
    );
    let claims = all_claims(&outcomes, &machine, &sevens, &own, &quant_labels);
    let charts = charts::build(&outcomes, &sevens, &own, &rows, &quant_labels);
    let chart_files = write::write_charts(dir, &charts)?;
    let max_abs_difference_pct = rows
        .iter()
        .filter_map(|r| r.difference_pct)
        .map(f64::abs)
        .reduce(f64::max);
    let report = AdviseReport {
        schema_version: write::ADVISE_SCHEMA_VERSION,
        model: own.name.clone(),
        model_path: cx.model_path.display().to_string(),
        machine: MachineSummary {
            hostname: cx.host.hostname.clone(),
            cpu_model: cx.host.cpu_model.clone(),
            physical_cores: cx.host.physical_cores,
            logical_cores: cx.host.logical_cores,
            ram_bytes: cx.host.ram_bytes,
            gpu: gpu_line,
            load_average_1m: cx.load_average_1m,
        },
        time_budget_s: cx.budget_s,
        spent_s: cx.started.elapsed().as_secs_f64(),
        experiments: summaries,
        claims,
        kv: KvSection {
            shapes_7b: sevens,
            model_shape: own,
            rows,
            max_abs_difference_pct,
        },
        charts: chart_files,
    };
    write::write_report(dir, &report)?;
    Ok(report)
}

/// The cheapest experiment, when none fits the budget.
fn cheapest_skipped(planned: &[Planned]) -> Option<(ExperimentId, f64)> {
    if planned.iter().any(|p| matches!(p, Planned::Run(_))) {
        return None;
    }
    planned
        .iter()
        .filter_map(|p| match p {
            Planned::NotHere { id, reason } => {
                let s: f64 = reason
                    .strip_prefix("would take about ")?
                    .split(' ')
                    .next()?
                    .parse()
                    .ok()?;
                Some((*id, s))
            }
            Planned::Run(_) => None,
        })
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .or(Some((ExperimentId::Threads, f64::NAN)))
}

fn all_claims(
    o: &Outcomes,
    m: &MachineSide,
    sevens: &[KvShape],
    own: &KvShape,
    quant_labels: &[(String, String)],
) -> Vec<ClaimVerdict> {
    vec![
        offload::full_gpu(o),
        offload::offload_proportional(o),
        claims::threads_physical(o, m.physical_cores),
        claims::smt_slower(o, m.physical_cores, m.logical_cores),
        offload::hybrid_threads(o, m.physical_cores),
        memory::kv_7b(ClaimId::Kv4k7b, 4096, (1.0, 2.0), sevens, own),
        memory::kv_7b(ClaimId::Kv32k7b, 32768, (8.0, 16.0), sevens, own),
        memory::kv_q8(o),
        memory::batch_512(o),
        memory::batch_memory(o),
        claims::batch_server(o),
        memory::quant_memory(o, quant_labels),
        memory::quant_faster(o, quant_labels),
    ]
}

fn model_side(path: &Path, a: &ModelAnatomy) -> ModelSide {
    let f16 = GgmlType(1);
    let synth = lmtune_gguf::synth::SynthArch::parse(&a.architecture).filter(|_| {
        a.experts.is_none() && a.sliding_window.is_none() && !a.latent_kv && a.n_ff.is_some()
    });
    ModelSide {
        path: path.to_path_buf(),
        n_layer: a.n_layer,
        n_ctx_train: a.n_ctx_train,
        weights_bytes: a.weights_bytes,
        kv_bytes_per_token_f16: a.kv_bytes(1, 512, true, f16, f16, |_| true),
        k_quant_rows: a.n_embd % 256 == 0 && a.n_ff.is_some_and(|f| f % 256 == 0),
        synth_shape: synth.map(|arch| {
            format!(
                "{} shape: {} layers, n_embd {}, {}/{} heads, n_ff {}",
                arch.as_str(),
                a.n_layer,
                a.n_embd,
                a.n_head,
                a.n_head_kv,
                a.n_ff.unwrap_or(0)
            )
        }),
    }
}

/// The shape `synth` writes for the quantization experiment.
pub(super) fn synth_shape(a: &ModelAnatomy) -> Option<lmtune_gguf::synth::SynthShape> {
    let arch = lmtune_gguf::synth::SynthArch::parse(&a.architecture)?;
    Some(lmtune_gguf::synth::SynthShape::dense(
        arch,
        a.n_layer,
        a.n_embd,
        a.n_head,
        a.n_head_kv,
        a.n_ff?,
        Some(a.head_dim_k),
        a.n_ctx_train,
    ))
}

fn own_kv_shape(path: &Path, a: &ModelAnatomy) -> KvShape {
    let f16 = GgmlType(1);
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    KvShape {
        name,
        attention: if a.n_head_kv == a.n_head {
            "MHA".into()
        } else {
            "GQA".into()
        },
        n_layer: a.n_layer,
        n_head: a.n_head,
        n_head_kv: a.n_head_kv,
        kv_bytes_per_token_f16: a.kv_bytes(1, 512, true, f16, f16, |_| true),
    }
}

fn print_summary(r: &AdviseReport) {
    for c in &r.claims {
        let sim = if c.simulated { " [SIMULATED]" } else { "" };
        println!(
            "{:<22} {}{sim}: {} ({})",
            c.verdict.label(),
            c.advice,
            c.figure,
            c.reason
        );
        if !c.instead.is_empty() {
            println!("{:<22}   → {}", "", c.instead);
        }
    }
    for row in &r.kv.rows {
        println!(
            "KV cache (f16) at n_ctx {}: {} exact{}",
            row.n_ctx,
            lmtune_report::human_bytes(row.exact_bytes),
            match (row.llama_cpp_bytes, row.difference_pct) {
                (Some(b), Some(d)) => format!(
                    ", llama.cpp's dry run {} ({d:+.3}%)",
                    lmtune_report::human_bytes(b)
                ),
                _ => format!(
                    " ({})",
                    row.not_measured.as_deref().unwrap_or("not measured")
                ),
            }
        );
    }
}
