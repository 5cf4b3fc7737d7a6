//! Stage 2: `[backend]`: which backend runs the points and its own section
//! (`[backend.sim]`, `[backend.openai]`, `[backend.candle]`).

use std::ops::Range;

use toml::Spanned;

use super::error::ErrorSite;
use super::raw::RawBackend;
use super::spec::{BackendKind, BackendSpec, CandleConfig};
use super::ScenarioError;

/// `[backend]`, read: the backend with its settings.
pub(super) struct Backend {
    pub spec: BackendSpec,
    /// Where `[backend.openai] command` is written, for errors.
    pub openai_command_span: Option<Range<usize>>,
}

impl Backend {
    /// Reads `[backend]` (absent: llama-cpp). A backend's own section is
    /// checked before the kind, and only goes with that kind.
    pub(super) fn read(
        site: &ErrorSite<'_>,
        raw: Option<Spanned<RawBackend>>,
    ) -> Result<Backend, ScenarioError> {
        let Some(raw) = raw else {
            return Ok(Backend {
                spec: BackendSpec::default(),
                openai_command_span: None,
            });
        };
        let span = raw.span();
        let raw = raw.into_inner();
        let kind = raw.kind;
        let (mut openai, mut openai_command_span) = (None, None);
        if let Some(raw_openai) = raw.openai {
            if kind.get_ref() != "openai" {
                return Err(site.at(
                    Some(raw_openai.span()),
                    "backend.openai",
                    "a [backend.openai] section is given but kind is not \"openai\"",
                    "set kind = \"openai\" or remove [backend.openai]",
                ));
            }
            let (config, command_span) = super::openai::parse_openai(site, raw_openai)?;
            openai = Some(config);
            openai_command_span = command_span;
        }
        let candle = match raw.candle {
            Some(settings) => Some(read_candle(site, settings, kind.get_ref())?),
            None => None,
        };
        let sim = match raw.sim {
            Some(profile) if kind.get_ref() != "sim" => {
                return Err(site.at(
                    Some(profile.span()),
                    "backend.sim",
                    "a [backend.sim] profile is given but kind is not \"sim\"",
                    "set kind = \"sim\" or remove [backend.sim]",
                ));
            }
            Some(profile) => Some(profile.into_inner()),
            None => None,
        };
        let spec = match BackendKind::from_name(kind.get_ref()) {
            Some(BackendKind::LlamaCpp) => BackendSpec::default(),
            Some(BackendKind::Sim) => BackendSpec::Sim(sim.unwrap_or_default()),
            Some(BackendKind::OpenAi) => {
                let Some(openai) = openai else {
                    return Err(site.at(
                        Some(span),
                        "backend.openai",
                        "kind = \"openai\" needs a [backend.openai] section saying which server",
                        "add [backend.openai] with base_url = \"http://127.0.0.1:1234/v1\" (a server you run) or command = [\"llama-server\", \"-m\", \"{model}\", \"--port\", \"{port}\"] (lmtune starts it)",
                    ));
                };
                BackendSpec::OpenAi(openai)
            }
            Some(BackendKind::Candle) => BackendSpec::Candle(candle.unwrap_or_default()),
            None => {
                let problem = format!("unknown backend \"{}\"", kind.get_ref());
                return Err(site.at(
                    Some(kind.span()).or(Some(span)),
                    "backend.kind",
                    problem,
                    "use kind = \"llama-cpp\", \"candle\", \"openai\" (a server), or \"sim\" (simulated numbers)",
                ));
            }
        };
        Ok(Backend {
            spec,
            openai_command_span,
        })
    }
}

/// `[backend.candle]`, which only goes with `kind = "candle"`.
fn read_candle(
    site: &ErrorSite<'_>,
    settings: Spanned<super::raw::RawCandle>,
    kind: &str,
) -> Result<CandleConfig, ScenarioError> {
    let span = settings.span();
    if kind != "candle" {
        return Err(site.at(
            Some(span),
            "backend.candle",
            "a [backend.candle] section is given but kind is not \"candle\"",
            "set kind = \"candle\" or remove [backend.candle]",
        ));
    }
    let device = settings.into_inner().offload_device;
    let settings = CandleConfig {
        offload_device: device.as_ref().map(|d| d.get_ref().clone()),
    };
    settings.check().map_err(|(problem, fix)| {
        let at = device.as_ref().map_or(span, |d| d.span());
        site.at(Some(at), "backend.candle.offload_device", problem, fix)
    })?;
    Ok(settings)
}
