//! llama.cpp's dry run, asked of a worker process: a model llama.cpp cannot
//! load (an unknown architecture, a corrupt file) or an assert in its
//! allocator then costs the worker, not the command.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use lmtune_backend::protocol::{Request, Response};
use lmtune_core::fingerprint::BackendDevice;
use lmtune_core::knobs::{ContextParams, LoadParams};
use lmtune_core::record::DryRun;
use lmtune_core::scenario::BackendKind;

use crate::runner::{Event, SpawnOptions, Wait, Worker};

/// What a dry run can take at most (model metadata and one context; it
/// takes milliseconds on the test model).
const TIMEOUT: Duration = Duration::from_secs(120);

/// The dry run of `model` at `load` with a context of `ctx`, and the
/// devices the worker's llama.cpp has; or why there is none, in one line.
pub fn ask(
    model: &Path,
    load: &LoadParams,
    ctx: &ContextParams,
    ggml_backends: &[PathBuf],
) -> Result<(DryRun, Vec<BackendDevice>), String> {
    let options = SpawnOptions {
        backend_config: crate::commands::llama_cpp_config(ggml_backends),
        ..SpawnOptions::default()
    };
    let mut worker =
        Worker::spawn(BackendKind::LlamaCpp, &options).map_err(|e| format!("{e:#}"))?;
    let devices = worker.info.devices.clone();
    let request = Request::DryRun {
        model: model.to_path_buf(),
        load: load.clone(),
        ctx: ctx.clone(),
    };
    if worker.send(&request).is_err() {
        return Err(died(&mut worker));
    }
    let never = AtomicBool::new(false);
    let answer = match worker.next_before(Instant::now() + TIMEOUT, &never) {
        Wait::Event(Event::Response(Response::DryRun { dry_run })) => Ok((*dry_run, devices)),
        Wait::Event(Event::Response(Response::Error { error })) => Err(error.to_string()),
        Wait::Event(Event::Exited) => Err(died(&mut worker)),
        Wait::TimedOut => {
            worker.kill();
            return Err(format!("no answer within {} s", TIMEOUT.as_secs()));
        }
        other => Err(format!("unexpected worker reply {other:?}")),
    };
    worker.shutdown();
    answer
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
