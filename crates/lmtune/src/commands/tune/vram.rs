//! The offload search's VRAM for a point: llama.cpp's own dry run of the
//! point's load and context (`no_alloc`, in a worker of its own) on the GPU
//! device that worker's llama.cpp has, plus the GPU context its buffers
//! leave out; the memory model where there is no such device, another
//! backend, or a dry run that fails. The source is said once, and again if
//! it changes.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use lmtune_core::fingerprint::BackendDevice;
use lmtune_core::scenario::{Plan, Point};
use lmtune_gguf::ModelAnatomy;
use lmtune_model::{CpuBackend, ThroughputParams};

use crate::dry_run::{gpu_context_bytes, DryRunner};
use crate::output::Progress;

pub struct VramModel<'p> {
    model: PathBuf,
    anatomy: Option<ModelAnatomy>,
    cpu: CpuBackend,
    throughput: ThroughputParams,
    /// The dry-run worker and its GPU device (None: the memory model only).
    runner: RefCell<Option<(DryRunner, BackendDevice)>>,
    progress: &'p Progress,
    said: RefCell<Option<String>>,
}

impl<'p> VramModel<'p> {
    pub fn new(plan: &Plan, ggml_backends: &[PathBuf], progress: &'p Progress) -> VramModel<'p> {
        let anatomy = lmtune_gguf::GgufFile::open(&plan.model_path)
            .and_then(|f| f.anatomy())
            .ok();
        let model = VramModel {
            model: plan.model_path.clone(),
            anatomy,
            cpu: crate::predict::host_cpu_backend(),
            throughput: ThroughputParams::with_bandwidths(20.0, 500.0),
            runner: RefCell::new(None),
            progress,
            said: RefCell::new(None),
        };
        if plan.backend.has_dry_run() {
            let mut runner = DryRunner::new(ggml_backends);
            match runner.gpu() {
                Some(device) => *model.runner.borrow_mut() = Some((runner, device)),
                None => model.say(
                    "the memory model (llama.cpp has no GPU device here, so its dry run puts nothing on one)",
                ),
            }
        } else {
            model.say(&format!(
                "the memory model (the {} backend has no dry run)",
                plan.backend.name()
            ));
        }
        model
    }

    fn say(&self, source: &str) {
        let mut said = self.said.borrow_mut();
        if said.as_deref() != Some(source) {
            self.progress
                .note(&format!("offload search: VRAM from {source}"));
            *said = Some(source.to_string());
        }
    }

    fn analytic(&self, p: &Point) -> Option<u64> {
        let a = self.anatomy.as_ref()?;
        Some(crate::predict::predict_point(a, p, true, &self.throughput, &self.cpu).vram_bytes)
    }

    /// The VRAM `p` would take: dry run first, the memory model as fallback.
    pub fn predict(&self, p: &Point) -> Option<u64> {
        let mut runner = self.runner.borrow_mut();
        let Some((dry, device)) = runner.as_mut() else {
            return self.analytic(p);
        };
        match dry.device_vram(Path::new(&self.model), &p.load, &p.ctx, device) {
            Ok(bytes) => {
                self.say(&format!(
                    "llama.cpp's dry run (no_alloc) on {} ({}), plus {} MiB of GPU context",
                    device.name,
                    device.description,
                    gpu_context_bytes(device) >> 20
                ));
                Some(bytes)
            }
            Err(e) => {
                self.say(&format!(
                    "the memory model (llama.cpp's dry run failed: {e})"
                ));
                self.analytic(p)
            }
        }
    }
}
