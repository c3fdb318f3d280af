//! `ckpt verify`: every structural problem of checkpoints, and manifests of their tensors.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use ckpt::Access;
use ckpt::output::AtomicOutput;
use ckpt::verify::{Manifest, ManifestUse};

use crate::args::VerifyArgs;
use crate::exit::{Flag, Hinted, Outcome};
use crate::output;
use crate::term::Progress;

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
    // Folders that are not one checkpoint are walked for those they hold, as scan walks.
    let (paths, spool) = super::with_stdin(&args.files)?;
    let progress = Progress::new("hashing");
    let manifest = manifest.as_ref().map(|(path, m)| (path.as_path(), m));
    let mut written = None;
    let mut report =
        ckpt::verify::verify_each(&paths, manifest, limits, &progress, |file, row| {
            // --hash: the manifest of a checkpoint without errors.
            let Some(target) = &args.hash else {
                return Ok::<(), anyhow::Error>(());
            };
            let sound_enough = row.status != "error" && row.errors == 0;
            let tensors = if sound_enough {
                let count = write_manifest(file, target, args.force, limits)?;
                row.tensors_hashed = Some(count);
                count
            } else {
                0
            };
            written = Some(ManifestUse {
                path: target.display().to_string(),
                action: if sound_enough {
                    "written"
                } else {
                    "not-written"
                },
                tensors,
            });
            Ok(())
        })?;
    if written.is_some() {
        report.manifest = written;
    }
    drop(progress);
    for row in &mut report.files {
        row.path = super::shown(&row.path, spool.as_ref());
    }
    let summary = &report.summary;
    // As in scan and stats: what was found outranks what could not be read.
    let outcome = if summary.with_problems > 0 {
        Outcome::Found
    } else if summary.unreadable > 0 {
        Outcome::Failed
    } else {
        Outcome::Success
    };
    if args.json {
        output::json(&report)?;
    } else {
        output::verify::render(&report)?;
    }
    Ok(outcome)
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use ckpt::verify::{FileReport, Verification};

    /// A report with a problem in a hostile name, a sound file and an unreadable one.
    pub(crate) fn sample() -> Verification {
        Verification {
            files: vec![
                FileReport {
                    path: "evil\u{1b}[31m.safetensors".to_owned(),
                    status: "problems",
                    format: Some("safetensors"),
                    files: 1,
                    errors: 1,
                    warnings: 0,
                    problems: vec![ckpt::verify::ProblemReport {
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
                FileReport {
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
                FileReport::unreadable(
                    Path::new("gone.pt"),
                    &ckpt::Error::malformed("it is gone").with_hint("look elsewhere"),
                ),
            ],
            manifest: Some(ManifestUse {
                path: "m.json".to_owned(),
                action: "checked",
                tensors: 3,
            }),
            summary: ckpt::verify::Summary {
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
