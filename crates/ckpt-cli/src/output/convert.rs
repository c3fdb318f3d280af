//! `ckpt convert` as text.

use std::io::{self, Write};

use crate::commands::{CastReport, ConvertReport};
use crate::output::{bytes, count, grouped};
use crate::term::sanitize;

/// How many renamed or excluded names the text summary shows (JSON has them all).
const MAX_LISTED: usize = 5;
/// How many tensors with values out of range the text summary shows.
const MAX_CAST_LISTED: usize = 20;

/// What was written, how much, how fast; then what key surgery renamed and left out.
pub(crate) fn render(report: &ConvertReport) -> io::Result<()> {
    let mut out = io::stdout().lock();
    headline(&mut out, report)?;
    if report.files.len() > 1 {
        for file in &report.files {
            let name = std::path::Path::new(&file.path)
                .file_name()
                .map_or_else(|| file.path.clone(), |n| n.to_string_lossy().into_owned());
            writeln!(out, "  {}  {}", sanitize(&name), bytes(file.bytes))?;
        }
    }
    if !report.renamed.is_empty() {
        let shown: Vec<String> = report
            .renamed
            .iter()
            .take(MAX_LISTED)
            .map(|(from, to)| format!("{} -> {}", sanitize(from), sanitize(to)))
            .collect();
        writeln!(
            out,
            "  renamed {} tensor{}: {}{}",
            report.renamed.len(),
            plural(report.renamed.len()),
            shown.join(", "),
            more(report.renamed.len())
        )?;
    }
    if let Some(cast) = &report.cast {
        render_cast(&mut out, cast)?;
    }
    if !report.excluded.is_empty() {
        let shown: Vec<String> = report
            .excluded
            .iter()
            .take(MAX_LISTED)
            .map(|name| sanitize(name))
            .collect();
        writeln!(
            out,
            "  left out {} tensor{}: {}{}",
            report.excluded.len(),
            plural(report.excluded.len()),
            shown.join(", "),
            more(report.excluded.len())
        )?;
    }
    Ok(())
}

/// One summary line, then one line per tensor whose values overflowed, saturated, were NaN
/// or were flushed to zero.
fn render_cast(out: &mut impl Write, cast: &CastReport) -> io::Result<()> {
    let mut sources: Vec<&str> = cast.tensors.iter().map(|t| t.from).collect();
    sources.sort_unstable();
    sources.dedup();
    let mut line = format!(
        "  cast {} tensor{} to {}",
        cast.tensors.len(),
        plural(cast.tensors.len()),
        cast.dtype
    );
    if !sources.is_empty() {
        line += &format!(" (from {})", sources.join(", "));
    }
    if cast.already > 0 {
        line += &format!("; {} already {}", cast.already, cast.dtype);
    }
    if !cast.kept.is_empty() {
        let shown: Vec<String> = cast
            .kept
            .iter()
            .take(MAX_LISTED)
            .map(|(name, dtype)| format!("{} ({dtype})", sanitize(name)))
            .collect();
        line += &format!(
            "; {} not floating point, kept as {}: {}{}",
            cast.kept.len(),
            if cast.kept.len() == 1 {
                "it is"
            } else {
                "they are"
            },
            shown.join(", "),
            more(cast.kept.len())
        );
    }
    let events: Vec<_> = cast
        .tensors
        .iter()
        .filter(|t| t.stats.out_of_range() > 0 || t.stats.nan > 0 || t.stats.inf_saturated > 0)
        .collect();
    if events.is_empty() {
        if !cast.tensors.is_empty() {
            line += ": no value overflowed, was NaN or was flushed to zero";
        }
        return writeln!(out, "{line}");
    }
    writeln!(out, "{line}")?;
    writeln!(
        out,
        "  {}:",
        describe(
            &cast.totals,
            &format!("in {} tensor{}", events.len(), plural(events.len()))
        )
    )?;
    for tensor in events.iter().take(MAX_CAST_LISTED) {
        writeln!(
            out,
            "    {} ({} -> {}): {}",
            sanitize(&tensor.name),
            tensor.from,
            tensor.to,
            describe(
                &tensor.stats,
                &format!("of {}", grouped(tensor.stats.elements))
            )
        )?;
    }
    if let Some(rest) = events.len().checked_sub(MAX_CAST_LISTED).filter(|&n| n > 0) {
        writeln!(out, "    and {rest} more tensors (--json lists all)")?;
    }
    Ok(())
}

