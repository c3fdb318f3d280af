//! `ckpt verify`: every structural problem of checkpoints, and manifests of their tensors.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use ckpt::verify::{Manifest, Problem, Report, Severity, verify_path_with};
use ckpt::{Access, AtomicOutput};
use serde::Serialize;

use crate::args::VerifyArgs;
use crate::exit::{Flag, Hinted, Outcome};
use crate::output;
use crate::term::Progress;

/// Everything `verify` reports, as printed by `--json`.
#[derive(Debug, Serialize)]
pub(crate) struct VerifyReport {
    pub(crate) files: Vec<VerifyRow>,
    /// The manifest written (--hash) or checked (--manifest).
    pub(crate) manifest: Option<ManifestRow>,
    pub(crate) summary: Summary,
}

/// The verification of one file or folder.
#[derive(Debug, Serialize)]
pub(crate) struct VerifyRow {
    pub(crate) path: String,
    /// `sound`, `problems`, or `error` (it could not be read at all).
    pub(crate) status: &'static str,
    pub(crate) format: Option<&'static str>,
    /// How many files were read (a folder: the index and its shards).
    pub(crate) files: usize,
    pub(crate) errors: usize,
    pub(crate) warnings: usize,
    pub(crate) problems: Vec<ProblemRow>,
    /// Why the file could not be verified at all.
    pub(crate) error: Option<ErrorRow>,
    /// Tensors hashed for the manifest.
    pub(crate) tensors_hashed: Option<usize>,
}

/// One problem.
#[derive(Debug, Serialize)]
pub(crate) struct ProblemRow {
    pub(crate) rule: &'static str,
    pub(crate) severity: &'static str,
    pub(crate) message: String,
    pub(crate) member: Option<String>,
    pub(crate) tensor: Option<String>,
    pub(crate) offset: Option<u64>,
    pub(crate) hint: Option<String>,
}

/// A file that could not be verified.
#[derive(Debug, Serialize)]
pub(crate) struct ErrorRow {
    pub(crate) kind: &'static str,
    pub(crate) message: String,
    pub(crate) hint: Option<String>,
}

/// The manifest of the run.
#[derive(Debug, Serialize)]
pub(crate) struct ManifestRow {
    pub(crate) path: String,
    /// `written`, `not-written` (the file has errors) or `checked`.
    pub(crate) action: &'static str,
    pub(crate) tensors: usize,
}

/// Counts over all files.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Summary {
    pub(crate) files: usize,
    pub(crate) sound: usize,
    pub(crate) with_problems: usize,
    pub(crate) unreadable: usize,
    pub(crate) errors: usize,
    pub(crate) warnings: usize,
}

pub(crate) fn run(args: &VerifyArgs, limits: &ckpt::Limits) -> anyhow::Result<Outcome> {
    if args.hash.is_some() && args.files.len() != 1 {
        return Err(Hinted::new(
            format!(
                "--hash writes the manifest of one checkpoint, but {} were given",
                args.files.len()
            ),
            "run `ckpt verify --hash` once per checkpoint",
        )
        .into());
    }
    let manifest = match &args.manifest {
        Some(path) => {
            let bytes = std::fs::read(path)
                .with_context(|| format!("cannot read the manifest {}", path.display()))?;
            let manifest = Manifest::parse(&bytes).map_err(|e| {
                Flag::error("--manifest", e.with_path(path)).hint(
                    "a manifest is written by `ckpt verify --hash M FILE` (or `ckpt inspect \
                     --json --hash`)",
                )
            })?;
            // Named as the conversion named them (--key, --strip-prefix, --rename...).
            let map = super::name_filter(&args.include, &args.exclude)?;
            let map = super::add_rules(
                map,
                "--strip-prefix",
                &args.strip_prefix,
                ckpt::KeyMap::strip_prefix,
            )?;
            let map = super::add_rules(map, "--rename", &args.rename, ckpt::KeyMap::rename)?;
            let manifest = manifest
                .mapped(args.key.as_deref(), &map)
                .map_err(|e| Flag::error("--manifest", e.with_path(path)))?;
            Some((path, manifest))
        }
        None => None,
    };
    let mut rows = Vec::with_capacity(args.files.len());
    let mut manifest_row = manifest.as_ref().map(|(path, m)| ManifestRow {
        path: path.display().to_string(),
        action: "checked",
        tensors: m.tensors.len(),
    });
    // Folders that are not one checkpoint are walked for those they hold, as scan walks.
    let (paths, spool) = super::with_stdin(&args.files)?;
    for target in ckpt::verify::collect_checkpoints(&paths) {
        let file = match target {
            Ok(file) => file,
            Err(error) => {
                let path = error.location().path.clone().unwrap_or_default();
                rows.push(unreadable(&path, &error));
                continue;
            }
        };
        let file = file.as_path();
        let mut report = match verify_path_with(file, limits) {
            Ok(report) => report,
            Err(error) => {
                rows.push(unreadable(file, &error));
                continue;
            }
        };
        let sound_enough = report.count(Severity::Error) == 0;
        let mut hashed = None;
        if let Some((_, manifest)) = &manifest
            && sound_enough
        {
            let (problems, count) = check_manifest(file, manifest)?;
            report.extend(problems);
            hashed = Some(count);
        }
        if let Some(target) = &args.hash {
            if sound_enough {
                let count = write_manifest(file, target, args.force, limits)?;
                hashed = Some(count);
                manifest_row = Some(ManifestRow {
                    path: target.display().to_string(),
                    action: "written",
                    tensors: count,
                });
            } else {
                manifest_row = Some(ManifestRow {
                    path: target.display().to_string(),
                    action: "not-written",
                    tensors: 0,
                });
            }
        }
        rows.push(row(&report, hashed));
    }
    for row in &mut rows {
        row.path = super::shown(&row.path, spool.as_ref());
    }
    let mut summary = Summary {
        files: rows.len(),
        ..Summary::default()
    };
    for row in &rows {
        match row.status {
            "sound" => summary.sound += 1,
            "problems" => summary.with_problems += 1,
            _ => summary.unreadable += 1,
        }
        summary.errors += row.errors;
        summary.warnings += row.warnings;
    }
    // As in scan and stats: what was found outranks what could not be read.
    let outcome = if summary.with_problems > 0 {
        Outcome::Found
    } else if summary.unreadable > 0 {
        Outcome::Failed
    } else {
        Outcome::Success
    };
    let report = VerifyReport {
        files: rows,
        manifest: manifest_row,
        summary,
    };
    if args.json {
        output::json(&report)?;
    } else {
        output::verify::render(&report)?;
    }
    Ok(outcome)
}

