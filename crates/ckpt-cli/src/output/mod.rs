//! Rendering reports: JSON for programs, text for people. Nothing else prints.

pub(crate) mod convert;
pub(crate) mod diff;
pub(crate) mod inspect;
pub(crate) mod limits;
pub(crate) mod scan;
pub(crate) mod stats;
pub(crate) mod verify;

use std::io::{self, Write};

use serde::Serialize;

/// Prints `value` as one line of JSON on stdout.
pub(crate) fn json(value: &impl Serialize) -> io::Result<()> {
    let mut stdout = io::BufWriter::new(io::stdout().lock());
    serde_json::to_writer(&mut stdout, value)?;
    writeln!(stdout)?;
    stdout.flush()
}

/// An empty line on stdout, between the reports on several files.
pub(crate) fn blank_line() -> io::Result<()> {
    writeln!(io::stdout().lock())
}

/// A file's name on a line of its own, before what is printed about it.
pub(crate) fn heading(name: &str) -> io::Result<()> {
    writeln!(io::stdout().lock(), "== {}", crate::term::sanitize(name))
}

/// An integer with thousands separators: `22,713,216`.
pub(crate) fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A byte count for people: `532 B`, `86.71 MiB`.
pub(crate) fn bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}

/// A parameter count for people: `58`, `22.7M`, `1.24B`.
pub(crate) fn count(n: u64) -> String {
    #[allow(clippy::cast_precision_loss)] // three significant digits are shown
    let x = n as f64;
    match n {
        0..1_000 => n.to_string(),
        1_000..1_000_000 => format!("{:.1}K", x / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1}M", x / 1e6),
        _ => format!("{:.2}B", x / 1e9),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_formats() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(22_713_216), "22,713,216");
        assert_eq!(count(58), "58");
        assert_eq!(count(22_713_216), "22.7M");
        assert_eq!(count(1_240_000_000), "1.24B");
        assert_eq!(bytes(532), "532 B");
    }
}
