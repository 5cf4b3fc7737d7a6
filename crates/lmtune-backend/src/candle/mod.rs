//! The candle backend: llama-family GGUF models on candle (pure Rust), in
//! process, measured the way the llama.cpp backend measures.
//!
//! Knobs, mapped honestly (the scenario rejects the ones candle lacks):
//! - `threads`: candle sizes its CPU pools (rayon and the barrier pool of
//!   the quantized matmuls) once per process, so a worker runs one thread
//!   count: the runner starts a worker per count with `CANDLE_NUM_THREADS`
//!   and `RAYON_NUM_THREADS` set, and a point asking for another count fails.
//! - `n_batch`: the prompt is decoded in chunks of `n_batch` tokens; candle
//!   has no micro-batches, so `n_ubatch` is recorded equal to `n_batch`.
//! - `n_ctx`: the bound of every block's KV cache (preallocated to it on
//!   first use), like a llama.cpp context; the cache is f32 and attention is
//!   the plain matmul kind (records say `type_k/v = f32`, `flash_attn = off`).
//! - `n_gpu_layers`: layer placement ([`model::Placement`]); blocks go to the
//!   offload device (`cuda:0` unless `[backend.candle] offload_device` says
//!   otherwise; `cpu` places them on a second CPU device, for testing).

pub mod error;
pub mod model;
pub mod placement;

use std::path::Path;
use std::time::Instant;

use candle_core::Device;
use lmtune_core::fingerprint::BackendDevice;
use lmtune_core::knobs::LoadParams;
use lmtune_core::record::Measurement;
use lmtune_core::scenario::{MeasureSpec, Point};

use crate::repeat::{repeat, RandomTokens, Sample};
use crate::{Backend, BackendError, BackendInfo};
use error::CandleError;

use model::{Model, Placement, Slot};

/// The candle version this backend is pinned to (see the workspace Cargo.toml).
pub const CANDLE_VERSION: &str = "0.11.1";

/// CPU features this binary was compiled for (`-C target-cpu=native` in
/// .cargo/config.toml): candle picks its SIMD kernels at compile time.
pub const TARGET_FEATURES: &str = env!("LMTUNE_TARGET_FEATURES");

pub use lmtune_core::scenario::{CandleConfig, OffloadDevice};

pub struct CandleBackend {
    config: CandleConfig,
    /// `config.offload_device`, parsed.
    offload: OffloadDevice,
    model: Option<Model>,
    verbose: bool,
}

impl CandleBackend {
    pub fn new(config: CandleConfig, verbose: bool) -> Result<Self, BackendError> {
        let offload = config
            .offload()
            .map_err(|(problem, fix)| BackendError::Setup {
                message: format!("[backend.candle] {problem}; {fix}"),
                log: vec![],
            })?;
        Ok(CandleBackend {
            config,
            offload,
            model: None,
            verbose,
        })
    }

    /// The threads candle's pools run with in this process.
    pub fn pool_threads() -> usize {
        candle_core::utils::get_num_threads()
    }
}

/// Whether this build has candle's CUDA kernels.
pub fn cuda_compiled() -> bool {
    cfg!(feature = "candle-cuda")
}

fn offload_slot(offload: OffloadDevice) -> Result<Slot, CandleError> {
    match offload {
        OffloadDevice::Cpu => Ok(Slot {
            label: "cpu:1".into(),
            device: Device::Cpu,
        }),
        OffloadDevice::Cuda(n) => {
            if !cuda_compiled() {
                return Err(CandleError::CudaNotCompiled(n));
            }
            Device::new_cuda(n)
                .map(|device| Slot {
                    label: format!("cuda:{n}"),
                    device,
                })
                .map_err(|source| CandleError::CudaOpen { device: n, source })
        }
    }
}

impl Backend for CandleBackend {
    fn info(&self) -> BackendInfo {
        let mut devices = vec![BackendDevice {
            name: "cpu".into(),
            description: "candle CPU".into(),
            kind: "cpu".into(),
            memory_total_bytes: 0,
        }];
        // A GPU is listed when the scenario names one, not for the default.
        if let (OffloadDevice::Cuda(n), Some(_)) = (self.offload, &self.config.offload_device) {
            devices.push(BackendDevice {
                name: format!("cuda:{n}"),
                description: "candle offload device".into(),
                kind: "gpu".into(),
                memory_total_bytes: 0,
            });
        }
        BackendInfo {
            name: "candle".into(),
            version: format!("candle {CANDLE_VERSION}"),
            build: format!(
                "target features: {TARGET_FEATURES}; CUDA: {}",
                if cuda_compiled() {
                    "compiled"
                } else {
                    "not compiled"
                },
            ),
            devices,
        }
    }

