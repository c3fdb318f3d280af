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
        "wrote {} ({}): {} tensors, {} parameters, {} in {:.2} s",
        sanitize(&report.output),
        report.format,
        report.tensors,
        count(report.parameters),
        bytes(report.bytes),
        report.seconds
    )
}
