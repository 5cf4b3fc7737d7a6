//! `lmtune fit`: memory and throughput models fitted to measurements, per
//! machine and model, with coefficient intervals, R² and leave-one-out errors.
//!
//! - memory: peak RSS = structural (exact from the anatomy: host weights,
//!   repacked copies, KV cache) + β₀ + β₁·n_ubatch + β₂·n_ubatch·n_ctx/1000;
//! - VRAM (points with GPU memory in the record): used = structural (the
//!   weights and KV cache of the offloaded layers) + the same three terms;
//! - generation: seconds per token = one constant per thread count (+ a term
//!   per GB of KV cache read, when the depth varies; + per thread count, ms
//!   per GB read on the CPU, when the offload varies: time per token is
//!   additive over devices, so it is linear in the bytes left on the CPU);
//! - prompt processing: seconds per token = one constant per thread count
//!   plus γ / n_ubatch (the per-micro-batch overhead, amortized); when the
//!   offload varies, also ms per GB on the CPU per thread count, and per GB
//!   on the CPU per micro-batch (the weights a GPU backend streams over).
//!
//! The offload of a point is what the backend applied (`placement`), not
//! what it asked for.
//!
//! Features that do not vary in the data are left out (their effect cannot
//! be told from the intercept).
//!
//! Given results of two or more models on one machine and backend, it also
//! fits that machine's generation terms across models (CPU only): ms per
//! token = t_fixed + GB read per token ÷ effective bandwidth, per thread
//! count, with η = effective ÷ measured read bandwidth and each model
//! predicted from the others (`lmtune_model::fit_across_models`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use lmtune_core::knobs::TestKind;
use lmtune_core::record::{Record, Status};
use lmtune_gguf::{GgufFile, ModelAnatomy};
use lmtune_model::{
    bytes_per_token, fit_across_models, fit_linear, fit_linear_nonneg, predict_memory_at,
    Calibration, ContextShape, CpuBackend, LinearFit, MachineCalibration, Placement, TgObservation,
};
use lmtune_report::load_results;

use crate::cli::FitArgs;
use crate::exit;

mod print;
use print::{print_calibration, print_fit_machine};

