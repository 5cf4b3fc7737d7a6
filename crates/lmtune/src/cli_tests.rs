//! The command line's own checks: every example in `--help` parses.

use clap::{CommandFactory, Parser};

use super::Cli;

/// `a "b c" d` → [a, b c, d].
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ' ' if !quoted => {
                if !word.is_empty() {
                    out.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// Issue 22 #20: every subcommand's --help has examples, and every
/// example is a command line lmtune accepts (flags and values parse).
#[test]
fn every_subcommand_has_examples_that_parse() {
    let cli = Cli::command();
    for sub in cli.get_subcommands().filter(|s| !s.is_hide_set()) {
        let help = sub
            .get_after_help()
            .map(|h| h.to_string())
            .unwrap_or_default();
        assert!(
            help.contains("Examples:"),
            "{} has no examples",
            sub.get_name()
        );
        for line in help
            .lines()
            .filter(|l| l.trim_start().starts_with("lmtune "))
        {
            // The command, without its description (two spaces or more
            // after it) or a shell redirection.
            let command = line.trim().split("  ").next().unwrap();
            let command = command.split(" > ").next().unwrap();
            let args = words(command);
            if let Err(e) = Cli::try_parse_from(&args) {
                panic!(
                    "{}: example {command:?} does not parse: {e}",
                    sub.get_name()
                );
            }
        }
    }
}
