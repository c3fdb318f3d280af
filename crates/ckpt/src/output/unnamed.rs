//! Output files that have no name until they are complete (Linux `O_TMPFILE`).
//!
//! A named temporary file is deleted when ckpt fails or is interrupted, but a process that
//! is killed (`SIGKILL`, the out-of-memory killer, a power cut) cannot clean up, and would
//! leave a hidden `.NAME.XXXXXX.ckpt-partial` behind. An `O_TMPFILE` file lives in the
//! target's folder without a name: if the process dies, the kernel frees it, and nothing
//! is left at all. Once complete it is given its name with `linkat`.
//!
//! Not every file system supports `O_TMPFILE` (and `linkat` needs `/proc`); where either is
//! missing, [`create`] says so and the caller uses a named temporary file instead.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{AtFlags, CWD, Mode, OFlags};

/// An unnamed file in `folder` with the permissions `mode` minus the umask, or `None` when
/// the system cannot make one (or could not name it later).
pub(super) fn create(folder: &Path, mode: u32) -> Option<File> {
    if !Path::new("/proc/self/fd").is_dir() {
        return None;
    }
    let flags = OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC;
    rustix::fs::openat(CWD, folder, flags, Mode::from_raw_mode(mode))
        .ok()
        .map(File::from)
}

/// Gives the unnamed `file` the name `target`. Without `overwrite`, fails with
/// [`io::ErrorKind::AlreadyExists`] if `target` exists; with it, replaces `target`
/// atomically (a link under a temporary name, then a rename over the target).
pub(super) fn link(file: &File, target: &Path, overwrite: bool) -> io::Result<()> {
    if !overwrite {
        return link_as(file, target);
    }
    let temporary = sibling(target);
    link_as(file, &temporary)?;
    std::fs::rename(&temporary, target).inspect_err(|_| {
        let _ = std::fs::remove_file(&temporary);
    })
}

fn link_as(file: &File, path: &Path) -> io::Result<()> {
    let proc_path = format!("/proc/self/fd/{}", file.as_raw_fd());
    rustix::fs::linkat(CWD, proc_path.as_str(), CWD, path, AtFlags::SYMLINK_FOLLOW)
        .map_err(io::Error::from)
}

/// A name beside `target` for the moment between the link and the rename, unique to this
/// process and call (`.NAME.PID-N.ckpt-partial`).
fn sibling(target: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    target.with_file_name(format!(".{name}.{}-{n}.ckpt-partial", std::process::id()))
}
