//! Hardware and software fingerprints: what a measurement was taken on.
//!
//! Every record carries one, so results from different machines, builds or
//! model files are never silently mixed. Host facts come from `/proc` on
//! Linux (with portable fallbacks); GPUs from NVML, loaded at run time — a
//! machine without an NVIDIA driver is reported, not an error.

use std::collections::HashSet;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The machine, the software and the model a record was measured with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub host: HostInfo,
    pub gpus: Vec<GpuInfo>,
    /// Why no GPU is listed, e.g. "no NVIDIA GPU detected".
    pub gpu_note: Option<String>,
    pub backend: String,
    pub backend_version: String,
    /// The backend's own build/system line (llama.cpp's CPU features, …).
    pub backend_build: String,
    /// Compute devices the backend sees (llama.cpp: ggml backend devices).
    #[serde(default)]
    pub backend_devices: Vec<BackendDevice>,
    pub lmtune_version: String,
    pub lmtune_commit: String,
    pub model: ModelFingerprint,
    /// Host memory bandwidth measured at the start of the run (STREAM triad);
    /// absent in records of older versions.
    #[serde(default)]
    pub host_bandwidth: Option<crate::bandwidth::Bandwidth>,
    /// The same triad at each thread count the sweep used.
    #[serde(default)]
    pub host_bandwidth_by_threads: Vec<crate::bandwidth::Bandwidth>,
}

impl Fingerprint {
    /// Host read bandwidth (GB/s) at `threads`: the measurement at that
    /// count, or the nearest one below it, or the all-cores one.
    pub fn host_bandwidth_at(&self, threads: u32) -> Option<f64> {
        let at = self
            .host_bandwidth_by_threads
            .iter()
            .filter(|b| b.threads <= threads)
            .max_by_key(|b| b.threads);
        at.or(self.host_bandwidth.as_ref())
            .map(|b| b.read_ceiling_gb_per_s())
    }
}

/// llama.cpp's build as llama-bench prints it (`build_number`,
/// `build_commit`): carried inside `backend_version` as
/// "llama.cpp build N (COMMIT)" by the llama.cpp backend and by llama-bench
/// import, so exports name llama.cpp's build, not lmtune's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LlamaCppBuild {
    /// `git rev-list --count HEAD` of llama.cpp; 0 when built without git
    /// (llama.cpp's own default).
    pub number: u64,
    /// The short commit; "unknown" when built without git.
    pub commit: String,
}

impl LlamaCppBuild {
    const MARK: &'static str = "llama.cpp build ";

    /// The one text form, inside `backend_version`.
    pub fn label(&self) -> String {
        format!("{}{} ({})", Self::MARK, self.number, self.commit)
    }

    /// The build in a `backend_version`; `None` where it names none (other
    /// backends, and llama.cpp records of older versions, which carried only
    /// the llama-cpp-2 crate version).
    pub fn parse(backend_version: &str) -> Option<LlamaCppBuild> {
        let (_, rest) = backend_version.split_once(Self::MARK)?;
        let (number, rest) = rest.split_once(" (")?;
        let (commit, _) = rest.split_once(')')?;
        Some(LlamaCppBuild {
            number: number.trim().parse().ok()?,
            commit: commit.trim().to_string(),
        })
    }
}

/// A compute device as the backend reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendDevice {
    pub name: String,
    pub description: String,
    /// "cpu", "gpu", "igpu", "accel".
    pub kind: String,
    pub memory_total_bytes: u64,
}

