//! `ckpt diff` as text.

use std::io::{self, Write};

use ckpt::diff::Report;

use crate::output::grouped;
use crate::term::sanitize;

/// The names only one side has, then mismatches, differing tensors and values, then one
/// summary line.
pub(crate) fn render(report: &Report) -> io::Result<()> {
    let mut out = io::BufWriter::new(io::stdout().lock());
    for (label, side) in [("A", &report.a), ("B", &report.b)] {
        writeln!(
            out,
            "{label}: {} ({}, {} tensor{})",
            sanitize(&side.path),
            side.format,
            side.tensors,
            plural(side.tensors)
        )?;
    }
    match (report.tolerance.atol, report.tolerance.rtol) {
        (Some(atol), Some(rtol)) => writeln!(
            out,
            "compared within atol={} rtol={} (torch.allclose, equal_nan=True, B as reference)",
            tolerance(atol),
            tolerance(rtol)
        )?,
        _ => writeln!(out, "compared exactly (bitwise; NaN equals NaN)")?,
    }
    for (label, names) in [
        ("only in A", &report.only_in_a),
        ("only in B", &report.only_in_b),
    ] {
        if names.is_empty() {
            continue;
        }
        writeln!(out, "\n{label} ({}):", names.len())?;
        for name in names {
            writeln!(out, "  {}", shown(name))?;
        }
    }
    let mismatched: Vec<_> = report
        .tensors
        .iter()
        .filter(|t| {
            // With --ignore-dtype, another dtype alone is not a mismatch.
            (t.dtype_a != t.dtype_b && !report.tolerance.ignore_dtype)
                || t.shape_a != t.shape_b
                || t.quantization_differs
        })
        .collect();
    if !mismatched.is_empty() {
        writeln!(out, "\nmismatches ({}):", mismatched.len())?;
        for tensor in mismatched {
            let mut line = format!(
                "  {}  {} {:?} vs {} {:?}",
                shown(&tensor.name),
                tensor.dtype_a,
                tensor.shape_a,
                tensor.dtype_b,
                tensor.shape_b
            );
            if tensor.quantization_differs {
                line += ", quantization differs";
            }
            match (&tensor.reason, &tensor.differences) {
                (Some(reason), _) => line += &format!(" (values not compared: {reason})"),
                (None, None) => line += " (values equal)",
                (None, Some(_)) => line += " (values differ, below)",
            }
            writeln!(out, "{line}")?;
        }
    }
    let differing: Vec<_> = report
        .tensors
        .iter()
        .filter_map(|t| t.differences.as_ref().map(|d| (t, d)))
        .collect();
    if !differing.is_empty() {
        writeln!(out, "\ndiffering tensors ({}):", differing.len())?;
        for (tensor, d) in differing {
            #[allow(clippy::cast_precision_loss)] // a percentage
            let share = 100.0 * d.count as f64 / d.elements.max(1) as f64;
            let mut line = format!(
                "  {}  {} of {} elements differ ({}); first at {}",
                shown(&tensor.name),
                grouped(d.count),
                grouped(d.elements),
                percent(share),
                index(&d.first_index)
            );
            if let (Some(abs), Some(at)) = (&d.max_abs, &d.max_abs_index) {
                line += &format!("; max abs diff {} at {}", number(abs), index(at));
            }
            if let Some(rel) = &d.max_rel {
                line += &format!("; max rel diff {}", number(rel));
            }
            writeln!(out, "{line}")?;
        }
    }
    if let Some(values) = &report.values {
        let listed = values.differ.len() + values.only_in_a.len() + values.only_in_b.len();
        if listed > 0 {
            writeln!(out, "\ndiffering values ({listed}):")?;
            for value in &values.differ {
                writeln!(
                    out,
                    "  {}  {} vs {}",
                    shown(&value.name),
                    sanitize(&value.a),
                    sanitize(&value.b)
                )?;
            }
            for (side, names) in [("A", &values.only_in_a), ("B", &values.only_in_b)] {
                for name in names {
                    writeln!(out, "  {}  only in {side}", shown(name))?;
                }
            }
        }
    }
    writeln!(out, "\n{}", summary_line(report))?;
    out.flush()
}

