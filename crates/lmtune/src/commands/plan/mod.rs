//! `lmtune plan`: predicted memory and speed for every offload, before
//! measuring anything, and the recommended settings in the forms people
//! paste (scenario, llama-server, llama-bench, LM Studio).

use anyhow::{anyhow, bail, Context};
use lmtune_core::bandwidth::measure_triad;
use lmtune_core::fingerprint::BackendDevice;
use lmtune_core::fingerprint::{detect_gpus, meminfo_kib, GpuInfo, HostInfo, NoGpu};
use lmtune_core::knobs::{ContextParams, FlashAttn, KvType, LoadParams};
use lmtune_core::llama_fit::FitRequest;
use lmtune_core::record::DryRun;
use lmtune_core::units::parse_size;
use lmtune_gguf::GgufFile;
use lmtune_model::{plan, Budgets, ContextShape, Plan, PlanRow, ThroughputParams};
use lmtune_report::human_bytes;

use crate::cli::PlanArgs;
use crate::dry_run::{DryRunner, FitAnswer};
use crate::exit;

mod calibration;
mod dry_rows;
mod llama_fit;

/// llama-server's (and llama-bench's) default n_batch.
const LLAMA_SERVER_N_BATCH: u64 = 2048;

/// GPU bandwidth assumed when no GPU is visible and none is given.
const ASSUMED_GPU_GB_PER_S: f64 = 500.0;

pub fn run(args: PlanArgs) -> anyhow::Result<u8> {
    let a = GgufFile::open(&args.model)?
        .anatomy()
        .with_context(|| format!("cannot describe {}", args.model.display()))?;
    let type_k: KvType = args.type_k.parse().map_err(|e| anyhow!("--type-k: {e}"))?;
    let type_v: KvType = args.type_v.parse().map_err(|e| anyhow!("--type-v: {e}"))?;
    if type_v.is_quantized() && args.no_flash_attn {
        bail!("--type-v {type_v} needs flash attention; drop --no-flash-attn or use --type-v f16");
    }
    if !(0.0..0.9).contains(&args.headroom) {
        bail!(
            "--headroom {} must be a fraction from 0 to 0.9",
            args.headroom
        );
    }
    let n_ctx = args.ctx.unwrap_or(4096.min(a.n_ctx_train));
    if n_ctx == 0 || args.ubatch == 0 {
        bail!("--ctx and --ubatch must be at least 1");
    }
    if n_ctx > a.n_ctx_train {
        eprintln!(
            "warning: --ctx {n_ctx} is beyond the {} tokens the model was trained on",
            a.n_ctx_train
        );
    }

    let gpus = detect_gpus();
    let mut notes = Vec::new();
    if let Err(why) = a.kv_modelled() {
        notes.push(format!(
            "{why}: the KV columns below are a plain per-layer estimate; the dry run below is llama.cpp's own figure"
        ));
    }
    let Machine {
        vram_bytes,
        ram_bytes,
        gpu_bw,
        cpu_bw,
        bandwidth_low,
    } = machine(&args, &gpus, &mut notes)?;

    // llama.cpp clamps n_batch to the context and n_ubatch to n_batch
    // (llama-server's n_batch is 2048): plan, and recommend, what it runs.
    let n_ubatch = args.ubatch.min(LLAMA_SERVER_N_BATCH).min(n_ctx);
    if n_ubatch != args.ubatch {
        notes.push(format!(
            "--ubatch {} is more than llama.cpp uses: it clamps n_ubatch to n_batch ({LLAMA_SERVER_N_BATCH}, llama-server's default) and n_batch to n_ctx ({n_ctx}), so the plan is for n_ubatch {n_ubatch}",
            args.ubatch
        ));
    }
    let ctx = ContextShape {
        n_ctx,
        n_ubatch,
        type_k: type_k.ggml_type(),
        type_v: type_v.ggml_type(),
        flash_attn: !args.no_flash_attn,
        swa_full: args.swa_full,
        op_offload: !args.no_op_offload,
    };
    let budgets = Budgets {
        vram_bytes,
        ram_bytes,
        headroom: args.headroom,
    };
    let mut p = plan(
        &a,
        ctx,
        budgets,
        ThroughputParams::with_bandwidths(cpu_bw, gpu_bw),
        &crate::predict::host_cpu_backend(),
    );
    if let Some(path) = &args.calibration {
        calibration::apply(path, &args, &a, &mut p, &mut notes)?;
    }

    // One worker answers every dry run: the rows' (with a GPU) and the pick's.
    let mut runner = (!args.no_dry_run).then(|| DryRunner::new(&args.ggml_backend));
    if let Some(runner) = runner.as_mut() {
        let ctx = dry_run_context(&args, &p, type_k, type_v);
        if let Some(note) = dry_rows::apply(&args, runner, &mut p, &ctx) {
            notes.push(note);
        }
    }

    // Generation is bandwidth-bound: the spread of the probes is the
    // prediction's uncertainty (the fixed cost per token does not scale).
    if let (Some(ratio), Some(r)) = (bandwidth_low, p.recommended.map(|i| &p.rows[i])) {
        if ratio < 0.98 {
            // At most proportional: the fixed cost per token does not scale.
            let slow = r.tg_tokens_per_s * ratio;
            notes.push(format!(
                "uncertainty: the recommendation's {:.1} t/s generation is at the best bandwidth probe; at the slowest it would be down to about {:.1} t/s ({:.0}% lower)",
                r.tg_tokens_per_s,
                slow,
                (1.0 - ratio) * 100.0
            ));
        }
    }
    let dry = runner.map(|mut runner| {
        // The pick as llama.cpp would load it, expert placement included.
        let ngl = p.recommended.map_or(0, |i| p.rows[i].n_gpu_layers);
        let n_cpu_moe = p.recommended.map_or(0, |i| p.rows[i].n_cpu_moe);
        let ctx = dry_run_context(&args, &p, type_k, type_v);
        let load = load_params(ngl, n_cpu_moe);
        let answer = runner
            .ask(&args.model, &load, &ctx)
            .and_then(|d| Ok((d, runner.devices()?)));
        (ngl, n_cpu_moe, answer)
    });
    let fit = args
        .llama_fit
        .then(|| llama_fit::ask(&args, &p, &dry_run_context(&args, &p, type_k, type_v)));
    emit(&args, &a, &p, &notes, (type_k, type_v), dry, fit)?;
    Ok(if p.recommended.is_some() {
        exit::OK
    } else {
        exit::SOME_FAILED
    })
}

