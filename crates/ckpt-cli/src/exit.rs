//! The exit-code contract, and the one place errors are printed.
//!
//! The library speaks of its own options (an include pattern, a rename rule, the
//! `header-len` limit); here they get the names of the flags that set them: an error about
//! a flag's value is printed after the flag ([`Flag`]), and a hint that speaks of an option
//! gets the flag after the option's name ([`FLAG_WORDS`]).

use std::borrow::Cow;
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

/// A library error about the value a flag gave: printed after the flag (`--rename: ...`),
/// with advice in the command line's words, when there is some, instead of the library's.
#[derive(Debug)]
pub(crate) struct Flag {
    name: &'static str,
    hint: Option<&'static str>,
    error: ckpt::Error,
}

impl Flag {
    pub(crate) fn error(name: &'static str, error: ckpt::Error) -> Self {
        Flag {
            name,
            hint: None,
            error,
        }
    }

    /// Advice in the command line's words, printed instead of the library's hint.
    pub(crate) fn hint(mut self, hint: &'static str) -> Self {
        self.hint = Some(hint);
        self
    }
}

impl std::fmt::Display for Flag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

impl std::error::Error for Flag {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// For `map_err`: a library error about the value of the flag `name` (see [`Flag`]).
pub(crate) fn flag(name: &'static str) -> impl FnOnce(ckpt::Error) -> anyhow::Error {
    move |error| Flag::error(name, error).into()
}

/// The library's words for what the command line's flags set, and the flags: a library
/// hint that speaks of an include pattern is printed with `(--include)` after those words.
/// (Each limit is named as the `NAME` limit, and gets `--limit NAME=N`.)
const FLAG_WORDS: &[(&str, &str)] = &[
    ("include pattern", "--include"),
    ("exclude pattern", "--exclude"),
    ("prefix stripping", "--strip-prefix"),
    ("rename rule", "--rename"),
    ("key of the checkpoint", "--key"),
    (
        "names of the checkpoint's tensors",
        "`ckpt inspect` lists them",
    ),
    (
        "listed without its elements",
        "`ckpt inspect` without --hash",
    ),
];

/// A library hint with the flags that set the options it speaks of (see [`FLAG_WORDS`]):
/// each after the first mention of its option (and the rest of that word: `rename rules`).
fn with_flags(hint: &str) -> Cow<'_, str> {
    let limits = ckpt::limits::NAMES
        .iter()
        .map(|(name, _)| (format!("`{name}` limit"), format!("--limit {name}=N")));
    let words = FLAG_WORDS
        .iter()
        .map(|(words, flag)| ((*words).to_owned(), (*flag).to_owned()))
        .chain(limits);
    let mut inserts: Vec<(usize, String)> = words
        .filter_map(|(words, flag)| {
            let start = hint.find(&words)?;
            let rest = hint.get(start + words.len()..)?;
            let word_end = rest
                .find(|c: char| !c.is_alphabetic())
                .unwrap_or(rest.len());
            Some((start + words.len() + word_end, format!(" ({flag})")))
        })
        .collect();
    if inserts.is_empty() {
        return Cow::Borrowed(hint);
    }
    inserts.sort_by_key(|&(at, _)| std::cmp::Reverse(at));
    let mut hint = hint.to_owned();
    for (at, text) in inserts {
        hint.insert_str(at, &text);
    }
    Cow::Owned(hint)
}

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
    if is_broken_pipe(&error) {
        return ExitCode::SUCCESS;
    }
    match print_error(&error) {
        Some(ErrorKind::Interrupted) => ExitCode::from(EXIT_INTERRUPTED),
        _ => ExitCode::from(EXIT_ERROR),
    }
}

/// Whether `error` is a closed output pipe.
pub(crate) fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error
        .chain()
        .filter_map(|cause| cause.downcast_ref::<io::Error>())
        .any(|e| e.kind() == io::ErrorKind::BrokenPipe)
}

/// A command that goes through several files: prints the error of one that failed, as the
/// command's own error would be printed, and goes on; an interruption or a closed output
/// pipe ends the command instead (`Err`).
pub(crate) fn one_failed(error: anyhow::Error) -> anyhow::Result<()> {
    let interrupted = error
        .chain()
        .filter_map(|cause| cause.downcast_ref::<ckpt::Error>())
        .any(|e| e.kind() == ErrorKind::Interrupted);
    if interrupted || is_broken_pipe(&error) {
        return Err(error);
    }
    print_error(&error);
    Ok(())
}

/// Prints `error` on stderr with its hint; the kind of the library error in it, if any.
fn print_error(error: &anyhow::Error) -> Option<ErrorKind> {
    let library = error
        .chain()
        .find_map(|cause| cause.downcast_ref::<ckpt::Error>());
    let flag_hint = error
        .chain()
        .find_map(|cause| cause.downcast_ref::<Flag>())
        .and_then(|flag| flag.hint);
    let hint = match library {
        Some(e) if e.kind() == ErrorKind::OutputExists => Some("pass --force to replace it".into()),
        Some(e) if e.kind() == ErrorKind::Interrupted => {
            Some("no partial output was left behind".into())
        }
        Some(e) => e.hint().map(|hint| match flag_hint {
            Some(flag_hint) => flag_hint.into(),
            None => with_flags(hint),
        }),
        None => error
            .chain()
            .find_map(|cause| cause.downcast_ref::<Hinted>())
            .map(|h| h.hint.into()),
    };
    let mut stderr = io::stderr().lock();
    let _ = writeln!(
        stderr,
        "{} {}",
        term::paint("error:", term::Paint::Bad, true),
        term::sanitize(&format!("{error:#}"))
    );
    if let Some(hint) = hint {
        let _ = writeln!(
            stderr,
            "  {} {}",
            term::paint("hint:", term::Paint::Note, true),
            term::sanitize(&hint)
        );
    }
    library.map(ckpt::Error::kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_get_the_flags_of_the_options_they_speak_of() {
        assert_eq!(
            with_flags(
                "change the prefix stripping or the rename rules, or leave one of the two out \
                 with an exclude pattern"
            ),
            "change the prefix stripping (--strip-prefix) or the rename rules (--rename), or \
             leave one of the two out with an exclude pattern (--exclude)"
        );
        assert_eq!(
            with_flags("raise its `header-len` limit"),
            "raise its `header-len` limit (--limit header-len=N)"
        );
        assert!(matches!(
            with_flags("fetch the checkpoint again"),
            Cow::Borrowed(_)
        ));
    }
}
