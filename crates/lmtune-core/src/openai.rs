//! Settings of the `openai` backend: an OpenAI-compatible server, either one
//! the user runs (`base_url`) or one lmtune starts per load group from a
//! command template (`command`, managed mode).
//!
//! ```toml
//! [backend]
//! kind = "openai"
//!
//! [backend.openai]
//! # managed: started on a free loopback port for each server configuration
//! command = ["llama-server", "-m", "{model}", "--port", "{port}", "-c", "{n_ctx_total}",
//!            "-np", "{parallel}", "-b", "{n_batch}", "-ub", "{n_ubatch}", "-t", "{threads}"]
//! # or external: base_url = "http://127.0.0.1:1234/v1"
//! api_key_env = "LMSTUDIO_API_KEY"   # the key is read from this variable, never stored
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::knobs::{ContextParams, LoadParams};

/// How prompts of an exact token length are sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PromptMode {
    /// Token ids when the server takes them (llama-server does), else text.
    #[default]
    Auto,
    /// Token ids (`"prompt": [1, 2, 3]`); exact.
    Tokens,
    /// Text, calibrated with the server's `/tokenize` or its `usage` counts.
    Text,
}

/// Settings of the `openai` backend, passed to its worker as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenAiConfig {
    /// The API root of an external server, e.g. `http://127.0.0.1:1234/v1`.
    pub base_url: Option<String>,
    /// Managed mode: the server's command line, with `{placeholders}`.
    pub command: Option<Vec<String>>,
    /// The model name sent with each request; default: the first of `/v1/models`.
    pub model: Option<String>,
    /// Name of the environment variable holding the API key.
    pub api_key_env: Option<String>,
    /// How long a managed server may take to become ready, seconds.
    pub ready_timeout_s: f64,
    /// The longest silence allowed inside a streamed response, seconds.
    pub stall_timeout_s: f64,
    /// Time to connect to the server, seconds.
    pub connect_timeout_s: f64,
    pub prompt: PromptMode,
    /// Where the GGUF the server serves lives (`{model}`).
    #[serde(default)]
    pub model_path: Option<std::path::PathBuf>,
}

impl Default for OpenAiConfig {
    fn default() -> Self {
        OpenAiConfig {
            base_url: None,
            command: None,
            model: None,
            api_key_env: None,
            ready_timeout_s: 120.0,
            stall_timeout_s: 30.0,
            connect_timeout_s: 5.0,
            prompt: PromptMode::Auto,
            model_path: None,
        }
    }
}

/// The placeholders a managed command may use.
pub const PLACEHOLDERS: [&str; 17] = [
    "model",
    "port",
    "host",
    "n_gpu_layers",
    "n_ctx",
    "n_ctx_total",
    "parallel",
    "n_batch",
    "n_ubatch",
    "threads",
    "type_k",
    "type_v",
    "flash_attn",
    "swa_full",
    "n_cpu_moe",
    "cpu_moe",
    "override_tensor",
];

/// Placeholders whose empty value removes the argument *and* the flag
/// before it (`"-ot", "{override_tensor}"` with no override).
const VALUE_OR_NOTHING: [&str; 1] = ["override_tensor"];

/// The placeholders that carry each sweep axis (an axis with several values
/// needs one of them in a managed command, or every point would measure the
/// same server).
pub fn placeholders_of_axis(axis: &str) -> &'static [&'static str] {
    match axis {
        "n_gpu_layers" => &["n_gpu_layers"],
        "n_ctx" => &["n_ctx", "n_ctx_total"],
        "n_batch" => &["n_batch"],
        "n_ubatch" => &["n_ubatch"],
        "threads" => &["threads"],
        "type_k" => &["type_k"],
        "type_v" => &["type_v"],
        "flash_attn" => &["flash_attn"],
        "swa_full" => &["swa_full"],
        "n_cpu_moe" => &["n_cpu_moe"],
        "cpu_moe" => &["cpu_moe"],
        "override_tensor" => &["override_tensor"],
        "concurrency" => &["parallel", "n_ctx_total"],
        _ => &[],
    }
}

/// Everything a managed server is started with; two points with the same
/// launch share one server.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ServerLaunch {
    pub load: LoadParams,
    pub ctx: ContextParams,
    /// Parallel slots (the point's concurrency).
    pub parallel: u32,
}