/// How llama.cpp loads a plan row: `ngl` layers offloaded, the routed
/// experts of the first `n_cpu_moe` blocks in host memory.
fn load_params(ngl: u64, n_cpu_moe: u64) -> LoadParams {
    LoadParams::new(u32::try_from(ngl).unwrap_or(u32::MAX), true)
        .with_n_cpu_moe(u32::try_from(n_cpu_moe).unwrap_or(u32::MAX))
}

/// One row per offload: the memory model's figures, llama.cpp's dry-run
/// VRAM where it had a GPU to ask, what fits, and predicted generation.
fn print_table(p: &Plan) {
    let dry = p.rows.iter().any(|r| r.dry_run_vram_bytes.is_some());
    let (dry_head, dry_rule) = if dry {
        (" VRAM (llama.cpp) |", " ---------------: |")
    } else {
        ("", "")
    };
    println!("| ngl | on GPU       | VRAM weights |    VRAM KV | VRAM total |{dry_head}   RAM total | fits | tg t/s (pred) |");
    println!("| --: | ------------ | -----------: | ---------: | ---------: |{dry_rule} ----------: | ---- | ------------: |");
    for (i, r) in p.rows.iter().enumerate() {
        let m = &r.memory;
        let on_gpu = match (m.placement.repeating_on_gpu, m.placement.output_on_gpu) {
            (0, false) => "-".to_string(),
            (0, true) => "output".to_string(),
            (_, _) if r.n_cpu_moe > 0 => format!("all, moe {}", r.n_cpu_moe),
            (n, _) => format!("output + {n}"),
        };
        let fits = match (r.fits_vram, r.fits_ram) {
            (true, true) => "yes",
            (false, true) => "VRAM",
            (true, false) => "RAM",
            (false, false) => "no",
        };
        let dry_cell = match (dry, r.dry_run_vram_bytes) {
            (false, _) => String::new(),
            (true, Some(b)) => format!(" {:>16} |", human_bytes(b)),
            (true, None) => format!(" {:>16} |", "-"),
        };
        let mark = if p.recommended == Some(i) { " ←" } else { "" };
        println!(
            "| {:>3} | {:<12} | {:>12} | {:>10} | {:>10} |{dry_cell} {:>11} | {:<4} | {:>13.1} |{mark}",
            r.n_gpu_layers,
            on_gpu,
            human_bytes(m.gpu.weights),
            human_bytes(m.gpu.kv),
            human_bytes(m.gpu.total()),
            human_bytes(m.host.total()),
            fits,
            r.tg_tokens_per_s
        );
    }
}