impl BackendDevice {
    pub fn is_gpu(&self) -> bool {
        matches!(self.kind.as_str(), "gpu" | "igpu")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostInfo {
    pub hostname: String,
    pub cpu_model: String,
    pub physical_cores: u32,
    pub logical_cores: u32,
    pub ram_bytes: u64,
    pub os: String,
    pub kernel: String,
    pub arch: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuInfo {
    pub index: u32,
    pub name: String,
    pub vram_total_bytes: u64,
    pub vram_free_bytes: u64,
    pub driver_version: String,
    pub uuid: String,
    /// Theoretical memory bandwidth from NVML: bus width × max memory clock × 2 (DDR).
    #[serde(default)]
    pub theoretical_bandwidth_gb_per_s: Option<f64>,
    #[serde(default)]
    pub max_sm_clock_mhz: Option<u32>,
    #[serde(default)]
    pub max_memory_clock_mhz: Option<u32>,
    #[serde(default)]
    pub pcie_link: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelFingerprint {
    pub file_name: String,
    /// Size of the model file.
    pub file_size_bytes: u64,
    /// Bytes of all tensors (llama-bench's "size").
    pub weights_bytes: u64,
    pub sha256: String,
    pub architecture: String,
    pub n_params: u64,
    pub quant: String,
    pub n_layer: u64,
    pub n_ctx_train: u64,
    /// Written by `lmtune synth`: random weights, real layout.
    #[serde(default)]
    pub synthetic: bool,
    /// Mixture of experts: the weight bytes a generated token reads (every
    /// block but the routed experts, plus used/count of those, and the
    /// output layer). Absent for dense models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_weights_bytes: Option<u64>,
}

impl Fingerprint {
    /// The fields in which `other` describes a different environment
    /// (machine, GPUs, backend build, lmtune build, model file), as
    /// `field: ours → theirs`. Free VRAM and empty fields (not yet known) are
    /// not compared.
    pub fn differences(&self, other: &Fingerprint) -> Vec<String> {
        let mut out = Vec::new();
        let mut cmp = |field: &str, a: String, b: String| {
            if !a.is_empty() && !b.is_empty() && a != b {
                out.push(format!("{field}: {a} → {b}"));
            }
        };
        let (h, o) = (&self.host, &other.host);
        cmp("hostname", h.hostname.clone(), o.hostname.clone());
        cmp("cpu_model", h.cpu_model.clone(), o.cpu_model.clone());
        cmp(
            "cores",
            format!("{}/{}", h.physical_cores, h.logical_cores),
            format!("{}/{}", o.physical_cores, o.logical_cores),
        );
        cmp(
            "ram_bytes",
            h.ram_bytes.to_string(),
            o.ram_bytes.to_string(),
        );
        cmp("os", h.os.clone(), o.os.clone());
        cmp("kernel", h.kernel.clone(), o.kernel.clone());
        let gpus = |f: &Fingerprint| {
            f.gpus
                .iter()
                .map(|g| {
                    format!(
                        "{} {} B driver {}",
                        g.name, g.vram_total_bytes, g.driver_version
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        cmp("gpus", gpus(self), gpus(other));
        cmp("backend", self.backend.clone(), other.backend.clone());
        cmp(
            "backend_version",
            self.backend_version.clone(),
            other.backend_version.clone(),
        );
        cmp(
            "backend_build",
            self.backend_build.clone(),
            other.backend_build.clone(),
        );
        cmp(
            "lmtune_version",
            self.lmtune_version.clone(),
            other.lmtune_version.clone(),
        );
        cmp(
            "lmtune_commit",
            self.lmtune_commit.clone(),
            other.lmtune_commit.clone(),
        );
        cmp(
            "model sha256",
            self.model.sha256.clone(),
            other.model.sha256.clone(),
        );
        out
    }
}

impl HostInfo {
    /// "hostname (cpu model)": how calibrations name the machine they fit.
    pub fn label(&self) -> String {
        format!("{} ({})", self.hostname, self.cpu_model)
    }

    /// Reads the host's facts. Never fails: unknown fields say "unknown".
    pub fn detect() -> HostInfo {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let logical_from_proc = cpuinfo
            .lines()
            .filter(|l| l.starts_with("processor"))
            .count() as u32;
        let logical_cores = if logical_from_proc > 0 {
            logical_from_proc
        } else {
            std::thread::available_parallelism()
                .map(|n| n.get() as u32)
                .unwrap_or(1)
        };
        HostInfo {
            hostname: read_trimmed("/proc/sys/kernel/hostname")
                .or_else(|| std::env::var("HOSTNAME").ok())
                .unwrap_or_else(|| "unknown".into()),
            cpu_model: cpuinfo_field(&cpuinfo, "model name")
                .or_else(|| cpuinfo_field(&cpuinfo, "Model"))
                .unwrap_or_else(|| "unknown".into()),
            physical_cores: physical_cores(&cpuinfo).unwrap_or(logical_cores),
            logical_cores,
            ram_bytes: fs::read_to_string("/proc/meminfo")
                .ok()
                .and_then(|m| meminfo_kib(&m, "MemTotal"))
                .map_or(0, |k| k * 1024),
            os: fs::read_to_string("/etc/os-release")
                .ok()
                .and_then(|s| {
                    s.lines().find_map(|l| {
                        l.strip_prefix("PRETTY_NAME=")
                            .map(|v| v.trim_matches('"').to_string())
                    })
                })
                .unwrap_or_else(|| std::env::consts::OS.to_string()),
            kernel: read_trimmed("/proc/sys/kernel/osrelease").unwrap_or_else(|| "unknown".into()),
            arch: std::env::consts::ARCH.to_string(),
        }
    }
}

fn read_trimmed(path: &str) -> Option<String> {
    fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn cpuinfo_field(cpuinfo: &str, key: &str) -> Option<String> {
    cpuinfo.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == key).then(|| v.trim().to_string())
    })
}

/// Distinct (physical id, core id) pairs; `None` when the kernel does not say.
fn physical_cores(cpuinfo: &str) -> Option<u32> {
    let mut cores = HashSet::new();
    for block in cpuinfo.split("\n\n") {
        let physical = cpuinfo_field(block, "physical id");
        let core = cpuinfo_field(block, "core id");
        if let (Some(p), Some(c)) = (physical, core) {
            cores.insert((p, c));
        }
    }
    (!cores.is_empty()).then_some(cores.len() as u32)
}

/// A `/proc/meminfo`-style field in KiB.
pub fn meminfo_kib(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(key)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// Why NVML lists no GPU, phrased for the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoGpu {
    #[error("no NVIDIA GPU detected (NVML unavailable: {0})")]
    NvmlUnavailable(String),
    #[error("no NVIDIA GPU detected (NVML: {0})")]
    Nvml(String),
    #[error("no NVIDIA GPU detected (NVML found no devices)")]
    NoDevices,
}

/// Lists NVIDIA GPUs through NVML. `Err` carries the reason there are none
/// (no driver, no device).
pub fn detect_gpus() -> Result<Vec<GpuInfo>, NoGpu> {
    use nvml_wrapper::Nvml;
    let nvml = Nvml::init().map_err(|e| NoGpu::NvmlUnavailable(e.to_string()))?;
    let driver = nvml
        .sys_driver_version()
        .unwrap_or_else(|_| "unknown".into());
    let count = nvml
        .device_count()
        .map_err(|e| NoGpu::Nvml(e.to_string()))?;
    if count == 0 {
        return Err(NoGpu::NoDevices);
    }
    let mut gpus = Vec::new();
    for index in 0..count {
        let Ok(device) = nvml.device_by_index(index) else {
            continue;
        };
        let memory = device.memory_info().ok();
        use nvml_wrapper::enum_wrappers::device::Clock;
        let mem_clock = device.max_clock_info(Clock::Memory).ok();
        let bus_width = device.memory_bus_width().ok();
        let pcie_link = match (
            device.current_pcie_link_gen(),
            device.current_pcie_link_width(),
        ) {
            (Ok(generation), Ok(width)) => Some(format!("gen{generation} x{width}")),
            _ => None,
        };
        gpus.push(GpuInfo {
            index,
            name: device.name().unwrap_or_else(|_| "unknown".into()),
            vram_total_bytes: memory.as_ref().map_or(0, |m| m.total),
            vram_free_bytes: memory.as_ref().map_or(0, |m| m.free),
            driver_version: driver.clone(),
            uuid: device.uuid().unwrap_or_default(),
            theoretical_bandwidth_gb_per_s: match (mem_clock, bus_width) {
                (Some(mhz), Some(bits)) => {
                    Some(f64::from(mhz) * 1e6 * 2.0 * f64::from(bits) / 8.0 / 1e9)
                }
                _ => None,
            },
            max_sm_clock_mhz: device.max_clock_info(Clock::SM).ok(),
            max_memory_clock_mhz: mem_clock,
            pcie_link,
        });
    }
    Ok(gpus)
}

/// sha256 of a file, cached by (path, size, mtime) so that multi-GB models
/// are hashed once. The cache lives in `$XDG_CACHE_HOME/lmtune` (or
/// `~/.cache/lmtune`); a cache that cannot be written only costs time.
pub fn file_sha256(path: &Path) -> std::io::Result<String> {
    let meta = fs::metadata(path)?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let canonical = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let key = format!("{}\t{}\t{}", canonical.display(), meta.len(), mtime);
    let cache = cache_dir().map(|d| d.join("sha256.tsv"));
    if let Some(cache) = &cache {
        if let Ok(text) = fs::read_to_string(cache) {
            if let Some(hash) = text
                .lines()
                .find_map(|l| l.strip_prefix(&key).and_then(|r| r.strip_prefix('\t')))
            {
                return Ok(hash.to_string());
            }
        }
    }
    let mut hasher = Sha256::new();
    let mut file = fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let hash = format!("{:x}", hasher.finalize());
    if let Some(cache) = &cache {
        if let Some(dir) = cache.parent() {
            let _ = fs::create_dir_all(dir);
        }
        use std::io::Write;
        if let Ok(mut f) = fs::OpenOptions::new().create(true).append(true).open(cache) {
            let _ = writeln!(f, "{key}\t{hash}");
        }
    }
    Ok(hash)
}

fn cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("lmtune"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("lmtune"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llama_cpp_build_round_trips_through_backend_version() {
        let b = LlamaCppBuild {
            number: 6123,
            commit: "a1b2c3d".into(),
        };
        let version = format!("llama-cpp-2 0.1.160, {}, ggml 0.9.4", b.label());
        assert_eq!(LlamaCppBuild::parse(&version), Some(b));
        assert_eq!(LlamaCppBuild::parse("llama-cpp-2 0.1.160"), None);
        assert_eq!(LlamaCppBuild::parse("llama.cpp build x (y)"), None);
    }

    #[test]
    fn physical_cores_count_distinct_core_ids() {
        let info = "processor\t: 0\nphysical id\t: 0\ncore id\t: 0\n\nprocessor\t: 1\nphysical id\t: 0\ncore id\t: 0\n\nprocessor\t: 2\nphysical id\t: 0\ncore id\t: 1\n";
        assert_eq!(physical_cores(info), Some(2));
        assert_eq!(physical_cores("processor\t: 0\n"), None);
    }

    #[test]
    fn meminfo_parses_kib() {
        assert_eq!(
            meminfo_kib("MemTotal:       24576000 kB\nMemFree: 1 kB\n", "MemTotal"),
            Some(24_576_000)
        );
        assert_eq!(meminfo_kib("MemFree: 1 kB\n", "MemTotal"), None);
    }

    #[test]
    fn detect_is_total() {
        let host = HostInfo::detect();
        assert!(host.logical_cores >= 1);
        assert!(host.physical_cores >= 1 && host.physical_cores <= host.logical_cores);
    }

    #[test]
    fn sha256_of_known_bytes() {
        let dir = std::env::temp_dir().join(format!("lmtune-sha-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let f = dir.join("x");
        fs::write(&f, b"abc").unwrap();
        assert_eq!(
            file_sha256(&f).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
