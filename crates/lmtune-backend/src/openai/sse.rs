//! Reading a streamed completion (server-sent events): each `data:` line is
//! one JSON chunk, `data: [DONE]` ends the stream. Token arrival times,
//! usage counts and the server's own timings are collected on the way.

use std::io::BufRead;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The server's own timings of one request (llama-server `timings`, LM
/// Studio `stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ServerTimings {
    pub prompt_n: Option<u64>,
    pub prompt_per_second: Option<f64>,
    pub predicted_n: Option<u64>,
    pub predicted_per_second: Option<f64>,
    pub cache_n: Option<u64>,
}

/// One streamed response, read to its end.
#[derive(Debug, Clone, Default)]
pub struct Streamed {
    /// Arrival time of every chunk that carried text, after the request was sent.
    pub token_times: Vec<Duration>,
    pub usage_prompt_tokens: Option<u64>,
    pub usage_completion_tokens: Option<u64>,
    pub timings: Option<ServerTimings>,
    pub finish_reason: Option<String>,
    pub done: bool,
}

/// Why a stream could not be read to its end.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamError {
    /// No data for the stall timeout.
    Stalled { after_chunks: usize },
    /// The connection ended before `[DONE]` (or a final chunk).
    Closed { after_chunks: usize, detail: String },
    /// A `data:` line that is not JSON, or JSON of the wrong shape.
    Malformed { line: String, detail: String },
    /// The server sent an error object inside the stream.
    ServerError { message: String },
}

impl std::fmt::Display for StreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StreamError::Stalled { after_chunks } => {
                write!(f, "the stream stalled after {after_chunks} tokens")
            }
            StreamError::Closed {
                after_chunks,
                detail,
            } => write!(
                f,
                "the connection closed mid-stream after {after_chunks} tokens ({detail})"
            ),
            StreamError::Malformed { line, detail } => {
                let shown: String = line.chars().take(200).collect();
                write!(f, "malformed server-sent event ({detail}): {shown:?}")
            }
            StreamError::ServerError { message } => {
                write!(f, "the server reported an error in the stream: {message}")
            }
        }
    }
}

