//! Memory per device for a given offload, before any measurement.
//!
//! Structural terms are exact, from the model anatomy: the weights of the
//! layers placed on each device and the KV cache of those layers. The
//! compute buffer and fixed overheads are estimates (the fit issue learns
//! them from measurements):
//!
//! - compute buffer (allocated) ≈ 4 B × n_ubatch × (n_vocab + 4·n_embd + 2·n_ff)
//!   plus 2 B × n_ubatch × n_ctx (the f16 KQ mask), plus 4 B × n_head × n_ubatch
//!   × n_ctx without flash attention: the largest live activations of one ubatch,
//!   the output logits of every row included. Checked against llama.cpp's own
//!   "compute buffer size" lines for SmolLM2 (e.g. 102.1 MiB at n_ubatch 512).
//! - what a decode *touches* of that buffer is less: ggml's allocator lays
//!   out each graph from the buffer's start, so a call of n tokens against
//!   n_kv cache cells touches its own activations, 4 B × n × (4·n_embd +
//!   2·n_ff), the one logits row a benchmark (or a chat) asks for, and the
//!   masks of n × n_kv (n_kv: the cells in use, padded to 256, not n_ctx).
//!   The rest stays unmapped, so the *resident* estimate of a test
//!   ([`resident_bytes`]) counts what its calls touch: a prompt's
//!   micro-batch, or one generated token. The KV cache is cleared when it is
//!   created, so all of it is resident.
//! - CPU weight repacking: on x86 with AVX2, llama.cpp's CPU backend copies
//!   q4_0, q4_K and iq4_nl matrices (and q2_K with AVX-512) into an
//!   interleaved layout in anonymous memory, while the file mapping they were
//!   read from stays resident: those weights count twice on the host.
//! - host runtime overhead (binary, libc, llama.cpp, OpenMP, the
//!   vocabulary, the allocator's retained pages): 50 MiB, from peak RSS less
//!   the weights, KV cache and touched compute of a Gemma 3 270M shape at
//!   n_ctx 2048…32768 (45.9…54.4 MiB on the dev VM);
//!   GPU context overhead (CUDA context, cuBLAS workspace): 400 MiB.
//!
//! Placement follows llama.cpp (`llama-model.cpp`, `i_gpu_start = n_layer + 1
//! − n_gpu_layers`): the output layer is offloaded first, then repeating
//! layers from the last one down; the input layer (`token_embd`) always stays
//! on the CPU. With tied embeddings the output projection reads `token_embd`
//! wherever it is.

use lmtune_gguf::{GgmlType, ModelAnatomy};
use serde::Serialize;

const MIB: u64 = 1 << 20;
pub const HOST_OVERHEAD_BYTES: u64 = 50 * MIB;
pub const GPU_OVERHEAD_BYTES: u64 = 400 * MIB;

/// Context settings that drive memory.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ContextShape {
    pub n_ctx: u64,
    pub n_ubatch: u64,
    pub type_k: GgmlType,
    pub type_v: GgmlType,
    pub flash_attn: bool,
    /// llama.cpp's full-size sliding-window cache (off as llama-bench runs).
    pub swa_full: bool,
    /// llama.cpp's op offload (on by default): prompt micro-batches of
    /// [`OP_OFFLOAD_MIN_BATCH`] tokens or more run their matrix products on
    /// the device even where the weights live in host memory.
    pub op_offload: bool,
}

/// What the CPU backend does to weights it keeps: the types it repacks.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CpuBackend {
    /// ggml type names (`q4_0`, …) whose matrices are repacked.
    pub repack_types: Vec<String>,
}

impl CpuBackend {
    /// From the CPU architecture and its feature flags (as in /proc/cpuinfo),
    /// following ggml-cpu's `ggml_repack_get_optimal_repack_type`.
    pub fn from_cpu_flags(arch: &str, flags: &str) -> CpuBackend {
        let has = |f: &str| flags.split_whitespace().any(|x| x == f);
        let mut types: Vec<&str> = Vec::new();
        match arch {
            "x86_64" if has("avx2") => {
                types.extend(["q4_0", "q4_K", "iq4_nl"]);
                if has("avx512f") {
                    types.push("q2_K");
                }
            }
            "aarch64" if has("asimddp") => types.extend(["q4_0", "q4_K", "q5_K", "q6_K", "iq4_nl"]),
            _ => {}
        }
        CpuBackend {
            repack_types: types.into_iter().map(String::from).collect(),
        }
    }