fn print_text(
    args: &PlanArgs,
    a: &lmtune_gguf::ModelAnatomy,
    p: &Plan,
    notes: &[String],
    type_k: KvType,
    type_v: KvType,
) {
    println!(
        "plan for {} ({} layers{}), n_ctx {}, n_ubatch {}, K/V cache {}/{}, flash attention {}",
        args.model.display(),
        a.n_layer,
        if a.synthetic { ", synthetic" } else { "" },
        p.ctx.n_ctx,
        p.ctx.n_ubatch,
        type_k,
        type_v,
        if p.ctx.flash_attn { "on" } else { "off" }
    );
    println!(
        "budgets: VRAM {}, RAM {}, {:.0}% kept free; bandwidth CPU {:.1} GB/s (η {:.2}), GPU {:.0} GB/s (η {:.2}); fixed cost {:.2} ms/token (+{:.2} ms with a GPU)",
        human_bytes(p.budgets.vram_bytes),
        human_bytes(p.budgets.ram_bytes),
        p.budgets.headroom * 100.0,
        p.throughput.cpu_bandwidth_gb_per_s,
        p.throughput.eta_cpu,
        p.throughput.gpu_bandwidth_gb_per_s,
        p.throughput.eta_gpu,
        p.throughput.t_fixed_s * 1e3,
        p.throughput.t_fixed_gpu_s * 1e3
    );
    for n in notes {
        println!("note: {n}");
    }
    println!();
    print_table(p);
    if p.rows.iter().any(|r| r.n_cpu_moe > 0) {
        println!("(\"all, moe N\": every layer on the GPU, the routed experts of the first N blocks in host memory — llama.cpp's --n-cpu-moe N)");
    }
    println!();
    match p.recommended.map(|i| &p.rows[i]) {
        None => {
            // n_gpu_layers 0 kept out by op offload's buffer on the GPU alone.
            let op_offload_only = p
                .rows
                .first()
                .is_some_and(|r| r.n_gpu_layers == 0 && r.fits_ram && !r.fits_vram);
            let hint = if op_offload_only {
                "; or keep the GPU out of it with --no-op-offload (llama-server --no-op-offload): at n_gpu_layers 0 op offload alone needs the GPU memory shown"
            } else {
                ""
            };
            println!("nothing fits: lower --ctx, use a quantized KV cache (--type-k q8_0 --type-v q8_0), or a smaller quantization{hint}")
        }
        Some(r) => print_recommendation(a, p, r, type_k, type_v),
    }
}

fn print_recommendation(
    a: &lmtune_gguf::ModelAnatomy,
    p: &Plan,
    r: &PlanRow,
    type_k: KvType,
    type_v: KvType,
) {
    let ngl = r.n_gpu_layers;
    let moe = if r.n_cpu_moe > 0 {
        format!(", n_cpu_moe = {}", r.n_cpu_moe)
    } else {
        String::new()
    };
    println!(
        "recommended: n_gpu_layers = {ngl}{moe} — predicted {:.1} tokens/s generation, {} VRAM, {} RAM",
        r.tg_tokens_per_s,
        human_bytes(r.vram_bytes()),
        human_bytes(r.memory.host.total())
    );
    if r.n_cpu_moe > 0 {
        print_pp_guess(a, r.n_cpu_moe, p.ctx.n_ubatch);
    }
    println!();
    let settings = crate::paste::Settings {
        n_gpu_layers: ngl,
        n_cpu_moe: r.n_cpu_moe,
        n_layer: a.n_layer,
        n_ctx: p.ctx.n_ctx,
        n_batch: None,
        n_ubatch: p.ctx.n_ubatch,
        threads: None,
        type_k,
        type_v,
        flash_attn: if p.ctx.flash_attn {
            FlashAttn::On
        } else {
            FlashAttn::Off
        },
        op_offload: p.ctx.op_offload,
    };
    for line in crate::paste::lines(&settings) {
        println!("{line}");
    }
}

/// PCIe 4.0 x16's practical host-to-device rate, bytes/s: the guess below.
const PCIE_BYTES_PER_S: f64 = 25e9;

