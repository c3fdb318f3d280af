//! End-to-end tests of the `ckpt` binary: output snapshots, exit codes, files on disk.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod completions;
mod convert;
mod diff;
mod docs;
mod errors;
mod folders;
mod inspect;
mod limits;
mod nothing_lost;
mod scan;
mod stats;
mod stdin;
mod terminal;
mod torch;
mod verify;

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;

/// The committed fixtures (`tests/fixtures/`).
fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .canonicalize()
        .unwrap()
}

/// Runs `ckpt args...` in `dir`.
fn ckpt(dir: &Path, args: &[&str]) -> Output {
    Command::cargo_bin("ckpt")
        .unwrap()
        .current_dir(dir)
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

/// Runs `ckpt args...` in `dir` with `input` on standard input.
fn ckpt_stdin(dir: &Path, args: &[&str], input: &[u8]) -> Output {
    Command::cargo_bin("ckpt")
        .unwrap()
        .current_dir(dir)
        .args(args)
        .env("NO_COLOR", "1")
        .write_stdin(input.to_vec())
        .output()
        .unwrap()
}

/// Exit code, stdout and stderr, as one text for a snapshot.
fn transcript(output: &Output) -> String {
    format!(
        "exit: {}\n--- stdout\n{}--- stderr\n{}",
        output
            .status
            .code()
            .map_or("signal".to_owned(), |c| c.to_string()),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Files left in `dir` by a failed or interrupted write.
fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".ckpt-partial"))
        .collect()
}
