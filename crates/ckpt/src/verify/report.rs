//! What verifying checkpoints reports ([`Verification`]): the shape `ckpt verify --json`
//! prints and the Python package returns, one [`FileReport`] per checkpoint.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{Manifest, Problem, Report, Severity, check_manifest, collect_checkpoints};
use crate::error::{Error, Result};
use crate::limits::Limits;
use crate::progress::Progress;

/// The verification of every checkpoint under some paths.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    /// One report per checkpoint, in the order of [`collect_checkpoints`].
    pub files: Vec<FileReport>,
    /// The manifest written or checked, if any.
    pub manifest: Option<ManifestUse>,
    /// Counts over all files.
    pub summary: Summary,
}

/// The verification of one file or folder.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    /// The checkpoint's path.
    pub path: String,
    /// `sound`, `problems`, or `error` (it could not be read at all).
    pub status: &'static str,
    /// Its container's format, when it could be read.
    pub format: Option<&'static str>,
    /// How many files were read (a folder: the index and its shards).
    pub files: usize,
    /// How many problems are errors.
    pub errors: usize,
    /// How many problems are warnings.
    pub warnings: usize,
    /// Every problem found.
    pub problems: Vec<ProblemReport>,
    /// Why the file could not be verified at all.
    pub error: Option<ErrorReport>,
    /// Tensors hashed against a manifest (or for one).
    pub tensors_hashed: Option<usize>,
}

/// One problem.
#[derive(Debug, Clone, Serialize)]
pub struct ProblemReport {
    /// The rule's id (`st.offsets`, `zip.crc`...).
    pub rule: &'static str,
    /// `error` or `warning`.
    pub severity: &'static str,
    /// What is wrong.
    pub message: String,
    /// The archive member it is in.
    pub member: Option<String>,
    /// The tensor it concerns.
    pub tensor: Option<String>,
    /// The byte offset in the file.
    pub offset: Option<u64>,
    /// What to do about it.
    pub hint: Option<String>,
}

/// Why a checkpoint could not be verified.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorReport {
    /// The error's kind (`malformed`, `io`...).
    pub kind: &'static str,
    /// What went wrong.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
}

/// The manifest of a run.
#[derive(Debug, Clone, Serialize)]
pub struct ManifestUse {
    /// Its path.
    pub path: String,
    /// `written`, `not-written` (the file has errors) or `checked`.
    pub action: &'static str,
    /// How many tensors it lists.
    pub tensors: usize,
}

/// Counts over all files.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Checkpoints verified.
    pub files: usize,
    /// Of those, with no problem.
    pub sound: usize,
    /// With problems.
    pub with_problems: usize,
    /// That could not be read at all.
    pub unreadable: usize,
    /// Problems that are errors, over all files.
    pub errors: usize,
    /// Problems that are warnings, over all files.
    pub warnings: usize,
}

impl Verification {
    /// The verification made of `files`, with their counts.
    pub fn new(files: Vec<FileReport>, manifest: Option<ManifestUse>) -> Verification {
        let mut summary = Summary {
            files: files.len(),
            ..Summary::default()
        };
        for file in &files {
            match file.status {
                "sound" => summary.sound += 1,
                "problems" => summary.with_problems += 1,
                _ => summary.unreadable += 1,
            }
            summary.errors += file.errors;
            summary.warnings += file.warnings;
        }
        Verification {
            files,
            manifest,
            summary,
        }
    }
}

impl FileReport {
    /// The report of a checkpoint verified, with the count of tensors hashed.
    pub fn of(report: &Report, hashed: Option<usize>) -> FileReport {
        FileReport {
            path: report.path().display().to_string(),
            status: if report.is_sound() {
                "sound"
            } else {
                "problems"
            },
            format: Some(report.format().name()),
            files: report.files(),
            errors: report.count(Severity::Error),
            warnings: report.count(Severity::Warning),
            problems: report.problems().iter().map(ProblemReport::of).collect(),
            error: None,
            tensors_hashed: hashed,
        }
    }

