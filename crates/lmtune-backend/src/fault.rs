//! Fault injection, a test hook: `LMTUNE_FAULT=abort@2,segv@4,hang@5` makes
//! the real worker abort, segfault or hang when it is asked to run the point
//! with that index, so tests can produce, on demand, the failures a real
//! backend produces only sometimes. Not for production use.

use std::collections::HashMap;

/// The environment variable read by the worker.
pub const FAULT_ENV: &str = "LMTUNE_FAULT";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `abort()`, like a failed `GGML_ASSERT`.
    Abort,
    /// A segmentation fault (SIGSEGV).
    Segv,
    /// Sleep forever, like a deadlocked backend.
    Hang,
    /// Exit with code 3, like a backend calling `exit()`.
    Exit,
}

impl Fault {
    pub fn trigger(self) {
        eprintln!("lmtune: injected fault {self:?} ({FAULT_ENV})");
        match self {
            Fault::Abort => std::process::abort(),
            Fault::Segv => {
                // SAFETY: deliberately faulting. Rust's own SIGSEGV handler (for
                // stack overflows) is reset first so the default action ends
                // the process, as it would for a segfault in llama.cpp.
                unsafe {
                    libc::signal(libc::SIGSEGV, libc::SIG_DFL);
                    std::ptr::null_mut::<u8>().write_volatile(1);
                    libc::raise(libc::SIGSEGV);
                }
            }
            Fault::Hang => loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            },
            Fault::Exit => std::process::exit(3),
        }
    }
}

/// Parses `kind@index,…`; malformed entries are reported on stderr and ignored.
pub fn parse(spec: &str) -> HashMap<usize, Fault> {
    let mut faults = HashMap::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let parsed = item.split_once('@').and_then(|(kind, index)| {
            let fault = match kind {
                "abort" => Fault::Abort,
                "segv" => Fault::Segv,
                "hang" => Fault::Hang,
                "exit" => Fault::Exit,
                _ => return None,
            };
            Some((index.parse().ok()?, fault))
        });
        match parsed {
            Some((index, fault)) => {
                faults.insert(index, fault);
            }
            None => eprintln!(
                "lmtune: ignoring malformed {FAULT_ENV} entry {item:?} (expected e.g. abort@2)"
            ),
        }
    }
    faults
}

pub fn from_env() -> HashMap<usize, Fault> {
    std::env::var(FAULT_ENV)
        .map(|s| parse(&s))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_form() {
        let f = parse("abort@2, segv@4,hang@5,bogus@1,exit@x");
        assert_eq!(f.len(), 3);
        assert_eq!(f[&2], Fault::Abort);
        assert_eq!(f[&4], Fault::Segv);
        assert_eq!(f[&5], Fault::Hang);
    }
}
