//! One module per subcommand: each turns arguments into library calls and a report.

mod convert;
mod inspect;
mod scan;
mod verify;

use crate::args::{Cli, Command};
use crate::exit::Outcome;

/// Runs the command the user asked for.
pub(crate) fn run(cli: &Cli) -> anyhow::Result<Outcome> {
    match &cli.command {
        Command::Inspect(args) => inspect::run(args),
        Command::Convert(args) => convert::run(args),
        Command::Scan(args) => scan::run(args),
        Command::Verify(args) => verify::run(args),
    }
}

pub(crate) use convert::{CastReport, ConvertReport};
pub(crate) use inspect::InspectReport;
#[cfg(test)]
pub(crate) use scan::tests as scan_tests;
pub(crate) use scan::{FileRow, ScanReport, level as scan_level};
#[cfg(test)]
pub(crate) use verify::tests as verify_tests;
pub(crate) use verify::{VerifyReport, VerifyRow};
