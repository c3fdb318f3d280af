//! The exit-code contract, and the one place errors are printed.

use std::io::{self, Write};
use std::process::ExitCode;

use ckpt::ErrorKind;

use crate::term;

/// How a command that ran to the end went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// All good: exit 0.
    Success,
    /// Something was found (`ckpt scan`): exit 1.
    Found,
    /// Some input could not be read, already reported, and nothing was found: exit 2.
    Failed,
}

/// An error of the command line itself, with advice.
#[derive(Debug)]
pub(crate) struct Hinted {
    message: String,
    hint: &'static str,
}

impl Hinted {
    pub(crate) fn new(message: String, hint: &'static str) -> Self {
        Hinted { message, hint }
    }
}

impl std::fmt::Display for Hinted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Hinted {}

const EXIT_FOUND: u8 = 1;
const EXIT_ERROR: u8 = 2;
const EXIT_INTERRUPTED: u8 = 130;

/// Maps a command's result to the process exit code, printing errors on stderr.
pub(crate) fn finish(result: anyhow::Result<Outcome>) -> ExitCode {
    let error = match result {
        Ok(Outcome::Success) => return ExitCode::SUCCESS,
        Ok(Outcome::Found) => return ExitCode::from(EXIT_FOUND),
        Ok(Outcome::Failed) => return ExitCode::from(EXIT_ERROR),
        Err(error) => error,
    };
    // A closed pipe (`ckpt inspect big.safetensors | head`) is not a failure.
    if error
        .chain()
        .filter_map(|cause| cause.downcast_ref::<io::Error>())
        .any(|e| e.kind() == io::ErrorKind::BrokenPipe)
    {
        return ExitCode::SUCCESS;
    }
    let library = error
        .chain()
        .find_map(|cause| cause.downcast_ref::<ckpt::Error>());
    let hint = match library {
        Some(e) if e.kind() == ErrorKind::OutputExists => Some("pass --force to replace it"),
        Some(e) if e.kind() == ErrorKind::Interrupted => Some("no partial output was left behind"),
        Some(e) => e.hint(),
        None => error
            .chain()
            .find_map(|cause| cause.downcast_ref::<Hinted>())
            .map(|h| h.hint),
    };
    let mut stderr = io::stderr().lock();
    let _ = writeln!(stderr, "error: {}", term::sanitize(&format!("{error:#}")));
    if let Some(hint) = hint {
        let _ = writeln!(stderr, "  hint: {}", term::sanitize(hint));
    }
    match library.map(ckpt::Error::kind) {
        Some(ErrorKind::Interrupted) => ExitCode::from(EXIT_INTERRUPTED),
        _ => ExitCode::from(EXIT_ERROR),
    }
}