/// Reads `reader` to the end of the stream. `sent` is when the request went out.
pub fn read_stream(reader: impl BufRead, sent: Instant) -> Result<Streamed, StreamError> {
    let mut out = Streamed::default();
    let mut lines = reader.lines();
    loop {
        let line = match lines.next() {
            None => break,
            Some(Ok(line)) => line,
            Some(Err(e)) => {
                let after_chunks = out.token_times.len();
                return Err(match e.kind() {
                    std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => {
                        StreamError::Stalled { after_chunks }
                    }
                    _ => StreamError::Closed {
                        after_chunks,
                        detail: e.to_string(),
                    },
                });
            }
        };
        let now = sent.elapsed();
        let line = line.trim_end_matches('\r');
        // Comments (": ping"), event names and ids carry no data.
        let Some(data) = line.strip_prefix("data:") else {
            if let Some(message) = line.strip_prefix("error:") {
                return Err(StreamError::ServerError {
                    message: message.trim().to_string(),
                });
            }
            continue;
        };
        let data = data.trim_start();
        if data == "[DONE]" {
            out.done = true;
            break;
        }
        let chunk: Value = serde_json::from_str(data).map_err(|e| StreamError::Malformed {
            line: line.to_string(),
            detail: e.to_string(),
        })?;
        if !chunk.is_object() {
            return Err(StreamError::Malformed {
                line: line.to_string(),
                detail: "an event is not a JSON object".into(),
            });
        }
        if let Some(err) = chunk.get("error") {
            let message = err
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| err.to_string());
            return Err(StreamError::ServerError { message });
        }
        if let Some(choice) = chunk
            .get("choices")
            .and_then(Value::as_array)
            .and_then(|c| c.first())
        {
            let text = choice
                .get("text")
                .and_then(Value::as_str)
                .or_else(|| {
                    choice
                        .get("delta")
                        .and_then(|d| d.get("content"))
                        .and_then(Value::as_str)
                })
                .unwrap_or("");
            // A token can decode to no text (a partial UTF-8 sequence); a
            // chunk without a finish reason is still a token event.
            let finish = choice.get("finish_reason").and_then(Value::as_str);
            if !text.is_empty() || finish.is_none() {
                out.token_times.push(now);
            }
            if let Some(reason) = finish {
                out.finish_reason = Some(reason.to_string());
            }
        }
        if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
            out.usage_prompt_tokens = usage.get("prompt_tokens").and_then(Value::as_u64);
            out.usage_completion_tokens = usage.get("completion_tokens").and_then(Value::as_u64);
        }
        if let Some(t) = chunk.get("timings").filter(|t| t.is_object()) {
            out.timings = Some(ServerTimings {
                prompt_n: t.get("prompt_n").and_then(Value::as_u64),
                prompt_per_second: t.get("prompt_per_second").and_then(Value::as_f64),
                predicted_n: t.get("predicted_n").and_then(Value::as_u64),
                predicted_per_second: t.get("predicted_per_second").and_then(Value::as_f64),
                cache_n: t.get("cache_n").and_then(Value::as_u64),
            });
        } else if let Some(s) = chunk.get("stats").filter(|s| s.is_object()) {
            // LM Studio: stats.tokens_per_second (generation).
            out.timings = Some(ServerTimings {
                predicted_per_second: s.get("tokens_per_second").and_then(Value::as_f64),
                ..ServerTimings::default()
            });
        }
    }
    if !out.done && out.finish_reason.is_none() {
        return Err(StreamError::Closed {
            after_chunks: out.token_times.len(),
            detail: "no [DONE] event and no finish_reason".into(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    //! Malformed streams cannot be produced on demand by a real server, so
    //! the parser is checked on written-out streams here; the integration
    //! tests cover the real llama-server's streams.
    use super::*;

    fn read(text: &str) -> Result<Streamed, StreamError> {
        read_stream(
            std::io::Cursor::new(text.as_bytes().to_vec()),
            Instant::now(),
        )
    }

    #[test]
    fn reads_tokens_usage_and_timings() {
        let s = read(concat!(
            ": keep-alive\n\n",
            "data: {\"choices\":[{\"text\":\"Hel\",\"finish_reason\":null}]}\n\n",
            "data: {\"choices\":[{\"text\":\"lo\",\"finish_reason\":null}]}\n\n",
            "data: {\"choices\":[{\"text\":\"\",\"finish_reason\":\"length\"}],",
            "\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2},",
            "\"timings\":{\"prompt_n\":7,\"prompt_per_second\":100.5,\"predicted_n\":2,\"predicted_per_second\":50.0,\"cache_n\":0}}\n\n",
            "data: [DONE]\n\n"
        ))
        .unwrap();
        assert_eq!(s.token_times.len(), 2);
        assert_eq!(s.usage_completion_tokens, Some(2));
        assert_eq!(s.usage_prompt_tokens, Some(7));
        let t = s.timings.unwrap();
        assert_eq!(t.prompt_per_second, Some(100.5));
        assert_eq!(t.cache_n, Some(0));
        assert!(s.done);
    }

    #[test]
    fn malformed_json_is_an_error_naming_the_line() {
        let e = read("data: {\"choices\":[{\"text\":\"a\"}]}\ndata: {not json\n").unwrap_err();
        assert!(matches!(e, StreamError::Malformed { .. }), "{e:?}");
        assert!(e.to_string().contains("{not json"), "{e}");
        let e = read("data: [1,2]\n").unwrap_err();
        assert!(e.to_string().contains("not a JSON object"), "{e}");
    }

    #[test]
    fn a_stream_cut_short_is_closed_not_ok() {
        let e =
            read("data: {\"choices\":[{\"text\":\"a\",\"finish_reason\":null}]}\n").unwrap_err();
        assert_eq!(
            e,
            StreamError::Closed {
                after_chunks: 1,
                detail: "no [DONE] event and no finish_reason".into()
            }
        );
    }

    #[test]
    fn an_error_event_is_reported() {
        let e =
            read("data: {\"error\":{\"message\":\"context full\",\"code\":400}}\n").unwrap_err();
        assert_eq!(
            e,
            StreamError::ServerError {
                message: "context full".into()
            }
        );
    }

    #[test]
    fn chat_deltas_count_as_tokens() {
        let s = read(concat!(
            "data: {\"choices\":[{\"delta\":{\"content\":\"x\"},\"finish_reason\":null}]}\n",
            "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}],\"stats\":{\"tokens_per_second\":12.5}}\n",
            "data: [DONE]\n"
        ))
        .unwrap();
        assert_eq!(s.token_times.len(), 1);
        assert_eq!(s.timings.unwrap().predicted_per_second, Some(12.5));
    }
}
