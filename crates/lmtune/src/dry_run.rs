//! llama.cpp's dry run and its fit, asked of a worker process: a model
//! llama.cpp cannot load (an unknown architecture, a corrupt file) or an
//! assert in its allocator then costs the worker, not the command.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use lmtune_backend::protocol::{Request, Response};
use lmtune_core::fingerprint::BackendDevice;
use lmtune_core::knobs::{ContextParams, LoadParams};
use lmtune_core::llama_fit::{FitRequest, LlamaFit};
use lmtune_core::record::DryRun;
use lmtune_core::scenario::BackendSpec;

use crate::runner::{Event, SpawnOptions, Wait, Worker};

/// What a dry run can take at most (model metadata and one context; it
/// takes milliseconds on the test model). A fit loads the model a few
/// dozen times at most.
const TIMEOUT: Duration = Duration::from_secs(120);

/// llama.cpp's fit and, where its choice is a load lmtune can say, the dry
/// run of that choice (what it would take on each device).
pub struct FitAnswer {
    pub fit: LlamaFit,
    pub dry_run: Option<Result<DryRun, String>>,
}

/// llama.cpp's fit of `model` with a context like `ctx` to `request`, in
/// one worker, then the dry run of what it chose.
pub fn ask_fit(
    model: &Path,
    ctx: &ContextParams,
    request: FitRequest,
    all_layers: u32,
    ggml_backends: &[PathBuf],
) -> Result<FitAnswer, String> {
    let mut worker = spawn(ggml_backends)?;
    let request = Request::LlamaFit {
        model: model.to_path_buf(),
        ctx: ctx.clone(),
        request,
    };
    let fit = match exchange(&mut worker, &request)? {
        Response::LlamaFit { fit } => *fit,
        other => return Err(unexpected(&mut worker, other)),
    };
    let dry_run = fit
        .load_params(all_layers, true)
        .map(|load| dry_run(&mut worker, model, &load, ctx));
    worker.shutdown();
    Ok(FitAnswer { fit, dry_run })
}

/// GPU memory a device's driver context takes beside llama.cpp's buffers
/// (which a dry run reports): the memory model's CUDA-sized figure, none on
/// Mesa's llvmpipe (its "device memory" is the process's own).
pub fn gpu_context_bytes(device: &BackendDevice) -> u64 {
    if device.description.to_lowercase().contains("llvmpipe") {
        0
    } else {
        lmtune_model::GPU_OVERHEAD_BYTES
    }
}

/// One worker kept for many dry runs — the tuner's offload search asks one
/// per placement — spawned on first use; answers are cached per load and
/// context (threads aside: they do not change memory).
pub struct DryRunner {
    ggml_backends: Vec<PathBuf>,
    /// The worker, or why it could not start.
    worker: Option<Result<Worker, String>>,
    cache: HashMap<(LoadParams, ContextParams), Result<DryRun, String>>,
}

impl DryRunner {
    pub fn new(ggml_backends: &[PathBuf]) -> DryRunner {
        DryRunner {
            ggml_backends: ggml_backends.to_vec(),
            worker: None,
            cache: HashMap::new(),
        }
    }

    fn worker(&mut self) -> Result<&mut Worker, String> {
        let backends = &self.ggml_backends;
        match self.worker.get_or_insert_with(|| spawn(backends)) {
            Ok(w) => Ok(w),
            Err(e) => Err(e.clone()),
        }
    }

    /// The devices the worker's llama.cpp has; or why it did not start.
    pub fn devices(&mut self) -> Result<Vec<BackendDevice>, String> {
        Ok(self.worker()?.info.devices.clone())
    }

    /// The first GPU device the worker's llama.cpp has, if any.
    pub fn gpu(&mut self) -> Option<BackendDevice> {
        self.devices().ok()?.into_iter().find(|d| d.is_gpu())
    }

    /// llama.cpp's dry run of `model` at `load` with a context of `ctx`; or
    /// why there is none, in one line.
    pub fn ask(
        &mut self,
        model: &Path,
        load: &LoadParams,
        ctx: &ContextParams,
    ) -> Result<DryRun, String> {
        let key = (
            load.clone(),
            ContextParams {
                threads: 1,
                ..ctx.clone()
            },
        );
        if let Some(answer) = self.cache.get(&key) {
            return answer.clone();
        }
        let answer = self.worker().and_then(|w| dry_run(w, model, load, ctx));
        self.cache.insert(key, answer.clone());
        answer
    }

    /// What `load` with a context of `ctx` would take on `device`, a GPU:
    /// llama.cpp's device buffers plus the driver's context
    /// ([`gpu_context_bytes`]), which its buffers leave out.
    pub fn device_vram(
        &mut self,
        model: &Path,
        load: &LoadParams,
        ctx: &ContextParams,
        device: &BackendDevice,
    ) -> Result<u64, String> {
        let d = self.ask(model, load, ctx)?;
        let (weights, kv, compute) = d.sum(|b| !b.host);
        Ok(weights + kv + compute + gpu_context_bytes(device))
    }
}

impl Drop for DryRunner {
    fn drop(&mut self) {
        if let Some(Ok(w)) = self.worker.take() {
            w.shutdown();
        }
    }
}

fn spawn(ggml_backends: &[PathBuf]) -> Result<Worker, String> {
    let options = SpawnOptions {
        backend: BackendSpec::default()
            .with_ggml_backends(crate::commands::ggml_backend_libraries(ggml_backends)),
        ..SpawnOptions::default()
    };
    Worker::spawn(&options).map_err(|e| format!("{e:#}"))
}

fn dry_run(
    worker: &mut Worker,
    model: &Path,
    load: &LoadParams,
    ctx: &ContextParams,
) -> Result<DryRun, String> {
    let request = Request::DryRun {
        model: model.to_path_buf(),
        load: load.clone(),
        ctx: ctx.clone(),
    };
    match exchange(worker, &request)? {
        Response::DryRun { dry_run } => Ok(*dry_run),
        other => Err(unexpected(worker, other)),
    }
}

/// Sends `request` and waits for the answer; a backend error, the worker's
/// death or a timeout becomes the one line saying so.
fn exchange(worker: &mut Worker, request: &Request) -> Result<Response, String> {
    if worker.send(request).is_err() {
        return Err(died(worker));
    }
    let never = AtomicBool::new(false);
    match worker.next_before(Instant::now() + TIMEOUT, &never) {
        Wait::Event(Event::Response(Response::Error { error })) => Err(error.to_string()),
        Wait::Event(Event::Response(r)) => Ok(r),
        Wait::Event(Event::Exited) => Err(died(worker)),
        Wait::TimedOut => {
            worker.kill();
            Err(format!("no answer within {} s", TIMEOUT.as_secs()))
        }
        other => Err(format!("unexpected worker reply {other:?}")),
    }
}

fn unexpected(worker: &mut Worker, reply: Response) -> String {
    worker.kill();
    format!("unexpected worker reply {reply:?}")
}

fn died(worker: &mut Worker) -> String {
    let death = worker.death();
    let last = death
        .stderr_tail
        .iter()
        .rev()
        .find(|l| !l.trim().is_empty())
        .cloned()
        .unwrap_or_default();
    format!("the worker {} ({last})", death.description)
}
