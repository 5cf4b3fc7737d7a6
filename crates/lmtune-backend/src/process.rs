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

/// Whether a process's log or stderr says an allocation failed (host or
/// device): llama.cpp / ggml and CUDA messages, C++'s `std::bad_alloc`,
/// Rust's "memory allocation of N bytes failed". The one place where such
/// text is read; callers turn the answer into a typed kind
/// (`BackendError::OutOfMemory`, a worker's `Death::out_of_memory`).
pub fn logs_out_of_memory(lines: &[String]) -> bool {
    const SIGNS: [&str; 7] = [
        "failed to allocate",
        "out of memory",
        "unable to allocate",
        "cannot allocate",
        "bad_alloc",
        "memory allocation of",
        "insufficient memory",
    ];
    lines.iter().any(|line| {
        let line = line.to_ascii_lowercase();
        SIGNS.iter().any(|sign| line.contains(sign))
    })
}

#[cfg(test)]
mod tests {
    use super::logs_out_of_memory;

    fn says(line: &str) -> bool {
        logs_out_of_memory(&[String::from("loading"), line.to_string()])
    }

    #[test]
    fn allocation_failures_from_each_source_are_out_of_memory() {
        assert!(says("ggml_backend_cuda_buffer_type_alloc_buffer: allocating 9000 MiB on device 0: cudaMalloc failed: out of memory"));
        assert!(says(
            "llama_init_from_model: failed to allocate compute buffers"
        ));
        assert!(says(
            "terminate called after throwing an instance of 'std::bad_alloc'"
        ));
        assert!(says("memory allocation of 68719476736 bytes failed"));
        assert!(says("mmap: Cannot allocate memory"));
        assert!(says("CUDA error: insufficient memory"));
    }

    #[test]
    fn other_deaths_are_not() {
        assert!(!says("GGML_ASSERT(n_tokens > 0) failed"));
        assert!(!logs_out_of_memory(&[]));
    }
}
