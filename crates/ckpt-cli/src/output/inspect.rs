//! `ckpt inspect` as text: what the file is, how to load it, its tensors and values.

use std::io::{self, Write};

use ckpt::Kind;
use ckpt::inspect::Inspection;
use comfy_table::{CellAlignment, ColumnConstraint, ContentArrangement, Table, presets};

use crate::output::{bytes, count, grouped};
use crate::term::sanitize;

/// Metadata values longer than this are cut in the text output (JSON has them whole).
const MAX_VALUE_CHARS: usize = 120;
/// Tensor names longer than this lose their middle in the text output (JSON has them whole).
const MAX_NAME_CHARS: usize = 96;
/// At most this many plain values are listed in the text output (JSON has them all).
const MAX_VALUES: usize = 50;

pub(crate) fn render(report: &Inspection) -> io::Result<()> {
    let mut out = io::BufWriter::new(io::stdout().lock());
    render_to(&mut out, report)?;
    out.flush()
}

fn render_to(out: &mut impl Write, report: &Inspection) -> io::Result<()> {
    writeln!(out, "{}", sanitize(&report.path.display().to_string()))?;
    writeln!(out, "  format      {}", report.format.name())?;
    writeln!(out, "  size        {}", bytes(report.file_size))?;
    writeln!(out, "  kind        {}", describe_kind(report))?;
    writeln!(
        out,
        "  tensors     {} ({} parameters, {})",
        grouped(report.totals.tensors as u64),
        count(report.totals.parameters),
        bytes(report.totals.bytes)
    )?;
    if let Some(accepts) = report.weights_only {
        let verdict = if accepts {
            "torch.load(weights_only=True) accepts it"
        } else {
            "torch.load(weights_only=True) refuses it"
        };
        writeln!(out, "  safety      {verdict}")?;
    }
    if !report.needs.is_empty() {
        writeln!(out, "  needs       {}", sanitize(&report.needs.join(", ")))?;
    }
    if !report.objects.is_empty() {
        let mut classes: Vec<&str> = Vec::new();
        for object in &report.objects {
            if !classes.contains(&object.class.as_str()) {
                classes.push(&object.class);
            }
        }
        let shown = classes.len().min(6);
        let mut list = classes.get(..shown).unwrap_or_default().join(", ");
        if classes.len() > shown {
            list.push_str(&format!(" and {} more", classes.len() - shown));
        }
        let n = report.objects.len();
        writeln!(
            out,
            "  objects     {n} {} of classes ckpt keeps inert ({}): shown as stored and never \
             constructed (in Python, a class's own code could rebuild them otherwise)",
            if n == 1 { "object" } else { "objects" },
            sanitize(&list)
        )?;
    }
    writeln!(out, "  load with   {}", sanitize(&report.load))?;
    for (i, (key, value)) in report.records.iter().enumerate() {
        let label = if i == 0 { "records" } else { "" };
        writeln!(
            out,
            "  {label:<10}  {} = {}",
            sanitize(key),
            sanitize(&shorten(value))
        )?;
    }
    for (i, (key, value)) in report.metadata.iter().enumerate() {
        let label = if i == 0 { "metadata" } else { "" };
        writeln!(
            out,
            "  {label:<10}  {} = {}",
            sanitize(key),
            sanitize(&shorten(value))
        )?;
    }
    for (i, group) in report.shared.iter().enumerate() {
        let label = if i == 0 { "shared" } else { "" };
        let names: Vec<String> = group.iter().map(|n| display_name(n)).collect();
        writeln!(out, "  {label:<10}  {}", names.join(" = "))?;
    }

    if !report.tensors.is_empty() {
        let hashed = report.tensors.iter().any(|t| t.sha256.is_some());
        let in_files = report.tensors.iter().any(|t| !t.files.is_empty());
        let mut header = vec!["NAME", "DTYPE", "SHAPE", "PARAMETERS", "BYTES"];
        if in_files {
            header.push("FILE");
        }
        if hashed {
            header.push("SHA256");
        }
        let mut table = new_table(header);
        for tensor in &report.tensors {
            let mut row = vec![
                display_name(&tensor.name),
                tensor.dtype.name().to_owned(),
                format!("{:?}", tensor.shape),
                grouped(tensor.parameters),
                bytes(tensor.bytes),
            ];
            if in_files {
                let files: Vec<String> = tensor.files.iter().map(|f| sanitize(f)).collect();
                row.push(files.join(" "));
            }
            if let Some(hash) = &tensor.sha256 {
                row.push(hash.clone());
            }
            table.add_row(row);
        }
        right_align(&mut table, &[3, 4]);
        writeln!(out)?;
        writeln!(out, "{}", table.trim_fmt())?;
    }

    if !report.values.is_empty() {
        let mut table = new_table(vec!["VALUE", "TYPE", "="]);
        let shown = if crate::term::verbose() {
            usize::MAX
        } else {
            MAX_VALUES
        };
        for value in report.values.iter().take(shown) {
            table.add_row(vec![
                display_name(&value.name),
                sanitize(&value.type_name),
                sanitize(&shorten(&value.repr)),
            ]);
        }
        writeln!(out)?;
        writeln!(out, "{}", table.trim_fmt())?;
        if report.values.len() > shown {
            writeln!(
                out,
                " ... and {} more values (-v or --json lists all)",
                report.values.len() - MAX_VALUES
            )?;
        }
    }

    if !report.tensors.is_empty() {
        let mut totals = new_table(vec!["DTYPE", "TENSORS", "PARAMETERS", "BYTES"]);
        for (dtype, sums) in &report.totals.by_dtype {
            totals.add_row(vec![
                (*dtype).to_owned(),
                grouped(sums.tensors as u64),
                grouped(sums.parameters),
                bytes(sums.bytes),
            ]);
        }
        right_align(&mut totals, &[1, 2, 3]);
        writeln!(out)?;
        writeln!(out, "{}", totals.trim_fmt())?;
    }
    Ok(())
}

