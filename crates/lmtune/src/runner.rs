//! The runner's side of the worker: spawn it, talk to it, notice its death.
//!
//! Measurements never run in this process. A reader thread turns the
//! worker's protocol stream into events on a channel (ending with
//! [`Event::Exited`]); another keeps the last lines of its stderr, where
//! llama.cpp writes its errors, so a dead worker still explains itself.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use lmtune_backend::protocol::{Request, Response, PROTOCOL_VERSION};
use lmtune_backend::BackendInfo;
use lmtune_core::scenario::BackendSpec;

/// Lines of worker stderr kept for failure reports.
const STDERR_TAIL_LINES: usize = 20;

/// Receives each line the worker writes to stderr (verbose mode).
pub type LineSink = Arc<dyn Fn(&str) + Send + Sync>;

/// How the worker is started.
#[derive(Clone, Default)]
pub struct SpawnOptions {
    pub verbose: bool,
    pub echo: Option<LineSink>,
    /// RLIMIT_AS for the worker, bytes.
    pub memory_limit_bytes: Option<u64>,
    /// The backend to host, with its settings; the worker gets it as JSON.
    pub backend: BackendSpec,
    /// Threads of a backend that sizes its pools once per process (candle):
    /// set as CANDLE_NUM_THREADS and RAYON_NUM_THREADS.
    pub threads: Option<u32>,
}

/// What waiting for the worker produced.
#[derive(Debug)]
pub enum Wait {
    Event(Event),
    TimedOut,
    Interrupted,
}

#[derive(Debug)]
pub enum Event {
    Response(Response),
    /// The protocol stream ended: the worker exited or was killed.
    Exited,
}

pub struct Worker {
    child: Child,
    stdin: ChildStdin,
    events: Receiver<Event>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    pub info: BackendInfo,
}

/// How a dead worker ended.
#[derive(Debug, Clone)]
pub struct Death {
    pub description: String,
    pub stderr_tail: Vec<String>,
    /// Its last stderr lines say an allocation failed (an allocation
    /// failure outside llama.cpp's own checks: C++ `bad_alloc`, Rust's
    /// allocation error), so it ran out of memory rather than crashed.
    pub out_of_memory: bool,
}

