//! `ckpt stats` as text: a summary, then one row per tensor.

use std::io::{self, Write};

use serde_json::Value;

use crate::output::inspect::{display_name, new_table, right_align};
use crate::output::{count, grouped};
use crate::term::sanitize;
use ckpt::stats::{HistogramReport, Report};

pub(crate) fn render(report: &Report) -> io::Result<()> {
    let mut out = io::BufWriter::new(io::stdout().lock());
    render_to(&mut out, report)?;
    out.flush()
}

fn render_to(out: &mut impl Write, report: &Report) -> io::Result<()> {
    let summary = &report.summary;
    writeln!(out, "{}", sanitize(&report.path))?;
    writeln!(out, "  format      {}", report.format)?;
    let mut tensors = format!(
        "  tensors     {} ({} values)",
        grouped(summary.tensors as u64),
        count(summary.values)
    );
    if summary.computed < summary.tensors {
        tensors += &format!(
            ", {} without numbers",
            grouped((summary.tensors - summary.computed) as u64)
        );
    }
    if summary.excluded > 0 {
        tensors += &format!(", {} left out", grouped(summary.excluded as u64));
    }
    writeln!(out, "{tensors}")?;
    let mut flagged = Vec::new();
    if summary.nonfinite > 0 {
        flagged.push(format!("{} with NaN/inf", summary.nonfinite));
    }
    if summary.all_zero > 0 {
        flagged.push(format!("{} all zero", summary.all_zero));
    }
    if flagged.is_empty() {
        writeln!(out, "  flagged     none")?;
    } else {
        writeln!(
            out,
            "  flagged     {} ({})",
            summary.flagged,
            flagged.join(", ")
        )?;
    }
    if summary.zero_noted > 0 {
        writeln!(
            out,
            "  all zero    {} (noted, not flagged: integer or bool tensors, such as counters; \
             --flag-zero any flags them)",
            summary.zero_noted
        )?;
    }
    if summary.constant > 0 {
        writeln!(
            out,
            "  constant    {} (noted, not flagged)",
            summary.constant
        )?;
    }
    if report.tensors.is_empty() {
        return Ok(());
    }

    let histograms = report.tensors.iter().any(|t| t.histogram.is_some());
    let mut header = vec![
        "NAME", "DTYPE", "SHAPE", "MIN", "MAX", "MEAN", "STD", "NAN", "INF", "ZEROS",
    ];
    if histograms {
        header.push("HISTOGRAM (MIN..MAX)");
    }
    header.push("FLAGS");
    let mut table = new_table(header);
    for tensor in &report.tensors {
        let mut row = vec![
            display_name(&tensor.name),
            tensor.dtype.to_owned(),
            format!("{:?}", tensor.shape),
        ];
        if tensor.computed {
            row.extend([
                number(&tensor.min),
                number(&tensor.max),
                number(&tensor.mean),
                number(&tensor.std),
                count(tensor.nan),
                count(tensor.pos_inf + tensor.neg_inf),
                count(tensor.zeros),
            ]);
        } else {
            row.push("(no numbers)".to_owned());
            row.extend(std::iter::repeat_n(String::new(), 6));
        }
        if histograms {
            row.push(tensor.histogram.as_ref().map(sparkline).unwrap_or_default());
        }
        row.push(tensor.flags.join(" "));
        table.add_row(row);
    }
    right_align(&mut table, &[3, 4, 5, 6, 7, 8, 9]);
    writeln!(out)?;
    writeln!(out, "{}", table.trim_fmt())?;
    Ok(())
}

/// Block heights, from an empty bin to the fullest.
const BLOCKS: [char; 9] = [' ', '▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// One character per bin between bars, its height proportional to the count (any
/// non-empty bin shows). The bins run from the MIN to the MAX column (a constant tensor's
/// from its value - 1 to + 1, as `torch.histc`: one full bar in the middle).
pub(crate) fn sparkline(histogram: &HistogramReport) -> String {
    let top = histogram.counts.iter().copied().max().unwrap_or(0);
    let mut line: String = histogram
        .counts
        .iter()
        .map(|&c| {
            let level = match (c, top) {
                (0, _) | (_, 0) => 0,
                #[allow(clippy::cast_possible_truncation)] // at most 8
                _ => (c.saturating_mul(8).div_ceil(top)).min(8) as usize,
            };
            BLOCKS.get(level).copied().unwrap_or(' ')
        })
        .collect();
    line.insert(0, '|');
    line.push('|');
    line
}

/// A statistic, compactly: integers as they are below a million, else 4 significant
/// digits, in scientific notation below 1e-4 and from 1e4; `-` when there is none.
pub(crate) fn number(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.as_f64().map_or_else(|| n.to_string(), compact),
        other => other.to_string(),
    }
}

fn compact(x: f64) -> String {
    let magnitude = x.abs();
    if x == 0.0 {
        return "0".to_owned();
    }
    if x.fract() == 0.0 && magnitude < 1e6 {
        return format!("{x:.0}");
    }
    if (1e-4..1e4).contains(&magnitude) {
        // Digits after the point that leave 4 significant ones.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // 0..=7
        let decimals = (3.0 - magnitude.log10().floor()).clamp(0.0, 7.0) as usize;
        let text = format!("{x:.decimals$}");
        let text = if text.contains('.') {
            text.trim_end_matches('0').trim_end_matches('.')
        } else {
            &text
        };
        return text.to_owned();
    }
    let text = format!("{x:.3e}");
    match text.split_once('e') {
        Some((mantissa, exponent)) => {
            let mantissa = if mantissa.contains('.') {
                mantissa.trim_end_matches('0').trim_end_matches('.')
            } else {
                mantissa
            };
            format!("{mantissa}e{exponent}")
        }
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_compact() {
        let cases = [
            (0.0, "0"),
            (-0.0, "0"),
            (1.0, "1"),
            (-255.0, "-255"),
            (0.5, "0.5"),
            (0.02_f32 as f64, "0.02"),
            (1.2345678, "1.235"),
            (-0.00123456, "-0.001235"),
            (12345.678, "1.235e4"),
            (9999.96, "10000"),
            (999_999.5, "1e6"),
            (1e-5, "1e-5"),
            (f64::from(f32::MIN), "-3.403e38"),
            (2f64.powi(63), "9.223e18"),
            (5e-324, "4.941e-324"),
            (0.1 + 0.2, "0.3"),
        ];
        for (x, text) in cases {
            assert_eq!(compact(x), text, "{x}");
        }
        assert_eq!(number(&Value::Null), "-");
        assert_eq!(number(&Value::from("inf")), "inf");
    }

    #[test]
    fn sparklines_scale_to_the_fullest_bin() {
        let h = HistogramReport {
            edges: Vec::new(),
            counts: vec![0, 1, 50, 100, 3],
        };
        assert_eq!(sparkline(&h), "| ▁▄█▁|");
        let empty = HistogramReport {
            edges: Vec::new(),
            counts: vec![0, 0],
        };
        assert_eq!(sparkline(&empty), "|  |");
    }
}
