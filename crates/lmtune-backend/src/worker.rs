//! The worker side of the protocol: read requests, run the backend, answer.
//!
//! The protocol stream is a duplicate of the original stdout; file
//! descriptor 1 is then pointed at stderr, so anything a C library prints
//! with `printf` cannot corrupt the protocol.

use std::io::{BufRead, BufWriter, Write};
use std::time::Instant;

use crate::protocol::{Request, Response, PROTOCOL_VERSION};
use crate::{fault, memory};
use crate::{Backend, BackendError};

/// Serves requests on stdin until `exit` or end of input.
pub fn serve(mut backend: Box<dyn Backend>) -> std::io::Result<()> {
    let mut out = BufWriter::new(protocol_stream()?);
    let send = |out: &mut BufWriter<std::fs::File>, response: &Response| -> std::io::Result<()> {
        serde_json::to_writer(&mut *out, response)?;
        out.write_all(b"\n")?;
        out.flush()
    };
    send(
        &mut out,
        &Response::Hello {
            protocol: PROTOCOL_VERSION,
            pid: std::process::id(),
            backend: backend.info(),
        },
    )?;

    let faults = fault::from_env();
    let mut load_seq = 0u64;
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let request: Request = match serde_json::from_str(&line) {
            Ok(r) => r,
            Err(e) => {
                let error = BackendError::PointFailed {
                    message: format!("worker received a malformed request: {e}"),
                    log: vec![],
                };
                send(&mut out, &Response::Error { error })?;
                continue;
            }
        };
        match request {
            Request::Exit => break,
            Request::DryRun { model, load, ctx } => match backend.dry_run(&model, &load, &ctx) {
                Ok(dry_run) => send(
                    &mut out,
                    &Response::DryRun {
                        dry_run: Box::new(dry_run),
                    },
                )?,
                Err(error) => send(&mut out, &Response::Error { error })?,
            },
            Request::LlamaFit {
                model,
                ctx,
                request,
            } => match backend.llama_fit(&model, &ctx, &request) {
                Ok(fit) => send(&mut out, &Response::LlamaFit { fit: Box::new(fit) })?,
                Err(error) => send(&mut out, &Response::Error { error })?,
            },
            Request::Load {
                model,
                load,
                launch,
            } => {
                let start = Instant::now();
                match backend.load(&model, &load, launch.as_ref()) {
                    Ok(()) => {
                        load_seq += 1;
                        let load_ms = start.elapsed().as_secs_f64() * 1e3;
                        send(&mut out, &Response::Loaded { load_seq, load_ms })?;
                    }
                    Err(error) => send(&mut out, &Response::Error { error })?,
                }
            }
            Request::Run {
                point,
                measure,
                seed,
            } => {
                if let Some(fault) = faults.get(&point.index) {
                    fault.trigger();
                }
                let before = memory::rss().map(|(current, _)| current);
                let reset = memory::reset_peak_rss();
                let (cpu_before, wall) = (memory::cpu_seconds(), std::time::Instant::now());
                let mut progress_err = None;
                let result = backend.run(&point, &measure, seed, &mut |rep| {
                    if let Err(e) = send(&mut out, &Response::Progress { rep }) {
                        progress_err.get_or_insert(e);
                    }
                });
                if let Some(e) = progress_err {
                    return Err(e);
                }
                match result {
                    Ok(mut measurement) => {
                        // A backend that measures another process (a managed
                        // server) or models memory (sim) reports its own figures.
                        let own = measurement.server.is_some();
                        if !own {
                            measurement.rss_before_bytes = before;
                            measurement.cpu_busy_cores =
                                cpu_before.zip(memory::cpu_seconds()).and_then(|(b, a)| {
                                    memory::busy_cores(b, a, wall.elapsed().as_secs_f64())
                                });
                        }
                        if measurement.rss_peak_bytes.is_none() && !own {
                            measurement.rss_peak_bytes = if reset {
                                memory::rss().map(|(_, peak)| peak)
                            } else {
                                None
                            };
                        }
                        send(
                            &mut out,
                            &Response::Done {
                                measurement: Box::new(measurement),
                            },
                        )?;
                    }
                    Err(error) => send(&mut out, &Response::Error { error })?,
                }
            }
        }
    }
    Ok(())
}

#[cfg(unix)]
fn protocol_stream() -> std::io::Result<std::fs::File> {
    use std::os::fd::FromRawFd;
    std::io::stdout().flush()?;
    // SAFETY: plain descriptor duplication; the new descriptor is owned by the File.
    unsafe {
        let fd = libc::dup(1);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if libc::dup2(2, 1) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(std::fs::File::from_raw_fd(fd))
    }
}

#[cfg(not(unix))]
fn protocol_stream() -> std::io::Result<std::fs::File> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "the lmtune worker needs a Unix system",
    ))
}