/// `7 tensors compared: 5 equal, 1 differ, 1 shape mismatch; 1 only in A; 1 value differs`.
fn summary_line(report: &Report) -> String {
    let s = &report.summary;
    let mut parts = vec![format!("{} equal", s.equal)];
    let dtypes = if report.tolerance.ignore_dtype {
        "of another dtype, compared by value"
    } else {
        "dtype mismatch"
    };
    for (count, what) in [
        (s.differ, "differ"),
        (s.dtype_mismatch, dtypes),
        (s.shape_mismatch, "shape mismatch"),
        (s.not_compared, "not compared"),
    ] {
        if count > 0 {
            parts.push(format!("{count} {what}"));
        }
    }
    let mut line = format!(
        "{} tensor{} compared: {}",
        s.compared,
        plural(s.compared),
        parts.join(", ")
    );
    for (count, what) in [(s.only_in_a, "only in A"), (s.only_in_b, "only in B")] {
        if count > 0 {
            line += &format!("; {count} {what}");
        }
    }
    if s.values_differ > 0 {
        line += &format!(
            "; {} value{} differ{}",
            s.values_differ,
            plural(s.values_differ),
            if s.values_differ == 1 { "s" } else { "" }
        );
    }
    line += if report.equal {
        " (equal)"
    } else {
        " (different)"
    };
    line
}

/// `[1, 2]`; `[]` for a 0-d tensor.
fn index(at: &[u64]) -> String {
    let parts: Vec<String> = at.iter().map(u64::to_string).collect();
    format!("[{}]", parts.join(", "))
}

/// `x` to 4 significant digits, in scientific notation when far from 1.
fn significant(x: f64) -> String {
    if x == 0.0 {
        return "0".to_owned();
    }
    if (1e-3..1e6).contains(&x.abs()) {
        #[allow(clippy::cast_possible_truncation)] // between -3 and 5
        let magnitude = x.abs().log10().floor() as i32;
        let decimals = usize::try_from(3 - magnitude).unwrap_or(0);
        let text = format!("{x:.decimals$}");
        return if text.contains('.') {
            text.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            text
        };
    }
    let text = format!("{x:.3e}");
    match text.split_once('e') {
        Some((mantissa, exponent)) if mantissa.contains('.') => format!(
            "{}e{exponent}",
            mantissa.trim_end_matches('0').trim_end_matches('.')
        ),
        _ => text,
    }
}

/// A tolerance as given: `1e-8`, `0.5`, `0`.
fn tolerance(x: f64) -> String {
    if x == 0.0 || (1e-4..1e6).contains(&x.abs()) {
        format!("{x}")
    } else {
        format!("{x:e}")
    }
}

/// A difference to 4 significant digits (JSON has them all): `0.001803`, `2.98e-8`, `inf`.
fn number(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Number(n) => n.as_f64().map_or_else(|| n.to_string(), significant),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A name for the terminal: escaped, and `""` for the empty name (a tensor at the root).
fn shown(name: &str) -> String {
    if name.is_empty() {
        "\"\"".to_owned()
    } else {
        sanitize(name)
    }
}

fn percent(share: f64) -> String {
    if share > 0.0 && share < 0.01 {
        "<0.01%".to_owned()
    } else {
        format!("{share:.2}%")
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_for_people() {
        let n = |x: f64| number(&serde_json::Value::from(x));
        assert_eq!(n(0.001803368330001831), "0.001803");
        assert_eq!(n(2.9802322387695313e-8), "2.98e-8");
        assert_eq!(n(8.0), "8");
        assert_eq!(n(123.456789), "123.5");
        assert_eq!(n(0.0), "0");
        assert_eq!(n(1.5e9), "1.5e9");
        assert_eq!(number(&serde_json::Value::from("inf")), "inf");
        assert_eq!(tolerance(1e-8), "1e-8");
        assert_eq!(tolerance(0.01), "0.01");
        assert_eq!(tolerance(0.0), "0");
    }
}