    /// The report of a checkpoint at `path` that could not be read at all.
    pub fn unreadable(path: &Path, error: &Error) -> FileReport {
        FileReport {
            path: path.display().to_string(),
            status: "error",
            format: None,
            files: 0,
            errors: 0,
            warnings: 0,
            problems: Vec::new(),
            error: Some(ErrorReport {
                kind: error.kind().as_str(),
                message: error.message().to_owned(),
                hint: error.hint().map(str::to_owned),
            }),
            tensors_hashed: None,
        }
    }
}

impl ProblemReport {
    /// The report of `problem`.
    pub fn of(problem: &Problem) -> ProblemReport {
        let location = problem.location();
        ProblemReport {
            rule: problem.rule().id,
            severity: problem.severity().as_str(),
            message: problem.message().to_owned(),
            member: location.member.clone(),
            tensor: location.tensor.clone(),
            offset: location.offset,
            hint: problem.hint_text().map(str::to_owned),
        }
    }
}

/// Verifies the checkpoint at `path` (a file or a multi-file folder) and, when it has no
/// error and a `manifest` is given, checks its tensors against it. A checkpoint that
/// cannot be read is a report with status `error`; only cancellation and failures to read
/// the files while hashing are errors.
pub fn verify_file(
    path: &Path,
    manifest: Option<&Manifest>,
    limits: &Limits,
    progress: &dyn Progress,
) -> Result<FileReport> {
    let mut report = match super::verify_path_with(path, limits) {
        Ok(report) => report,
        Err(error) => return Ok(FileReport::unreadable(path, &error)),
    };
    let mut hashed = None;
    if let Some(manifest) = manifest
        && report.count(Severity::Error) == 0
    {
        let problems = check_manifest(path, manifest, progress).map_err(|e| e.with_path(path))?;
        // Every tensor of the manifest is hashed, but those missing or of another dtype or
        // shape; none when the file's tensors could not be read.
        let count = |ids: &[&str]| {
            problems
                .iter()
                .filter(|p| ids.contains(&p.rule().id))
                .count()
        };
        hashed = Some(if count(&["manifest.read"]) > 0 {
            0
        } else {
            manifest.tensors.len().saturating_sub(count(&[
                "manifest.missing",
                "manifest.dtype",
                "manifest.shape",
            ]))
        });
        report.extend(problems);
    }
    Ok(FileReport::of(&report, hashed))
}

/// Verifies every checkpoint under `paths` ([`collect_checkpoints`]: files, checkpoint
/// folders, folders walked), each against `manifest` (named `manifest_path` in the
/// report) when given, as `ckpt verify` does.
pub fn verify_paths(
    paths: &[PathBuf],
    manifest: Option<(&Path, &Manifest)>,
    limits: &Limits,
    progress: &dyn Progress,
) -> Result<Verification> {
    verify_each(
        paths,
        manifest,
        limits,
        progress,
        |_, _| Ok::<(), Error>(()),
    )
}

/// [`verify_paths`], calling `then` with each checkpoint verified and its report (to write
/// its manifest, say) before going on to the next; its error ends the run.
pub fn verify_each<E: From<Error>>(
    paths: &[PathBuf],
    manifest: Option<(&Path, &Manifest)>,
    limits: &Limits,
    progress: &dyn Progress,
    mut then: impl FnMut(&Path, &mut FileReport) -> std::result::Result<(), E>,
) -> std::result::Result<Verification, E> {
    let mut files = Vec::with_capacity(paths.len());
    for target in collect_checkpoints(paths) {
        files.push(match target {
            Ok(file) => {
                let mut report = verify_file(&file, manifest.map(|(_, m)| m), limits, progress)?;
                then(&file, &mut report)?;
                report
            }
            Err(error) => {
                let path = error.location().path.clone().unwrap_or_default();
                FileReport::unreadable(&path, &error)
            }
        });
    }
    let used = manifest.map(|(path, manifest)| ManifestUse {
        path: path.display().to_string(),
        action: "checked",
        tensors: manifest.tensors.len(),
    });
    Ok(Verification::new(files, used))
}
