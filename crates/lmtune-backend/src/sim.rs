//! The `sim` backend: numbers planted by a [`SimProfile`] over the real
//! model's anatomy, with seeded noise. Deterministic for a given profile and
//! point; labelled simulated in every record (backend "sim").

use std::path::Path;

use lmtune_core::knobs::{LoadParams, TestKind};
use lmtune_core::record::Measurement;
use lmtune_core::scenario::{MeasureSpec, Point};
use lmtune_core::sim::SimProfile;
use lmtune_gguf::{GgufFile, ModelAnatomy};
use lmtune_model::{bytes_per_token, predict_memory_at, ContextShape, CpuBackend, Placement};

use crate::repeat::{repeat, Sample};
use crate::{Backend, BackendError, BackendInfo};

pub struct SimBackend {
    profile: SimProfile,
    anatomy: Option<ModelAnatomy>,
}

impl SimBackend {
    pub fn new(profile: SimProfile) -> SimBackend {
        SimBackend {
            profile,
            anatomy: None,
        }
    }
}

/// Standard normal samples from a seeded xorshift (Box–Muller).
struct Noise(u64);

impl Noise {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (u1, u2) = (self.uniform(), self.uniform());
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

impl Backend for SimBackend {
    fn info(&self) -> BackendInfo {
        BackendInfo {
            name: "sim".into(),
            version: "sim (simulated numbers, not measurements)".into(),
            build: serde_json::to_string(&self.profile).unwrap_or_default(),
            devices: vec![lmtune_core::fingerprint::BackendDevice {
                name: "SIM-CPU".into(),
                description: "simulated CPU".into(),
                kind: "cpu".into(),
                memory_total_bytes: 0,
            }],
        }
    }

    fn load(
        &mut self,
        model: &Path,
        _load: &LoadParams,
        _launch: Option<&lmtune_core::openai::ServerLaunch>,
    ) -> Result<(), BackendError> {
        let anatomy = GgufFile::open(model)
            .and_then(|f| f.anatomy())
            .map_err(|e| BackendError::LoadFailed {
                message: e.to_string(),
                log: Vec::new(),
            })?;
        self.anatomy = Some(anatomy);
        Ok(())
    }

    fn run(
        &mut self,
        point: &Point,
        measure: &MeasureSpec,
        seed: u64,
        progress: &mut dyn FnMut(u32),
    ) -> Result<Measurement, BackendError> {
        let a = self.anatomy.as_ref().ok_or(BackendError::NotLoaded)?;
        let p = self.profile;
        let c = &point.ctx;
        let ubatch = c.effective_ubatch();
        let ctx = ContextShape {
            n_ctx: u64::from(c.n_ctx),
            n_ubatch: u64::from(ubatch),
            type_k: c.type_k.ggml_type(),
            type_v: c.type_v.ggml_type(),
            flash_attn: true,
            swa_full: c.swa_full,
            op_offload: c.op_offload,
        };
        // Without a simulated GPU, n_gpu_layers is ignored (a CPU-only build).
        let ngl = if p.gpu_vram_mib > 0.0 {
            u64::from(point.load.n_gpu_layers)
        } else {
            0
        };
        // MoE-aware: experts kept in host memory (n_cpu_moe) are read there.
        let placement = Placement::new(a, ngl).with_cpu_moe(point.load.experts_on_host(a.n_layer));
        let memory = predict_memory_at(a, placement, &ctx, &CpuBackend::default());
        let residue = (p.residue_mib(ubatch, c.n_ctx) * 1024.0 * 1024.0) as u64;
        let vram = (ngl > 0).then(|| memory.gpu.total() + residue);
        if let Some(need) = vram {
            let have = (p.gpu_vram_mib * 1024.0 * 1024.0) as u64;
            if need > have {
                return Err(BackendError::OutOfMemory {
                    message: format!(
                        "simulated: n_gpu_layers = {ngl} needs {:.1} MiB of VRAM, the profile's GPU has {:.1} MiB",
                        need as f64 / 1048576.0,
                        p.gpu_vram_mib
                    ),
                    log: Vec::new(),
                });
            }
        }
        let test = point.test;
        let depth = u64::from(test.n_depth) + u64::from(test.n_gen) / 2;
        let (cpu_bytes, gpu_bytes) = bytes_per_token(a, &placement, &ctx, depth);
        // Expected time of one repetition; offloaded layers process prompt
        // tokens `gpu_pp_speedup` times faster.
        let pp_ubatch = ubatch.min(test.n_prompt.max(1));
        let offloaded = placement.repeating_on_gpu as f64 / a.n_layer.max(1) as f64;
        let pp_factor = 1.0 - offloaded + offloaded / p.gpu_pp_speedup.max(1.0);
        let ms = f64::from(test.n_prompt) * p.pp_ms(c.threads, pp_ubatch) * pp_factor
            + f64::from(test.n_gen) * p.tg_ms_split(cpu_bytes, gpu_bytes, c.threads);
        let kind = test.kind();
        let mut noise = Noise(p.seed ^ seed.rotate_left(17) ^ 0x5EED);
        let mut m = repeat(measure.repetitions, test.timed_tokens(), progress, |_| {
            let factor = (1.0 + p.noise * noise.normal()).max(0.05);
            Ok(Sample {
                ns: (ms * factor * 1e6) as u64,
                backend_perf_ts: None,
            })
        })?;
        let structural = memory.host.weights + memory.host.kv;
        m.rss_peak_bytes = Some(structural + residue);
        m.simulated_vram_bytes = vram;
        m.n_ctx_actual = Some(c.n_ctx);
        m.n_batch_actual = Some(c.n_batch.min(c.n_ctx));
        m.n_ubatch_actual = Some(ubatch);
        m.backend_log = vec![format!(
            "simulated {} point: numbers come from the declared profile, not from hardware",
            if kind == TestKind::Tg { "tg" } else { "pp" }
        )];
        Ok(m)
    }
}