impl ServerLaunch {
    /// The values of the placeholders for this launch.
    pub fn values(&self, model: &str, host: &str, port: u16) -> BTreeMap<&'static str, String> {
        let c = &self.ctx;
        BTreeMap::from([
            ("model", model.to_string()),
            ("port", port.to_string()),
            ("host", host.to_string()),
            ("n_gpu_layers", self.load.n_gpu_layers.to_string()),
            ("n_ctx", c.n_ctx.to_string()),
            (
                "n_ctx_total",
                (u64::from(c.n_ctx) * u64::from(self.parallel.max(1))).to_string(),
            ),
            ("parallel", self.parallel.max(1).to_string()),
            ("n_batch", c.n_batch.to_string()),
            ("n_ubatch", c.n_ubatch.to_string()),
            ("threads", c.threads.to_string()),
            ("type_k", c.type_k.to_string()),
            ("type_v", c.type_v.to_string()),
            ("flash_attn", c.flash_attn.to_string()),
            // llama-server's flag itself: an argument that is only
            // `{swa_full}` is dropped when it is off (see `substitute_args`).
            (
                "swa_full",
                if c.swa_full { "--swa-full" } else { "" }.to_string(),
            ),
            ("n_cpu_moe", self.load.n_cpu_moe.to_string()),
            // Also a flag: `{cpu_moe}` alone is dropped when off.
            (
                "cpu_moe",
                if self.load.cpu_moe { "--cpu-moe" } else { "" }.to_string(),
            ),
            // llama-server's --override-tensor separates entries with `,`.
            (
                "override_tensor",
                self.load
                    .tensor_overrides_of_text()
                    .iter()
                    .map(|o| format!("{}={}", o.pattern, o.buft))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        ])
    }
}

/// Why a command line's placeholders could not be filled in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlaceholderError {
    #[error("unmatched `}}` in {arg:?} (write `}}}}` for a literal brace)")]
    UnmatchedClose { arg: String },
    #[error("unclosed `{{` in {arg:?}")]
    Unclosed { arg: String },
    #[error(
        "unknown placeholder {{{name}}} in {arg:?}; known: {}",
        known_placeholders()
    )]
    Unknown { name: String, arg: String },
}

fn known_placeholders() -> String {
    PLACEHOLDERS.map(|p| format!("{{{p}}}")).join(" ")
}

/// A command line with its placeholders replaced; an argument that is a
/// lone placeholder with an empty value (`{swa_full}` when off) is dropped,
/// so a flag without a value can be switched; for `{override_tensor}` the
/// flag before it goes too (`"-ot", "{override_tensor}"` with no override).
pub fn substitute_args(
    args: &[String],
    values: &BTreeMap<&'static str, String>,
) -> Result<Vec<String>, PlaceholderError> {
    let mut out = Vec::with_capacity(args.len());
    for arg in args {
        let value = substitute(arg, values)?;
        let lone_placeholder = arg.starts_with('{') && arg.ends_with('}') && !arg.starts_with("{{");
        if value.is_empty() && lone_placeholder {
            let name = &arg[1..arg.len() - 1];
            if VALUE_OR_NOTHING.contains(&name)
                && out.last().is_some_and(|a: &String| a.starts_with('-'))
            {
                out.pop();
            }
        } else {
            out.push(value);
        }
    }
    Ok(out)
}

