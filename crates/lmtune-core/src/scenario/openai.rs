//! `[backend.openai]`: the server to measure, a running one (`base_url`) or
//! one lmtune starts per configuration (`command`). Parsed with the
//! scenario; checked against the sweep and the machine when it is planned.

use std::ops::Range;
use std::path::PathBuf;

use toml::Spanned;

use super::error::ErrorSite;
use super::measure::seconds_value;
use super::raw::RawOpenAi;
use super::{Scenario, ScenarioError};
use crate::knobs::{FlashAttn, KvType};
use crate::openai::{OpenAiConfig, PromptMode};

pub(super) fn parse_openai(
    site: &ErrorSite<'_>,
    raw: Spanned<RawOpenAi>,
) -> Result<(OpenAiConfig, Option<Range<usize>>), ScenarioError> {
    let span = raw.span();
    let raw = raw.into_inner();
    let mut config = OpenAiConfig::default();
    let mut command_span = None;
    match (&raw.base_url, &raw.command) {
        (Some(_), Some(c)) => {
            return Err(site.at(
                Some(c.span()),
                "backend.openai.command",
                "both base_url (a server you run) and command (a server lmtune starts) are given",
                "keep one: base_url to measure a running server, command to let lmtune start one per configuration",
            ))
        }
        (None, None) => {
            return Err(site.at(
                Some(span),
                "backend.openai",
                "[backend.openai] says neither base_url nor command",
                "add base_url = \"http://127.0.0.1:1234/v1\" (a server you run) or command = [\"llama-server\", \"-m\", \"{model}\", \"--port\", \"{port}\"] (lmtune starts it)",
            ))
        }
        (Some(url), None) => config.base_url = Some(base_url(site, url)?),
        (None, Some(cmd)) => {
            check_command(site, cmd)?;
            command_span = Some(cmd.span());
            config.command = Some(cmd.get_ref().clone());
        }
    }
    config.model = raw.model;
    if let Some(env) = raw.api_key_env {
        let name = env.get_ref();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(site.at(
                Some(env.span()),
                "backend.openai.api_key_env",
                format!("{name:?} is not an environment variable name"),
                "name the variable that holds the key, e.g. api_key_env = \"OPENAI_API_KEY\" (never the key itself)",
            ));
        }
        config.api_key_env = Some(name.clone());
    }
    if let Some(s) = seconds_value(site, &raw.ready_timeout_s, "backend.openai.ready_timeout_s")? {
        config.ready_timeout_s = s;
    }
    if let Some(s) = seconds_value(site, &raw.stall_timeout_s, "backend.openai.stall_timeout_s")? {
        config.stall_timeout_s = s;
    }
    if let Some(s) = seconds_value(
        site,
        &raw.connect_timeout_s,
        "backend.openai.connect_timeout_s",
    )? {
        config.connect_timeout_s = s;
    }
    if let Some(p) = raw.prompt {
        config.prompt =
            match p.get_ref().as_str() {
                "auto" => PromptMode::Auto,
                "tokens" => PromptMode::Tokens,
                "text" => PromptMode::Text,
                other => return Err(site.at(
                    Some(p.span()),
                    "backend.openai.prompt",
                    format!("unknown prompt mode {other:?}"),
                    "use \"auto\" (token ids when the server takes them), \"tokens\" or \"text\"",
                )),
            };
    }
    Ok((config, command_span))
}

/// `base_url`: a plain-HTTP API root with a host, without a trailing `/`.
fn base_url(site: &ErrorSite<'_>, url: &Spanned<String>) -> Result<String, ScenarioError> {
    let u = url.get_ref().trim_end_matches('/');
    if u.starts_with("https://") {
        return Err(site.at(
            Some(url.span()),
            "backend.openai.base_url",
            "https is not supported by this lmtune (local servers speak plain HTTP)",
            "use the server's http:// address, e.g. http://127.0.0.1:1234/v1",
        ));
    }
    let Some(rest) = u.strip_prefix("http://") else {
        return Err(site.at(
            Some(url.span()),
            "backend.openai.base_url",
            format!("{:?} is not an http:// URL", url.get_ref()),
            "write the API root with its scheme, e.g. http://127.0.0.1:1234/v1",
        ));
    };
    if rest.is_empty() || rest.starts_with('/') {
        return Err(site.at(
            Some(url.span()),
            "backend.openai.base_url",
            format!("{:?} has no host", url.get_ref()),
            "write the API root with its host and port, e.g. http://127.0.0.1:1234/v1",
        ));
    }
    Ok(u.to_string())
}

/// `command`: not empty, only known placeholders, and a `{port}`.
fn check_command(site: &ErrorSite<'_>, cmd: &Spanned<Vec<String>>) -> Result<(), ScenarioError> {
    let args = cmd.get_ref();
    if args.is_empty() || args[0].trim().is_empty() {
        return Err(site.at(
            Some(cmd.span()),
            "backend.openai.command",
            "the command is empty",
            "write the server's command line as a list, e.g. [\"llama-server\", \"-m\", \"{model}\", \"--port\", \"{port}\"]",
        ));
    }
    let probe = crate::openai::ServerLaunch {
        load: crate::knobs::LoadParams::new(0, true),
        ctx: crate::knobs::ContextParams {
            n_ctx: 1,
            n_batch: 1,
            n_ubatch: 1,
            threads: 1,
            type_k: KvType::F16,
            type_v: KvType::F16,
            flash_attn: FlashAttn::Auto,
            op_offload: true,
            swa_full: false,
        },
        parallel: 1,
    }
    .values("m", "127.0.0.1", 1);
    for arg in args {
        crate::openai::substitute(arg, &probe).map_err(|e| {
            site.at(
                Some(cmd.span()),
                "backend.openai.command",
                e.to_string(),
                "use the placeholders listed in README.md (section \"Servers\"); write {{ and }} for literal braces",
            )
        })?;
    }
    if !crate::openai::used_placeholders(args)
        .iter()
        .any(|p| p == "port")
    {
        return Err(site.at(
            Some(cmd.span()),
            "backend.openai.command",
            "the command has no {port}, so lmtune cannot tell the server where to listen",
            "pass the port, e.g. \"--port\", \"{port}\" (llama-server) — lmtune picks a free loopback port",
        ));
    }
    Ok(())
}

