//! One request and one repetition of the `openai` backend: the prompt as
//! token ids or text, a streamed completion read to its end, every client of
//! a repetition sent together, and why a request failed.

use std::io::BufReader;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use lmtune_core::knobs::TestKind;
use lmtune_core::openai::PromptMode;
use lmtune_core::scenario::Point;
use serde_json::{json, Value};

use super::sse::{read_stream, StreamError, Streamed};
use super::{describe_ureq, OpenAiBackend};
use crate::BackendError;

/// A prompt as sent.
#[derive(Debug, Clone)]
pub(super) enum Prompt {
    Tokens(Vec<u32>),
    Text(String),
}

/// Why a request failed; what the point's status becomes depends on it.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum RequestError {
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
    pub(super) fn of_client(self, client: usize) -> RequestError {
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
pub(super) struct Outcome {
    pub(super) sent: Instant,
    pub(super) streamed: Streamed,
    pub(super) total: Duration,
}

impl OpenAiBackend {
    /// Sends one streamed completion and reads it to the end.
    pub(super) fn complete(
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
    pub(super) fn resolve_prompt_mode(
        &mut self,
        agent: &ureq::Agent,
    ) -> Result<PromptMode, BackendError> {
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
    pub(super) fn count_tokens(
        &mut self,
        agent: &ureq::Agent,
        text: &str,
    ) -> Result<u64, RequestError> {
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
    pub(super) fn text_of(
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

    pub(super) fn prompt_of(
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
    pub(super) fn repetition(
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

/// splitmix64: reproducible prompts from the point's seed.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// `n` random common words.
pub(super) fn words(n: usize, rng: &mut Rng) -> String {
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
    fn words_are_reproducible() {
        assert_eq!(words(5, &mut Rng(3)), words(5, &mut Rng(3)));
        assert_eq!(words(5, &mut Rng(3)).split(' ').count(), 5);
    }
}
