//! The server-side statistics of a point: request latencies as
//! percentiles, and the server's own timings.

use lmtune_core::openai::PromptMode;
use lmtune_core::record::{RequestStats, ServerStats};
use lmtune_core::scenario::Point;
use lmtune_core::stats::Summary;

use super::OpenAiBackend;

impl OpenAiBackend {
    pub(super) fn stats(
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
pub(super) fn percentile(xs: &[f64], p: f64) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    Some(v[rank.clamp(1, v.len()) - 1])
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
}
