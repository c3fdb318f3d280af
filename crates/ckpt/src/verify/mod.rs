//! Strict structural validation: every problem of a checkpoint, not just the first.
//!
//! The readers stop at the first thing they cannot accept; [`verify_path`] and
//! [`verify_bytes`] keep going and return a [`Report`] that lists every [`Problem`] found,
//! each with a stable [`Rule`] id, a [`Severity`], a [`Location`] (file, member, tensor,
//! byte offset), what is wrong and, when there is one, what to do. The checks run over the
//! parsed structures and the raw bytes, reusing the readers' parsers:
//!
//! - `safetensors.rs`: the spec's rules, as the reference reader enforces them, plus
//!   duplicate keys and the `format` metadata transformers insists on;
//! - `torch.rs`: the zip container (local headers against the central directory, data
//!   descriptors, CRC-32 of every member, bounds, overlaps), torch's records (`version`,
//!   `byteorder`, `data.pkl`), every storage the pickle names against its record, every
//!   tensor view against its storage; the legacy stream (every storage present, its
//!   declared size, trailing bytes); tar archives and plain pickles through their readers;
//! - `folder.rs`: Hugging Face shard indexes (missing shards, tensors the map puts in the
//!   wrong shard or leaves out, `metadata.total_size`) with every shard verified as a file,
//!   and `torch.distributed.checkpoint` folders item by item, every chunk's archive verified
//!   as a torch zip;
//! - `manifest.rs`: a [`Manifest`] of every tensor's name, dtype, shape and SHA-256, written
//!   once and checked later against the same tensors in any format.
//!
//! Every rule is listed in [`RULES`] and documented in `docs/verify.md`.

mod collect;
mod folder;
mod manifest;
mod report;
mod safetensors;
mod torch;

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::{Error, ErrorKind, Location, Result};
use crate::format::{self, Format};
use crate::limits::Limits;
use crate::source::{Access, Source};

pub use collect::collect_checkpoints;
pub use manifest::{MANIFEST_VERSION, Manifest, ManifestEntry, check_manifest};
pub use report::{
    ErrorReport, FileReport, ManifestUse, ProblemReport, Summary, Verification, verify_each,
    verify_file, verify_paths,
};

/// How bad a [`Problem`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The file loads, but something in it is off: bytes nobody reads, a record torch
    /// ignores, a total that does not add up.
    Warning,
    /// The file is broken: its reference loader refuses it, or loads other bytes than were
    /// written (a CRC mismatch torch does not check, a truncated tensor).
    Error,
}

