//! Resident memory of the current process, with a resettable peak.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_os = "linux")]
    fn peak_follows_an_allocation_and_resets() {
        let (_, _) = rss().unwrap();
        assert!(reset_peak_rss());
        let (_, before) = rss().unwrap();
        let block = vec![1u8; 64 << 20];
        std::hint::black_box(&block);
        let (_, during) = rss().unwrap();
        assert!(
            during >= before + (60 << 20),
            "peak {during} did not grow from {before}"
        );
        drop(block);
        assert!(reset_peak_rss());
        let (_, after) = rss().unwrap();
        assert!(after < during, "peak did not reset: {after} vs {during}");
    }
}
