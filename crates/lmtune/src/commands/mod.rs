//! One module per command; [`run`] dispatches.

mod advise;
mod compare;
mod export;
mod fit;
mod generate;
mod history;
mod hw;
mod inspect;
mod merge;
mod plan;
mod report;
mod report_history;
mod run;
mod run_listing;
mod shard;
mod synth;
mod tune;
mod worker;

pub use run::ggml_backend_libraries;

use crate::cli::{Cli, Command};

/// Runs the command and returns the exit code.
pub fn run(cli: Cli) -> anyhow::Result<u8> {
    if !matches!(
        cli.command,
        Command::Run(_) | Command::Advise(_) | Command::Worker(_)
    ) {
        // Printing commands end quietly when their reader goes away
        // (`lmtune plan … | head`). Not the runner: it writes to workers
        // that may die, and must survive that.
        #[cfg(unix)]
        // SAFETY: restoring the default disposition of a signal.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::Merge(args) => merge::run(args),
        Command::Hw(args) => hw::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Plan(args) => plan::run(args),
        Command::Synth(args) => synth::run(args),
        Command::Compare(args) => compare::run(args),
        Command::Export(args) => export::run(args),
        Command::Report(args) => report::run(args),
        Command::Fit(args) => fit::run(args),
        Command::Tune(args) => tune::run(args),
        Command::Advise(args) => advise::run(args),
        Command::Generate(args) => generate::run(args),
        Command::History(args) => history::run(args),
        Command::Worker(args) => worker::run(args),
        Command::Completions(args) => {
            use clap::CommandFactory;
            clap_complete::generate(
                args.shell,
                &mut crate::cli::Cli::command(),
                "lmtune",
                &mut std::io::stdout(),
            );
            Ok(crate::exit::OK)
        }
    }
}
