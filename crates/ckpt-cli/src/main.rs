//! `ckpt`: inspect, convert, compare and scan ML checkpoints without Python.
//!
//! This crate is only the command line: arguments, rendering and exit codes. Everything
//! else lives in the `ckpt` library.

mod args;
mod commands;
mod exit;
mod output;
mod term;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    term::configure(cli.color, cli.quiet, cli.verbose);
    let result = commands::run(&cli);
    exit::finish(result)
}
