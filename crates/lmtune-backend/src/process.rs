//! Child processes as the runner and the backends see them: how one ended,
//! and whether its last words say memory ran out.

/// How a child process ended, in words a user can act on.
pub fn describe_exit(status: std::process::ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            let name = match sig {
                libc::SIGABRT => "SIGABRT (abort, e.g. a failed assertion in llama.cpp)",
                libc::SIGSEGV => "SIGSEGV (segmentation fault)",
                libc::SIGKILL => "SIGKILL (killed, e.g. by the out-of-memory killer)",
                libc::SIGBUS => "SIGBUS (bus error)",
                libc::SIGILL => "SIGILL (illegal instruction: a build for another CPU?)",
                libc::SIGFPE => "SIGFPE (arithmetic error)",
                libc::SIGTERM => "SIGTERM",
                _ => "",
            };
            return if name.is_empty() {
                format!("killed by signal {sig}")
            } else {
                format!("killed by {name}")
            };
        }
    }
    match status.code() {
        Some(code) => format!("exited with code {code}"),
        None => "ended".into(),
    }
}

/// Whether llama.cpp / ggml (or CUDA) logged an allocation failure (host or
/// device) in these lines.
pub fn logs_out_of_memory(lines: &[String]) -> bool {
    const SIGNS: [&str; 5] = [
        "failed to allocate",
        "out of memory",
        "unable to allocate",
        "cannot allocate",
        "bad_alloc",
    ];
    lines.iter().any(|line| {
        let line = line.to_ascii_lowercase();
        SIGNS.iter().any(|sign| line.contains(sign))
    })
}
