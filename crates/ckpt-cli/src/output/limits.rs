//! `ckpt limits` as text: a table of names, values and what each bounds.

use std::io::{self, Write};

use crate::commands::LimitRow;

pub(crate) fn print(rows: &[LimitRow]) -> io::Result<()> {
    let mut out = io::BufWriter::new(io::stdout().lock());
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(0);
    let values: Vec<String> = rows.iter().map(|r| super::grouped(r.value)).collect();
    let value_width = values.iter().map(String::len).max().unwrap_or(0);
    for (row, value) in rows.iter().zip(&values) {
        let changed = if row.value == row.default {
            String::new()
        } else {
            format!(" (default {})", super::grouped(row.default))
        };
        writeln!(
            out,
            "{:<width$}  {value:>value_width$}  {}{changed}",
            row.name, row.bounds
        )?;
    }
    writeln!(
        out,
        "\nA file over a limit is refused with an error naming it. For a file you trust, \
         raise one with `ckpt --limit NAME=VALUE ...` (sizes such as 2GiB are accepted)."
    )?;
    out.flush()
}
