//! A managed server: started from the command template on a free loopback
//! port, waited on until ready, measured (RSS of its process tree) and
//! stopped (SIGTERM, then SIGKILL).
//!
//! The server is a child of the worker and stays in the worker's process
//! group, so when the runner kills a hung worker's group the server goes
//! too; `PR_SET_PDEATHSIG` covers a worker that dies on its own.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use lmtune_core::openai::{substitute_args, ServerLaunch};

use crate::memory::process_tree;
use crate::process::{describe_exit, logs_out_of_memory};
use crate::BackendError;

/// Lines of server output kept for failure reports.
const TAIL_LINES: usize = 30;

pub struct ManagedServer {
    child: Child,
    pub port: u16,
    pub launch: ServerLaunch,
    tail: Arc<Mutex<VecDeque<String>>>,
    /// The command line as started (for logs).
    pub argv: Vec<String>,
}

impl ManagedServer {
    /// Starts the server for `launch` and waits until it answers `/health`
    /// (llama-server) or `/v1/models` (others) with 200.
    pub fn start(
        command: &[String],
        model: &str,
        launch: &ServerLaunch,
        ready_timeout: Duration,
        verbose: bool,
    ) -> Result<ManagedServer, BackendError> {
        let port = free_port().map_err(|e| BackendError::Setup {
            message: format!("cannot find a free loopback port for the server: {e}"),
            log: vec![],
        })?;
        let values = launch.values(model, "127.0.0.1", port);
        let argv = substitute_args(command, &values).map_err(|e| BackendError::Setup {
            message: format!("[backend.openai] command: {e}"),
            log: vec![],
        })?;
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::process::CommandExt;
            // SAFETY: only an async-signal-safe call between fork and exec.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
        }
        let mut child = cmd.spawn().map_err(|e| BackendError::LoadFailed {
            message: format!("cannot start the server {:?}: {e}", argv[0]),
            log: vec![],
        })?;
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let tail = Arc::clone(&tail);
            thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if verbose {
                        eprintln!("server: {line}");
                    }
                    let mut t = tail.lock().unwrap_or_else(|e| e.into_inner());
                    if t.len() == TAIL_LINES {
                        t.pop_front();
                    }
                    t.push_back(line);
                }
            });
        }
        let mut server = ManagedServer {
            child,
            port,
            launch: launch.clone(),
            tail,
            argv,
        };
        server.wait_ready(ready_timeout)?;
        Ok(server)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// The last lines the server printed.
    pub fn tail(&self) -> Vec<String> {
        self.tail
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// How the server ended, if it has.
    pub fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(describe_exit(status)),
            Ok(None) => None,
            Err(e) => Some(format!("cannot be waited on: {e}")),
        }
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), BackendError> {
        let deadline = Instant::now() + timeout;
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_millis(500))
            .timeout(Duration::from_secs(5))
            .build();
        let root = format!("http://127.0.0.1:{}", self.port);
        loop {
            if let Some(how) = self.exited() {
                // Give the output threads a moment to catch the last lines.
                thread::sleep(Duration::from_millis(100));
                let tail = self.tail();
                let message = format!(
                    "the server exited while starting ({how}): {}; last lines:\n{}",
                    self.argv.join(" "),
                    tail.join("\n")
                );
                return Err(if logs_out_of_memory(&tail) {
                    BackendError::OutOfMemory { message, log: tail }
                } else {
                    BackendError::LoadFailed { message, log: tail }
                });
            }
            for path in ["/health", "/v1/models"] {
                if let Ok(r) = agent.get(&format!("{root}{path}")).call() {
                    if r.status() == 200 {
                        return Ok(());
                    }
                }
            }
            if Instant::now() >= deadline {
                let tail = self.tail();
                let message = format!(
                    "the server did not become ready within {:.0} s (no 200 from /health or /v1/models on port {}); it was stopped; last lines:\n{}",
                    timeout.as_secs_f64(),
                    self.port,
                    tail.join("\n")
                );
                self.stop();
                return Err(BackendError::TimedOut { message, log: tail });
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM, up to 5 s to exit, then SIGKILL.
    pub fn stop(&mut self) {
        if self.exited().is_some() {
            return;
        }
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: signalling our own child.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if self.exited().is_some() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Kills the server at once (a stalled or wedged one).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Resets the peak-RSS mark of the server's process tree.
    pub fn reset_peak_rss(&self) -> bool {
        process_tree(self.pid())
            .iter()
            .all(|pid| std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok())
    }

    /// (current RSS, peak RSS since the last reset) of the server's process
    /// tree, summed over its processes, bytes.
    pub fn rss(&self) -> Option<(u64, u64)> {
        let mut total = (0, 0);
        for pid in process_tree(self.pid()) {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            let kib = |key| lmtune_core::fingerprint::meminfo_kib(&status, key);
            total.0 += kib("VmRSS")? * 1024;
            total.1 += kib("VmHWM")? * 1024;
        }
        Some(total)
    }
}

impl Drop for ManagedServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