impl Scenario {
    /// An external server's knobs are set when it starts, not per request:
    /// a sweep axis for them would be silently ignored, so it is rejected.
    /// A managed server gets them through its command's placeholders, so an
    /// axis needs its placeholder there.
    pub(super) fn check_server_knobs(&self) -> Result<(), ScenarioError> {
        let Some(openai) = self.backend.openai() else {
            return Ok(());
        };
        let site = self.site();
        if let Some(var) = &openai.api_key_env {
            if std::env::var(var).map_or(true, |v| v.is_empty()) {
                return Err(site.at(
                    None,
                    "backend.openai.api_key_env",
                    format!("the environment variable {var} is not set, so there is no API key to send"),
                    format!("export {var}=<the server's key> before running (lmtune never writes the key anywhere)"),
                ));
            }
        }
        let axes: [(&str, bool, Option<std::ops::Range<usize>>); 13] = [
            (
                "n_gpu_layers",
                self.n_gpu_layers.explicit,
                self.n_gpu_layers.span.clone(),
            ),
            (
                "n_ctx",
                self.n_ctx.as_ref().is_some_and(|a| a.explicit),
                self.n_ctx.as_ref().and_then(|a| a.span.clone()),
            ),
            ("n_batch", self.n_batch.explicit, self.n_batch.span.clone()),
            (
                "n_ubatch",
                self.n_ubatch.explicit,
                self.n_ubatch.span.clone(),
            ),
            ("threads", self.threads.explicit, self.threads.span.clone()),
            ("type_k", self.type_k.explicit, self.type_k.span.clone()),
            ("type_v", self.type_v.explicit, self.type_v.span.clone()),
            (
                "flash_attn",
                self.flash_attn.explicit,
                self.flash_attn.span.clone(),
            ),
            (
                "swa_full",
                self.swa_full.explicit,
                self.swa_full.span.clone(),
            ),
            (
                "n_cpu_moe",
                self.n_cpu_moe.explicit,
                self.n_cpu_moe.span.clone(),
            ),
            ("cpu_moe", self.cpu_moe.explicit, self.cpu_moe.span.clone()),
            (
                "override_tensor",
                self.override_tensor.explicit,
                self.override_tensor.span.clone(),
            ),
            ("concurrency", false, None),
        ];
        match &openai.command {
            None => {
                if let Some((name, _, span)) = axes.iter().find(|(_, explicit, _)| *explicit) {
                    return Err(site.at(
                        span.clone(),
                        &format!("sweep.{name}"),
                        format!("{name} of a server you run (base_url) is set when you start it, not per request, so lmtune cannot sweep it"),
                        format!("remove sweep.{name} and start the server with the value you want, or let lmtune start the server: [backend.openai] command = [\"llama-server\", …, \"{{{name}}}\"]"),
                    ));
                }
            }
            Some(command) => {
                let used = crate::openai::used_placeholders(command);
                for (name, explicit, span) in &axes {
                    let carriers = crate::openai::placeholders_of_axis(name);
                    if *explicit && !carriers.iter().any(|c| used.iter().any(|u| u == c)) {
                        return Err(site.at(
                            span.clone(),
                            &format!("sweep.{name}"),
                            format!("sweep.{name} is set but the server command has no {} placeholder, so the server would never see it", carriers.iter().map(|c| format!("{{{c}}}")).collect::<Vec<_>>().join(" or ")),
                            format!("add the server's flag with {{{}}} to [backend.openai] command (llama-server: see README.md, section \"Servers\"), or remove sweep.{name}", carriers[0]),
                        ));
                    }
                }
                if self.concurrency.values.iter().any(|&c| c > 1)
                    && !used.iter().any(|u| u == "parallel")
                {
                    return Err(site.at(
                        self.concurrency.span.clone(),
                        "sweep.concurrency",
                        "concurrent clients need as many server slots, but the command has no {parallel}",
                        "add the server's slot flag, e.g. \"-np\", \"{parallel}\" with \"-c\", \"{n_ctx_total}\" (llama-server)",
                    ));
                }
                let program = &command[0];
                if find_program(program).is_none() {
                    return Err(site.at(
                        self.openai_command_span.clone(),
                        "backend.openai.command",
                        format!("the server program {program:?} was not found (not an executable file, and not on PATH)"),
                        "give its absolute path, or put its folder on PATH; to build llama-server from source run scripts/build-llama-server.sh (it prints the path)",
                    ));
                }
            }
        }
        Ok(())
    }
}

/// `program` as an executable file: a path as given, or a bare name looked
/// up on PATH.
fn find_program(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &std::path::Path| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let p = PathBuf::from(program);
        return executable(&p).then_some(p);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| executable(p))
}