/// Replaces `{name}` in `arg` with `values[name]`; `{{` and `}}` are literal
/// braces. Unknown names are an error naming them.
pub fn substitute(
    arg: &str,
    values: &BTreeMap<&'static str, String>,
) -> Result<String, PlaceholderError> {
    let mut out = String::with_capacity(arg.len());
    let mut rest = arg;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            out.push_str(&tail[..1]);
            rest = &tail[2..];
            continue;
        }
        if tail.starts_with('}') {
            return Err(PlaceholderError::UnmatchedClose {
                arg: arg.to_string(),
            });
        }
        let Some(end) = tail.find('}') else {
            return Err(PlaceholderError::Unclosed {
                arg: arg.to_string(),
            });
        };
        let name = &tail[1..end];
        match values.get(name) {
            Some(v) => out.push_str(v),
            None => {
                return Err(PlaceholderError::Unknown {
                    name: name.to_string(),
                    arg: arg.to_string(),
                })
            }
        }
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The placeholders `command` uses.
pub fn used_placeholders(command: &[String]) -> Vec<String> {
    let mut used = Vec::new();
    for arg in command {
        let mut rest = arg.as_str();
        while let Some(i) = rest.find('{') {
            let tail = &rest[i..];
            if let Some(after) = tail.strip_prefix("{{") {
                rest = after;
                continue;
            }
            match tail.find('}') {
                Some(end) => {
                    used.push(tail[1..end].to_string());
                    rest = &tail[end + 1..];
                }
                None => break,
            }
        }
    }
    used
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::knobs::{FlashAttn, KvType};

    fn launch() -> ServerLaunch {
        ServerLaunch {
            load: LoadParams::new(31, true),
            ctx: ContextParams {
                n_ctx: 512,
                n_batch: 256,
                n_ubatch: 128,
                threads: 2,
                type_k: KvType::F16,
                type_v: KvType::Q8_0,
                flash_attn: FlashAttn::On,
                op_offload: true,
                swa_full: false,
            },
            parallel: 4,
        }
    }

    #[test]
    fn substitutes_every_placeholder() {
        let values = launch().values("/m.gguf", "127.0.0.1", 8080);
        let got = |s: &str| substitute(s, &values).unwrap();
        assert_eq!(got("{model}"), "/m.gguf");
        assert_eq!(got("--port={port}"), "--port=8080");
        assert_eq!(got("{n_ctx_total}"), "2048");
        assert_eq!(got("{n_ctx}x{parallel}"), "512x4");
        assert_eq!(got("{type_v}/{flash_attn}"), "q8_0/on");
        assert_eq!(got("{{literal}}"), "{literal}");
        for p in PLACEHOLDERS {
            assert!(values.contains_key(p), "{p} has no value");
        }
    }

    #[test]
    fn a_lone_empty_placeholder_drops_its_argument() {
        let mut l = launch();
        let cmd: Vec<String> = ["llama-server", "{swa_full}", "-c", "{n_ctx}"]
            .map(String::from)
            .to_vec();
        let off = substitute_args(&cmd, &l.values("m", "h", 1)).unwrap();
        assert_eq!(off, ["llama-server", "-c", "512"]);
        l.ctx.swa_full = true;
        let on = substitute_args(&cmd, &l.values("m", "h", 1)).unwrap();
        assert_eq!(on, ["llama-server", "--swa-full", "-c", "512"]);
    }

    #[test]
    fn expert_placement_reaches_llama_server_flags() {
        let mut l = launch();
        let cmd: Vec<String> = [
            "llama-server",
            "--n-cpu-moe",
            "{n_cpu_moe}",
            "{cpu_moe}",
            "-ot",
            "{override_tensor}",
            "-c",
            "{n_ctx}",
        ]
        .map(String::from)
        .to_vec();
        let none = substitute_args(&cmd, &l.values("m", "h", 1)).unwrap();
        assert_eq!(none, ["llama-server", "--n-cpu-moe", "0", "-c", "512"]);
        l.load.n_cpu_moe = 3;
        l.load.cpu_moe = true;
        l.load.override_tensor = "blk\\.0\\.ffn_up_exps=CPU;token_embd=CUDA0".into();
        let all = substitute_args(&cmd, &l.values("m", "h", 1)).unwrap();
        assert_eq!(
            all,
            [
                "llama-server",
                "--n-cpu-moe",
                "3",
                "--cpu-moe",
                "-ot",
                "blk\\.0\\.ffn_up_exps=CPU,token_embd=CUDA0",
                "-c",
                "512"
            ]
        );
    }

    #[test]
    fn rejects_unknown_and_unbalanced_placeholders() {
        let values = launch().values("m", "h", 1);
        assert!(substitute("{n_thread}", &values)
            .unwrap_err()
            .to_string()
            .contains("unknown placeholder {n_thread}"));
        assert!(substitute("{model", &values)
            .unwrap_err()
            .to_string()
            .contains("unclosed"));
        assert!(substitute("a}b", &values)
            .unwrap_err()
            .to_string()
            .contains("unmatched"));
    }

    #[test]
    fn lists_used_placeholders() {
        let cmd = vec![
            "x".to_string(),
            "-c={n_ctx_total}".into(),
            "{{no}}{port}".into(),
        ];
        assert_eq!(used_placeholders(&cmd), ["n_ctx_total", "port"]);
    }
}
