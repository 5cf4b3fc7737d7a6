//! The `openai` backend: measures an OpenAI-compatible server over HTTP
//! (streamed `/v1/completions`), either one the user runs (`base_url`) or one
//! started from a command template per load group (managed mode).
//!
//! A point maps onto requests the way llama-bench maps it onto decodes:
//! - pp: a prompt of `n_prompt` tokens with `max_tokens = 1`; t/s is the
//!   prompt tokens over the time to the first token (the user's view: HTTP
//!   and one sampled token included). The server's own `prompt_per_second`
//!   goes next to it, as llama.cpp's perf counters do in-process.
//! - tg: `n_gen` tokens after a one-token prompt (`ignore_eos`); t/s is the
//!   tokens after the first over the time from the first to the last.
//! - depth: the `n_depth`-token prefix is sent first, untimed, with
//!   `cache_prompt`, then the timed request extends it; otherwise caching is
//!   off and every repetition sends fresh random tokens.
//! - concurrency N: N clients send the request at once; the sample is the
//!   aggregate (all clients' tokens over the span they took together).

mod request;
mod server;
mod sse;
mod stats;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lmtune_core::knobs::{LoadParams, TestKind};
use lmtune_core::openai::{OpenAiConfig, PromptMode, ServerLaunch};
use lmtune_core::record::{Measurement, RequestStats};
use lmtune_core::scenario::{MeasureSpec, Point, Repetitions};
use lmtune_core::stats::Summary;
use serde_json::Value;

use crate::{Backend, BackendError, BackendInfo};
use request::{Outcome, Prompt, RequestError, Rng};
use server::ManagedServer;
use stats::percentile;

pub struct OpenAiBackend {
    config: OpenAiConfig,
    verbose: bool,
    api_key: Option<String>,
    server: Option<ManagedServer>,
    model_path: Option<PathBuf>,
    base_url: Option<String>,
    model_name: String,
    n_vocab: Option<u64>,
    /// Tokens or text, once the server has been asked.
    prompt_mode: Option<PromptMode>,
    /// Whether the server has llama.cpp's `/tokenize`.
    has_tokenize: Option<bool>,
    /// Text mode: tokens per word, from calibration.
    tokens_per_word: Option<f64>,
    build: String,
    log: Vec<String>,
}

impl OpenAiBackend {
    pub fn new(config: OpenAiConfig, verbose: bool) -> Result<OpenAiBackend, BackendError> {
        let api_key = match &config.api_key_env {
            None => None,
            Some(var) => match std::env::var(var) {
                Ok(key) if !key.is_empty() => Some(key),
                _ => {
                    return Err(BackendError::Setup {
                        message: format!(
                            "the environment variable {var} (backend.openai.api_key_env) is not set; export it with the server's API key"
                        ),
                        log: vec![],
                    })
                }
            },
        };
        let build = match (&config.command, &config.base_url) {
            (Some(cmd), _) => format!("managed: {}", program_version(&cmd[0])),
            (None, Some(url)) => format!("external: {url}"),
            (None, None) => "unconfigured".into(),
        };
        Ok(OpenAiBackend {
            model_path: config.model_path.clone(),
            config,
            verbose,
            api_key,
            server: None,
            base_url: None,
            model_name: String::new(),
            n_vocab: None,
            prompt_mode: None,
            has_tokenize: None,
            tokens_per_word: None,
            build,
            log: Vec::new(),
        })
    }