/// `2 overflowed to inf, 1 NaN in 3 tensors`.
fn describe(stats: &ckpt::cast::CastStats, suffix: &str) -> String {
    let mut parts = Vec::new();
    if stats.overflowed_to_inf > 0 {
        parts.push(format!(
            "{} overflowed to inf",
            grouped(stats.overflowed_to_inf)
        ));
    }
    if stats.saturated > 0 {
        parts.push(format!("{} saturated to ±448", grouped(stats.saturated)));
    }
    if stats.inf_saturated > 0 {
        parts.push(format!(
            "{} inf saturated to ±448",
            grouped(stats.inf_saturated)
        ));
    }
    if stats.flushed_to_zero > 0 {
        parts.push(format!(
            "{} flushed to zero",
            grouped(stats.flushed_to_zero)
        ));
    }
    if stats.nan > 0 {
        parts.push(format!("{} NaN", grouped(stats.nan)));
    }
    format!("{} {suffix}", parts.join(", "))
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn more(n: usize) -> String {
    match n.checked_sub(listed()) {
        Some(rest) if rest > 0 => format!(" and {rest} more (-v or --json lists all)"),
        _ => String::new(),
    }
}

/// How many names a list shows: all of them with -v.
fn listed() -> usize {
    if crate::term::verbose() {
        usize::MAX
    } else {
        MAX_LISTED
    }
}

fn headline(out: &mut impl Write, report: &ConvertReport) -> io::Result<()> {
    writeln!(
        out,
        "wrote {} ({}{}): {} tensors, {} parameters, {} in {:.2} s{}",
        sanitize(&report.output),
        report.format,
        match report.files.len() {
            0 | 1 => String::new(),
            n => format!(", {} shards and an index", n - 1),
        },
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

/// On stderr: the plain values that were not written, so that nothing is dropped silently,
/// and a wrapper prefix that --strip-prefix would remove.
pub(crate) fn warn(report: &ConvertReport) -> io::Result<()> {
    if crate::term::quiet() {
        return Ok(());
    }
    let note = crate::term::paint("note:", crate::term::Paint::Note, true);
    for text in &report.notes {
        writeln!(io::stderr().lock(), "{note} {}: {text}", report.input)?;
    }
    if let Some(prefix) = report.wrapper_prefix {
        writeln!(
            io::stderr().lock(),
            "{note} every tensor name starts with `{prefix}` (added by a training wrapper); \
             --strip-prefix {prefix} removes it"
        )?;
    }
    if report.skipped_values.is_empty() {
        return Ok(());
    }
    // A training checkpoint holds hundreds of values: the first few, then a count (all
    // of them with -v).
    let shown = if crate::term::verbose() {
        usize::MAX
    } else {
        8
    };
    let mut names: Vec<String> = report
        .skipped_values
        .iter()
        .take(shown)
        .map(|n| {
            if n.is_empty() {
                "\"\"".to_owned()
            } else {
                sanitize(n)
            }
        })
        .collect();
    if report.skipped_values.len() > shown {
        names.push(format!(
            "and {} more (-v lists all)",
            report.skipped_values.len() - shown
        ));
    }
    let mut err = io::stderr().lock();
    // A PyTorch file holds plain values too: they are left out only when the output is a
    // flat state dict (key surgery, shards).
    let why = if report.format == "safetensors" {
        format!("{} holds tensors only", report.format)
    } else {
        "the output is a flat state dict of tensors".to_owned()
    };
    writeln!(
        err,
        "{} {} plain value{} not written ({why}): {}",
        crate::term::paint("warning:", crate::term::Paint::Warn, true),
        report.skipped_values.len(),
        if report.skipped_values.len() == 1 {
            " is"
        } else {
            "s are"
        },
        names.join(", "),
    )?;
    writeln!(
        err,
        "  hint: `ckpt inspect` shows them; --key PATH converts one subtree (e.g. --key model)"
    )
}
