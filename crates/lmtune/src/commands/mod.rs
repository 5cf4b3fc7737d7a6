//! One module per command; [`run`] dispatches.

mod hw;
mod run;
mod worker;

use crate::cli::{Cli, Command};

/// Runs the command and returns the exit code.
pub fn run(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::Hw(args) => hw::run(args),
        Command::Worker(args) => worker::run(args),
    }
}
