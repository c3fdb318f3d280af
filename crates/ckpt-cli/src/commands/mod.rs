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
use crate::exit::Outcome;

/// Runs the command the user asked for.
pub(crate) fn run(cli: &Cli) -> anyhow::Result<Outcome> {
    let limits = limits::from_args(&cli.limits)?;
    match &cli.command {
        Command::Inspect(args) => inspect::run(args, &limits),
        Command::Convert(args) => convert::run(args, &limits),
        Command::Scan(args) => scan::run(args, &limits),
        Command::Verify(args) => verify::run(args, &limits),
        Command::Limits(args) => limits::run(args, &limits),
        Command::Stats(args) => stats::run(args, &limits),
        Command::Diff(args) => diff::run(args, &limits),
    }
}

/// The names `--include` and `--exclude` keep (and, by the caller, more of [`KeyMap`]'s
/// rules).
fn name_filter(include: &[String], exclude: &[String]) -> ckpt::Result<KeyMap> {
    let mut map = KeyMap::new();
    for pattern in include {
        map = map.include(pattern)?;
    }
    for pattern in exclude {
        map = map.exclude(pattern)?;
    }
    Ok(map)
}

pub(crate) use convert::{CastReport, ConvertReport};
pub(crate) use diff::DiffReport;
pub(crate) use inspect::InspectReport;
pub(crate) use limits::LimitRow;
#[cfg(test)]
pub(crate) use scan::tests as scan_tests;
pub(crate) use scan::{FileRow, ScanReport, level as scan_level};
pub(crate) use stats::{HistogramRow, StatsReport};
#[cfg(test)]
pub(crate) use verify::tests as verify_tests;
pub(crate) use verify::{VerifyReport, VerifyRow};
