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

mod server;
mod sse;

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use lmtune_core::knobs::{LoadParams, TestKind};
use lmtune_core::openai::{OpenAiConfig, PromptMode, ServerLaunch};
use lmtune_core::record::{Measurement, RequestStats, ServerStats};
use lmtune_core::scenario::{MeasureSpec, Point, Repetitions};
use lmtune_core::stats::Summary;
use serde_json::{json, Value};

use crate::{Backend, BackendError, BackendInfo};
use server::ManagedServer;
use sse::{read_stream, StreamError, Streamed};

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

/// A prompt as sent.
#[derive(Debug, Clone)]
enum Prompt {
    Tokens(Vec<u32>),
    Text(String),
}

/// Why a request failed; what the point's status becomes depends on it.
#[derive(Debug, Clone, PartialEq)]
enum RequestError {
    /// The stream went silent for the stall timeout.
    Stalled(String),
    /// The server answered with an HTTP error status.
    Http {
        code: u16,
        message: String,
    },
    Other(String),
}

impl RequestError {
    /// The same error, said of one of several clients.
    fn of_client(self, client: usize) -> RequestError {
        let prefix = |m: String| format!("client {client}: {m}");
        match self {
            RequestError::Stalled(m) => RequestError::Stalled(prefix(m)),
            RequestError::Http { code, message } => RequestError::Http {
                code,
                message: prefix(message),
            },
            RequestError::Other(m) => RequestError::Other(prefix(m)),
        }
    }
}

impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RequestError::Stalled(m) | RequestError::Other(m) => f.write_str(m),
            RequestError::Http { message, .. } => f.write_str(message),
        }
    }
}

impl From<String> for RequestError {
    fn from(message: String) -> Self {
        RequestError::Other(message)
    }
}

/// One request, read to its end.
struct Outcome {
    sent: Instant,
    streamed: Streamed,
    total: Duration,
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

    /// Sends one streamed completion and reads it to the end.
    fn complete(
        &self,
        agent: &ureq::Agent,
        prompt: &Prompt,
        max_tokens: u32,
        cache_prompt: bool,
    ) -> Result<Outcome, RequestError> {
        let url = format!("{}/completions", self.base().map_err(|e| e.to_string())?);
        let prompt_json = match prompt {
            Prompt::Tokens(t) => json!(t),
            Prompt::Text(s) => json!(s),
        };
        let body = json!({
            "model": self.model_name,
            "prompt": prompt_json,
            "max_tokens": max_tokens,
            "stream": true,
            "stream_options": {"include_usage": true},
            "temperature": 0.0,
            // llama-server: generate exactly max_tokens, and control its prompt cache.
            "ignore_eos": true,
            "cache_prompt": cache_prompt,
        });
        let sent = Instant::now();
        let reply = self
            .authorized(agent.post(&url))
            .set("Content-Type", "application/json")
            .send_string(&body.to_string())
            .map_err(|e| {
                let code = match &e {
                    ureq::Error::Status(code, _) => Some(*code),
                    ureq::Error::Transport(_) => None,
                };
                let message = format!("POST {url}: {}", describe_ureq(e));
                match code {
                    Some(code) => RequestError::Http { code, message },
                    None => RequestError::Other(message),
                }
            })?;
        let streamed =
            read_stream(BufReader::new(reply.into_reader()), sent).map_err(|e| match e {
                StreamError::Stalled { .. } => RequestError::Stalled(format!(
                    "{e}: no data for {:.0} s (backend.openai.stall_timeout_s)",
                    self.config.stall_timeout_s
                )),
                other => RequestError::Other(other.to_string()),
            })?;
        Ok(Outcome {
            sent,
            total: sent.elapsed(),
            streamed,
        })
    }

    /// Decides between token ids and text, once per backend.
    fn resolve_prompt_mode(&mut self, agent: &ureq::Agent) -> Result<PromptMode, BackendError> {
        if let Some(mode) = self.prompt_mode {
            return Ok(mode);
        }
        let wanted = self.config.prompt;
        let mode = match (wanted, self.n_vocab) {
            (PromptMode::Text, _) => PromptMode::Text,
            (PromptMode::Tokens, None) => {
                return Err(BackendError::Setup {
                    message: "prompt = \"tokens\" needs the model's vocabulary size, and the GGUF does not say it".into(),
                    log: vec![],
                })
            }
            (_, Some(_)) => {
                match self.complete(agent, &Prompt::Tokens(vec![1, 2]), 1, false) {
                    Ok(_) => PromptMode::Tokens,
                    Err(e @ RequestError::Http { code: 400..=499, .. })
                        if wanted == PromptMode::Auto =>
                    {
                        self.log.push(format!(
                            "the server does not take token-id prompts ({e}); sending calibrated text"
                        ));
                        PromptMode::Text
                    }
                    Err(e) => return Err(self.request_failed(e)),
                }
            }
            (PromptMode::Auto, None) => PromptMode::Text,
        };
        self.prompt_mode = Some(mode);
        Ok(mode)
    }

