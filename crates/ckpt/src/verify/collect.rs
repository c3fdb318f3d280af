//! Which checkpoints `verify` checks under the paths it is given: a file as it is; a folder
//! that is one checkpoint (shards with their index, a DCP checkpoint) as one; any other
//! folder, a model folder included, walked for the checkpoints it holds, as the scanner
//! walks folders.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::source::tree::{Folder, Paths};
use crate::source::{FolderKind, folder_kind};

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
    let mut out = Paths::default();
    for path in paths {
        match std::fs::metadata(path) {
            Err(e) => out.error(Error::io("cannot open", path, e)),
            Ok(m) if !m.is_dir() => out.push(path),
            Ok(_) if is_checkpoint_folder(path) => out.push(path),
            Ok(_) => {
                let before = out.len();
                out.walk(path, &folder, &is_checkpoint_file);
                if out.len() == before {
                    out.error(
                        Error::unsupported(
                            "this folder holds no checkpoint: no file with a checkpoint's \
                             extension (.safetensors, .pt, .pth, .bin, .ckpt...) and no model, \
                             sharded or DCP folder, at any depth",
                        )
                        .with_path(path)
                        .with_hint("pass a checkpoint file, or the folder that holds checkpoints"),
                    );
                }
            }
        }
    }
    out.into_vec()
}

/// Whether `path` is a folder read as one checkpoint: shards with their index, or a DCP
/// checkpoint. A model folder without an index is walked instead: besides its weights
/// file it may hold more (a Trainer's optimizer, scheduler and RNG states).
fn is_checkpoint_folder(path: &Path) -> bool {
    matches!(folder_kind(path), Ok(Some(kind)) if !matches!(kind, FolderKind::Model { .. }))
}

fn folder(path: &Path) -> Folder {
    if is_checkpoint_folder(path) {
        Folder::Take
    } else {
        Folder::Enter
    }
}

fn is_checkpoint_file(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}
