//! `ckpt scan`: judges whether loading a file with Python would run code, without ever
//! running, importing or writing anything.
//!
//! Every pickle a file holds (see [`walk`](self) for where they hide) is read by the same
//! safe VM the loaders use ([`ckpt_pickle`]), so the file judged is the file loaded. Each
//! global a pickle names is classified (`globals`): data by allowlist, known-harmful by
//! denylist, and everything else as code we cannot vouch for. A file gets the worst
//! verdict of its findings:
//!
//! - [`Verdict::Safe`]: only data.
//! - [`Verdict::Unsafe`]: loading it runs code we cannot vouch for (custom classes,
//!   TorchScript code...), with nothing known to be harmful. `ckpt convert` still reads
//!   its tensors without running anything.
//! - [`Verdict::Dangerous`]: it reaches code execution, processes, files, the network or
//!   more deserialization, or hides something from other readers.
//!
//! ```
//! use ckpt::scan::{ScanOptions, Verdict, scan_bytes};
//!
//! // pickle.dumps(os.system) under protocol 2: never imported, never called.
//! let report = scan_bytes(b"\x80\x02cposix\nsystem\nq\x00.", "payload.pkl", &ScanOptions::default());
//! assert_eq!(report.verdict, Verdict::Dangerous);
//! assert_eq!(report.findings[0].global.as_deref(), Some("posix.system"));
//! ```

mod files;
mod globals;
mod judge;
mod npy;
mod pickle;

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;
use serde::ser::SerializeStruct;

use crate::error::Error;

pub use files::{collect_files, scan_bytes, scan_file};

/// How bad a file (or a finding) is. Ordered: `Safe < Unsafe < Dangerous`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Verdict {
    /// Only data: every global is in the data allowlist.
    Safe,
    /// Loading it needs code we cannot vouch for, with nothing known to be harmful.
    Unsafe,
    /// It reaches code execution, processes, files, the network or more deserialization.
    Dangerous,
}

impl Verdict {
    /// `safe`, `unsafe` or `dangerous`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Safe => "safe",
            Verdict::Unsafe => "unsafe",
            Verdict::Dangerous => "dangerous",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Serializes as [`Verdict::as_str`].
impl Serialize for Verdict {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// How a pickle uses a global.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Usage {
    /// Only named (pushed, stored, passed as a value).
    Referenced,
    /// Its state set by `BUILD` (the global itself mutated).
    Mutated,
    /// Instantiated (`NEWOBJ`, `NEWOBJ_EX`, `OBJ`, `INST`).
    Instantiated,
    /// Called (`REDUCE`).
    Called,
}

impl Usage {
    /// `referenced`, `mutated`, `instantiated` or `called`.
    pub fn as_str(self) -> &'static str {
        match self {
            Usage::Referenced => "referenced",
            Usage::Mutated => "mutated",
            Usage::Instantiated => "instantiated",
            Usage::Called => "called",
        }
    }
}

/// Serializes as [`Usage::as_str`].
impl Serialize for Usage {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// What a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Category {
    /// A global outside the data allowlist.
    Global,
    /// A global whose name is computed at load time (`STACK_GLOBAL` of a call result).
    ComputedGlobal,
    /// State written into a global itself (`BUILD` on a module, class or function).
    Mutation,
    /// Code shipped in the file (TorchScript `code/`).
    Code,
    /// A container trick: stacked or trailing data, zip anomalies, polyglots.
    Container,
}

impl Category {
    /// A stable identifier (`global`, `computed-global`, `mutation`, `code`, `container`),
    /// also the SARIF rule id.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Global => "global",
            Category::ComputedGlobal => "computed-global",
            Category::Mutation => "mutation",
            Category::Code => "code",
            Category::Container => "container",
        }
    }
}