    /// Prompt tokens of `text`: `/tokenize` when the server has it, else a
    /// one-token request's `usage.prompt_tokens`.
    fn count_tokens(&mut self, agent: &ureq::Agent, text: &str) -> Result<u64, RequestError> {
        if self.has_tokenize != Some(false) {
            let root = self.base().map_err(|e| e.to_string())?;
            let root = root.strip_suffix("/v1").unwrap_or(root);
            let url = format!("{root}/tokenize");
            let reply = self
                .authorized(agent.post(&url))
                .set("Content-Type", "application/json")
                .send_string(&json!({"content": text, "add_special": true}).to_string());
            let parsed = reply
                .ok()
                .and_then(|r| r.into_string().ok())
                .and_then(|b| serde_json::from_str::<Value>(&b).ok());
            match parsed {
                Some(v) if v.get("tokens").and_then(Value::as_array).is_some() => {
                    self.has_tokenize = Some(true);
                    return Ok(v["tokens"].as_array().map_or(0, |t| t.len() as u64));
                }
                _ => self.has_tokenize = Some(false),
            }
        }
        let outcome = self.complete(agent, &Prompt::Text(text.to_string()), 1, false)?;
        outcome
            .streamed
            .usage_prompt_tokens
            .ok_or_else(|| RequestError::Other("the server reports no usage.prompt_tokens, so a text prompt's length cannot be calibrated (use a server with /tokenize or usage counts, or prompt = \"tokens\")".to_string()))
    }

    /// Text of about `n` tokens.
    fn text_of(
        &mut self,
        agent: &ureq::Agent,
        n: u32,
        rng: &mut Rng,
    ) -> Result<String, RequestError> {
        if n == 0 {
            return Ok(String::new());
        }
        let per_word = match self.tokens_per_word {
            Some(r) => r,
            None => {
                let sample = words(200, &mut Rng(7));
                let r = self.count_tokens(agent, &sample)? as f64 / 200.0;
                let r = r.max(0.05);
                self.tokens_per_word = Some(r);
                r
            }
        };
        let mut count = ((f64::from(n) / per_word).round() as usize).max(1);
        // Two corrections against the real count, then accept the nearest.
        let mut text = words(count, rng);
        for _ in 0..2 {
            let got = self.count_tokens(agent, &text)? as i64;
            let diff = i64::from(n) - got;
            if diff == 0 {
                break;
            }
            count = (count as i64 + (diff as f64 / per_word).round() as i64).max(1) as usize;
            text = words(count, rng);
        }
        Ok(text)
    }

    fn prompt_of(
        &mut self,
        agent: &ureq::Agent,
        mode: PromptMode,
        n: u32,
        rng: &mut Rng,
    ) -> Result<Prompt, RequestError> {
        Ok(match mode {
            PromptMode::Text => Prompt::Text(self.text_of(agent, n, rng)?),
            _ => {
                let vocab = self.n_vocab.unwrap_or(32_000).max(2);
                Prompt::Tokens((0..n).map(|_| (rng.next() % vocab) as u32).collect())
            }
        })
    }

    /// One repetition: every client's request, sent together.
    fn repetition(
        &mut self,
        agent: &ureq::Agent,
        point: &Point,
        mode: PromptMode,
        rng: &mut Rng,
    ) -> Result<Vec<(Prompt, Outcome, u64)>, RequestError> {
        let test = point.test;
        let clients = test.concurrency.max(1);
        let depth = test.n_depth;
        let (new_tokens, max_tokens) = match test.kind() {
            TestKind::Pp => (test.n_prompt, 1),
            // tg: a one-token prompt, as llama-bench's tg starts from the cache state.
            TestKind::Tg => (u32::from(depth == 0), test.n_gen),
            TestKind::PpTg => (test.n_prompt, test.n_gen),
        };
        // Prompts, and the depth prefill (untimed, into the server's cache).
        let mut prompts = Vec::with_capacity(clients as usize);
        let mut prefix_counts = Vec::with_capacity(clients as usize);
        for _ in 0..clients {
            let prefix = self.prompt_of(agent, mode, depth, rng)?;
            let fresh = self.prompt_of(agent, mode, new_tokens, rng)?;
            let prompt = match (&prefix, fresh) {
                (Prompt::Tokens(p), Prompt::Tokens(f)) => {
                    Prompt::Tokens(p.iter().copied().chain(f).collect())
                }
                (Prompt::Text(p), Prompt::Text(f)) if p.is_empty() => Prompt::Text(f),
                (Prompt::Text(p), Prompt::Text(f)) => Prompt::Text(format!("{p} {f}")),
                _ => unreachable!("one mode per point"),
            };
            let prefix_count = if depth > 0 {
                let pre = self.complete(agent, &prefix, 1, true)?;
                pre.streamed.usage_prompt_tokens.unwrap_or(u64::from(depth))
            } else {
                0
            };
            prompts.push(prompt);
            prefix_counts.push(prefix_count);
        }
        let cache = depth > 0;
        let barrier = Barrier::new(clients as usize);
        let this = &*self;
        let results: Vec<Result<Outcome, RequestError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = prompts
                .iter()
                .map(|prompt| {
                    let barrier = &barrier;
                    scope.spawn(move || {
                        barrier.wait();
                        this.complete(agent, prompt, max_tokens, cache)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(RequestError::Other("a client thread panicked".into()))
                    })
                })
                .collect()
        });
        let mut out = Vec::with_capacity(results.len());
        for (client, ((result, prompt), prefix)) in results
            .into_iter()
            .zip(prompts)
            .zip(prefix_counts)
            .enumerate()
        {
            match result {
                Ok(outcome) => out.push((prompt, outcome, prefix)),
                Err(e) if clients > 1 => return Err(e.of_client(client)),
                Err(e) => return Err(e),
            }
        }
        Ok(out)
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