/// The problems of the checkpoint at `file` against `manifest`, and how many tensors were
/// hashed (those with the manifest's dtype and shape).
fn check_manifest(file: &Path, manifest: &Manifest) -> anyhow::Result<(Vec<Problem>, usize)> {
    let progress = Progress::new("hashing");
    let problems =
        ckpt::verify::check_manifest(file, manifest, &progress).map_err(|e| e.with_path(file))?;
    // Every tensor of the manifest is hashed, but those missing or of another dtype or
    // shape; none when the file's tensors could not be read.
    let count = |ids: &[&str]| {
        problems
            .iter()
            .filter(|p| ids.contains(&p.rule().id))
            .count()
    };
    let hashed = if count(&["manifest.read"]) > 0 {
        0
    } else {
        manifest.tensors.len().saturating_sub(count(&[
            "manifest.missing",
            "manifest.dtype",
            "manifest.shape",
        ]))
    };
    Ok((problems, hashed))
}

/// Hashes every tensor of `file` and writes the manifest to `target` atomically; returns
/// how many tensors it lists.
fn write_manifest(
    file: &Path,
    target: &Path,
    force: bool,
    limits: &ckpt::Limits,
) -> anyhow::Result<usize> {
    let source = super::open(file, limits)?;
    source.advise(Access::Sequential);
    let checkpoint = source.checkpoint()?;
    let progress = Progress::new("hashing");
    let manifest = Manifest::of(&checkpoint, &progress).map_err(|e| e.with_path(file))?;
    let inputs = source.files();
    let mut output = AtomicOutput::create(target, force, &inputs)?;
    output
        .file()
        .write_all(manifest.to_json().as_bytes())
        .map_err(|e| ckpt::Error::io("cannot write the manifest", target, e))?;
    output.commit()?;
    Ok(manifest.tensors.len())
}

fn row(report: &Report, hashed: Option<usize>) -> VerifyRow {
    VerifyRow {
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
        problems: report.problems().iter().map(problem_row).collect(),
        error: None,
        tensors_hashed: hashed,
    }
}

fn problem_row(problem: &Problem) -> ProblemRow {
    let location = problem.location();
    ProblemRow {
        rule: problem.rule().id,
        severity: problem.severity().as_str(),
        message: problem.message().to_owned(),
        member: location.member.clone(),
        tensor: location.tensor.clone(),
        offset: location.offset,
        hint: problem.hint_text().map(str::to_owned),
    }
}

fn unreadable(path: &Path, error: &ckpt::Error) -> VerifyRow {
    VerifyRow {
        path: path.display().to_string(),
        status: "error",
        format: None,
        files: 0,
        errors: 0,
        warnings: 0,
        problems: Vec::new(),
        error: Some(ErrorRow {
            kind: error.kind().as_str(),
            message: error.message().to_owned(),
            hint: error.hint().map(str::to_owned),
        }),
        tensors_hashed: None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A report with a problem in a hostile name, a sound file and an unreadable one.
    pub(crate) fn sample() -> VerifyReport {
        VerifyReport {
            files: vec![
                VerifyRow {
                    path: "evil\u{1b}[31m.safetensors".to_owned(),
                    status: "problems",
                    format: Some("safetensors"),
                    files: 1,
                    errors: 1,
                    warnings: 0,
                    problems: vec![ProblemRow {
                        rule: "st.offsets",
                        severity: "error",
                        message: "a hole after tensor `x\u{202e}y`".to_owned(),
                        member: None,
                        tensor: Some("x\u{202e}y".to_owned()),
                        offset: Some(132),
                        hint: Some("fetch it again".to_owned()),
                    }],
                    error: None,
                    tensors_hashed: None,
                },
                VerifyRow {
                    path: "ok.pt".to_owned(),
                    status: "sound",
                    format: Some("torch-zip"),
                    files: 1,
                    errors: 0,
                    warnings: 0,
                    problems: Vec::new(),
                    error: None,
                    tensors_hashed: Some(3),
                },
                unreadable(
                    Path::new("gone.pt"),
                    &ckpt::Error::malformed("it is gone").with_hint("look elsewhere"),
                ),
            ],
            manifest: Some(ManifestRow {
                path: "m.json".to_owned(),
                action: "checked",
                tensors: 3,
            }),
            summary: Summary {
                files: 3,
                sound: 1,
                with_problems: 1,
                unreadable: 1,
                errors: 1,
                warnings: 0,
            },
        }
    }
}