impl Severity {
    /// `"warning"` or `"error"`, as used in JSON reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rule that [`verify_path`] checks: a stable id (`st.offsets`), its severity, and what
/// it requires.
#[derive(Debug, PartialEq, Eq)]
pub struct Rule {
    /// The stable id, `<family>.<rule>`, as reported and documented.
    pub id: &'static str,
    /// How bad breaking it is.
    pub severity: Severity,
    /// What the rule requires, in one line.
    pub summary: &'static str,
}

macro_rules! rules {
    ($( $(#[$doc:meta])* $konst:ident = $id:literal, $severity:ident, $summary:literal; )*) => {
        $( $(#[$doc])* pub(crate) const $konst: Rule = Rule {
            id: $id,
            severity: Severity::$severity,
            summary: $summary,
        }; )*

        /// Every rule, in the order of `docs/verify.md`.
        pub const RULES: &[&Rule] = &[$(&$konst),*];
    };
}

rules! {
    SCAN_DANGEROUS = "scan.dangerous", Error,
        "nothing in the file is what the scanner calls dangerous (code execution, processes, files, the network, nested loaders, or bytes that some readers see and others do not)";
    ST_HEADER_LENGTH = "st.header-length", Error,
        "the 8-byte header length is present, at most 100,000,000, and within the file";
    ST_HEADER_UTF8 = "st.header-utf8", Error, "the header is UTF-8";
    ST_HEADER_JSON = "st.header-json", Error,
        "the header is one JSON object; `__metadata__` maps strings to strings; each entry has dtype, shape and data_offsets of the right types";
    ST_DUPLICATE_KEY = "st.duplicate-key", Error,
        "no key appears twice in the header or in `__metadata__` (the spec forbids it; readers disagree on which copy wins)";
    ST_DTYPE = "st.dtype", Error, "every dtype is one of the 22 safetensors dtype names";
    ST_SIZE = "st.size", Error,
        "every tensor's data_offsets span exactly shape × dtype bytes, a whole number of bytes, without overflow";
    ST_OFFSETS = "st.offsets", Error,
        "data_offsets are [begin, end] with begin <= end, and the tensors cover the data buffer from 0 without hole or overlap";
    ST_TRUNCATED = "st.truncated", Error, "the data the header describes is all in the file";
    ST_TRAILING = "st.trailing", Error,
        "no bytes follow the last tensor (the reference reader refuses them)";
    ST_FORMAT = "st.format-metadata", Warning,
        "`__metadata__.format`, when present, is pt, tf, flax or mlx (transformers refuses other values)";
    ZIP_DIRECTORY = "zip.directory", Error, "the zip central directory can be read";
    ZIP_DUPLICATE = "zip.duplicate", Error, "no two members share a name";
    ZIP_LAYOUT = "zip.layout", Error,
        "every member is inside one top-level folder, as torch requires";
    ZIP_BOUNDS = "zip.bounds", Error, "every member's data lies inside the file";
    ZIP_OVERLAP = "zip.overlap", Error, "no two members share bytes";
    ZIP_LOCAL_HEADER = "zip.local-header", Error,
        "every member's local header exists and agrees with the central directory (name, method, sizes, CRC)";
    ZIP_ENCRYPTED = "zip.encrypted", Error,
        "no member is flagged encrypted (Python's zipfile refuses such a member while torch ignores the flag and loads it)";
    ZIP_HIDDEN = "zip.hidden", Error,
        "every local header is listed in the central directory (streaming readers see the others, torch and scanners do not)";
    ZIP_UNACCOUNTED = "zip.unaccounted", Warning,
        "every byte belongs to a member, a data descriptor or the central directory (no bytes before, between or after them)";
    ZIP_DESCRIPTOR = "zip.data-descriptor", Warning,
        "a data descriptor, when the local header defers to one, agrees with the central directory";
    ZIP_COMPRESSION = "zip.compression", Error,
        "members are stored or deflated (torch's reader knows no other method); tensor records are stored (under mmap=True torch reads a deflated record as garbage: a warning)";
    ZIP_CRC = "zip.crc", Error,
        "every member's CRC-32 matches its bytes (torch.load does not check: it would load the damaged bytes)";
    TORCH_VERSION = "torch.version", Error,
        "a `version` (or `.data/version`) record holds a number torch reads (1 to 10)";
    TORCH_BYTEORDER = "torch.byteorder", Error, "the `byteorder` record, when present, is `little` or `big`";
    TORCH_PICKLE = "torch.pickle", Error,
        "`data.pkl` is present and is one whole pickle (bytes after its STOP are a warning)";
    TORCH_STORAGE_REF = "torch.storage-ref", Error,
        "every persistent id is a well-formed storage reference of a known storage type";
    TORCH_STORAGE_MISSING = "torch.storage-missing", Error,
        "every storage the pickle names has its `data/<key>` record";
    TORCH_STORAGE_SIZE = "torch.storage-size", Error,
        "every storage record holds exactly the bytes the pickle declares (torch.load checks this)";
    TORCH_STORAGE_UNUSED = "torch.storage-unused", Warning,
        "every `data/<key>` record is a storage the pickle names";
    TORCH_VIEW_BOUNDS = "torch.view-bounds", Error,
        "every tensor's storage offset, shape and strides stay inside its storage";
    TORCH_READ = "torch.read", Error,
        "the file reads as a checkpoint once its structure is sound (refused globals are a warning: the scanner judges them)";
    LEGACY_HEADER = "legacy.header", Error,
        "a legacy stream starts with torch's magic number, protocol version 1001 and sys_info";
    LEGACY_PICKLE = "legacy.pickle", Error,
        "the object pickle and the storage key list are whole pickles; the list holds text keys";
    LEGACY_STORAGE_MISSING = "legacy.storage-missing", Error,
        "every storage the pickle names is in the key list, and every listed storage's bytes are in the file";
    LEGACY_STORAGE_UNUSED = "legacy.storage-unused", Error,
        "every storage of the stream is named by the pickle (torch.load fails otherwise)";
    LEGACY_STORAGE_SIZE = "legacy.storage-size", Error,
        "every storage's element count equals the one the pickle declares";
    LEGACY_TRAILING = "legacy.trailing", Warning, "no bytes follow the last storage";
    TAR_READ = "tar.read", Error, "a tar checkpoint reads whole (sys_info, pickle, storages, tensors)";
    PICKLE_READ = "pickle.read", Error, "a plain pickle reads whole";
    HF_INDEX = "hf.index", Error,
        "the index is JSON with a `weight_map` of tensor names to plain file names, each tensor once";
    HF_SHARD = "hf.shard", Error,
        "every shard the index names exists, inside the index's folder, and is a checkpoint";
    HF_TENSOR_MISSING = "hf.tensor-missing", Error,
        "every tensor of the weight_map is in the shard it names";
    HF_TENSOR_UNLISTED = "hf.tensor-unlisted", Warning,
        "every tensor of a shard is in the weight_map";
    HF_TENSOR_DUPLICATE = "hf.tensor-duplicate", Error, "no tensor is in two shards";
    HF_TOTAL_SIZE = "hf.total-size", Warning,
        "`metadata.total_size`, when present, is the bytes of the tensors (shared storages counted once)";
    DCP_READ = "dcp.read", Error,
        "a torch.distributed.checkpoint folder reads: `.metadata` by allowlist, every chunk present, in bounds, of its size and tiling its tensor exactly (each chunk's archive is also verified as a torch zip)";
    MANIFEST_READ = "manifest.read", Error,
        "the file's tensors can be read and hashed to be checked against the manifest";
    MANIFEST_MISSING = "manifest.missing", Error, "every tensor of the manifest is in the file";
    MANIFEST_EXTRA = "manifest.extra", Error, "every tensor of the file is in the manifest";
    MANIFEST_DTYPE = "manifest.dtype", Error, "every tensor has the manifest's dtype";
    MANIFEST_SHAPE = "manifest.shape", Error, "every tensor has the manifest's shape";
    MANIFEST_SHA256 = "manifest.sha256", Error,
        "every tensor's elements hash to the manifest's SHA-256";
}

/// The rule with this id.
pub fn rule(id: &str) -> Option<&'static Rule> {
    RULES.iter().copied().find(|r| r.id == id)
}

/// One thing wrong with a checkpoint.
#[derive(Debug, Clone)]
pub struct Problem {
    rule: &'static Rule,
    severity: Severity,
    message: String,
    location: Location,
    hint: Option<String>,
}

impl Problem {
    /// A problem breaking `rule`, with its severity.
    pub(crate) fn new(rule: &'static Rule, message: impl Into<String>) -> Self {
        Problem {
            rule,
            severity: rule.severity,
            message: message.into(),
            location: Location::default(),
            hint: None,
        }
    }

    /// A problem breaking `rule`, from a reader's error (its message, location and hint).
    pub(crate) fn from_error(rule: &'static Rule, error: &Error) -> Self {
        Problem {
            rule,
            severity: rule.severity,
            message: error.message().to_owned(),
            location: error.location().clone(),
            hint: error.hint().map(str::to_owned),
        }
    }

    /// Lowers the severity to a warning (a rule whose milder cases only warn).
    #[must_use]
    pub(crate) fn warning(mut self) -> Self {
        self.severity = Severity::Warning;
        self
    }

    #[must_use]
    pub(crate) fn member(mut self, member: impl Into<String>) -> Self {
        self.location.member.get_or_insert_with(|| member.into());
        self
    }

    #[must_use]
    pub(crate) fn tensor(mut self, tensor: impl Into<String>) -> Self {
        self.location.tensor.get_or_insert_with(|| tensor.into());
        self
    }

    #[must_use]
    pub(crate) fn offset(mut self, offset: u64) -> Self {
        self.location.offset.get_or_insert(offset);
        self
    }

    #[must_use]
    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Puts the problem inside `outer` (a shard of a folder): the member becomes
    /// `outer:member`.
    #[must_use]
    pub(crate) fn inside(mut self, outer: &str) -> Self {
        self.location.member = Some(match self.location.member.take() {
            Some(inner) => format!("{outer}:{inner}"),
            None => outer.to_owned(),
        });
        self
    }

    /// The rule broken.
    pub fn rule(&self) -> &'static Rule {
        self.rule
    }

    /// How bad it is (the rule's severity, or a warning for the rule's milder cases).
    pub fn severity(&self) -> Severity {
        self.severity
    }

    /// What is wrong, without the location.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Where: the member (zip record, shard file), tensor and byte offset, when known.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// What to do about it, when there is something to say.
    pub fn hint_text(&self) -> Option<&str> {
        self.hint.as_deref()
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{}] ", self.severity, self.rule.id)?;
        let location = self.location.to_string();
        if location.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{location}: {}", self.message)
        }
    }
}

