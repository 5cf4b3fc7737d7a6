//! lmtune: sweep, model and recommend settings for local LLM inference.
//!
//! This binary is thin: it parses arguments, runs one command and maps the
//! outcome to an exit code (0 ok, 1 some points failed, 2 could not run, 130 interrupted).

mod bandwidth_history;
mod cli;
mod commands;
mod dry_run;
mod interrupt;
mod output;
mod paste;
mod predict;
mod runner;
mod sweep;
mod vram;

use std::process::ExitCode;

use clap::Parser;

/// Exit codes, documented in `lmtune --help`.
pub mod exit {
    pub const OK: u8 = 0;
    pub const SOME_FAILED: u8 = 1;
    pub const ERROR: u8 = 2;
    /// Interrupted by SIGINT/SIGTERM (128 + 2, as shells report Ctrl-C).
    pub const INTERRUPTED: u8 = 130;
}

/// `lmtune … | head` closes stdout early; Rust's `println!` then panics with
/// "failed printing to stdout: Broken pipe". Exit quietly instead, as a
/// Unix tool killed by SIGPIPE would (128 + 13). SIGPIPE itself stays
/// ignored: the runner must see a dead worker's pipe as an error, not die.
fn quiet_on_broken_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

fn main() -> ExitCode {
    quiet_on_broken_stdout();
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help/version to stdout with exit 0, usage errors with 2.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::ERROR
            } else {
                exit::OK
            });
        }
    };
    match commands::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit::ERROR)
        }
    }
}
