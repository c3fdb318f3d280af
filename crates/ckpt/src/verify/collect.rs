//! Which checkpoints `verify` checks under the paths it is given: a file as it is; a folder
//! that is one checkpoint (shards with their index, a DCP checkpoint) as one; any other
//! folder, a model folder included, walked for the checkpoints it holds, as the scanner
//! walks folders.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::source::{FolderKind, folder_kind};

/// Deeper folders than this are not walked (a symbolic link loop, or absurd nesting).
const MAX_DEPTH: usize = 64;

/// The extensions of single-file checkpoints `verify` reads (the parts of multi-file
/// checkpoints, `.distcp` files and shard indexes, are checked with their folder).
const EXTENSIONS: &[&str] = &[
    "pt",
    "pth",
    "bin",
    "ckpt",
    "pkl",
    "safetensors",
    "pt2",
    "tar",
];

/// The checkpoints under `paths`, each once, in a deterministic order: files as given,
/// checkpoint folders as one, other folders walked recursively (symbolic links followed,
/// loops skipped). A path that cannot be read, or a folder with no checkpoint in it, is an
/// error in its place: never a silent pass.
pub fn collect_checkpoints(paths: &[PathBuf]) -> Vec<Result<PathBuf>> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for path in paths {
        match std::fs::metadata(path) {
            Err(e) => out.push(Err(Error::io("cannot open", path, e))),
            Ok(m) if !m.is_dir() => push(path, &mut seen, &mut out),
            Ok(_) if is_checkpoint_folder(path) => push(path, &mut seen, &mut out),
            Ok(_) => {
                let before = out.len();
                walk(path, 0, &mut seen, &mut out);
                if out.len() == before {
                    out.push(Err(Error::unsupported(
                        "this folder holds no checkpoint: no file with a checkpoint's \
                         extension (.safetensors, .pt, .pth, .bin, .ckpt...) and no model, \
                         sharded or DCP folder, at any depth",
                    )
                    .with_path(path)
                    .with_hint(
                        "pass a checkpoint file, or the folder that holds checkpoints",
                    )));
                }
            }
        }
    }
    out
}

/// Whether `path` is a folder read as one checkpoint: shards with their index, or a DCP
/// checkpoint. A model folder without an index is walked instead: besides its weights
/// file it may hold more (a Trainer's optimizer, scheduler and RNG states).
fn is_checkpoint_folder(path: &Path) -> bool {
    matches!(folder_kind(path), Ok(Some(kind)) if !matches!(kind, FolderKind::Model { .. }))
}

fn push(path: &Path, seen: &mut HashSet<PathBuf>, out: &mut Vec<Result<PathBuf>>) {
    let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    if seen.insert(key) {
        out.push(Ok(path.to_path_buf()));
    }
}

fn walk(dir: &Path, depth: usize, seen: &mut HashSet<PathBuf>, out: &mut Vec<Result<PathBuf>>) {
    if depth > MAX_DEPTH {
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            out.push(Err(Error::io("cannot list", dir, e)));
            return;
        }
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        match std::fs::metadata(&path) {
            Ok(m) if m.is_dir() => {
                let canonical = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
                if seen.contains(&canonical) {
                    continue; // a symbolic link loop
                }
                if is_checkpoint_folder(&path) {
                    push(&path, seen, out);
                } else {
                    seen.insert(canonical);
                    walk(&path, depth + 1, seen, out);
                }
            }
            Ok(_) => {
                let checkpoint = path
                    .extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
                if checkpoint {
                    push(&path, seen, out);
                }
            }
            Err(e) => out.push(Err(Error::io("cannot open", &path, e))),
        }
    }
}