impl Worker {
    /// Starts `lmtune __worker` for `options.backend` and waits for its hello.
    pub fn spawn(options: &SpawnOptions) -> anyhow::Result<Worker> {
        let exe = worker_exe()?;
        let mut cmd = Command::new(&exe);
        let spec = serde_json::to_string(&options.backend).expect("plain data serializes");
        cmd.args(["__worker", "--backend", &spec]);
        if options.verbose {
            cmd.arg("--verbose");
        }
        if let Some(threads) = options.threads {
            cmd.env("CANDLE_NUM_THREADS", threads.to_string())
                .env("RAYON_NUM_THREADS", threads.to_string());
        }
        // ggml_abort attaches gdb for a backtrace, whose 20+ frames would push
        // llama.cpp's own reason out of the stderr tail we keep.
        if std::env::var_os("GGML_NO_BACKTRACE").is_none() {
            cmd.env("GGML_NO_BACKTRACE", "1");
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        isolate(&mut cmd, options.memory_limit_bytes);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start the worker process {}", exe.display()))?;
        let stdin = child.stdin.take().context("worker stdin")?;
        let stdout = child.stdout.take().context("worker stdout")?;
        let stderr = child.stderr.take().context("worker stderr")?;

        let (tx, events) = channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                match serde_json::from_str::<Response>(&line) {
                    Ok(r) => {
                        if tx.send(Event::Response(r)).is_err() {
                            return;
                        }
                    }
                    // Not ours: the worker redirects C-level stdout, so this is unexpected; keep going.
                    Err(_) => eprintln!("lmtune: ignoring unexpected worker output: {line}"),
                }
            }
            let _ = tx.send(Event::Exited);
        });
        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        let tail = Arc::clone(&stderr_tail);
        let echo = options.echo.clone();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(echo) = &echo {
                    echo(&line);
                }
                let mut tail = tail.lock().unwrap_or_else(|p| p.into_inner());
                if tail.len() == STDERR_TAIL_LINES {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
        });

        let mut worker = Worker {
            child,
            stdin,
            events,
            stderr_tail,
            info: BackendInfo {
                name: String::new(),
                version: String::new(),
                build: String::new(),
                devices: Vec::new(),
            },
        };
        match worker.next() {
            Event::Response(Response::Hello {
                protocol, backend, ..
            }) => {
                if protocol != PROTOCOL_VERSION {
                    bail!("worker {} speaks protocol {protocol}, this runner {PROTOCOL_VERSION} (a stale binary?)", exe.display());
                }
                worker.info = backend;
                Ok(worker)
            }
            Event::Response(Response::Error { error }) => {
                bail!(
                    "the {} backend could not start: {error}",
                    options.backend.name()
                )
            }
            Event::Response(other) => bail!("worker sent {other:?} before its hello"),
            Event::Exited => {
                let death = worker.death();
                bail!(
                    "the worker process could not start: {}\n{}",
                    death.description,
                    death.stderr_tail.join("\n")
                )
            }
        }
    }

    pub fn send(&mut self, request: &Request) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(request).map_err(std::io::Error::other)?;
        line.push(b'\n');
        self.stdin.write_all(&line)?;
        self.stdin.flush()
    }

    /// The next event; blocks.
    pub fn next(&mut self) -> Event {
        self.events.recv().unwrap_or(Event::Exited)
    }

    /// The next event, unless `deadline` passes or `interrupted` is set first.
    pub fn next_before(&mut self, deadline: Instant, interrupted: &AtomicBool) -> Wait {
        loop {
            if interrupted.load(Ordering::SeqCst) {
                return Wait::Interrupted;
            }
            let now = Instant::now();
            if now >= deadline {
                return Wait::TimedOut;
            }
            let slice = (deadline - now).min(Duration::from_millis(100));
            match self.events.recv_timeout(slice) {
                Ok(event) => return Wait::Event(event),
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return Wait::Event(Event::Exited),
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the worker (and anything it started) and reaps it.
    pub fn kill(&mut self) -> Death {
        #[cfg(unix)]
        // SAFETY: signalling the worker's own process group, which it leads.
        unsafe {
            libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL);
        }
        let _ = self.child.kill();
        self.death()
    }

    /// Reaps a worker whose stream ended and says how it died.
    pub fn death(&mut self) -> Death {
        let description = match self.child.wait() {
            Ok(status) => lmtune_backend::process::describe_exit(status),
            Err(e) => format!("could not be waited for ({e})"),
        };
        // The stderr thread may still be draining; give it a moment.
        thread::sleep(std::time::Duration::from_millis(50));
        let stderr_tail: Vec<String> = self
            .stderr_tail
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect();
        let out_of_memory = lmtune_backend::process::logs_out_of_memory(&stderr_tail);
        Death {
            description,
            stderr_tail,
            out_of_memory,
        }
    }

    /// Asks the worker to exit and reaps it (killing it if it does not).
    pub fn shutdown(mut self) {
        let _ = self.send(&Request::Exit);
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Puts the worker in its own process group (a Ctrl-C in the terminal goes
/// to the runner, which then stops the worker itself), has the kernel kill it
/// if the runner dies (Linux), and applies the memory limit.
#[cfg(unix)]
fn isolate(cmd: &mut Command, memory_limit_bytes: Option<u64>) {
    use std::os::unix::process::CommandExt;
    cmd.process_group(0);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            #[cfg(target_os = "linux")]
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if let Some(limit) = memory_limit_bytes {
                let rl = libc::rlimit {
                    rlim_cur: limit as libc::rlim_t,
                    rlim_max: limit as libc::rlim_t,
                };
                if libc::setrlimit(libc::RLIMIT_AS, &rl) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

#[cfg(not(unix))]
fn isolate(_cmd: &mut Command, _memory_limit_bytes: Option<u64>) {}

/// The worker is this very binary.
fn worker_exe() -> anyhow::Result<PathBuf> {
    std::env::current_exe().context("cannot find the lmtune executable to start a worker")
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