    /// From llama.cpp's system line as recorded in a fingerprint
    /// (`… AVX2 = 1 | AVX512 = 1 …`), for results measured on another machine.
    pub fn from_backend_build(arch: &str, build: &str) -> CpuBackend {
        let flags: Vec<&str> = [
            ("AVX2 = 1", "avx2"),
            ("AVX512 = 1", "avx512f"),
            ("DOTPROD = 1", "asimddp"),
        ]
        .into_iter()
        .filter(|(needle, _)| build.contains(needle))
        .map(|(_, flag)| flag)
        .collect();
        CpuBackend::from_cpu_flags(arch, &flags.join(" "))
    }

    fn repacked_bytes(&self, group: &lmtune_gguf::TensorGroup) -> u64 {
        group
            .bytes_by_type
            .iter()
            .filter(|(t, _)| self.repack_types.iter().any(|r| r == *t))
            .map(|(_, b)| b)
            .sum()
    }
}

/// Bytes on one device, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct MemoryBreakdown {
    pub weights: u64,
    /// Second copy of weights the CPU backend repacked (host only).
    pub repacked: u64,
    pub kv: u64,
    /// Allocated compute buffer.
    pub compute: u64,
    pub overhead: u64,
}

impl MemoryBreakdown {
    /// What must be allocated (what decides out-of-memory).
    pub fn total(&self) -> u64 {
        self.buffers() + self.overhead
    }

    /// What the backend allocates as buffers: everything but the process
    /// overhead (what llama.cpp's dry run reports).
    pub fn buffers(&self) -> u64 {
        self.weights + self.repacked + self.kv + self.compute
    }
}

/// Which layers `n_gpu_layers` puts on the GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Placement {
    pub n_gpu_layers: u64,
    /// Repeating layers with index ≥ this are on the GPU.
    pub first_gpu_layer: u64,
    pub repeating_on_gpu: u64,
    pub output_on_gpu: bool,
    /// llama.cpp's `--n-cpu-moe N`: the routed experts of blocks 0..N stay
    /// in host memory wherever their block runs.
    #[serde(skip_serializing_if = "is_zero")]
    pub n_cpu_moe: u64,
    /// A GPU is there to op-offload to: with nothing offloaded (`n_gpu_layers`
    /// 0) and op offload on, llama.cpp still gives it a compute buffer (see
    /// [`op_offload_device_bytes`]). False from [`Placement::new`]: a
    /// CPU-only machine; [`Placement::with_gpu`] says there is one.
    #[serde(skip)]
    pub gpu_present: bool,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Placement {
    pub fn new(anatomy: &ModelAnatomy, n_gpu_layers: u64) -> Placement {
        let n_layer = anatomy.n_layer;
        let ngl = n_gpu_layers.min(n_layer + 1);
        let first_gpu_layer = (n_layer + 1).saturating_sub(ngl);
        Placement {
            n_gpu_layers: ngl,
            first_gpu_layer,
            repeating_on_gpu: n_layer.saturating_sub(first_gpu_layer),
            output_on_gpu: ngl >= 1,
            n_cpu_moe: 0,
            gpu_present: false,
        }
    }

    /// The same offload on a machine whose GPU llama.cpp sees (`present`).
    pub fn with_gpu(mut self, present: bool) -> Placement {
        self.gpu_present = present;
        self
    }

    /// The same offload with the routed experts of the first `n` blocks
    /// kept in host memory (`--n-cpu-moe n`).
    pub fn with_cpu_moe(mut self, n: u64) -> Placement {
        self.n_cpu_moe = n;
        self
    }

    pub fn layer_on_gpu(&self, il: u64) -> bool {
        il >= self.first_gpu_layer
    }

    /// Whether block `il`'s routed experts are on the GPU.
    pub fn experts_on_gpu(&self, il: u64) -> bool {
        self.layer_on_gpu(il) && il >= self.n_cpu_moe
    }
}

/// Predicted memory of host and GPU for one placement and context.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MemoryPrediction {
    pub placement: Placement,
    pub host: MemoryBreakdown,
    pub gpu: MemoryBreakdown,
    /// Expected peak RSS of a benchmark worker at the worst a prompt
    /// reaches: full micro-batches at a full context ([`resident_bytes`]
    /// for one test).
    pub host_resident: u64,
}

