//! The llama.cpp backend, in-process through the `llama-cpp-2` crate.
//!
//! It measures as llama.cpp's `llama-bench` does: random tokens; pp decodes
//! `n_prompt` tokens in chunks of the context's *actual* `n_batch()` (llama.cpp
//! clamps it to `n_ctx`, and a larger decode would hit a C assert), then
//! synchronizes; tg decodes one token at a time and synchronizes after each;
//! `n_depth` tokens are prefilled untimed; the cache is cleared before every
//! repetition; warm-up is not counted; tokenization and sampling are excluded.
//! llama.cpp's own perf counters are read for every repetition too.

mod applied;
mod devices;
mod dry_run;
mod fit;
mod log;
mod model_params;
mod placement;

use std::num::NonZeroU32;
use std::path::Path;
use std::time::Instant;

use llama_cpp_2::context::params::{KvCacheType, LlamaContextParams};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use lmtune_core::fingerprint::{BackendDevice, LlamaCppBuild};
use lmtune_core::knobs::{ContextParams, FlashAttn, KvType, LoadParams};
use lmtune_core::record::{Measurement, Placement};
use lmtune_core::scenario::{MeasureSpec, Point};

use crate::repeat::{repeat, RandomTokens, Sample};
use crate::{Backend, BackendError, BackendInfo};

/// The crate version this backend is pinned to (see the workspace Cargo.toml).
const LLAMA_CPP_2_VERSION: &str = "0.1.160";

/// The crate version and the llama.cpp build it compiled, as ggml reports
/// it (llama-bench's `build_commit`): "unknown" when the sources came without
/// git (crates.io), which llama-bench built from the same sources prints too.
/// llama.cpp keeps its build number in `common`, which is not linked: 0,
/// llama.cpp's own value without git.
fn version() -> String {
    let text = |p: *const std::ffi::c_char| {
        if p.is_null() {
            "unknown".to_string()
        } else {
            // SAFETY: ggml returns static NUL-terminated strings.
            unsafe { std::ffi::CStr::from_ptr(p) }
                .to_string_lossy()
                .into_owned()
        }
    };
    // SAFETY: both take no arguments and return static strings.
    let (commit, ggml) = unsafe {
        (
            text(llama_cpp_sys_2::ggml_commit()),
            text(llama_cpp_sys_2::ggml_version()),
        )
    };
    let build = LlamaCppBuild { number: 0, commit };
    format!(
        "llama-cpp-2 {LLAMA_CPP_2_VERSION}, {}, ggml {ggml}",
        build.label()
    )
}

pub struct LlamaCppBackend {
    // Field order matters: the models must drop before the backend.
    model: Option<LlamaModel>,
    /// The same model loaded with `no_alloc`, for llama.cpp's dry run of
    /// each point's context; its load error when that failed.
    dry_model: Option<Result<dry_run::DryModel, BackendError>>,
    /// A no_alloc model kept for [`Backend::dry_run`] requests, by file and
    /// load parameters.
    dry_models: Option<((std::path::PathBuf, LoadParams), dry_run::DryModel)>,
    /// What the loaded model was loaded with (llama.cpp keeps pointers into it).
    model_params: Option<model_params::ModelParams>,
    backend: LlamaBackend,
    /// The loaded model's `n_gpu_layers`, the GPU devices it could go to,
    /// and its placement log lines.
    loaded_ngl: u32,
    loaded_gpus: Vec<String>,
    model_placement_lines: Vec<String>,
    /// The tensors the load's overrides placed (empty without overrides).
    overridden: Vec<lmtune_core::record::OverriddenTensors>,
}