/// Prompt processing with experts in host memory, labelled a guess until
/// GPU data decides it: with op offload (llama.cpp's default) the scheduler
/// runs a batch of 32 tokens or more on the GPU and copies the host experts
/// there for each micro-batch, so the copy bounds prompt speed.
fn print_pp_guess(a: &lmtune_gguf::ModelAnatomy, n_cpu_moe: u64, n_ubatch: u64) {
    let host: u64 = a
        .layers
        .iter()
        .take(usize::try_from(n_cpu_moe).unwrap_or(usize::MAX))
        .map(|l| l.routed_experts.bytes)
        .sum();
    let s = host as f64 / PCIE_BYTES_PER_S;
    println!(
        "prompt processing, a guess not yet checked on a GPU: each micro-batch of {n_ubatch} tokens copies the {} of host experts to the GPU (op offload), {:.0} ms at 25 GB/s (PCIe 4.0 x16): at most {:.0} tokens/s from the copy alone; a larger --ubatch spreads it over more tokens",
        human_bytes(host),
        s * 1e3,
        n_ubatch as f64 / s
    );
}

/// The budgets and bandwidths the plan is for, from the flags or this
/// machine.
struct Machine {
    vram_bytes: u64,
    ram_bytes: u64,
    gpu_bw: f64,
    cpu_bw: f64,
    /// The slowest bandwidth probe over the best, when probed here.
    bandwidth_low: Option<f64>,
}

fn machine(
    args: &PlanArgs,
    gpus: &Result<Vec<GpuInfo>, NoGpu>,
    notes: &mut Vec<String>,
) -> anyhow::Result<Machine> {
    let vram_bytes = match args.vram.as_str() {
        "auto" => {
            match &gpus {
                Ok(g) if !g.is_empty() => g[0].vram_free_bytes,
                Ok(_) | Err(_) => {
                    notes.push("no NVIDIA GPU detected: VRAM budget 0 (give --vram SIZE to plan for a GPU)".to_string());
                    0
                }
            }
        }
        "0" | "none" => 0,
        size => parse_size(size)
            .map_err(|e| anyhow!("--vram: {e} (write e.g. 8GiB or 24GB, 0 for none, or auto)"))?,
    };
    let ram_bytes = match args.ram.as_str() {
        "auto" => std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| meminfo_kib(&m, "MemAvailable"))
            .map(|k| k * 1024)
            .unwrap_or(HostInfo::detect().ram_bytes),
        size => parse_size(size).map_err(|e| anyhow!("--ram: {e} (write e.g. 32GiB, or auto)"))?,
    };
    let gpu_bw = match (args.gpu_bandwidth, &gpus) {
        (Some(bw), _) => bw,
        (None, Ok(g))
            if g.first()
                .and_then(|g| g.theoretical_bandwidth_gb_per_s)
                .is_some() =>
        {
            g[0].theoretical_bandwidth_gb_per_s
                .unwrap_or(ASSUMED_GPU_GB_PER_S)
        }
        _ => {
            if vram_bytes > 0 {
                notes.push(format!(
                    "GPU bandwidth assumed {ASSUMED_GPU_GB_PER_S} GB/s (give --gpu-bandwidth)"
                ));
            }
            ASSUMED_GPU_GB_PER_S
        }
    };
    let mut bandwidth_low = None;
    let cpu_bw = match args.cpu_bandwidth {
        Some(bw) => bw,
        None => {
            let host = HostInfo::detect();
            let bw = measure_triad(host.physical_cores, 256 << 20, 5);
            let h = crate::bandwidth_history::record_and_choose(
                &host.label(),
                bw.read_ceiling_gb_per_s(),
            );
            notes.push(format!(
                "host read bandwidth {:.1} GB/s: the best of {} probe(s) on this machine since {} (this one {:.1} GB/s, {} threads; the slowest {:.1} GB/s)",
                h.gb_per_s, h.probes, h.since, h.now_gb_per_s, bw.threads, h.low_gb_per_s
            ));
            bandwidth_low = Some(h.low_gb_per_s / h.gb_per_s);
            h.gb_per_s
        }
    };

    Ok(Machine {
        vram_bytes,
        ram_bytes,
        gpu_bw,
        cpu_bw,
        bandwidth_low,
    })
}

/// A dry run of the pick: (n_gpu_layers, n_cpu_moe, llama.cpp's answer).
type PickDryRun = (u64, u64, Result<(DryRun, Vec<BackendDevice>), String>);

