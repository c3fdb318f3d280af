//! One module per subcommand: each turns arguments into library calls and a report.

mod convert;
mod diff;
mod inspect;
mod limits;
mod scan;
mod stats;
mod verify;

use ckpt::KeyMap;

use crate::args::{Cli, Command};
use crate::exit::{Outcome, flag};

/// The limits the command runs with: the defaults, changed by each `--limit NAME=VALUE`.
pub(crate) fn limits(cli: &Cli) -> anyhow::Result<ckpt::Limits> {
    limits::from_args(&cli.limits)
}

/// Runs the command the user asked for, within `limits`.
pub(crate) fn run(cli: &Cli, limits: &ckpt::Limits) -> anyhow::Result<Outcome> {
    match &cli.command {
        Command::Inspect(args) => inspect::run(args, limits),
        Command::Convert(args) => convert::run(args, limits),
        Command::Scan(args) => scan::run(args, limits),
        Command::Verify(args) => verify::run(args, limits),
        Command::Limits(args) => limits::run(args, limits),
        Command::Stats(args) => stats::run(args, limits),
        Command::Diff(args) => diff::run(args, limits),
        Command::Completions(args) => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(args.shell, &mut command, "ckpt", &mut std::io::stdout());
            Ok(Outcome::Success)
        }
        Command::Man(args) => {
            man(args.command.as_deref(), &mut std::io::stdout())?;
            Ok(Outcome::Success)
        }
    }
}

/// The reports of a command over several files, in turn: each one `one` makes is rendered
/// at once as text (a blank line between two), or kept for one JSON array printed at the
/// end; a file that fails is reported on stderr and skipped. The reports, and whether a
/// file failed.
fn each_file<R: serde::Serialize>(
    files: &[std::path::PathBuf],
    json: bool,
    mut one: impl FnMut(&std::path::Path) -> anyhow::Result<Option<R>>,
    render: impl Fn(&R) -> std::io::Result<()>,
) -> anyhow::Result<(Vec<R>, bool)> {
    let mut reports = Vec::new();
    let mut failed = false;
    let mut shown = 0;
    for file in files {
        match one(file) {
            Ok(Some(report)) => {
                if !json {
                    if shown > 0 {
                        crate::output::blank_line()?;
                    }
                    render(&report)?;
                    shown += 1;
                }
                reports.push(report);
            }
            Ok(None) => {}
            Err(error) => {
                crate::exit::one_failed(error)?;
                failed = true;
            }
        }
    }
    if json {
        crate::output::json(&reports)?;
    }
    Ok((reports, failed))
}

/// Paths with `-` (standard input) read to its end into a temporary file, for the commands
/// that walk paths themselves (scan, verify): the paths to use, the spool that must live as
/// long as they are used, and the spool's path that reports then call `-`.
fn with_stdin(
    paths: &[std::path::PathBuf],
) -> anyhow::Result<(Vec<std::path::PathBuf>, Option<tempfile::NamedTempFile>)> {
    if !paths.iter().any(|p| p.as_os_str() == "-") {
        return Ok((paths.to_vec(), None));
    }
    let mut spool = tempfile::Builder::new().prefix(".ckpt-stdin-").tempfile()?;
    std::io::copy(&mut std::io::stdin().lock(), spool.as_file_mut())?;
    let paths = paths
        .iter()
        .map(|p| {
            if p.as_os_str() == "-" {
                spool.path().to_path_buf()
            } else {
                p.clone()
            }
        })
        .collect();
    Ok((paths, Some(spool)))
}

/// A library error about the spool of standard input, with `-` for its path.
fn stdin_named(error: ckpt::Error, spool: Option<&tempfile::NamedTempFile>) -> ckpt::Error {
    match spool {
        Some(spool) if error.location().path.as_deref() == Some(spool.path()) => {
            error.replace_path(std::path::Path::new("-"))
        }
        _ => error,
    }
}

/// A path as reports show it: `-` for the spool of standard input.
fn shown(path: &str, spool: Option<&tempfile::NamedTempFile>) -> String {
    match spool {
        Some(spool) if std::path::Path::new(path) == spool.path() => "-".to_owned(),
        _ => path.to_owned(),
    }
}

/// Writes the manual page of ckpt, or of its subcommand `name` (`ckpt-inspect(1)`).
fn man(name: Option<&str>, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    let mut command = <Cli as clap::CommandFactory>::command();
    // Built, so that each command's page lists the global options (--limit) too.
    command.build();
    let page = match name {
        None => command,
        Some(name) => {
            let names: Vec<String> = command
                .get_subcommands()
                .map(|c| c.get_name().to_owned())
                .collect();
            let sub = command.find_subcommand(name).cloned().ok_or_else(|| {
                anyhow::anyhow!(
                    "ckpt has no command `{name}`; its commands are {}",
                    names.join(", ")
                )
            })?;
            sub.name(format!("ckpt-{name}"))
                .version(env!("CARGO_PKG_VERSION"))
        }
    };
    clap_mangen::Man::new(page).render(out)?;
    Ok(())
}

/// Opens the checkpoint at `path` within `limits` (`-`: standard input, read to its end),
/// telling on stderr what opening chose that the user should know (the weights file of a
/// model folder that holds two).
fn open(path: &std::path::Path, limits: &ckpt::Limits) -> anyhow::Result<ckpt::Source> {
    use std::io::Write;
    let source = if path.as_os_str() == "-" {
        ckpt::Source::open_reader(&mut std::io::stdin().lock(), path, limits)?
    } else {
        ckpt::Source::open_with(path, limits)?
    };
    let mut stderr = std::io::stderr().lock();
    for note in source.notes().iter().filter(|_| !crate::term::quiet()) {
        let label = crate::term::paint("note:", crate::term::Paint::Note, true);
        writeln!(stderr, "{label} {}: {note}", path.display())?;
    }
    Ok(source)
}

/// The names `--include` and `--exclude` keep (and, by the caller, more of [`KeyMap`]'s
/// rules).
fn name_filter(include: &[String], exclude: &[String]) -> anyhow::Result<KeyMap> {
    let map = add_rules(KeyMap::new(), "--include", include, KeyMap::include)?;
    add_rules(map, "--exclude", exclude, KeyMap::exclude)
}

/// `map` with a rule (`rule`: [`KeyMap::include`], [`KeyMap::rename`]...) for each value the
/// flag `name` was given, in order; an error names the flag.
fn add_rules(
    mut map: KeyMap,
    name: &'static str,
    values: &[String],
    rule: fn(KeyMap, &str) -> ckpt::Result<KeyMap>,
) -> anyhow::Result<KeyMap> {
    for value in values {
        map = rule(map, value).map_err(flag(name))?;
    }
    Ok(map)
}

pub(crate) use convert::{CastReport, ConvertReport};
pub(crate) use limits::LimitRow;
#[cfg(test)]
pub(crate) use scan::tests as scan_tests;
#[cfg(test)]
pub(crate) use verify::tests as verify_tests;