impl LlamaCppBackend {
    /// `ggml_backends`: backend libraries (`libggml-cuda.so`, …) to load at
    /// run time, before any model; they must come from the very llama.cpp
    /// source this crate vendors (ggml checks the API version).
    pub fn new(verbose: bool, ggml_backends: &[std::path::PathBuf]) -> Result<Self, BackendError> {
        log::install(verbose);
        for path in ggml_backends {
            devices::load_ggml_backend(path)?;
        }
        let backend = LlamaBackend::init().map_err(|e| BackendError::LoadFailed {
            message: format!("llama.cpp backend init failed: {e}"),
            log: log::take(),
        })?;
        Ok(LlamaCppBackend {
            model: None,
            dry_model: None,
            dry_models: None,
            model_params: None,
            backend,
            loaded_ngl: 0,
            loaded_gpus: Vec::new(),
            model_placement_lines: Vec::new(),
            overridden: Vec::new(),
        })
    }
}

impl Backend for LlamaCppBackend {
    fn info(&self) -> BackendInfo {
        // SAFETY: returns a static NUL-terminated string.
        let system =
            unsafe { std::ffi::CStr::from_ptr(llama_cpp_sys_2::llama_print_system_info()) }
                .to_string_lossy()
                .trim()
                .to_string();
        use llama_cpp_2::LlamaBackendDeviceType as Kind;
        let devices = llama_cpp_2::list_llama_ggml_backend_devices()
            .into_iter()
            .map(|d| BackendDevice {
                name: d.name,
                description: d.description,
                kind: match d.device_type {
                    Kind::Cpu => "cpu",
                    Kind::Gpu => "gpu",
                    Kind::IntegratedGpu => "igpu",
                    Kind::Accelerator => "accel",
                    Kind::Unknown => "unknown",
                }
                .into(),
                memory_total_bytes: d.memory_total as u64,
            })
            .collect();
        BackendInfo {
            name: "llama-cpp".into(),
            version: version(),
            build: system,
            devices,
        }
    }

    fn load(
        &mut self,
        model: &Path,
        load: &LoadParams,
        _launch: Option<&lmtune_core::openai::ServerLaunch>,
    ) -> Result<(), BackendError> {
        self.model = None;
        self.dry_model = None;
        log::take();
        log::take_placement();
        let params = model_params::ModelParams::new(load, false);
        let loaded = LlamaModel::load_from_file(&self.backend, model, params.get());
        self.model_params = Some(params);
        match loaded {
            Ok(m) => {
                self.model = Some(m);
                self.loaded_ngl = load.n_gpu_layers;
                self.loaded_gpus = devices::gpu_devices();
                self.model_placement_lines = log::take_placement();
                self.overridden = if load.has_overrides() {
                    let sizes: std::collections::HashMap<String, u64> =
                        lmtune_gguf::GgufFile::open(model)
                            .map(|f| f.tensors.into_iter().map(|t| (t.name, t.n_bytes)).collect())
                            .unwrap_or_default();
                    placement::overridden(&self.model_placement_lines, |name| {
                        sizes.get(name).copied().unwrap_or(0)
                    })
                } else {
                    Vec::new()
                };
                // After the real load has said where its layers went.
                self.dry_model = Some(dry_run::DryModel::load(&self.backend, model, load));
                log::take_placement();
                Ok(())
            }
            Err(e) => {
                let log = log::take();
                let reason = log.last().cloned().unwrap_or_else(|| e.to_string());
                let message = format!("llama.cpp could not load {}: {reason}", model.display());
                Err(if crate::process::logs_out_of_memory(&log) {
                    BackendError::OutOfMemory { message, log }
                } else {
                    BackendError::LoadFailed { message, log }
                })
            }
        }
    }