/// Serializes as [`Category::as_str`].
impl Serialize for Category {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// One reason for a verdict.
///
/// It serializes with its fields in this order, the verdict, category and usage as their
/// names (`dangerous`, `global`, `called`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Finding {
    /// How bad it is (`Unsafe` or `Dangerous`).
    pub verdict: Verdict,
    /// What it is about.
    pub category: Category,
    /// The global, `module.name` in Python 3 spelling, for global findings.
    pub global: Option<String>,
    /// How the pickle uses the global.
    pub usage: Option<Usage>,
    /// Where: the pickle (`data.pkl`, `object pickle`...) or archive member.
    pub member: Option<String>,
    /// Where: the byte offset in the file (in the inflated member for compressed ones).
    pub offset: Option<u64>,
    /// How many times the same finding occurs in the member (the offset is the first).
    pub count: usize,
    /// Why it matters.
    pub why: String,
}

impl Finding {
    /// The finding in one sentence: what, where, why (`os.system` called in
    /// `archive/data.pkl` at byte 130: `os` runs commands and touches files).
    pub fn describe(&self) -> String {
        let what = match (&self.global, self.usage) {
            (Some(global), Some(usage)) => format!("`{global}` {}", usage.as_str()),
            (Some(global), None) => format!("`{global}`"),
            (None, _) => self.category.as_str().replace('-', " "),
        };
        let mut out = what;
        if let Some(member) = &self.member {
            out.push_str(&format!(" in `{member}`"));
        }
        if let Some(offset) = self.offset {
            out.push_str(&format!(" at byte {offset}"));
        }
        out.push_str(": ");
        out.push_str(&self.why);
        out
    }
}

/// The scan of one file.
///
/// It serializes as one object: `path` (as text), `verdict` ([`Report::status`]: `error`
/// when the file could not be scanned and nothing worse was found), `format`, `pickles`,
/// `findings`, `errors` (each its `kind`, `message`, `member`, `offset` and `hint`) and
/// `data_globals`.
#[derive(Debug)]
#[non_exhaustive]
pub struct Report {
    /// The file.
    pub path: PathBuf,
    /// What the file is (`torch-zip`, `pickle`, `safetensors`, `npy`...), when known.
    pub format: Option<String>,
    /// The worst verdict of the findings (`Safe` when there are none).
    pub verdict: Verdict,
    /// Every reason, worst first, then in file order.
    pub findings: Vec<Finding>,
    /// What could not be read. A file with errors and no worse finding is not known
    /// to be safe ([`Report::is_error`]).
    pub errors: Vec<Error>,
    /// How many pickles were read.
    pub pickles: usize,
    /// The data globals seen (allowlisted), `module.name`, sorted.
    pub data_globals: Vec<String>,
}

impl Report {
    pub(crate) fn new(path: &Path) -> Report {
        Report {
            path: path.to_path_buf(),
            format: None,
            verdict: Verdict::Safe,
            findings: Vec::new(),
            errors: Vec::new(),
            pickles: 0,
            data_globals: Vec::new(),
        }
    }

    /// Whether the scan failed with nothing worse than safe found: the file is then not
    /// known to be safe.
    pub fn is_error(&self) -> bool {
        self.verdict == Verdict::Safe && !self.errors.is_empty()
    }

    /// `safe`, `unsafe`, `dangerous`, or `error` when [`Report::is_error`].
    pub fn status(&self) -> &'static str {
        if self.is_error() {
            "error"
        } else {
            self.verdict.as_str()
        }
    }

    /// The report on a path that could not be scanned at all (a file that cannot be read,
    /// a folder that cannot be listed): its one error, and the path the error names.
    pub(crate) fn unreadable(error: Error) -> Report {
        let mut report = Report::new(error.location().path.as_deref().unwrap_or(Path::new("")));
        report.errors.push(error);
        report
    }
}

impl Serialize for Report {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Report", 7)?;
        s.serialize_field("path", &self.path.display().to_string())?;
        s.serialize_field("verdict", self.status())?;
        s.serialize_field("format", &self.format)?;
        s.serialize_field("pickles", &self.pickles)?;
        s.serialize_field("findings", &self.findings)?;
        let errors: Vec<ErrorEntry<'_>> = self.errors.iter().map(ErrorEntry).collect();
        s.serialize_field("errors", &errors)?;
        s.serialize_field("data_globals", &self.data_globals)?;
        s.end()
    }
}

/// A problem reading a file, as a [`Report`] serializes it: where in the file, not which
/// file (the report says that).
struct ErrorEntry<'e>(&'e Error);