/// `--pickle`: each pickle of the file, opcode by opcode. Text from the file is escaped.
pub(crate) fn listing(pickles: &[ckpt::torch::PickleSource<'_>]) -> io::Result<()> {
    let mut out = io::BufWriter::new(io::stdout().lock());
    listing_to(&mut out, pickles)?;
    out.flush()
}

fn listing_to(out: &mut impl Write, pickles: &[ckpt::torch::PickleSource<'_>]) -> io::Result<()> {
    for (i, pickle) in pickles.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        writeln!(out, "# {} (byte {})", sanitize(&pickle.name), pickle.offset)?;
        let mut text = String::new();
        let result = ckpt_pickle_listing(&pickle.bytes, pickle.offset, &mut text);
        out.write_all(sanitize_lines(&text).as_bytes())?;
        if let Err(error) = result {
            writeln!(out, "# stops here: {}", sanitize(&error))?;
        }
    }
    Ok(())
}

fn ckpt_pickle_listing(bytes: &[u8], offset: u64, text: &mut String) -> Result<(), String> {
    match ckpt::pickle::write_listing(bytes, offset, &ckpt::pickle::Limits::default(), text) {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("cannot format the listing".to_owned()),
    }
}

/// Escapes each line of a listing, keeping the line breaks.
fn sanitize_lines(text: &str) -> String {
    text.lines().map(|line| sanitize(line) + "\n").collect()
}

fn describe_kind(report: &Inspection) -> String {
    match report.kind {
        Kind::StateDict => "a state dict (names to tensors)".to_owned(),
        Kind::Checkpoint => format!(
            "a training checkpoint with keys {}",
            sanitize(&report.keys.join(", "))
        ),
        Kind::Module => {
            "a whole nn.Module (torch.save(model)), read as its state_dict()".to_owned()
        }
        Kind::TorchScript => "a TorchScript archive, read as its state_dict()".to_owned(),
        Kind::Tensor => "a single tensor".to_owned(),
        other => other.name().to_owned(),
    }
}

pub(crate) fn new_table(header: Vec<&str>) -> Table {
    let mut table = Table::new();
    table
        .load_style(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .force_no_tty()
        .set_header(header);
    for column in table.column_iter_mut() {
        column.set_constraint(ColumnConstraint::ContentWidth);
    }
    table
}

pub(crate) fn right_align(table: &mut Table, columns: &[usize]) {
    for &i in columns {
        if let Some(column) = table.column_mut(i) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
}

/// A tensor name for a table: escaped, `""` when empty, its middle cut when very long.
pub(crate) fn display_name(name: &str) -> String {
    if name.is_empty() {
        return "\"\"".to_owned();
    }
    let name = sanitize(name);
    let chars: Vec<char> = name.chars().collect();
    if chars.len() <= MAX_NAME_CHARS {
        return name;
    }
    let keep = (MAX_NAME_CHARS - 1) / 2;
    let head: String = chars.iter().take(keep).collect();
    let tail: String = chars.iter().skip(chars.len() - keep).collect();
    format!("{head}…{tail}")
}

fn shorten(value: &str) -> String {
    match value.char_indices().nth(MAX_VALUE_CHARS) {
        Some((cut, _)) => format!(
            "{}... ({} bytes, see --json)",
            value.get(..cut).unwrap_or(value),
            value.len()
        ),
        None => value.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_for_tables() {
        assert_eq!(display_name("a.b"), "a.b");
        assert_eq!(display_name(""), "\"\"");
        let long = "x".repeat(300);
        let shown = display_name(&long);
        assert_eq!(shown.chars().count(), 95);
        assert!(shown.contains('…'));
    }
}
