//! `ckpt scan` as text (a report per file and a summary) and as SARIF 2.1.0.

use std::io::{self, Write};

use serde_json::{Value, json};

use ckpt::scan::{Report, Scan, Verdict};

use crate::term::sanitize;

pub(crate) fn render(report: &Scan) -> io::Result<()> {
    let mut out = io::BufWriter::new(io::stdout().lock());
    render_to(&mut out, report)?;
    out.flush()
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn render_file(out: &mut impl Write, file: &Report) -> io::Result<()> {
    let status = file.status();
    let mut what = Vec::new();
    if let Some(format) = &file.format {
        what.push(sanitize(format));
    }
    if file.pickles > 0 {
        what.push(plural(file.pickles, "pickle", "pickles"));
    }
    let what = if what.is_empty() {
        String::new()
    } else {
        format!(" ({})", what.join(", "))
    };
    writeln!(
        out,
        "{}: {}{what}",
        sanitize(&file.path.display().to_string()),
        crate::term::paint(&status.to_uppercase(), verdict_paint(status), false)
    )?;
    for finding in &file.findings {
        let subject = match (&finding.global, finding.usage) {
            (Some(global), Some(usage)) => format!("{} {}", sanitize(global), usage.as_str()),
            (Some(global), None) => sanitize(global),
            (None, _) => finding.category.as_str().to_owned(),
        };
        let mut place = Vec::new();
        if let Some(member) = &finding.member {
            place.push(sanitize(member));
        }
        if let Some(offset) = finding.offset {
            place.push(format!("byte {offset}"));
        }
        let times = if finding.count > 1 {
            format!(" ({} times)", finding.count)
        } else {
            String::new()
        };
        writeln!(
            out,
            "  {:<9}  {subject}{times}{}",
            finding.verdict.as_str(),
            if place.is_empty() {
                String::new()
            } else {
                format!(" at {}", place.join(", "))
            }
        )?;
        writeln!(out, "  {:<9}  {}", "", sanitize(&finding.why))?;
    }
    for error in &file.errors {
        let mut place = Vec::new();
        if let Some(member) = &error.location().member {
            place.push(format!("member `{}`", sanitize(member)));
        }
        if let Some(offset) = error.location().offset {
            place.push(format!("byte {offset}"));
        }
        let place = if place.is_empty() {
            String::new()
        } else {
            format!("{}: ", place.join(", "))
        };
        writeln!(out, "  error      {place}{}", sanitize(error.message()))?;
        if let Some(hint) = error.hint() {
            writeln!(out, "  {:<9}  hint: {}", "", sanitize(hint))?;
        }
    }
    if status == "unsafe" {
        // Only where ckpt reads the format does it offer a way to the tensors.
        let readable = matches!(
            file.format.as_deref(),
            Some("torch-zip" | "torch-legacy" | "torch-tar" | "torchscript" | "pickle")
        );
        let way = if readable {
            "; `ckpt convert` extracts its tensors without running any of it"
        } else {
            ""
        };
        writeln!(
            out,
            "  {:<9}  loading it runs code ckpt cannot vouch for{way}",
            ""
        )?;
    }
    Ok(())
}

fn render_to(out: &mut impl Write, report: &Scan) -> io::Result<()> {
    for file in &report.files {
        render_file(out, file)?;
    }
    let s = &report.summary;
    writeln!(
        out,
        "\n{} scanned: {} safe, {} unsafe, {} dangerous, {}",
        plural(s.files, "file", "files"),
        s.safe,
        s.unsafe_,
        s.dangerous,
        plural(s.errors, "error", "errors")
    )
}

const RULES: &[(&str, &str)] = &[
    (
        "global",
        "A pickle names a global outside the data allowlist",
    ),
    (
        "computed-global",
        "A pickle computes the name of a global at load time",
    ),
    ("mutation", "A pickle writes state into a global itself"),
    ("code", "The file ships code that its loader runs"),
    (
        "container",
        "The container hides data from some readers (stacked pickles, trailing data, zip anomalies)",
    ),
];

/// The report as a SARIF 2.1.0 log: one result per finding, `error` for dangerous and
/// `warning` for unsafe; files that could not be scanned are tool notifications.
pub(crate) fn sarif(report: &Scan) -> Value {
    let rules: Vec<Value> = RULES
        .iter()
        .map(|(id, text)| json!({"id": id, "shortDescription": {"text": text}}))
        .collect();
    let mut results = Vec::new();
    let mut notifications = Vec::new();
    for file in &report.files {
        let path = file.path.display().to_string();
        let uri = path.replace('\\', "/");
        for finding in &file.findings {
            let subject = match (&finding.global, finding.usage) {
                (Some(global), Some(usage)) => format!("{global} ({}): ", usage.as_str()),
                (Some(global), None) => format!("{global}: "),
                _ => String::new(),
            };
            let mut physical = serde_json::Map::new();
            physical.insert("artifactLocation".to_owned(), json!({"uri": uri}));
            if let Some(offset) = finding.offset {
                physical.insert("region".to_owned(), json!({"byteOffset": offset}));
            }
            let mut location = serde_json::Map::new();
            location.insert("physicalLocation".to_owned(), Value::Object(physical));
            if let Some(member) = &finding.member {
                let name = match finding.offset {
                    Some(offset) => format!("{member}@{offset}"),
                    None => member.clone(),
                };
                location.insert(
                    "logicalLocations".to_owned(),
                    json!([{"name": member, "fullyQualifiedName": name, "kind": "resource"}]),
                );
            }
            results.push(json!({
                "ruleId": finding.category,
                "level": level(finding.verdict),
                "message": {"text": format!("{}: {subject}{}", finding.verdict, finding.why)},
                "locations": [Value::Object(location)],
                "properties": {"verdict": finding.verdict, "count": finding.count},
            }));
        }
        for error in &file.errors {
            notifications.push(json!({
                "level": "error",
                "message": {"text": format!("{path}: {}", error.message())},
                "locations": [{"physicalLocation": {"artifactLocation": {"uri": uri}}}],
            }));
        }
    }
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "ckpt",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://github.com/ckpt-rs/ckpt",
                "rules": rules,
            }},
            "invocations": [{
                "executionSuccessful": notifications.is_empty(),
                "toolExecutionNotifications": notifications,
            }],
            "results": results,
        }],
    })
}

/// The SARIF level of a verdict.
fn level(verdict: Verdict) -> &'static str {
    if verdict == Verdict::Dangerous {
        "error"
    } else {
        "warning"
    }
}

/// The colour of a verdict.
fn verdict_paint(verdict: &str) -> crate::term::Paint {
    match verdict {
        "safe" => crate::term::Paint::Good,
        "unsafe" => crate::term::Paint::Warn,
        _ => crate::term::Paint::Bad,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::scan_tests::sample;

    #[test]
    fn text_report() {
        let mut out = Vec::new();
        render_to(&mut out, &sample()).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("DANGEROUS"));
        assert!(text.contains("os.system called at archive/data.pkl, byte 66"));
        assert!(text.contains("\\u{1b}"));
    }

    #[test]
    fn sarif_shape() {
        let log = sarif(&sample());
        assert_eq!(log["version"], "2.1.0");
        let result = &log["runs"][0]["results"][0];
        assert_eq!(result["level"], "error");
        assert_eq!(
            result["locations"][0]["physicalLocation"]["region"]["byteOffset"],
            66
        );
    }
}