    fn load(
        &mut self,
        path: &Path,
        load: &LoadParams,
        _launch: Option<&lmtune_core::openai::ServerLaunch>,
    ) -> Result<(), BackendError> {
        self.model = None;
        let failed = |message: String| BackendError::LoadFailed {
            message,
            log: vec![],
        };
        let host = Slot {
            label: "cpu".into(),
            device: Device::Cpu,
        };
        let offload = self.offload;
        // Placement needs the layer count: Model::load asks once it has read the header.
        let place = |hp: &model::Hparams| -> Result<Placement, CandleError> {
            Ok(if load.n_gpu_layers == 0 {
                Placement::single(hp.n_layer, host)
            } else {
                let slot = offload_slot(offload)?;
                Placement::offload(hp.n_layer, load.n_gpu_layers as usize, host, slot)
            })
        };
        let model = Model::load(path, place).map_err(|e| {
            let message = format!("candle could not load {}: {e}", path.display());
            if e.is_out_of_memory() {
                BackendError::OutOfMemory {
                    message,
                    log: vec![],
                }
            } else {
                failed(message)
            }
        })?;
        if self.verbose {
            eprintln!("candle: {}", model.placement.describe());
        }
        self.model = Some(model);
        Ok(())
    }

    fn run(
        &mut self,
        point: &Point,
        measure: &MeasureSpec,
        seed: u64,
        progress: &mut dyn FnMut(u32),
    ) -> Result<Measurement, BackendError> {
        let model = self.model.as_ref().ok_or(BackendError::NotLoaded)?;
        let threads = Self::pool_threads();
        if point.ctx.threads as usize != threads {
            return Err(BackendError::PointFailed {
                message: format!("this candle worker runs {threads} threads (candle sizes its thread pools once per process) but the point asks for {}; the runner starts one worker per thread count", point.ctx.threads),
                log: vec![],
            });
        }
        let fail = |e: candle_core::Error| point_error(&e);
        let n_ctx = point.ctx.n_ctx as usize;
        let n_batch = point.ctx.n_batch.max(1) as usize;
        let mut ctx = model
            .new_context(n_ctx)
            .map_err(|message| BackendError::PointFailed {
                message: format!("candle could not create the context: {message}"),
                log: vec![],
            })?;
        let mut tokens = RandomTokens::new(seed, model.hp.n_vocab as u32, model.hp.bos);
        let sync = |model: &Model| -> Result<(), BackendError> {
            for slot in &model.placement.devices {
                slot.device.synchronize().map_err(fail)?;
            }
            Ok(())
        };
        let mut buf = Vec::with_capacity(n_batch);
        let mut prompt = |ctx: &mut model::Context,
                          n: usize,
                          tokens: &mut RandomTokens|
         -> Result<(), BackendError> {
            let mut done = 0;
            while done < n {
                let chunk = (n - done).min(n_batch);
                tokens.chunk(chunk, done == 0, &mut buf);
                model.forward(ctx, &buf).map_err(fail)?;
                done += chunk;
            }
            sync(model)
        };
        let generate = |ctx: &mut model::Context,
                        n: usize,
                        tokens: &mut RandomTokens|
         -> Result<(), BackendError> {
            let mut token = tokens.first();
            for _ in 0..n {
                model.forward(ctx, &[token]).map_err(fail)?;
                sync(model)?;
                token = tokens.next_token();
            }
            Ok(())
        };
        let test = point.test;
        for _ in 0..measure.warmup {
            if test.n_prompt > 0 {
                prompt(&mut ctx, (test.n_prompt as usize).min(n_batch), &mut tokens)?;
            }
            if test.n_gen > 0 {
                generate(&mut ctx, 1, &mut tokens)?;
            }
            ctx.clear();
        }
        let mut measurement = repeat(measure.repetitions, test.timed_tokens(), progress, |_| {
            ctx.clear();
            if test.n_depth > 0 {
                prompt(&mut ctx, test.n_depth as usize, &mut tokens)?;
            }
            let start = Instant::now();
            if test.n_prompt > 0 {
                prompt(&mut ctx, test.n_prompt as usize, &mut tokens)?;
            }
            if test.n_gen > 0 {
                generate(&mut ctx, test.n_gen as usize, &mut tokens)?;
            }
            Ok(Sample {
                ns: start.elapsed().as_nanos() as u64,
                backend_perf_ts: None,
            })
        })?;
        measurement.n_ctx_actual = Some(point.ctx.n_ctx);
        measurement.n_batch_actual = Some(n_batch as u32);
        measurement.n_ubatch_actual = Some(n_batch as u32);
        measurement.backend_log = vec![format!(
            "candle: {}; {threads} threads",
            model.placement.describe()
        )];
        measurement.placement = Some(Box::new(model.placement.record()));
        Ok(measurement)
    }

    fn greedy(&mut self, prompt: &[u32], n: u32, n_batch: u32) -> Result<Vec<u32>, BackendError> {
        let model = self.model.as_ref().ok_or(BackendError::NotLoaded)?;
        model
            .greedy(prompt, n as usize, n_batch as usize)
            .map_err(|message| BackendError::PointFailed {
                message: format!("candle greedy decoding failed: {message}"),
                log: vec![],
            })
    }
}

fn point_error(e: &candle_core::Error) -> BackendError {
    let message = format!("candle: {e}");
    if error::is_out_of_memory(e) {
        BackendError::OutOfMemory {
            message,
            log: vec![],
        }
    } else {
        BackendError::PointFailed {
            message,
            log: vec![],
        }
    }
}
