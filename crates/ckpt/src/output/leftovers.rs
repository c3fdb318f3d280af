//! What a killed run leaves behind, and how the next one clears it.
//!
//! A temporary output that has a name (a shard folder being written, or a file where
//! `O_TMPFILE` is not available) is deleted when ckpt fails or is interrupted, but not
//! when the process is killed outright (`SIGKILL`, the out-of-memory killer). So every
//! such temporary is locked (`flock`) by the process writing it for as long as it lives,
//! and the next run writing the same target removes the `.NAME.*.ckpt-partial` siblings
//! whose lock it can take: their writer is gone (the kernel drops a dead process's locks).
//! A temporary that is still being written is locked, and left alone.

use std::fs::File;
use std::path::Path;

use rustix::fs::FlockOperation;

/// Takes the lock that marks `file` (an open temporary file or folder) as being written.
/// Fails when another process holds it, which happens only if that process took this
/// fresh temporary for a leftover: the caller then makes another.
pub(super) fn claim(file: &File) -> std::io::Result<()> {
    rustix::fs::flock(file, FlockOperation::NonBlockingLockExclusive).map_err(Into::into)
}

/// Removes the temporaries killed runs left for `target` (see the module docs). Best
/// effort: anything that cannot be listed, opened, locked or removed is left.
pub(super) fn clear(target: &Path) {
    let (Some(name), Some(folder)) = (target.file_name(), target.parent()) else {
        return;
    };
    let folder = if folder.as_os_str().is_empty() {
        Path::new(".")
    } else {
        folder
    };
    let prefix = format!(".{}.", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(folder) else {
        return;
    };
    for entry in entries.flatten() {
        let entry_name = entry.file_name().to_string_lossy().into_owned();
        if !(entry_name.starts_with(&prefix) && entry_name.ends_with(".ckpt-partial")) {
            continue;
        }
        let path = entry.path();
        // Never follow a link: only real files and folders ckpt made are removed.
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_symlink() {
            continue;
        }
        let Ok(handle) = File::open(&path) else {
            continue;
        };
        if claim(&handle).is_err() {
            continue;
        }
        let _ = if kind.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
    }
}
