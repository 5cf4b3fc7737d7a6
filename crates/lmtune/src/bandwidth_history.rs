//! Host read bandwidth as `plan` uses it: one probe on a shared machine
//! swings by ±30% (another process on the memory bus only ever slows it), so
//! each probe is kept per machine with its date
//! (`$XDG_CACHE_HOME/lmtune/bandwidth.tsv`), and the plan uses the best of
//! the last 30 days, with the spread of the probes as its uncertainty.

use std::path::PathBuf;

/// Probes older than this are not used.
const MAX_AGE_DAYS: i64 = 30;

/// What the plan uses, and where it came from.
pub struct HostBandwidth {
    /// GB/s the plan uses: the best probe.
    pub gb_per_s: f64,
    /// This run's probe.
    pub now_gb_per_s: f64,
    /// The slowest probe used (the uncertainty's low end).
    pub low_gb_per_s: f64,
    /// Probes used, this one included.
    pub probes: usize,
    /// The date of the oldest probe used (YYYY-MM-DD).
    pub since: String,
}

fn file() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("lmtune").join("bandwidth.tsv"))
}

/// Records `now_gb_per_s` for `machine` and returns what to plan with.
/// A cache that cannot be read or written only loses the history.
pub fn record_and_choose(machine: &str, now_gb_per_s: f64) -> HostBandwidth {
    let today = chrono::Utc::now().date_naive();
    let path = file();
    let text = path
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default();
    // date \t machine \t GB/s
    let mut used: Vec<(chrono::NaiveDate, f64)> = text
        .lines()
        .filter_map(|l| {
            let mut f = l.split('\t');
            let date = chrono::NaiveDate::parse_from_str(f.next()?, "%Y-%m-%d").ok()?;
            let m = f.next()?;
            let gb: f64 = f.next()?.parse().ok()?;
            (m == machine && gb.is_finite() && gb > 0.0).then_some((date, gb))
        })
        .filter(|(d, _)| (today - *d).num_days() <= MAX_AGE_DAYS)
        .collect();
    used.push((today, now_gb_per_s));
    if let Some(p) = &path {
        let line = format!(
            "{}\t{machine}\t{now_gb_per_s:.2}\n",
            today.format("%Y-%m-%d")
        );
        let _ = std::fs::create_dir_all(p.parent().expect("a file in a folder"));
        let _ = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .and_then(|mut f| std::io::Write::write_all(&mut f, line.as_bytes()));
    }
    let best = used.iter().map(|u| u.1).fold(0.0, f64::max);
    let low = used.iter().map(|u| u.1).fold(f64::INFINITY, f64::min);
    let since = used.iter().map(|u| u.0).min().unwrap_or(today);
    HostBandwidth {
        gb_per_s: best,
        now_gb_per_s,
        low_gb_per_s: low,
        probes: used.len(),
        since: since.format("%Y-%m-%d").to_string(),
    }
}