    fn run(
        &mut self,
        point: &Point,
        measure: &MeasureSpec,
        seed: u64,
        progress: &mut dyn FnMut(u32),
    ) -> Result<Measurement, BackendError> {
        let model = self.model.as_ref().ok_or(BackendError::NotLoaded)?;
        log::take();
        log::take_placement();
        let params = context_params(&point.ctx);
        let backend_params = applied::passed(&point.load, &params);
        let dry_run = self.dry_model.as_ref().map(|m| {
            let run = match m {
                Ok(m) => m.context(&params),
                Err(e) => Err(e.clone()),
            };
            Box::new(run.unwrap_or_else(|error| lmtune_core::record::DryRun {
                error: Some(error.to_string()),
                ..Default::default()
            }))
        });
        log::take();
        log::take_placement();
        let mut ctx = model
            .new_context(&self.backend, params)
            .map_err(|e| fail(format!("llama.cpp could not create the context ({e})")))?;
        let context_lines = log::take_placement();
        let placement = Placement {
            overridden: self.overridden.clone(),
            ..placement::placement(
                model.n_layer(),
                self.loaded_ngl,
                &self.loaded_gpus,
                &self.model_placement_lines,
                &context_lines,
            )
        };
        let backend_applied = applied::applied(&context_lines);
        let n_batch = ctx.n_batch();
        let vocab = model.vocab();
        let mut tokens = RandomTokens::new(
            seed,
            model.n_vocab().max(1) as u32,
            vocab.should_add_bos().then(|| vocab.bos().0 as u32),
        );
        let test = point.test;

        for _ in 0..measure.warmup {
            // llama-bench's warm-up: the whole prompt, one generated token.
            if test.n_prompt > 0 {
                decode_prompt(&mut ctx, test.n_prompt, n_batch, &mut tokens)?;
            }
            if test.n_gen > 0 {
                decode_gen(&mut ctx, 1, &mut tokens)?;
            }
            ctx.clear_kv_cache();
        }

        let mut measurement = repeat(measure.repetitions, test.timed_tokens(), progress, |_rep| {
            ctx.clear_kv_cache();
            if test.n_depth > 0 {
                decode_prompt(&mut ctx, test.n_depth, n_batch, &mut tokens)?;
            }
            ctx.reset_timings();
            let start = Instant::now();
            if test.n_prompt > 0 {
                decode_prompt(&mut ctx, test.n_prompt, n_batch, &mut tokens)?;
            }
            if test.n_gen > 0 {
                decode_gen(&mut ctx, test.n_gen, &mut tokens)?;
            }
            let ns = start.elapsed().as_nanos() as u64;
            Ok(Sample {
                ns,
                backend_perf_ts: perf_tokens_per_s(&mut ctx),
            })
        })?;
        measurement.n_ctx_actual = Some(ctx.n_ctx());
        measurement.n_batch_actual = Some(ctx.n_batch());
        measurement.n_ubatch_actual = Some(ctx.n_ubatch());
        measurement.backend_log = log::take();
        measurement.placement = Some(Box::new(placement));
        measurement.backend_params = backend_params;
        measurement.backend_applied = backend_applied;
        measurement.dry_run = dry_run;
        Ok(measurement)
    }