/// The problems of one checkpoint (a file, or a sharded or DCP folder).
#[derive(Debug, Clone)]
pub struct Report {
    path: PathBuf,
    format: Format,
    files: usize,
    problems: Vec<Problem>,
}

impl Report {
    /// The path verified.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its format (for a folder, the folder's kind: safetensors or torch shards, DCP).
    pub fn format(&self) -> Format {
        self.format
    }

    /// How many files were checked (1, or the index and every shard found).
    pub fn files(&self) -> usize {
        self.files
    }

    /// Every problem found, in the order of the file.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }

    /// Whether no problem at all was found.
    pub fn is_sound(&self) -> bool {
        self.problems.is_empty()
    }

    /// How many problems have this severity.
    pub fn count(&self, severity: Severity) -> usize {
        self.problems
            .iter()
            .filter(|p| p.severity == severity)
            .count()
    }

    /// Adds problems found later (checking a manifest).
    pub fn extend(&mut self, problems: impl IntoIterator<Item = Problem>) {
        self.problems.extend(problems);
    }
}

/// Verifies the checkpoint held in `bytes`.
///
/// Fails only when the bytes are not a checkpoint at all (see [`format::detect`]) or are a
/// format that lives in a folder; everything else wrong with them is a [`Problem`] of the
/// report. The report's path is empty.
pub fn verify_bytes(bytes: &[u8]) -> Result<Report> {
    verify_bytes_with(bytes, &Limits::default())
}