/// Compute buffer bytes for one device (see the module doc).
pub fn compute_buffer_bytes(a: &ModelAnatomy, ctx: &ContextShape) -> u64 {
    let n_ff = a.n_ff.unwrap_or(4 * a.n_embd);
    let activations = 4 * ctx.n_ubatch * (a.n_vocab + 4 * a.n_embd + 2 * n_ff);
    let mask = 2 * ctx.n_ubatch * ctx.n_ctx;
    let scores = if ctx.flash_attn {
        0
    } else {
        4 * a.n_head * ctx.n_ubatch * ctx.n_ctx
    };
    activations + mask + scores
}

/// Batches from this many tokens have their matrix products op-offloaded
/// (ggml-cuda's and ggml-vulkan's default; GGML_OP_OFFLOAD_MIN_BATCH).
pub const OP_OFFLOAD_MIN_BATCH: u64 = 32;

/// The device buffers llama.cpp allocates with a GPU present, nothing
/// offloaded (`n_gpu_layers` 0) and op offload on: its scheduler plans the
/// prompt graph's matrix products on the device, so the device gets a
/// compute buffer for them, plus room for the largest weight it copies over,
/// the output projection (the token embeddings when tied). 0 for
/// micro-batches under [`OP_OFFLOAD_MIN_BATCH`]. Measured on a Vulkan device
/// (SmolLM2, n_ctx 512, n_ubatch 64 / 256): 42.06 / 80.59 MiB against 42.06 / 82.19
/// predicted.
pub fn op_offload_device_bytes(a: &ModelAnatomy, ctx: &ContextShape) -> u64 {
    if ctx.n_ubatch < OP_OFFLOAD_MIN_BATCH {
        return 0;
    }
    let staged = if a.tied_embeddings {
        a.input.bytes
    } else {
        a.output.bytes
    };
    compute_buffer_bytes(a, ctx) + staged
}

/// The device compute buffer's need when offloaded layers keep their routed
/// experts in host memory (`n_cpu_moe`) and op offload is on: the scheduler
/// runs a prompt micro-batch's expert products on the device and first
/// copies the host expert tensor there (the used experts' rows, into a
/// tensor of full size), so the buffer holds the largest such tensor plus
/// the products' activations, 4 B × n_ubatch × (2·n_embd + 4·n_ff_exp·used).
/// 0 without such experts or under [`OP_OFFLOAD_MIN_BATCH`] tokens. Measured
/// on llama.cpp's Vulkan backend on llvmpipe (`results/2026-12-02-vm-vulkan-llvmpipe-moe`:
/// a 4-block qwen3moe, experts of 34 MiB per tensor, n_ubatch 64): the device
/// compute buffer is 13.1 MiB with every expert on the device and 36.6 MiB
/// with any held back; this predicts 36.5.
pub fn host_experts_copy_bytes(a: &ModelAnatomy, placement: &Placement, ctx: &ContextShape) -> u64 {
    if !ctx.op_offload || ctx.n_ubatch < OP_OFFLOAD_MIN_BATCH {
        return 0;
    }
    let held: Vec<&lmtune_gguf::Layer> = a
        .layers
        .iter()
        .enumerate()
        .filter(|(il, _)| {
            placement.layer_on_gpu(*il as u64) && !placement.experts_on_gpu(*il as u64)
        })
        .map(|(_, l)| l)
        .collect();
    let Some(largest) = held.iter().max_by_key(|l| l.routed_experts.largest_bytes) else {
        return 0;
    };
    let experts = &largest.routed_experts;
    let (used, count) = a.expert_routing().unwrap_or((1, 1));
    let n_ff_exp = experts.largest_params / (a.n_embd.max(1) * count.max(1));
    experts.largest_bytes + 4 * ctx.n_ubatch * (2 * a.n_embd + 4 * n_ff_exp * used)
}

/// llama.cpp's cache cells in use, as a graph sees them: padded to 256, at
/// most the context.
fn cells_in_use(n: u64, n_ctx: u64) -> u64 {
    n.max(1).div_ceil(256).saturating_mul(256).min(n_ctx.max(1))
}

/// The host compute buffer's bytes one decode call touches: `n_tokens`
/// tokens (at most a micro-batch) against the first `n_kv` cache cells,
/// with one row of logits out (see the module doc). At most the buffer.
pub fn touched_compute_bytes(
    a: &ModelAnatomy,
    ctx: &ContextShape,
    n_tokens: u64,
    n_kv: u64,
) -> u64 {
    let n_ff = a.n_ff.unwrap_or(4 * a.n_embd);
    let n = n_tokens.clamp(1, ctx.n_ubatch.max(1));
    let n_kv = cells_in_use(n_kv, ctx.n_ctx);
    let activations = 4 * n * (4 * a.n_embd + 2 * n_ff) + 4 * a.n_vocab;
    // One mask per cache: the global one and the sliding window's.
    let masks = if a.sliding_window.is_some() { 2 } else { 1 };
    let mask = masks * 2 * n * n_kv;
    let scores = if ctx.flash_attn {
        0
    } else {
        4 * a.n_head * n * n_kv
    };
    (activations + mask + scores).min(compute_buffer_bytes(a, ctx))
}

