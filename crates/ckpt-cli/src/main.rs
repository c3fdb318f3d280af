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

/// Stack for each level of nesting a checkpoint may have (the `depth` limit): walking,
/// printing and dropping a tree recurse once per level. Reserved, not committed: only the
/// pages a deep file touches are used.
const STACK_PER_LEVEL: usize = 16 << 10;
/// The least stack the work runs with.
const MIN_STACK: usize = 64 << 20;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    term::configure(cli.color, cli.quiet, cli.verbose);
    // The main thread's stack is the system's (8 MiB): a file nested as deep as a raised
    // `depth` limit allows would overflow it. The work runs on a thread sized for the limit.
    let limits = commands::limits(&cli);
    let depth = limits.as_ref().map_or(0, |l| l.depth);
    let stack = depth.saturating_mul(STACK_PER_LEVEL).max(MIN_STACK);
    let worker = std::thread::Builder::new()
        .name("ckpt".to_owned())
        .stack_size(stack)
        .spawn(move || {
            let result = limits.and_then(|limits| commands::run(&cli, &limits));
            exit::finish(result)
        });
    match worker.map(std::thread::JoinHandle::join) {
        Ok(Ok(code)) => code,
        // A panic was printed by the hook; spawning failed only without memory.
        _ => ExitCode::from(101),
    }
}
