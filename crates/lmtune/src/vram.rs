//! GPU memory of the worker while a point runs, sampled through NVML.
//!
//! A background thread polls every 100 ms: the memory NVML attributes to the
//! worker's pid (compute and graphics processes, all GPUs) and the devices'
//! used memory. With no NVIDIA driver, [`VramMonitor::start`] returns `None`
//! and records carry no VRAM figures — that is not an error.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use lmtune_core::record::VramUsage;
use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::Nvml;

pub struct VramMonitor {
    nvml: Arc<Nvml>,
}

/// A sampling in progress; [`Sampling::finish`] stops it.
pub struct Sampling {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<(Option<u64>, u32)>,
    nvml: Arc<Nvml>,
    before: u64,
}

impl VramMonitor {
    pub fn start() -> Option<VramMonitor> {
        let nvml = Nvml::init().ok()?;
        (nvml.device_count().ok()? > 0).then(|| VramMonitor {
            nvml: Arc::new(nvml),
        })
    }

    /// Starts sampling the memory of process `pid`.
    pub fn sample(&self, pid: u32) -> Sampling {
        let before = device_used(&self.nvml);
        let stop = Arc::new(AtomicBool::new(false));
        let (nvml, flag) = (Arc::clone(&self.nvml), Arc::clone(&stop));
        let handle = thread::spawn(move || {
            let mut peak: Option<u64> = None;
            let mut samples = 0;
            loop {
                if let Some(used) = process_used(&nvml, pid) {
                    peak = Some(peak.map_or(used, |p| p.max(used)));
                }
                samples += 1;
                if flag.load(Ordering::SeqCst) {
                    return (peak, samples);
                }
                thread::sleep(Duration::from_millis(100));
            }
        });
        Sampling {
            stop,
            handle,
            nvml: Arc::clone(&self.nvml),
            before,
        }
    }
}

impl Sampling {
    pub fn finish(self) -> VramUsage {
        self.stop.store(true, Ordering::SeqCst);
        let (worker_peak_bytes, samples) = self.handle.join().unwrap_or((None, 0));
        VramUsage {
            worker_peak_bytes,
            device_used_before_bytes: self.before,
            device_used_after_bytes: device_used(&self.nvml),
            samples,
        }
    }
}

fn device_used(nvml: &Nvml) -> u64 {
    let count = nvml.device_count().unwrap_or(0);
    (0..count)
        .filter_map(|i| nvml.device_by_index(i).ok()?.memory_info().ok())
        .map(|m| m.used)
        .sum()
}

/// Memory NVML attributes to `pid` and its descendants (a managed server)
/// over all GPUs; `None` if it reports none.
fn process_used(nvml: &Nvml, pid: u32) -> Option<u64> {
    let count = nvml.device_count().ok()?;
    let tree = lmtune_backend::memory::process_tree(pid);
    let mut total = None;
    for i in 0..count {
        let Ok(device) = nvml.device_by_index(i) else {
            continue;
        };
        let processes = device
            .running_compute_processes()
            .unwrap_or_default()
            .into_iter()
            .chain(device.running_graphics_processes().unwrap_or_default());
        for p in processes.filter(|p| tree.contains(&p.pid)) {
            if let UsedGpuMemory::Used(bytes) = p.used_gpu_memory {
                total = Some(total.unwrap_or(0) + bytes);
            }
        }
    }
    total
}