    fn agent(&self) -> ureq::Agent {
        ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs_f64(self.config.connect_timeout_s))
            .timeout_read(Duration::from_secs_f64(self.config.stall_timeout_s))
            .timeout_write(Duration::from_secs_f64(self.config.stall_timeout_s))
            .build()
    }

    fn base(&self) -> Result<&str, BackendError> {
        self.base_url.as_deref().ok_or(BackendError::NotLoaded)
    }

    fn authorized(&self, req: ureq::Request) -> ureq::Request {
        match &self.api_key {
            Some(key) => req.set("Authorization", &format!("Bearer {key}")),
            None => req,
        }
    }

    /// `/v1/models`: checks the server answers and picks the model name.
    fn probe_models(&mut self) -> Result<(), BackendError> {
        let url = format!("{}/models", self.base()?);
        let key_hint = match &self.config.api_key_env {
            Some(var) => format!("check the key in {var} (backend.openai.api_key_env)"),
            None => "if the server wants an API key, set backend.openai.api_key_env".into(),
        };
        let reply = self
            .authorized(self.agent().get(&url))
            .call()
            .map_err(|e| {
                let message = match e {
                    e @ ureq::Error::Status(..) => format!(
                        "the server at {url} refused the request: {} (fix: {key_hint})",
                        describe_ureq(e)
                    ),
                    e => format!(
                        "cannot reach the server at {url}: {} (fix: start the server, or check [backend.openai] base_url)",
                        describe_ureq(e)
                    ),
                };
                BackendError::LoadFailed {
                    message,
                    log: vec![],
                }
            })?;
        let body: Value = reply
            .into_string()
            .ok()
            .and_then(|b| serde_json::from_str(&b).ok())
            .unwrap_or(Value::Null);
        let listed = body
            .get("data")
            .and_then(Value::as_array)
            .and_then(|d| d.first())
            .and_then(|m| m.get("id"))
            .and_then(Value::as_str)
            .map(str::to_string);
        self.model_name = self
            .config
            .model
            .clone()
            .or(listed)
            .unwrap_or_else(|| "default".into());
        Ok(())
    }

    /// The managed server's state before a point: restarted when it died.
    fn ensure_server(&mut self, restarts: &mut u32) -> Result<(), BackendError> {
        let Some(server) = self.server.as_mut() else {
            return Ok(());
        };
        let Some(how) = server.exited() else {
            return Ok(());
        };
        let (command, launch) = (
            self.config.command.clone().unwrap_or_default(),
            server.launch.clone(),
        );
        self.log.push(format!(
            "the server had exited ({how}); started it again with the same settings"
        ));
        self.server = None;
        self.start_server(&command, &launch)?;
        *restarts += 1;
        Ok(())
    }

    fn start_server(
        &mut self,
        command: &[String],
        launch: &ServerLaunch,
    ) -> Result<(), BackendError> {
        let model = self
            .model_path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let server = ManagedServer::start(
            command,
            &model,
            launch,
            Duration::from_secs_f64(self.config.ready_timeout_s),
            self.verbose,
        )?;
        self.base_url = Some(server.base_url());
        self.server = Some(server);
        Ok(())
    }

    /// The point's error for a failed request: the server's death when its
    /// process is gone; a timeout when the stream stalled (a managed server
    /// is then killed, as it may be wedged, and the next point starts a new
    /// one); otherwise a failed point.
    fn request_failed(&mut self, error: RequestError) -> BackendError {
        let what = error.to_string();
        if let Some(server) = self.server.as_mut() {
            // A dying process closes its sockets before it can be waited
            // on: give a server that just dropped the connection a moment.
            let deadline = Instant::now() + Duration::from_secs(1);
            let mut exited = server.exited();
            while exited.is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
                exited = server.exited();
            }
            if let Some(how) = exited {
                std::thread::sleep(Duration::from_millis(100));
                let tail = server.tail();
                return BackendError::ServerDied {
                    message: format!(
                        "the server died ({how}): {what}; last lines:\n{}",
                        tail.join("\n")
                    ),
                    log: tail,
                };
            }
        }
        if let RequestError::Stalled(_) = error {
            if let Some(server) = self.server.as_mut() {
                server.kill();
            }
            return BackendError::TimedOut {
                message: what,
                log: std::mem::take(&mut self.log),
            };
        }
        BackendError::PointFailed {
            message: what,
            log: std::mem::take(&mut self.log),
        }
    }
}

impl Backend for OpenAiBackend {
    fn info(&self) -> BackendInfo {
        BackendInfo {
            name: "openai".into(),
            version: lmtune_core::LMTUNE_VERSION.into(),
            build: self.build.clone(),
            devices: Vec::new(),
        }
    }

    fn load(
        &mut self,
        model: &Path,
        _load: &LoadParams,
        launch: Option<&ServerLaunch>,
    ) -> Result<(), BackendError> {
        self.model_path = Some(model.to_path_buf());
        self.n_vocab = lmtune_gguf::GgufFile::open(model)
            .and_then(|f| f.summary())
            .ok()
            .and_then(|s| s.n_vocab);
        self.server = None;
        match self.config.command.clone() {
            Some(command) => {
                let launch = launch.ok_or_else(|| BackendError::Setup {
                    message: "a managed server needs its launch settings with the load request"
                        .into(),
                    log: vec![],
                })?;
                self.start_server(&command, launch)?;
            }
            None => self.base_url = self.config.base_url.clone(),
        }
        self.probe_models()
    }