/// [`verify_bytes`] within `limits` (see [`crate::limits`]): what is over a limit is a
/// problem of the report.
pub fn verify_bytes_with(bytes: &[u8], limits: &Limits) -> Result<Report> {
    let format = match format::detect(bytes) {
        Ok(format) => format,
        // Not a checkpoint ckpt verifies, but what the scanner calls dangerous: say that.
        Err(error) => {
            return Err(
                match crate::scan::first_dangerous(crate::input::Input::new(bytes), limits) {
                    Some(finding) => crate::scan::refusal(&finding),
                    None => error,
                },
            );
        }
    };
    let problems = problems_of(bytes, format, limits)?;
    Ok(Report {
        path: PathBuf::new(),
        format,
        files: 1,
        problems,
    })
}

fn problems_of(bytes: &[u8], format: Format, limits: &Limits) -> Result<Vec<Problem>> {
    let mut out = Vec::new();
    // What every reader refuses, whatever else is wrong.
    if let Some(finding) = crate::scan::first_dangerous(crate::input::Input::new(bytes), limits) {
        let error = crate::scan::refusal(&finding);
        out.push(Problem::from_error(&SCAN_DANGEROUS, &error));
    }
    match format {
        Format::Safetensors => safetensors::check(bytes, &mut out),
        Format::TorchZip | Format::TorchScript => torch::check_zip(bytes, limits, &mut out),
        Format::TorchLegacy => torch::check_legacy(bytes, limits, &mut out),
        Format::TorchTar => {
            let read = crate::torch::read_tar_with;
            torch::check_read(bytes, &TAR_READ, read, limits, &mut out);
        }
        Format::Pickle => {
            let read = crate::torch::read_pickle_with;
            torch::check_read(bytes, &PICKLE_READ, read, limits, &mut out);
        }
        Format::DistributedCheckpoint => {
            return Err(Error::unsupported(
                "a torch.distributed.checkpoint is a folder; verify it with verify_path",
            ));
        }
    }
    Ok(out)
}

