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

/// On stderr: the plain values that were not written, so that nothing is dropped silently.
pub(crate) fn warn(report: &ConvertReport) -> io::Result<()> {
    if report.skipped_values.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = report
        .skipped_values
        .iter()
        .map(|n| {
            if n.is_empty() {
                "\"\"".to_owned()
            } else {
                sanitize(n)
            }
        })
        .collect();
    let mut err = io::stderr().lock();
    writeln!(
        err,
        "warning: {} plain value{} not written ({} holds tensors only): {}",
        report.skipped_values.len(),
        if report.skipped_values.len() == 1 {
            " is"
        } else {
            "s are"
        },
        report.format,
        names.join(", "),
    )?;
    writeln!(
        err,
        "  hint: `ckpt inspect` shows them; --key PATH converts one subtree (e.g. --key model)"
    )
}
