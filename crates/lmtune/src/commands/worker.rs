//! `lmtune __worker`: the process that hosts a backend.

use anyhow::Context;
use lmtune_core::scenario::BackendKind;

use crate::cli::WorkerArgs;
use crate::exit;

pub fn run(args: WorkerArgs) -> anyhow::Result<u8> {
    let kind: BackendKind = serde_json::from_value(serde_json::Value::String(args.backend.clone()))
        .with_context(|| format!("unknown backend {:?}", args.backend))?;
    let backend = match lmtune_backend::create(kind, args.verbose, args.backend_config.as_deref()) {
        Ok(b) => b,
        Err(error) => {
            // Tell the runner why, on the protocol stream, instead of a hello.
            println!(
                "{}",
                serde_json::to_string(&lmtune_backend::protocol::Response::Error { error })?
            );
            return Ok(exit::ERROR);
        }
    };
    lmtune_backend::worker::serve(backend).context("worker protocol stream failed")?;
    Ok(exit::OK)
}
