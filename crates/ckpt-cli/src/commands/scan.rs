//! `ckpt scan`: whether loading files with Python would run code; nothing is run.

use ckpt::scan::{Report, ScanOptions, Verdict, collect_files, scan_file};
use rayon::prelude::*;
use serde::Serialize;

use crate::args::{FailOn, ScanArgs};
use crate::exit::Outcome;
use crate::output;

/// Everything `scan` reports, as printed by `--json`.
#[derive(Debug, Serialize)]
pub(crate) struct ScanReport {
    pub(crate) files: Vec<FileRow>,
    pub(crate) summary: Summary,
}

/// The scan of one file.
#[derive(Debug, Serialize)]
pub(crate) struct FileRow {
    pub(crate) path: String,
    /// `safe`, `unsafe`, `dangerous`, or `error` (not scanned, nothing worse found).
    pub(crate) verdict: &'static str,
    pub(crate) format: Option<String>,
    pub(crate) pickles: usize,
    pub(crate) findings: Vec<FindingRow>,
    pub(crate) errors: Vec<ErrorRow>,
    /// The allowlisted globals seen, `module.name`.
    pub(crate) data_globals: Vec<String>,
}

/// One finding.
#[derive(Debug, Serialize)]
pub(crate) struct FindingRow {
    pub(crate) verdict: &'static str,
    pub(crate) category: &'static str,
    pub(crate) global: Option<String>,
    pub(crate) usage: Option<&'static str>,
    pub(crate) member: Option<String>,
    pub(crate) offset: Option<u64>,
    pub(crate) count: usize,
    pub(crate) why: String,
}

/// One problem reading a file.
#[derive(Debug, Serialize)]
pub(crate) struct ErrorRow {
    pub(crate) kind: &'static str,
    pub(crate) message: String,
    pub(crate) member: Option<String>,
    pub(crate) offset: Option<u64>,
    pub(crate) hint: Option<String>,
}

/// Counts of files by verdict.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Summary {
    pub(crate) files: usize,
    pub(crate) safe: usize,
    #[serde(rename = "unsafe")]
    pub(crate) unsafe_: usize,
    pub(crate) dangerous: usize,
    pub(crate) errors: usize,
}

pub(crate) fn run(args: &ScanArgs, limits: &ckpt::Limits) -> anyhow::Result<Outcome> {
    let options = ScanOptions::default()
        .with_allow(args.allow.iter().cloned())
        .with_limits(limits.clone());
    let (paths, spool) = super::with_stdin(&args.paths)?;
    let files = collect_files(&paths);
    // In parallel, reported in the order the files were collected.
    let mut rows: Vec<FileRow> = files
        .par_iter()
        .map(|file| match file {
            Ok(path) => row(&scan_file(path, &options)),
            Err(error) => unreadable(error),
        })
        .collect();
    for row in &mut rows {
        row.path = super::shown(&row.path, spool.as_ref());
    }
    let mut summary = Summary {
        files: rows.len(),
        ..Summary::default()
    };
    for row in &rows {
        match row.verdict {
            "safe" => summary.safe += 1,
            "unsafe" => summary.unsafe_ += 1,
            "dangerous" => summary.dangerous += 1,
            _ => summary.errors += 1,
        }
    }
    let failing = match args.fail_on {
        FailOn::Unsafe => summary.unsafe_ + summary.dangerous,
        FailOn::Dangerous => summary.dangerous,
    };
    let outcome = if failing > 0 {
        Outcome::Found
    } else if summary.errors > 0 || rows.iter().any(|r| !r.errors.is_empty()) {
        Outcome::Failed
    } else {
        Outcome::Success
    };
    let report = ScanReport {
        files: rows,
        summary,
    };
    if args.json {
        output::json(&report)?;
    } else if args.sarif {
        output::json(&output::scan::sarif(&report))?;
    } else {
        output::scan::render(&report)?;
    }
    Ok(outcome)
}

fn row(report: &Report) -> FileRow {
    FileRow {
        path: report.path.display().to_string(),
        verdict: report.status(),
        format: report.format.clone(),
        pickles: report.pickles,
        findings: report
            .findings
            .iter()
            .map(|f| FindingRow {
                verdict: f.verdict.as_str(),
                category: f.category.as_str(),
                global: f.global.clone(),
                usage: f.usage.map(|u| u.as_str()),
                member: f.member.clone(),
                offset: f.offset,
                count: f.count,
                why: f.why.clone(),
            })
            .collect(),
        errors: report.errors.iter().map(error_row).collect(),
        data_globals: report.data_globals.clone(),
    }
}

fn error_row(error: &ckpt::Error) -> ErrorRow {
    ErrorRow {
        kind: error.kind().as_str(),
        message: error.message().to_owned(),
        member: error.location().member.clone(),
        offset: error.location().offset,
        hint: error.hint().map(str::to_owned),
    }
}

fn unreadable(error: &ckpt::Error) -> FileRow {
    FileRow {
        path: error
            .location()
            .path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        verdict: "error",
        format: None,
        pickles: 0,
        findings: Vec::new(),
        errors: vec![error_row(error)],
        data_globals: Vec::new(),
    }
}

/// The SARIF level of a verdict.
pub(crate) fn level(verdict: &str) -> &'static str {
    if verdict == Verdict::Dangerous.as_str() {
        "error"
    } else {
        "warning"
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A report with one dangerous finding and a hostile name, for rendering tests.
    pub(crate) fn sample() -> ScanReport {
        ScanReport {
            files: vec![FileRow {
                path: "evil\u{1b}[31m.pt".to_owned(),
                verdict: "dangerous",
                format: Some("torch-zip".to_owned()),
                pickles: 1,
                findings: vec![FindingRow {
                    verdict: "dangerous",
                    category: "global",
                    global: Some("os.system".to_owned()),
                    usage: Some("called"),
                    member: Some("archive/data.pkl".to_owned()),
                    offset: Some(66),
                    count: 1,
                    why: "`os` runs commands and touches files".to_owned(),
                }],
                errors: Vec::new(),
                data_globals: Vec::new(),
            }],
            summary: Summary {
                files: 1,
                dangerous: 1,
                ..Summary::default()
            },
        }
    }
}