/// What a test keeps resident on the host at its peak: everything allocated
/// there, except that of the compute buffer only what its calls touch. A
/// prompt of `n_prompt` tokens at depth `n_depth` touches a micro-batch's
/// activations against the cells in use after it; generation (`n_prompt`
/// 0) touches one token's against the cells after `n_gen` more.
pub fn resident_bytes(
    a: &ModelAnatomy,
    m: &MemoryPrediction,
    ctx: &ContextShape,
    n_prompt: u64,
    n_gen: u64,
    n_depth: u64,
) -> u64 {
    let touched = if n_prompt > 0 {
        touched_compute_bytes(a, ctx, n_prompt, n_depth + n_prompt)
    } else {
        touched_compute_bytes(a, ctx, 1, n_depth + n_gen.max(1))
    };
    m.host.total() - m.host.compute + touched
}

pub fn predict_memory(
    a: &ModelAnatomy,
    n_gpu_layers: u64,
    ctx: &ContextShape,
    cpu: &CpuBackend,
) -> MemoryPrediction {
    predict_memory_at(a, Placement::new(a, n_gpu_layers), ctx, cpu)
}

/// [`predict_memory`] for any placement (expert offload included).
pub fn predict_memory_at(
    a: &ModelAnatomy,
    placement: Placement,
    ctx: &ContextShape,
    cpu: &CpuBackend,
) -> MemoryPrediction {
    let mut host = MemoryBreakdown {
        overhead: HOST_OVERHEAD_BYTES,
        ..Default::default()
    };
    let mut gpu = MemoryBreakdown::default();
    host.weights += a.input.bytes + a.other.bytes;
    if placement.output_on_gpu {
        // Tied embeddings: llama.cpp loads a copy of token_embd as the output
        // projection into the output layer's buffer.
        gpu.weights += a.output.bytes + if a.tied_embeddings { a.input.bytes } else { 0 };
    } else {
        host.weights += a.output.bytes;
        host.repacked += cpu.repacked_bytes(&a.output);
    }
    for (il, layer) in a.layers.iter().enumerate() {
        if placement.layer_on_gpu(il as u64) {
            gpu.weights += layer.tensors.bytes;
            if !placement.experts_on_gpu(il as u64) {
                // --n-cpu-moe: the routed experts stay in host memory.
                gpu.weights -= layer.routed_experts.bytes;
                host.weights += layer.routed_experts.bytes;
                host.repacked += cpu.repacked_bytes(&layer.routed_experts);
            }
        } else {
            host.weights += layer.tensors.bytes;
            host.repacked += cpu.repacked_bytes(&layer.tensors);
        }
    }
    let kv = |on_gpu: bool| {
        a.kv_bytes(
            ctx.n_ctx,
            ctx.n_ubatch,
            ctx.swa_full,
            ctx.type_k,
            ctx.type_v,
            |il| placement.layer_on_gpu(il as u64) == on_gpu,
        )
    };
    host.kv = kv(false);
    gpu.kv = kv(true);
    let compute = compute_buffer_bytes(a, ctx);
    host.compute = compute;
    if placement.n_gpu_layers > 0 {
        gpu.compute = compute.max(host_experts_copy_bytes(a, &placement, ctx));
        gpu.overhead = GPU_OVERHEAD_BYTES;
    } else if placement.gpu_present && ctx.op_offload {
        // Nothing offloaded, but the prompt's matrix products still run on
        // the GPU: its compute buffer and the staged output projection.
        gpu.compute = op_offload_device_bytes(a, ctx);
        if gpu.compute > 0 {
            gpu.overhead = GPU_OVERHEAD_BYTES;
        }
    }
    // The worst a prompt reaches: full micro-batches at a full context.
    let host_resident =
        host.total() - host.compute + touched_compute_bytes(a, ctx, ctx.n_ubatch, ctx.n_ctx);
    MemoryPrediction {
        placement,
        host,
        gpu,
        host_resident,
    }
}