impl OpenAiBackend {
    fn stats(
        &self,
        point: &Point,
        mode: PromptMode,
        requests: Vec<RequestStats>,
        all_gaps: &[f64],
        restarts: u32,
    ) -> ServerStats {
        let pick = |f: fn(&RequestStats) -> Option<f64>| -> Vec<f64> {
            requests.iter().filter_map(f).collect()
        };
        let mut token_counts = vec![match mode {
            PromptMode::Text => {
                "prompt: usage.prompt_tokens (text prompt calibrated with the server's tokenizer)"
                    .to_string()
            }
            _ => "prompt: token ids sent (exact)".to_string(),
        }];
        token_counts.push(
            "generated: usage.completion_tokens when the server reports it, else streamed chunks"
                .into(),
        );
        ServerStats {
            mode: if self.config.command.is_some() {
                "managed".into()
            } else {
                "external".into()
            },
            base_url: self.base_url.clone().unwrap_or_default(),
            model: self.model_name.clone(),
            concurrency: point.test.concurrency.max(1),
            prompt_mode: match mode {
                PromptMode::Text => "text".into(),
                _ => "tokens".into(),
            },
            token_counts,
            ttft_ms: Summary::of(&requests.iter().map(|r| r.ttft_ms).collect::<Vec<_>>()),
            itl_ms_mean: Summary::of(all_gaps).map(|s| s.mean),
            itl_ms_p50: percentile(all_gaps, 50.0),
            itl_ms_p99: percentile(all_gaps, 99.0),
            per_client_gen_tps: Summary::of(&pick(|r| r.gen_tps)),
            server_prompt_tps: Summary::of(&pick(|r| r.server_prompt_tps)),
            server_gen_tps: Summary::of(&pick(|r| r.server_gen_tps)),
            server_restarts: restarts,
            server_pid: self.server.as_ref().map(|s| s.pid()),
            requests,
        }
    }
}

/// The `p`th percentile (nearest rank) of `xs`.
fn percentile(xs: &[f64], p: f64) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    Some(v[rank.clamp(1, v.len()) - 1])
}

/// An HTTP failure in one line: the status with the start of the server's
/// answer, or the transport error with its cause.
fn describe_ureq(e: ureq::Error) -> String {
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

/// splitmix64: reproducible prompts from the point's seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// `n` random common words.
fn words(n: usize, rng: &mut Rng) -> String {
    const WORDS: [&str; 64] = [
        "the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "was", "with", "be", "by",
        "on", "not", "he", "this", "are", "or", "his", "from", "at", "which", "but", "have", "an",
        "had", "they", "you", "were", "their", "one", "all", "we", "can", "her", "has", "there",
        "been", "if", "more", "when", "will", "would", "who", "so", "no", "river", "house",
        "light", "water", "music", "garden", "window", "market", "winter", "story", "paper",
        "mountain", "letter", "engine", "forest", "island",
    ];
    let mut out = String::with_capacity(n * 6);
    for i in 0..n {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(WORDS[(rng.next() % WORDS.len() as u64) as usize]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let xs: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&xs, 50.0), Some(50.0));
        assert_eq!(percentile(&xs, 99.0), Some(99.0));
        assert_eq!(percentile(&[3.0], 99.0), Some(3.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn words_are_reproducible() {
        assert_eq!(words(5, &mut Rng(3)), words(5, &mut Rng(3)));
        assert_eq!(words(5, &mut Rng(3)).split(' ').count(), 5);
    }
}