impl Serialize for ErrorEntry<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let error = self.0;
        let mut s = serializer.serialize_struct("Error", 5)?;
        s.serialize_field("kind", error.kind().as_str())?;
        s.serialize_field("message", error.message())?;
        s.serialize_field("member", &error.location().member)?;
        s.serialize_field("offset", &error.location().offset)?;
        s.serialize_field("hint", &error.hint())?;
        s.end()
    }
}

/// The scan of several files and folders ([`scan_paths`]): a report per file, and how many
/// files got each verdict.
///
/// It serializes as `{"files": [...], "summary": {...}}`:
///
/// ```
/// use ckpt::scan::{Scan, ScanOptions, scan_bytes};
///
/// // pickle.dumps(os.system) under protocol 2, and a pickle of `None`.
/// let options = ScanOptions::default();
/// let scan = Scan::new(vec![
///     scan_bytes(b"\x80\x02cposix\nsystem\nq\x00.", "payload.pkl", &options),
///     scan_bytes(b"\x80\x02N.", "none.pkl", &options),
/// ]);
/// assert_eq!((scan.summary.safe, scan.summary.dangerous), (1, 1));
/// let json = serde_json::to_value(&scan).expect("a scan is JSON");
/// assert_eq!(json["files"][0]["verdict"], "dangerous");
/// assert_eq!(json["files"][0]["findings"][0]["global"], "posix.system");
/// assert_eq!(json["summary"]["unsafe"], 0);
/// ```
#[derive(Debug, Serialize)]
#[non_exhaustive]
pub struct Scan {
    /// The report on each file, in the order [`collect_files`] lists them; a path that
    /// could not be read or listed has a report of its own, with its error.
    pub files: Vec<Report>,
    /// How many files got each verdict.
    pub summary: Summary,
}

impl Scan {
    /// The scan made of these reports, with their summary.
    pub fn new(files: Vec<Report>) -> Scan {
        Scan {
            summary: Summary::of(&files),
            files,
        }
    }
}

/// How many files a [`Scan`] judged, by [`Report::status`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Summary {
    /// Files scanned.
    pub files: usize,
    /// Files found safe.
    pub safe: usize,
    /// Files found unsafe (serialized as `unsafe`).
    #[serde(rename = "unsafe")]
    pub unsafe_: usize,
    /// Files found dangerous.
    pub dangerous: usize,
    /// Files that could not be scanned, with nothing worse found ([`Report::is_error`]).
    pub errors: usize,
}

impl Summary {
    /// The counts over `reports`.
    pub fn of(reports: &[Report]) -> Summary {
        let mut summary = Summary {
            files: reports.len(),
            ..Summary::default()
        };
        for report in reports {
            if report.is_error() {
                summary.errors += 1;
                continue;
            }
            match report.verdict {
                Verdict::Safe => summary.safe += 1,
                Verdict::Unsafe => summary.unsafe_ += 1,
                Verdict::Dangerous => summary.dangerous += 1,
            }
        }
        summary
    }
}

/// Scans every file under `paths` ([`collect_files`]), on all cores, each as [`scan_file`]
/// does. Never fails: what cannot be read is in the reports.
pub fn scan_paths(paths: &[PathBuf], options: &ScanOptions) -> Scan {
    let files = collect_files(paths);
    let reports = files
        .into_par_iter()
        .map(|file| match file {
            Ok(path) => scan_file(&path, options),
            Err(error) => Report::unreadable(error),
        })
        .collect();
    Scan::new(reports)
}

/// What a scan accepts as data besides the built-in allowlist.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ScanOptions {
    /// Globals the user vouches for: `module.name`, or a whole `module` (and its
    /// submodules). They turn `unsafe` into `safe`, never hide a dangerous global.
    pub allow: Vec<String>,
    /// The limits pickles are read within (the pickle VM's) and compressed members are
    /// inflated within (`inflated-len`); see [`crate::limits`].
    pub limits: crate::Limits,
}

