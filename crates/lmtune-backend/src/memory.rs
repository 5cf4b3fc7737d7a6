//! Resident memory of the current process, with a resettable peak, and its
//! CPU time.
//!
//! Linux keeps a high-water mark of the resident set (`VmHWM`); writing `5`
//! to `/proc/self/clear_refs` resets it to the current RSS, so the peak can be
//! measured per point. Elsewhere both functions return `None`.

/// Resets the peak-RSS mark. Returns whether the kernel accepted it.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// (current RSS, peak RSS since the last reset), bytes.
pub fn rss() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib = |key| lmtune_core::fingerprint::meminfo_kib(&status, key);
    Some((kib("VmRSS")? * 1024, kib("VmHWM")? * 1024))
}

/// CPU seconds this process has used, user + system, all threads
/// (`getrusage(RUSAGE_SELF)`); `None` where unavailable.
#[cfg(unix)]
pub fn cpu_seconds() -> Option<f64> {
    // SAFETY: getrusage fills the zeroed struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return None;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Some(secs(usage.ru_utime) + secs(usage.ru_stime))
}

#[cfg(not(unix))]
pub fn cpu_seconds() -> Option<f64> {
    None
}

/// Cores busy between two readings: CPU seconds over wall seconds.
pub fn busy_cores(cpu_before: f64, cpu_after: f64, wall_s: f64) -> Option<f64> {
    (wall_s > 0.0 && cpu_after >= cpu_before).then(|| (cpu_after - cpu_before) / wall_s)
}

/// `pid` and all its descendants (Linux `/proc`; just `pid` elsewhere).
pub fn process_tree(pid: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(child) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
                continue;
            };
            // "pid (comm) state ppid ...": comm may hold spaces and parens.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if let Some(ppid) = ppid {
                parents.push((child, ppid));
            }
        }
    }
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(
            parents
                .iter()
                .filter(|(_, p)| *p == parent)
                .map(|(c, _)| *c),
        );
        i += 1;
    }
    tree
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_tree_finds_children() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let tree = process_tree(std::process::id());
        assert_eq!(tree[0], std::process::id());
        assert!(tree.contains(&child.id()), "{tree:?}");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    #[cfg(unix)]
    fn cpu_seconds_count_a_busy_loop() {
        let (cpu, wall) = (cpu_seconds().unwrap(), std::time::Instant::now());
        let mut x = 0u64;
        while wall.elapsed().as_millis() < 200 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let busy = busy_cores(cpu, cpu_seconds().unwrap(), wall.elapsed().as_secs_f64()).unwrap();
        // At least most of one core (other tests may run beside it).
        assert!(busy > 0.5, "{busy}");
        assert_eq!(busy_cores(2.0, 1.0, 1.0), None);
        assert_eq!(busy_cores(1.0, 2.0, 0.0), None);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn peak_follows_an_allocation_and_resets() {
        // The peak is the whole process's, and other tests of this binary
        // (candle's loads a model) allocate and free at the same time; a
        // free of theirs between the reset and our allocation can hide the
        // growth. So a few attempts: a peak that does not track fails all.
        let mut failures = Vec::new();
        for _ in 0..5 {
            assert!(reset_peak_rss());
            let (_, before) = rss().unwrap();
            let block = vec![1u8; 64 << 20];
            std::hint::black_box(&block);
            let (_, during) = rss().unwrap();
            drop(block);
            assert!(reset_peak_rss());
            let (_, after) = rss().unwrap();
            if during >= before + (60 << 20) && after < during {
                return;
            }
            failures.push(format!(
                "before {before}, during {during}, after reset {after}"
            ));
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        panic!("the peak did not follow a 64 MiB allocation and reset: {failures:?}");
    }
}