/// Verifies the checkpoint at `path`: a file, or a Hugging Face sharded checkpoint (its
/// folder or index) or a `torch.distributed.checkpoint` folder (or its `.metadata`).
///
/// Fails only when `path` cannot be read at all (it does not exist, is not a checkpoint,
/// is a folder without an index...); everything else is a [`Problem`] of the report.
pub fn verify_path(path: impl AsRef<Path>) -> Result<Report> {
    verify_path_with(path, &Limits::default())
}

/// [`verify_path`] within `limits` (see [`crate::limits`]).
pub fn verify_path_with(path: impl AsRef<Path>, limits: &Limits) -> Result<Report> {
    let path = path.as_ref();
    if let Some(report) = folder::check(path, limits)? {
        return Ok(report);
    }
    let source = Source::open_file(path)?;
    // A zip is read whole (every member's CRC); other formats only where their structure is.
    source.advise(if source.bytes().starts_with(b"PK") {
        Access::Sequential
    } else {
        Access::Sparse
    });
    let mut report = verify_bytes_with(source.bytes(), limits).map_err(|e| e.with_path(path))?;
    report.path = path.to_path_buf();
    Ok(report)
}

/// Whether an error means the input cannot be verified at all (rather than a problem of
/// a member of it).
pub(crate) fn is_unreadable(error: &Error) -> bool {
    matches!(error.kind(), ErrorKind::Io | ErrorKind::NotACheckpoint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_ids_are_unique_and_well_formed() {
        let mut ids: Vec<&str> = RULES.iter().map(|r| r.id).collect();
        ids.sort_unstable();
        let before = ids.len();
        ids.dedup();
        assert_eq!(ids.len(), before, "duplicate rule ids");
        for rule in RULES {
            let (family, name) = rule.id.split_once('.').unwrap();
            assert!(
                [
                    "scan", "st", "zip", "torch", "legacy", "tar", "pickle", "hf", "dcp",
                    "manifest"
                ]
                .contains(&family),
                "{}",
                rule.id
            );
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c == '-' || c.is_ascii_digit()),
                "{}",
                rule.id
            );
            assert!(!rule.summary.is_empty());
        }
        assert_eq!(rule("st.offsets"), Some(&ST_OFFSETS));
        assert_eq!(rule("nope"), None);
    }

    #[test]
    fn problems_display_rule_location_and_message() {
        let problem = Problem::new(&ST_OFFSETS, "a hole")
            .tensor("w")
            .offset(8)
            .inside("model-1.safetensors");
        assert_eq!(
            problem.to_string(),
            "error [st.offsets] member `model-1.safetensors`, tensor `w`, byte 8: a hole"
        );
        assert_eq!(problem.clone().warning().severity(), Severity::Warning);
        let nested = Problem::new(&ZIP_CRC, "bad")
            .member("a/data/0")
            .inside("s.bin");
        assert_eq!(nested.location().member.as_deref(), Some("s.bin:a/data/0"));
    }

    #[test]
    fn not_a_checkpoint_is_an_error_not_a_problem() {
        let error = verify_bytes(b"").unwrap_err();
        assert_eq!(error.kind(), ErrorKind::NotACheckpoint);
        assert!(is_unreadable(&error));
    }
}