impl ScanOptions {
    /// Options that read files within `limits`.
    #[must_use]
    pub fn with_limits(mut self, limits: crate::Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Options that also accept these globals as data.
    #[must_use]
    pub fn with_allow(mut self, allow: impl IntoIterator<Item = String>) -> Self {
        self.allow.extend(allow);
        self
    }
}

/// The first finding that makes the bytes of one file `dangerous`, as `ckpt scan` judges
/// them within `limits`: every reader refuses such a file, so that no command reads what the
/// scanner calls dangerous.
pub(crate) fn first_dangerous(
    input: crate::input::Input<'_>,
    limits: &crate::Limits,
) -> Option<Finding> {
    let options = ScanOptions::default().with_limits(limits.clone());
    let mut c = Collector::new(&options);
    judge::scan_input(&mut c, input, "", "", 0);
    c.findings
        .into_iter()
        .find(|f| f.verdict == Verdict::Dangerous)
}

/// The error of a reader refusing a file the scanner calls dangerous.
pub(crate) fn refusal(finding: &Finding) -> Error {
    let message = match (&finding.global, finding.usage) {
        (Some(global), usage) => {
            let verb = match usage {
                Some(Usage::Called) => "calls",
                Some(Usage::Instantiated) => "instantiates",
                Some(Usage::Mutated) => "rewrites",
                Some(Usage::Referenced) | None => "imports",
            };
            format!(
                "the pickle {verb} `{global}` ({}): loading this file in Python runs code, and \
                 ckpt reads nothing of a file its scanner calls dangerous",
                finding.why
            )
        }
        (None, _) => format!(
            "{}: the scanner calls this file dangerous, so ckpt reads nothing of it",
            finding.why
        ),
    };
    let mut error = Error::new(crate::ErrorKind::Dangerous, message).with_hint(
        "nothing of it was loaded; scanning the file lists every finding, with where and why",
    );
    if let Some(member) = &finding.member {
        error = error.with_member(member.clone());
    }
    if let Some(offset) = finding.offset {
        error = error.at_offset(offset);
    }
    error
}

/// What the scan of a file accumulates.
#[derive(Debug)]
pub(crate) struct Collector<'o> {
    pub(crate) options: &'o ScanOptions,
    pub(crate) findings: Vec<Finding>,
    pub(crate) errors: Vec<Error>,
    pub(crate) pickles: usize,
    pub(crate) data_globals: BTreeSet<String>,
    /// Bytes the scan of this file may still inflate (held or read streaming), so that
    /// many compressed members cannot each take the `inflated-len` limit: four times it.
    pub(crate) inflation_left: u64,
}

impl<'o> Collector<'o> {
    pub(crate) fn new(options: &'o ScanOptions) -> Self {
        Collector {
            options,
            findings: Vec::new(),
            errors: Vec::new(),
            pickles: 0,
            data_globals: BTreeSet::new(),
            inflation_left: options.limits.inflated_len.saturating_mul(4),
        }
    }

    /// Adds a finding, merging it into an identical one of the same member.
    pub(crate) fn add(&mut self, finding: Finding) {
        if let Some(same) = self.findings.iter_mut().find(|f| {
            f.verdict == finding.verdict
                && f.category == finding.category
                && f.global == finding.global
                && f.usage == finding.usage
                && f.member == finding.member
                && f.why == finding.why
        }) {
            same.count += finding.count;
            return;
        }
        self.findings.push(finding);
    }

    /// A container finding.
    pub(crate) fn container(
        &mut self,
        verdict: Verdict,
        member: Option<&str>,
        offset: Option<u64>,
        why: impl Into<String>,
    ) {
        self.add(Finding {
            verdict,
            category: Category::Container,
            global: None,
            usage: None,
            member: member.map(str::to_owned),
            offset,
            count: 1,
            why: why.into(),
        });
    }

    pub(crate) fn into_report(self, report: &mut Report) {
        let mut findings = self.findings;
        // Worst first; stable, so file order within a verdict.
        findings.sort_by_key(|f| std::cmp::Reverse(f.verdict));
        report.verdict = findings
            .iter()
            .map(|f| f.verdict)
            .max()
            .unwrap_or(Verdict::Safe);
        report.findings = findings;
        report.errors.extend(self.errors);
        report.pickles = self.pickles;
        report.data_globals = self.data_globals.into_iter().collect();
    }
}