    fn greedy(&mut self, prompt: &[u32], n: u32, n_batch: u32) -> Result<Vec<u32>, BackendError> {
        let model = self.model.as_ref().ok_or(BackendError::NotLoaded)?;
        log::take();
        if prompt.is_empty() {
            return Err(fail("the prompt is empty".into()));
        }
        let n_ctx = prompt.len() as u32 + n;
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get() as i32);
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(n_ctx))
            .with_n_batch(n_batch.max(1))
            .with_n_ubatch(n_batch.max(1))
            .with_n_threads(threads)
            .with_n_threads_batch(threads);
        let mut ctx = model
            .new_context(&self.backend, params)
            .map_err(|e| fail(format!("llama.cpp could not create the context ({e})")))?;
        let mut batch = LlamaBatch::new(n_batch.max(1) as usize, 1);
        let mut pos = 0i32;
        for chunk in prompt.chunks(n_batch.max(1) as usize) {
            batch.clear();
            for (i, &t) in chunk.iter().enumerate() {
                let last = pos as usize + i + 1 == prompt.len();
                batch
                    .add(LlamaToken(t as i32), pos + i as i32, &[0], last)
                    .map_err(|e| fail(format!("cannot build a batch: {e}")))?;
            }
            ctx.decode(&mut batch)
                .map_err(|e| fail(format!("llama_decode failed ({e})")))?;
            pos += chunk.len() as i32;
        }
        let mut out = Vec::with_capacity(n as usize);
        for i in 0..n {
            let next = crate::repeat::argmax(ctx.get_logits_ith(batch.n_tokens() - 1));
            out.push(next);
            if i + 1 < n {
                batch.clear();
                batch
                    .add(LlamaToken(next as i32), pos, &[0], true)
                    .map_err(|e| fail(format!("cannot build a batch: {e}")))?;
                ctx.decode(&mut batch)
                    .map_err(|e| fail(format!("llama_decode failed ({e})")))?;
                pos += 1;
            }
        }
        Ok(out)
    }

    fn dry_run(
        &mut self,
        model: &Path,
        load: &LoadParams,
        ctx: &ContextParams,
    ) -> Result<lmtune_core::record::DryRun, BackendError> {
        let key = (model.to_path_buf(), load.clone());
        if self.dry_models.as_ref().map(|(k, _)| k) != Some(&key) {
            self.dry_models = None;
            let m = dry_run::DryModel::load(&self.backend, model, load)?;
            self.dry_models = Some((key, m));
        }
        let (_, m) = self.dry_models.as_ref().expect("loaded just above");
        let mut out = m.context(&context_params(ctx))?;
        out.buffers
            .sort_by(|a, b| (a.host, &a.device).cmp(&(b.host, &b.device)));
        Ok(out)
    }

    fn llama_fit(
        &mut self,
        model: &Path,
        ctx: &ContextParams,
        request: &lmtune_core::llama_fit::FitRequest,
    ) -> Result<lmtune_core::llama_fit::LlamaFit, BackendError> {
        fit::fit(model, &context_params(ctx), request)
    }

    fn tokenize(&mut self, text: &str) -> Result<Vec<u32>, BackendError> {
        let model = self.model.as_ref().ok_or(BackendError::NotLoaded)?;
        Ok(model
            .vocab()
            .tokenize(text.as_bytes(), true, false)
            .into_iter()
            .map(|t| t.0 as u32)
            .collect())
    }

    fn detokenize(&mut self, tokens: &[u32]) -> Result<Vec<String>, BackendError> {
        let model = self.model.as_ref().ok_or(BackendError::NotLoaded)?;
        let vocab = model.vocab();
        Ok(tokens
            .iter()
            .map(|&t| {
                String::from_utf8_lossy(&vocab.token_to_piece(LlamaToken(t as i32), true, None))
                    .into_owned()
            })
            .collect())
    }
}

/// Tokens/s by llama.cpp's perf counters since the last reset. llama.cpp
/// reports each count as at least 1 (`std::max(1, n)`), so a counter whose
/// time is zero did not run and is left out.
fn perf_tokens_per_s(ctx: &mut LlamaContext<'_>) -> Option<f64> {
    let t = ctx.timings();
    let mut ms = 0.0;
    let mut tokens = 0.0;
    if t.t_p_eval_ms() > 0.0 {
        ms += t.t_p_eval_ms();
        tokens += f64::from(t.n_p_eval());
    }
    if t.t_eval_ms() > 0.0 {
        ms += t.t_eval_ms();
        tokens += f64::from(t.n_eval());
    }
    (ms > 0.0).then(|| tokens / (ms / 1e3))
}

/// A point failure carrying llama.cpp's own last error line; allocation
/// failures become [`BackendError::OutOfMemory`].
fn fail(message: String) -> BackendError {
    let log = log::take();
    let message = match log.last() {
        Some(reason) => format!("{message}: {reason}"),
        None => message,
    };
    if crate::process::logs_out_of_memory(&log) {
        BackendError::OutOfMemory { message, log }
    } else {
        BackendError::PointFailed { message, log }
    }
}

