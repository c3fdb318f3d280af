//! `ckpt verify` as text: each file with its problems, then the manifest and a summary.

use std::io::{self, Write};

use ckpt::verify::{FileReport, Verification};

use crate::term::sanitize;

pub(crate) fn render(report: &Verification) -> io::Result<()> {
    let mut out = io::BufWriter::new(io::stdout().lock());
    render_to(&mut out, report)?;
    out.flush()
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn render_file(out: &mut impl Write, file: &FileReport) -> io::Result<()> {
    let path = sanitize(&file.path);
    if let Some(error) = &file.error {
        writeln!(
            out,
            "{path}: {}: {}",
            crate::term::paint("cannot be verified", crate::term::Paint::Bad, false),
            sanitize(&error.message)
        )?;
        if let Some(hint) = &error.hint {
            writeln!(out, "  hint: {}", sanitize(hint))?;
        }
        return Ok(());
    }
    let mut what = Vec::new();
    if let Some(format) = file.format {
        what.push(format.to_owned());
    }
    if file.files > 1 {
        what.push(plural(file.files, "file", "files"));
    }
    if let Some(hashed) = file.tensors_hashed {
        what.push(format!("{} hashed", plural(hashed, "tensor", "tensors")));
    }
    let status = if file.problems.is_empty() {
        crate::term::paint("sound", crate::term::Paint::Good, false)
    } else {
        let paint = if file.errors > 0 {
            crate::term::Paint::Bad
        } else {
            crate::term::Paint::Warn
        };
        crate::term::paint(
            &format!(
                "{}, {}",
                plural(file.errors, "error", "errors"),
                plural(file.warnings, "warning", "warnings")
            ),
            paint,
            false,
        )
    };
    writeln!(out, "{path}: {status} ({})", what.join(", "))?;
    for problem in &file.problems {
        let mut place = Vec::new();
        if let Some(member) = &problem.member {
            place.push(format!("member `{}`", sanitize(member)));
        }
        if let Some(tensor) = &problem.tensor {
            place.push(format!("tensor `{}`", sanitize(tensor)));
        }
        if let Some(offset) = problem.offset {
            place.push(format!("byte {offset}"));
        }
        let place = if place.is_empty() {
            String::new()
        } else {
            format!("{}: ", place.join(", "))
        };
        writeln!(
            out,
            "  {:<7}  {:<22} {place}{}",
            problem.severity,
            problem.rule,
            sanitize(&problem.message)
        )?;
        if let Some(hint) = &problem.hint {
            writeln!(out, "  {:<7}  {:<22} hint: {}", "", "", sanitize(hint))?;
        }
    }
    Ok(())
}

pub(crate) fn render_to(out: &mut impl Write, report: &Verification) -> io::Result<()> {
    for file in &report.files {
        render_file(out, file)?;
    }
    if let Some(manifest) = &report.manifest {
        let path = sanitize(&manifest.path);
        let tensors = plural(manifest.tensors, "tensor", "tensors");
        match manifest.action {
            "written" => writeln!(out, "manifest: {tensors} written to {path}")?,
            "not-written" => writeln!(out, "manifest: not written to {path}: the file has errors")?,
            _ => writeln!(out, "manifest: {path} ({tensors}) checked")?,
        }
    }
    let summary = &report.summary;
    let mut parts = vec![format!("{} sound", summary.sound)];
    if summary.with_problems > 0 {
        parts.push(format!(
            "{} with problems ({}, {})",
            summary.with_problems,
            plural(summary.errors, "error", "errors"),
            plural(summary.warnings, "warning", "warnings")
        ));
    }
    if summary.unreadable > 0 {
        parts.push(format!("{} unreadable", summary.unreadable));
    }
    writeln!(
        out,
        "{}: {}",
        plural(summary.files, "checkpoint", "checkpoints"),
        parts.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::verify_tests::sample;

    #[test]
    fn text_escapes_untrusted_names_and_lists_every_problem() {
        let mut out = Vec::new();
        render_to(&mut out, &sample()).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{202e}'),
            "{text}"
        );
        assert_eq!(
            text,
            "evil\\u{1b}[31m.safetensors: 1 error, 0 warnings (safetensors)\n  \
             error    st.offsets             tensor `x\\u{202e}y`, byte 132: a hole after tensor `x\\u{202e}y`\n           \
             {:<22} hint: fetch it again\n\
             ok.pt: sound (torch-zip, 3 tensors hashed)\n\
             gone.pt: cannot be verified: it is gone\n  hint: look elsewhere\n\
             manifest: m.json (3 tensors) checked\n\
             3 checkpoints: 1 sound, 1 with problems (1 error, 0 warnings), 1 unreadable\n"
                .replace("{:<22}", &" ".repeat(22))
        );
    }
}
