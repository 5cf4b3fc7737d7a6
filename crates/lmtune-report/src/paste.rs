//! A recommendation in the forms people paste: a scenario snippet,
//! llama-server and llama-bench flags, LM Studio's settings. One function,
//! for `plan` (predicted), `tune` and `report` (measured).

use lmtune_core::knobs::{FlashAttn, KvType};
use lmtune_core::record::Record;

/// The settings to print. `n_batch` and `threads` are left out of the
/// lines when `None` (plan leaves them at llama.cpp's defaults).
pub struct Settings {
    pub n_gpu_layers: u64,
    /// Routed experts of blocks 0..n in host memory (`--n-cpu-moe`); 0: none.
    pub n_cpu_moe: u64,
    /// The model's blocks (LM Studio counts those, not the output layer).
    pub n_layer: u64,
    pub n_ctx: u64,
    pub n_batch: Option<u64>,
    pub n_ubatch: u64,
    pub threads: Option<u32>,
    pub type_k: KvType,
    pub type_v: KvType,
    pub flash_attn: FlashAttn,
    /// llama.cpp's op offload (on by default; printed only when off).
    pub op_offload: bool,
}

impl Settings {
    /// A measured point's settings as the backend applied them: the layers
    /// llama.cpp offloaded (0 on a machine without a GPU device, whatever
    /// was asked), the context and batch sizes it used; what was asked
    /// where the backend reported nothing.
    pub fn applied(r: &Record) -> Settings {
        let m = &r.measurement;
        let n_gpu_layers = m
            .placement
            .as_ref()
            .map_or(r.load.n_gpu_layers, |p| p.layers_offloaded);
        Settings {
            n_gpu_layers: u64::from(n_gpu_layers),
            n_cpu_moe: r.load.experts_on_host(r.fingerprint.model.n_layer),
            n_layer: r.fingerprint.model.n_layer,
            n_ctx: u64::from(m.n_ctx_actual.unwrap_or(r.ctx.n_ctx)),
            n_batch: Some(u64::from(m.n_batch_actual.unwrap_or(r.ctx.n_batch))),
            n_ubatch: u64::from(m.n_ubatch_actual.unwrap_or(r.ctx.n_ubatch)),
            threads: Some(r.ctx.threads),
            type_k: r.ctx.type_k,
            type_v: r.ctx.type_v,
            flash_attn: r.ctx.flash_attn,
            op_offload: r.ctx.op_offload,
        }
    }
}

/// The lines, in order: the scenario snippet, llama-server, llama-bench,
/// LM Studio.
pub fn lines(s: &Settings) -> Vec<String> {
    let ngl = s.n_gpu_layers;
    let fa = s.flash_attn.as_str();
    let mut out = vec!["scenario:".to_string(), "  [sweep]".into()];
    out.push(format!("  n_gpu_layers = {ngl}"));
    if s.n_cpu_moe > 0 {
        out.push(format!("  n_cpu_moe = {}", s.n_cpu_moe));
    }
    out.push(format!("  n_ctx = {}", s.n_ctx));
    if let Some(b) = s.n_batch {
        out.push(format!("  n_batch = {b}"));
    }
    out.push(format!("  n_ubatch = {}", s.n_ubatch));
    if let Some(t) = s.threads {
        out.push(format!("  threads = {t}"));
    }
    out.push(format!("  type_k = \"{}\"", s.type_k));
    out.push(format!("  type_v = \"{}\"", s.type_v));
    out.push(format!("  flash_attn = \"{fa}\""));
    if !s.op_offload {
        out.push("  op_offload = false".into());
    }
    let (server_po, bench_po) = if s.op_offload {
        ("", "")
    } else {
        (" --no-op-offload", " -nopo 1")
    };
    let batch = s.n_batch.map_or(String::new(), |b| format!(" -b {b}"));
    let (server_moe, bench_moe) = if s.n_cpu_moe > 0 {
        (
            format!(" --n-cpu-moe {}", s.n_cpu_moe),
            format!(" -ncmoe {}", s.n_cpu_moe),
        )
    } else {
        (String::new(), String::new())
    };
    let threads = s.threads.map_or(String::new(), |t| format!(" -t {t}"));
    out.push(format!(
        "llama-server: -ngl {ngl}{server_moe} -c {}{batch} -ub {}{threads} -ctk {} -ctv {} -fa {fa}{server_po}",
        s.n_ctx, s.n_ubatch, s.type_k, s.type_v
    ));
    // llama-bench sizes its context to the test: a pp512+tg128 request at
    // the depth that fills the rest of n_ctx.
    let bench_fa = match s.flash_attn {
        FlashAttn::On => "1",
        FlashAttn::Off => "0",
        FlashAttn::Auto => "auto",
    };
    out.push(format!(
        "llama-bench:  -ngl {ngl}{bench_moe}{batch} -ub {}{threads} -ctk {} -ctv {} -fa {bench_fa}{bench_po} -p 512 -n 128 -d {}",
        s.n_ubatch,
        s.type_k,
        s.type_v,
        s.n_ctx.saturating_sub(640)
    ));
    out.push(format!(
        "LM Studio:    GPU Offload {} of {} layers{}{}, Context Length {}{}, Flash Attention {}",
        ngl.min(s.n_layer),
        s.n_layer,
        if ngl > s.n_layer {
            " (all, output included)"
        } else {
            ""
        },
        if s.n_cpu_moe > 0 {
            format!(
                ", MoE expert weights of the first {} layers on the CPU",
                s.n_cpu_moe
            )
        } else {
            String::new()
        },
        s.n_ctx,
        s.threads
            .map_or(String::new(), |t| format!(", CPU Thread Pool Size {t}")),
        match s.flash_attn {
            FlashAttn::Off => "off",
            FlashAttn::On => "on",
            FlashAttn::Auto => "auto",
        }
    ));
    out
}