    fn run(
        &mut self,
        point: &Point,
        measure: &MeasureSpec,
        seed: u64,
        progress: &mut dyn FnMut(u32),
    ) -> Result<Measurement, BackendError> {
        let mut restarts = 0;
        self.ensure_server(&mut restarts)?;
        let agent = self.agent();
        let mode = self.resolve_prompt_mode(&agent)?;
        let mut rng = Rng(seed | 1);
        let test = point.test;
        let kind = test.kind();

        for _ in 0..measure.warmup {
            if let Err(e) = self.repetition(&agent, point, mode, &mut rng) {
                return Err(self.request_failed(e));
            }
        }
        let before = self.server.as_ref().and_then(|s| s.rss()).map(|r| r.0);
        let reset = self.server.as_ref().is_some_and(|s| s.reset_peak_rss());

        let (min, max) = match measure.repetitions {
            Repetitions::Fixed { count } => (count, count),
            Repetitions::Auto { min, max, .. } => (min.min(max), max),
        };
        let mut m = Measurement::default();
        let mut requests = Vec::new();
        let mut all_gaps = Vec::new();
        for rep in 0..max {
            let outcomes = match self.repetition(&agent, point, mode, &mut rng) {
                Ok(o) => o,
                Err(e) => return Err(self.request_failed(e)),
            };
            // The span all clients took together, and their timed tokens.
            let start = outcomes
                .iter()
                .map(|(_, o, _)| o.sent)
                .min()
                .expect("clients");
            // pp ends at each first token; tg runs from the first to the last.
            let first_of = |o: &Outcome| o.streamed.token_times.first().copied().unwrap_or(o.total);
            let span_start = match kind {
                TestKind::Tg => outcomes
                    .iter()
                    .map(|(_, o, _)| o.sent + first_of(o))
                    .min()
                    .expect("clients"),
                _ => start,
            };
            let mut tokens = 0.0;
            let mut span_end = start;
            for (client, (prompt, o, prefix)) in outcomes.iter().enumerate() {
                let s = &o.streamed;
                let first = first_of(o);
                let last = s.token_times.last().copied().unwrap_or(o.total);
                let gen = s
                    .usage_completion_tokens
                    .unwrap_or(s.token_times.len() as u64);
                let sent_prompt = match prompt {
                    Prompt::Tokens(t) => t.len() as u64,
                    Prompt::Text(_) => s.usage_prompt_tokens.unwrap_or(0),
                };
                let gaps: Vec<f64> = s
                    .token_times
                    .windows(2)
                    .map(|w| (w[1] - w[0]).as_secs_f64() * 1e3)
                    .collect();
                all_gaps.extend_from_slice(&gaps);
                let gen_tps = (gen > 1 && last > first)
                    .then(|| (gen - 1) as f64 / (last - first).as_secs_f64());
                match kind {
                    TestKind::Pp | TestKind::PpTg => {
                        tokens += sent_prompt.saturating_sub(*prefix) as f64;
                        span_end = span_end.max(o.sent + first);
                    }
                    TestKind::Tg => {
                        tokens += gen.saturating_sub(1) as f64;
                        span_end = span_end.max(o.sent + last);
                    }
                }
                let t = s.timings.unwrap_or_default();
                requests.push(RequestStats {
                    rep,
                    client: client as u32,
                    prompt_tokens: s.usage_prompt_tokens.unwrap_or(sent_prompt),
                    gen_tokens: gen,
                    chunks: s.token_times.len() as u64,
                    ttft_ms: first.as_secs_f64() * 1e3,
                    total_ms: o.total.as_secs_f64() * 1e3,
                    gen_tps,
                    itl_ms_p50: percentile(&gaps, 50.0),
                    itl_ms_p99: percentile(&gaps, 99.0),
                    server_prompt_tps: t.prompt_per_second,
                    server_gen_tps: t.predicted_per_second,
                    server_prompt_n: t.prompt_n,
                    server_cache_n: t.cache_n,
                });
            }
            let span = span_end.saturating_duration_since(span_start);
            let ns = (span.as_nanos() as u64).max(1);
            m.samples_ns.push(ns);
            m.samples_ts.push(tokens / (ns as f64 / 1e9));
            if outcomes.len() == 1 {
                let t = outcomes[0].1.streamed.timings.unwrap_or_default();
                let own = match kind {
                    TestKind::Tg => t.predicted_per_second,
                    _ => t.prompt_per_second,
                };
                if let Some(ts) = own {
                    m.backend_perf_ts.push(ts);
                }
            }
            progress(rep + 1);
            if let Repetitions::Auto { ci_target, .. } = measure.repetitions {
                let narrow = Summary::of(&m.samples_ts)
                    .is_some_and(|s| s.relative_ci_half_width() <= ci_target);
                if rep + 1 >= min && narrow {
                    break;
                }
            }
        }
        if m.backend_perf_ts.len() != m.samples_ts.len() {
            m.backend_perf_ts.clear();
        }
        if let Some(server) = &self.server {
            if reset {
                m.rss_peak_bytes = server.rss().map(|r| r.1);
            }
            m.rss_before_bytes = before;
        }
        m.server = Some(Box::new(
            self.stats(point, mode, requests, &all_gaps, restarts),
        ));
        m.backend_log = std::mem::take(&mut self.log);
        Ok(m)
    }
}

/// An HTTP failure in one line: the status with the start of the server's
/// answer, or the transport error with its cause.
pub(super) fn describe_ureq(e: ureq::Error) -> String {
    match e {
        ureq::Error::Status(code, reply) => {
            let status = reply.status_text().to_string();
            let body = reply.into_string().unwrap_or_default();
            let body: String = body.trim().chars().take(300).collect();
            format!("HTTP {code} {status}: {body}")
        }
        ureq::Error::Transport(t) => {
            let mut s = t.to_string();
            if let Some(src) = std::error::Error::source(&t) {
                let src = src.to_string();
                if !s.contains(&src) {
                    s = format!("{s}: {src}");
                }
            }
            s
        }
    }
}

/// The first line of `program --version` (llama-server prints its build).
fn program_version(program: &str) -> String {
    let out = std::process::Command::new(program)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .output();
    match out {
        Ok(o) => {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            let line = text
                .lines()
                .find(|l| l.starts_with("version"))
                .or_else(|| text.lines().find(|l| !l.trim().is_empty()))
                .unwrap_or("")
                .trim()
                .to_string();
            format!("{program} {line}")
        }
        Err(_) => program.to_string(),
    }
}
