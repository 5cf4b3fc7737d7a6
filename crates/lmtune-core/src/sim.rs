//! The declared hardware of the `sim` backend: a deterministic stand-in for a
//! real backend, for tests and what-if runs. Its numbers are planted by this
//! profile, never measured, and every record it makes says "simulated".

use serde::{Deserialize, Serialize};

/// `[backend.sim]` in a scenario. Times follow the same shape as the models
/// `lmtune fit` fits, so a fit can be checked against the planted values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimProfile {
    /// Read bandwidth of one thread, GB/s; threads add bandwidth up to `thread_saturation`.
    pub cpu_bandwidth_gb_per_s: f64,
    pub thread_saturation: u32,
    /// Share of the bandwidth generation achieves.
    pub eta: f64,
    /// Fixed cost per generated token, ms.
    pub t_fixed_ms: f64,
    /// Prompt processing: ms per token with one thread (divided by the
    /// effective threads) …
    pub pp_ms_per_token_1_thread: f64,
    /// … plus this many ms per micro-batch, spread over its tokens.
    pub pp_ms_per_ubatch: f64,
    /// Memory beyond weights and KV cache: MiB, MiB per micro-batch token,
    /// MiB per micro-batch token per 1000 tokens of context.
    pub mem_overhead_mib: f64,
    pub mem_mib_per_ubatch_token: f64,
    pub mem_mib_per_ubatch_token_per_1k_ctx: f64,
    /// Relative standard deviation of the samples (seeded Gaussian noise).
    pub noise: f64,
    pub seed: u64,
    /// A simulated GPU: its memory, MiB (0: none; `n_gpu_layers` is then
    /// ignored, as by a CPU-only llama.cpp). Offloaded layers live there
    /// (planner's memory model plus the residue above); a point that needs
    /// more is out of memory.
    pub gpu_vram_mib: f64,
    /// Its read bandwidth, GB/s (generation reads offloaded layers at η × this).
    pub gpu_bandwidth_gb_per_s: f64,
    /// How much faster it processes prompt tokens than the CPU at one thread.
    pub gpu_pp_speedup: f64,
}

impl Default for SimProfile {
    fn default() -> Self {
        SimProfile {
            cpu_bandwidth_gb_per_s: 12.0,
            thread_saturation: 4,
            eta: 0.7,
            t_fixed_ms: 2.0,
            pp_ms_per_token_1_thread: 6.0,
            pp_ms_per_ubatch: 40.0,
            mem_overhead_mib: 30.0,
            mem_mib_per_ubatch_token: 0.02,
            mem_mib_per_ubatch_token_per_1k_ctx: 0.004,
            noise: 0.01,
            seed: 1,
            gpu_vram_mib: 0.0,
            gpu_bandwidth_gb_per_s: 1000.0,
            gpu_pp_speedup: 20.0,
        }
    }
}

impl SimProfile {
    pub fn effective_threads(&self, threads: u32) -> f64 {
        f64::from(threads.min(self.thread_saturation.max(1)).max(1))
    }

    /// Planted ms per generated token for `bytes_per_token` read.
    pub fn tg_ms(&self, bytes_per_token: u64, threads: u32) -> f64 {
        let bw = self.cpu_bandwidth_gb_per_s * self.effective_threads(threads) * 1e9;
        bytes_per_token as f64 / (self.eta * bw) * 1e3 + self.t_fixed_ms
    }

    /// Planted ms per generated token with `gpu_bytes` of it read on the GPU.
    pub fn tg_ms_split(&self, cpu_bytes: u64, gpu_bytes: u64, threads: u32) -> f64 {
        let gpu_bw = self.gpu_bandwidth_gb_per_s * 1e9;
        self.tg_ms(cpu_bytes, threads) + gpu_bytes as f64 / (self.eta * gpu_bw) * 1e3
    }

    /// Planted ms per prompt token at micro-batch `ubatch`.
    pub fn pp_ms(&self, threads: u32, ubatch: u32) -> f64 {
        self.pp_ms_per_token_1_thread / self.effective_threads(threads)
            + self.pp_ms_per_ubatch / f64::from(ubatch.max(1))
    }

    /// Planted MiB beyond weights and KV.
    pub fn residue_mib(&self, ubatch: u32, n_ctx: u32) -> f64 {
        let u = f64::from(ubatch);
        self.mem_overhead_mib
            + self.mem_mib_per_ubatch_token * u
            + self.mem_mib_per_ubatch_token_per_1k_ctx * u * f64::from(n_ctx) / 1000.0
    }
}
