//! `lmtune __worker`: the process that hosts a backend.

use anyhow::Context;
use lmtune_core::scenario::BackendSpec;

use crate::cli::WorkerArgs;
use crate::exit;

pub fn run(args: WorkerArgs) -> anyhow::Result<u8> {
    let spec: BackendSpec = serde_json::from_str(&args.backend)
        .with_context(|| format!("invalid backend settings {:?}", args.backend))?;
    let backend = match lmtune_backend::create(spec, args.verbose) {
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