/// Prints the plan: `--json`, or the text table with the dry run of the
/// pick and llama.cpp's fit after it.
fn emit(
    args: &PlanArgs,
    a: &lmtune_gguf::ModelAnatomy,
    p: &Plan,
    notes: &[String],
    (type_k, type_v): (KvType, KvType),
    dry: Option<PickDryRun>,
    fit: Option<(FitRequest, Result<FitAnswer, String>)>,
) -> anyhow::Result<()> {
    if args.json {
        let mut value = serde_json::json!({ "model": args.model.display().to_string(), "synthetic": a.synthetic, "notes": notes, "plan": p });
        match &dry {
            Some((ngl, n_cpu_moe, Ok((d, _)))) => {
                value["dry_run"] = serde_json::json!({ "n_gpu_layers": ngl, "n_cpu_moe": n_cpu_moe, "source": "llama.cpp no_alloc", "result": d })
            }
            Some((_, _, Err(e))) => value["dry_run_error"] = serde_json::json!(e),
            None => {}
        }
        if let Some((request, answer)) = &fit {
            value["llama_fit"] = llama_fit::json(request, answer, p);
        }
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print_text(args, a, p, notes, type_k, type_v);
        if let Some((ngl, n_cpu_moe, answer)) = &dry {
            print_dry_run(&args.model, p, *ngl, *n_cpu_moe, answer);
        }
        if let Some((request, answer)) = &fit {
            llama_fit::print(&args.model, request, answer, p);
        }
    }
    Ok(())
}

/// The context a dry run of the plan creates: the plan's, with llama-server's
/// n_batch and this machine's physical cores.
fn dry_run_context(args: &PlanArgs, p: &Plan, type_k: KvType, type_v: KvType) -> ContextParams {
    let n_ubatch = u32::try_from(p.ctx.n_ubatch).unwrap_or(u32::MAX);
    ContextParams {
        n_ctx: u32::try_from(p.ctx.n_ctx).unwrap_or(u32::MAX),
        n_batch: LLAMA_SERVER_N_BATCH as u32,
        n_ubatch,
        threads: HostInfo::detect().physical_cores.max(1),
        type_k,
        type_v,
        flash_attn: if args.no_flash_attn {
            FlashAttn::Off
        } else {
            FlashAttn::Auto
        },
        op_offload: !args.no_op_offload,
        swa_full: args.swa_full,
    }
}

/// llama.cpp's own figures for the recommended offload, per device, beside
/// the analytic ones; or the one line saying why there are none.
fn print_dry_run(
    model: &std::path::Path,
    p: &Plan,
    ngl: u64,
    n_cpu_moe: u64,
    answer: &Result<(DryRun, Vec<BackendDevice>), String>,
) {
    println!();
    let (d, devices) = match answer {
        Ok(x) => x,
        Err(e) => {
            println!(
                "note: llama.cpp's dry run of {} failed: {e} — the figures above are lmtune's analytic model only",
                model.display()
            );
            return;
        }
    };
    println!(
        "llama.cpp's dry run (no_alloc, {:.1} ms) of n_gpu_layers = {ngl}{} on this machine's devices:",
        d.ms,
        if n_cpu_moe > 0 {
            format!(", n_cpu_moe = {n_cpu_moe}")
        } else {
            String::new()
        }
    );
    for b in &d.buffers {
        println!(
            "  {:<12} weights {:>11}, context (KV) {:>11}, compute {:>11}{}",
            b.buffer_type,
            human_bytes(b.model_bytes),
            human_bytes(b.context_bytes),
            human_bytes(b.compute_bytes),
            if b.host { "  (host memory)" } else { "" }
        );
    }
    let (m, c, k) = d.sum(|b| b.host);
    let host = m + c + k;
    if let Some(row) = p
        .rows
        .iter()
        .find(|r| r.n_gpu_layers == ngl && r.n_cpu_moe == 0)
    {
        let analytic = row.memory.host.buffers();
        println!(
            "  host buffers {} (dry run) vs {} (lmtune's analytic model, {:+.1}%; its RAM total adds {} of process overhead)",
            human_bytes(host),
            human_bytes(analytic),
            (analytic as f64 / host.max(1) as f64 - 1.0) * 100.0,
            human_bytes(row.memory.host.overhead)
        );
    }
    if ngl > 0 && !devices.iter().any(|x| x.kind == "gpu" || x.kind == "igpu") {
        println!("  this machine has no GPU device, so llama.cpp keeps every layer on the CPU: the VRAM columns above are analytic only");
    }
}