fn context_params(c: &ContextParams) -> LlamaContextParams {
    let threads = i32::try_from(c.threads).unwrap_or(i32::MAX);
    LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(c.n_ctx))
        .with_n_batch(c.n_batch)
        .with_n_ubatch(c.n_ubatch)
        // llama.cpp's default is 4 threads whatever the machine: always set both.
        .with_n_threads(threads)
        .with_n_threads_batch(threads)
        .with_type_k(kv_type(c.type_k))
        .with_type_v(kv_type(c.type_v))
        .with_flash_attention_policy(match c.flash_attn {
            FlashAttn::Auto => llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_AUTO,
            FlashAttn::On => llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_ENABLED,
            FlashAttn::Off => llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_DISABLED,
        })
        .with_op_offload(c.op_offload)
        // llama-bench's and llama-server's default; llama.cpp's C default is
        // a full-size cache, several times larger on sliding-window models.
        .with_swa_full(c.swa_full)
        // Pinned to llama-bench's values rather than left to the C defaults
        // (README, "llama.cpp parameters"): one sequence, its own cache, the
        // KV cache and attention where the layer is, no embeddings.
        .with_n_seq_max(1)
        .with_kv_unified(false)
        .with_offload_kqv(true)
        .with_embeddings(false)
        // Perf counters are off unless asked for.
        .with_no_perf(false)
}

fn kv_type(t: KvType) -> KvCacheType {
    match t {
        KvType::F32 => KvCacheType::F32,
        KvType::F16 => KvCacheType::F16,
        KvType::Bf16 => KvCacheType::BF16,
        KvType::Q8_0 => KvCacheType::Q8_0,
        KvType::Q4_0 => KvCacheType::Q4_0,
        KvType::Q4_1 => KvCacheType::Q4_1,
        KvType::Iq4Nl => KvCacheType::IQ4_NL,
        KvType::Q5_0 => KvCacheType::Q5_0,
        KvType::Q5_1 => KvCacheType::Q5_1,
    }
}

fn decode(ctx: &mut LlamaContext<'_>, tokens: &[LlamaToken]) -> Result<(), BackendError> {
    let mut batch =
        LlamaBatch::get_one(tokens).map_err(|e| fail(format!("cannot build a batch: {e}")))?;
    ctx.decode(&mut batch).map_err(|e| {
        fail(format!(
            "llama_decode failed with {} tokens ({e})",
            tokens.len()
        ))
    })
}

/// Decodes `n` random tokens in chunks of `n_batch`, then synchronizes.
fn decode_prompt(
    ctx: &mut LlamaContext<'_>,
    n: u32,
    n_batch: u32,
    rng: &mut RandomTokens,
) -> Result<(), BackendError> {
    let mut ids = Vec::with_capacity(n_batch as usize);
    let mut buf = Vec::with_capacity(n_batch as usize);
    let mut done = 0;
    while done < n {
        let chunk = (n - done).min(n_batch);
        rng.chunk(chunk as usize, done == 0, &mut ids);
        buf.clear();
        buf.extend(ids.iter().map(|&t| LlamaToken(t as i32)));
        decode(ctx, &buf)?;
        done += chunk;
    }
    ctx.synchronize();
    Ok(())
}

/// Decodes `n` tokens one at a time, synchronizing after each.
fn decode_gen(
    ctx: &mut LlamaContext<'_>,
    n: u32,
    rng: &mut RandomTokens,
) -> Result<(), BackendError> {
    let mut token = LlamaToken(rng.first() as i32);
    for _ in 0..n {
        decode(ctx, std::slice::from_ref(&token))?;
        ctx.synchronize();
        token = LlamaToken(rng.next_token() as i32);
    }
    Ok(())
}
