//! `ckpt convert` as text.

use std::io::{self, Write};

use crate::commands::ConvertReport;
use crate::output::{bytes, count};
use crate::term::sanitize;

/// One line: what was written, how much, how fast.
pub(crate) fn render(report: &ConvertReport) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(
        out,
        "wrote {} ({}): {} tensors, {} parameters, {} in {:.2} s{}",
        sanitize(&report.output),
        report.format,
        report.tensors,
        count(report.parameters),
        bytes(report.bytes),
        report.seconds,
        if report.deduplicated.is_empty() {
            String::new()
        } else {
            format!(" ({} tied names written once)", report.deduplicated.len())
        }
    )
}

/// Most value names listed in the warning (the JSON report has them all).
const MAX_LISTED: usize = 8;

/// On stderr: the plain values that were not written, so that nothing is dropped silently.
pub(crate) fn warn(report: &ConvertReport) -> io::Result<()> {
    if report.skipped_values.is_empty() {
        return Ok(());
    }
    let shown: Vec<String> = report
        .skipped_values
        .iter()
        .take(MAX_LISTED)
        .map(|n| sanitize(n))
        .collect();
    let more = report.skipped_values.len().saturating_sub(MAX_LISTED);
    let mut err = io::stderr().lock();
    writeln!(
        err,
        "warning: {} plain value{} not written ({} holds tensors only): {}{}",
        report.skipped_values.len(),
        if report.skipped_values.len() == 1 {
            " is"
        } else {
            "s are"
        },
        report.format,
        shown.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    )?;
    writeln!(
        err,
        "  hint: `ckpt inspect` shows them; --key PATH converts one subtree (e.g. --key model)"
    )
}