pub fn run(args: FitArgs) -> anyhow::Result<u8> {
    let mut records = Vec::new();
    for path in &args.results {
        records.extend(
            load_results(path)
                .with_context(|| format!("cannot read {}", path.display()))?
                .1,
        );
    }
    let ok: Vec<&Record> = records.iter().filter(|r| r.status == Status::Ok).collect();
    if ok.is_empty() {
        bail!(
            "no ok records to fit in {}",
            args.results
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    // One calibration per machine + backend + model.
    let mut groups: BTreeMap<(String, String, String), Vec<&Record>> = BTreeMap::new();
    for &r in &ok {
        let fp = &r.fingerprint;
        let machine = r.fingerprint.host.label();
        let model = if fp.model.sha256.is_empty() {
            r.model.clone()
        } else {
            format!(
                "{} {}",
                r.model,
                &fp.model.sha256[..12.min(fp.model.sha256.len())]
            )
        };
        groups
            .entry((machine, r.backend.clone(), model))
            .or_default()
            .push(r);
    }
    let mut calibrations = Vec::new();
    for ((machine, backend, model), rs) in groups {
        println!(
            "== {model} on {machine}, backend {backend}: {} points",
            rs.len()
        );
        let anatomy = find_anatomy(&args.model, &rs[0].model);
        let mut cal = Calibration {
            version: 1,
            machine,
            backend,
            model: model.clone(),
            memory: None,
            vram: None,
            tg: None,
            pp: None,
            notes: Vec::new(),
        };
        match &anatomy {
            Some(a) => match fit_memory(a, &rs) {
                Ok((f, rows)) => {
                    cal.notes.extend(outlier_notes("memory", &f, &rows));
                    cal.memory = Some(f);
                }
                Err(e) => cal.notes.push(format!("memory: {e}")),
            },
            None => cal.notes.push(format!("memory: the model file {} was not found (give --model PATH); the structural terms need its anatomy", rs[0].model)),
        }
        if let Some(a) = &anatomy {
            match fit_vram(a, &rs) {
                Ok(Some((f, rows, source))) => {
                    cal.notes.push(format!("vram: fitted to {source}"));
                    cal.notes.extend(outlier_notes("vram", &f, &rows));
                    cal.vram = Some(f);
                }
                Ok(None) => {}
                Err(e) => cal.notes.push(format!("vram: {e}")),
            }
        }
        for kind in [TestKind::Tg, TestKind::Pp] {
            match fit_speed(kind, &rs, anatomy.as_ref()) {
                Ok((f, rows)) => {
                    let label = if kind == TestKind::Tg { "tg" } else { "pp" };
                    cal.notes.extend(outlier_notes(label, &f, &rows));
                    if kind == TestKind::Tg {
                        cal.tg = Some(f);
                    } else {
                        cal.pp = Some(f);
                    }
                }
                Err(e) => cal.notes.push(format!(
                    "{}: {e}",
                    if kind == TestKind::Tg { "tg" } else { "pp" }
                )),
            }
        }
        print_calibration(&cal);
        calibrations.push(cal);
    }
    let machines = fit_machines(&ok);
    if let Some(out) = &args.output {
        let text = serde_json::to_string_pretty(&serde_json::json!({
            "format": "lmtune-calibration",
            "version": 1,
            "calibrations": calibrations,
            "machines": machines,
        }))?;
        std::fs::write(out, text).with_context(|| format!("cannot write {}", out.display()))?;
        eprintln!("calibration saved to {}", out.display());
    }
    Ok(exit::OK)
}

/// Generation across models, per machine and backend with two or more
/// models: CPU-only tg records whose bytes per token are known.
fn fit_machines(ok: &[&Record]) -> Vec<MachineCalibration> {
    let mut groups: BTreeMap<(String, String), Vec<TgObservation>> = BTreeMap::new();
    for r in ok {
        let (Some(bytes), Some(tps)) = (
            r.prediction.as_ref().and_then(|p| p.tg_bytes_per_token),
            r.tokens_per_s.as_ref().map(|s| s.mean),
        ) else {
            continue;
        };
        if r.workload.kind() != TestKind::Tg || r.load.n_gpu_layers != 0 || tps <= 0.0 {
            continue;
        }
        groups
            .entry((r.fingerprint.host.label(), r.backend.clone()))
            .or_default()
            .push(TgObservation {
                model: r.model.clone(),
                threads: r.ctx.threads,
                bytes_per_token: bytes as f64,
                ms_per_token: 1000.0 / tps,
                read_gb_per_s: r.fingerprint.host_bandwidth_at(r.ctx.threads),
            });
    }
    let mut out = Vec::new();
    for ((machine, backend), obs) in groups {
        let mut models: Vec<&str> = obs.iter().map(|o| o.model.as_str()).collect();
        models.sort_unstable();
        models.dedup();
        if models.len() < 2 {
            continue;
        }
        println!(
            "== generation across {} models on {machine}, backend {backend}: {} points",
            models.len(),
            obs.len()
        );
        println!("  ms/token = t_fixed + GB read per token ÷ effective bandwidth (CPU only; weighted to relative error)");
        match fit_across_models(&machine, &backend, &obs) {
            Ok(c) => {
                print_fit_machine(&c);
                out.push(c);
            }
            Err(e) => println!("  note: {e}"),
        }
    }
    out
}

/// The model file: --model, else models/ or models/synth/ under the current directory.
fn find_anatomy(explicit: &Option<PathBuf>, file_name: &str) -> Option<ModelAnatomy> {
    let candidates: Vec<PathBuf> = match explicit {
        Some(p) => vec![p.clone()],
        None => vec![
            Path::new("models").join(file_name),
            Path::new("models/synth").join(file_name),
        ],
    };
    candidates
        .iter()
        .find(|p| p.exists())
        .and_then(|p| GgufFile::open(p).and_then(|f| f.anatomy()).ok())
}

fn ubatch_eff(r: &Record) -> f64 {
    f64::from(r.ctx.effective_ubatch())
}

/// Layers the backend offloaded at this point: what it reported
/// (`placement`), else what was asked when it has a GPU (a simulated one too).
fn offloaded_layers(r: &Record) -> u64 {
    if let Some(p) = &r.measurement.placement {
        return u64::from(p.layers_offloaded);
    }
    let gpu = r.fingerprint.backend_devices.iter().any(|d| d.is_gpu())
        || r.measurement.simulated_vram_bytes.is_some();
    if gpu {
        u64::from(r.load.n_gpu_layers)
    } else {
        0
    }
}

fn context_shape(r: &Record) -> ContextShape {
    ContextShape {
        n_ctx: u64::from(r.ctx.n_ctx),
        n_ubatch: ubatch_eff(r) as u64,
        type_k: r.ctx.type_k.ggml_type(),
        type_v: r.ctx.type_v.ggml_type(),
        flash_attn: true,
        swa_full: r.ctx.swa_full,
        op_offload: r.ctx.op_offload,
    }
}

/// The predicted memory of a point, with the repack rule of the machine that
/// measured it (from its recorded CPU features) and its applied offload.
fn memory_of(a: &ModelAnatomy, r: &Record) -> lmtune_model::MemoryPrediction {
    let arch = if r.fingerprint.host.arch.is_empty() {
        std::env::consts::ARCH
    } else {
        r.fingerprint.host.arch.as_str()
    };
    let cpu = CpuBackend::from_backend_build(arch, &r.fingerprint.backend_build);
    predict_memory_at(a, placement_of(a, r), &context_shape(r), &cpu)
}

/// Where the point's layers and routed experts were: its applied offload,
/// and the blocks whose experts its overrides kept in host memory.
fn placement_of(a: &ModelAnatomy, r: &Record) -> Placement {
    Placement::new(a, offloaded_layers(r)).with_cpu_moe(r.load.experts_on_host(a.n_layer))
}

/// Exact host bytes: weights (+ repacked copies) and KV cache.
fn structural_rss(a: &ModelAnatomy, r: &Record) -> f64 {
    let m = memory_of(a, r);
    (m.host.weights + m.host.repacked + m.host.kv) as f64
}

/// GB read on the CPU per token: the blocks and output layer left there and
/// their KV cache at the test's mean depth (generation reads it all per token).
fn cpu_gb_per_token(a: &ModelAnatomy, r: &Record) -> f64 {
    let placement = placement_of(a, r);
    let depth = u64::from(r.workload.n_depth) + u64::from(r.workload.n_gen) / 2;
    bytes_per_token(a, &placement, &context_shape(r), depth).0 as f64 / 1e9
}

/// One note per point a fit set aside, naming it, with the error over all points.
fn outlier_notes(what: &str, f: &LinearFit, rows: &[&Record]) -> Vec<String> {
    f.outliers
        .iter()
        .map(|o| {
            let r = rows[o.row];
            format!(
                "{what}: set aside point {} ({} {}: {}) as an outlier, leave-one-out error {:.1}% (> 5x the median); over all {} points the error is {}",
                r.point_index,
                r.test,
                lmtune_core::knobs::knob_label(&r.load, &r.ctx, true),
                r.tokens_per_s
                    .as_ref()
                    .map_or("no t/s".to_string(), |s| format!("{:.1} t/s", s.mean)),
                o.loo_error * 100.0,
                rows.len(),
                f.loo_mape_all
                    .map_or("n/a".into(), |e| format!("{:.1}%", e * 100.0)),
            )
        })
        .collect()
}

/// The memory residue's features: a constant, the micro-batch (compute
/// buffers), and micro-batch × context in thousands (attention's share).
fn residue_row(r: &Record) -> Vec<f64> {
    vec![
        1.0,
        ubatch_eff(r),
        ubatch_eff(r) * f64::from(r.ctx.n_ctx) / 1000.0,
    ]
}

fn fit_memory<'a>(
    a: &ModelAnatomy,
    rs: &[&'a Record],
) -> Result<(LinearFit, Vec<&'a Record>), lmtune_model::FitError> {
    let with_rss: Vec<&&Record> = rs
        .iter()
        .filter(|r| r.measurement.rss_peak_bytes.is_some())
        .collect();
    let structural: Vec<f64> = with_rss.iter().map(|r| structural_rss(a, r)).collect();
    let mib = 1024.0 * 1024.0;
    let y: Vec<f64> = with_rss
        .iter()
        .zip(&structural)
        .map(|(r, s)| (r.measurement.rss_peak_bytes.unwrap_or(0) as f64 - s) / mib)
        .collect();
    let rows: Vec<Vec<f64>> = with_rss.iter().map(|r| residue_row(r)).collect();
    let structural_mib: Vec<f64> = structural.iter().map(|s| s / mib).collect();
    let (names, rows) = drop_constant(
        &[
            "overhead_mib",
            "mib_per_ubatch_token",
            "mib_per_ubatch_token_per_1k_ctx",
        ],
        rows,
    );
    let fit = fit_linear("memory", &names, &rows, &y, |i, residue| {
        structural_mib[i] + residue
    })?;
    Ok((fit, with_rss.into_iter().copied().collect()))
}

/// VRAM used over the offloaded layers' weights and KV cache, for points
/// that offloaded and have GPU memory in their record; `None` without any.
/// The memory is NVML's figure where the records have one (CUDA context
/// included), else the device buffers llama.cpp logged (a Vulkan device, or
/// a container where NVML sees no process); the third value says which.
#[allow(clippy::type_complexity)]
fn fit_vram<'a>(
    a: &ModelAnatomy,
    rs: &[&'a Record],
) -> Result<Option<(LinearFit, Vec<&'a Record>, &'static str)>, lmtune_model::FitError> {
    let nvml = |r: &Record| r.vram.as_ref().map_or(0, |v| v.used_bytes());
    let buffers = |r: &Record| {
        r.measurement
            .placement
            .as_ref()
            .map_or(0, |p| p.device_bytes())
    };
    let (used, source): (&dyn Fn(&Record) -> u64, _) = if rs.iter().any(|r| nvml(r) > 0) {
        (&nvml, "the GPU memory NVML measured")
    } else {
        (&buffers, "the device buffers llama.cpp allocated (no NVML figure in these records, so no driver context either)")
    };
    let with_vram: Vec<&Record> = rs
        .iter()
        .copied()
        .filter(|r| used(r) > 0 && offloaded_layers(r) > 0)
        .collect();
    if with_vram.is_empty() {
        return Ok(None);
    }
    let mib = 1024.0 * 1024.0;
    let structural_mib: Vec<f64> = with_vram
        .iter()
        .map(|r| {
            let m = memory_of(a, r);
            (m.gpu.weights + m.gpu.kv) as f64 / mib
        })
        .collect();
    let y: Vec<f64> = with_vram
        .iter()
        .zip(&structural_mib)
        .map(|(r, s)| used(r) as f64 / mib - s)
        .collect();
    let rows: Vec<Vec<f64>> = with_vram.iter().map(|r| residue_row(r)).collect();
    let (names, rows) = drop_constant(
        &[
            "vram_overhead_mib",
            "vram_mib_per_ubatch_token",
            "vram_mib_per_ubatch_token_per_1k_ctx",
        ],
        rows,
    );
    let fit = fit_linear("vram", &names, &rows, &y, |i, residue| {
        structural_mib[i] + residue
    })?;
    Ok(Some((fit, with_vram, source)))
}

fn fit_speed<'a>(
    kind: TestKind,
    rs: &[&'a Record],
    anatomy: Option<&ModelAnatomy>,
) -> Result<(LinearFit, Vec<&'a Record>), lmtune_model::FitError> {
    let pts: Vec<&&Record> = rs
        .iter()
        .filter(|r| r.workload.kind() == kind && r.tokens_per_s.is_some())
        .collect();
    let mut threads: Vec<u32> = pts.iter().map(|r| r.ctx.threads).collect();
    threads.sort_unstable();
    threads.dedup();
    let mut names_owned: Vec<String> = threads
        .iter()
        .map(|t| format!("ms_per_token_at_{t}_threads"))
        .chain(std::iter::once(match kind {
            TestKind::Pp => "ms_times_ubatch".to_string(),
            _ => "ms_per_1k_tokens_of_depth".to_string(),
        }))
        .collect();
    let mut rows: Vec<Vec<f64>> = pts
        .iter()
        .map(|r| {
            let mut row: Vec<f64> = threads
                .iter()
                .map(|&t| if r.ctx.threads == t { 1.0 } else { 0.0 })
                .collect();
            row.push(match kind {
                TestKind::Pp => 1.0 / ubatch_eff(r).min(f64::from(r.workload.n_prompt)),
                _ => f64::from(r.workload.n_depth) / 1000.0,
            });
            row
        })
        .collect();
    // With the offload varying, the bytes left on the CPU: one slope per
    // thread count (the CPU's speed depends on it), where that count has two
    // or more offloads (else the slope is its constant); for prompt
    // processing also per micro-batch (a GPU backend streams the weights
    // left on the CPU to the GPU once per micro-batch).
    if let Some(a) = anatomy {
        let gb: Vec<f64> = pts.iter().map(|r| cpu_gb_per_token(a, r)).collect();
        let varies = |keep: &dyn Fn(&Record) -> bool| {
            let mut v: Vec<u64> = pts
                .iter()
                .zip(&gb)
                .filter(|(r, _)| keep(r))
                .map(|(_, g)| g.to_bits())
                .collect();
            v.sort_unstable();
            v.dedup();
            v.len() > 1
        };
        for &t in &threads {
            if varies(&|r: &Record| r.ctx.threads == t) {
                names_owned.push(format!("ms_per_gb_on_cpu_at_{t}_threads"));
                for (row, (r, g)) in rows.iter_mut().zip(pts.iter().zip(&gb)) {
                    row.push(if r.ctx.threads == t { *g } else { 0.0 });
                }
            }
        }
        if kind == TestKind::Pp && varies(&|_| true) {
            names_owned.push("ms_times_ubatch_per_gb_on_cpu".to_string());
            for (row, (r, g)) in rows.iter_mut().zip(pts.iter().zip(&gb)) {
                row.push(g / ubatch_eff(r).min(f64::from(r.workload.n_prompt)));
            }
        }
    }
    let y: Vec<f64> = pts
        .iter()
        .map(|r| 1000.0 / r.tokens_per_s.as_ref().map_or(1.0, |s| s.mean))
        .collect();
    let names: Vec<&str> = names_owned.iter().map(String::as_str).collect();
    let (names, rows) = drop_constant(&names, rows);
    // The error that matters is in tokens/s. Every term is a time: one the
    // free fit makes negative is held at 0 (and printed so).
    let fit = fit_linear_nonneg(
        if kind == TestKind::Tg {
            "generation"
        } else {
            "prompt processing"
        },
        &names,
        &rows,
        &y,
        |_, ms| 1000.0 / ms,
    )?;
    Ok((fit, pts.into_iter().copied().collect()))
}

/// Drops feature columns that never vary, so the fit is not rank-deficient.
/// Intercepts (the overhead, the per-thread-count constants) always stay.
fn drop_constant<'a>(names: &[&'a str], rows: Vec<Vec<f64>>) -> (Vec<&'a str>, Vec<Vec<f64>>) {
    let is_intercept =
        |name: &str| name.ends_with("overhead_mib") || name.starts_with("ms_per_token_at_");
    let keep: Vec<usize> = (0..names.len())
        .filter(|&j| {
            let first = rows.first().map_or(0.0, |r| r[j]);
            is_intercept(names[j]) || rows.iter().any(|r| r[j] != first)
        })
        .collect();
    let names = keep.iter().map(|&j| names[j]).collect();
    let rows = rows
        .into_iter()
        .map(|r| keep.iter().map(|&j| r[j]).collect())
        .collect();
    (names, rows)
}
