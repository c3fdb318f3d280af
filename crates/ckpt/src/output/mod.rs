//! Writing outputs atomically: all of the new file (or folder), or nothing.

mod folder;
#[cfg(unix)]
mod leftovers;
mod sink;
#[cfg(target_os = "linux")]
mod unnamed;

pub use folder::AtomicFolder;
pub(crate) use sink::MIN_COPY_LEN;
pub use sink::{FileSink, MappedInput};

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use crate::error::{Error, ErrorKind, Result};

/// An output file being written.
///
/// The bytes go to a temporary file in the target's folder (so that the final rename
/// stays on one file system): on Linux an unnamed one (`O_TMPFILE`), which the kernel
/// frees if the process dies, even by `SIGKILL`; elsewhere, or where the file system
/// cannot, a hidden `.NAME.XXXXXX.ckpt-partial`. [`AtomicOutput::commit`] flushes it to
/// disk and moves it into place as the target; dropping it without committing (an error,
/// Ctrl-C) deletes the temporary file, so a failed run never leaves a partial output. An
/// existing target is only replaced when asked, and never when it is one of the inputs.
#[derive(Debug)]
pub struct AtomicOutput {
    target: PathBuf,
    overwrite: bool,
    durable: bool,
    temp: Temp,
}

/// Where the bytes of an [`AtomicOutput`] go until it is committed.
#[derive(Debug)]
enum Temp {
    /// A file without a name (Linux `O_TMPFILE`), named by `linkat` on commit.
    #[cfg(target_os = "linux")]
    Unnamed(File),
    /// A hidden temporary file, renamed on commit and deleted on drop.
    Named(NamedTempFile),
}

impl AtomicOutput {
    /// Prepares to write `target`.
    ///
    /// Fails with [`ErrorKind::OutputExists`] if `target` exists and `overwrite` is false,
    /// and with [`ErrorKind::Invalid`] if `target` is a folder or the same file as one of
    /// `inputs` (even with `overwrite`: ckpt never modifies its input).
    pub fn create(target: &Path, overwrite: bool, inputs: &[&Path]) -> Result<AtomicOutput> {
        if inputs.iter().any(|input| same_file(input, target)) {
            return Err(Error::invalid(
                "the output is the input file; ckpt never overwrites its input",
            )
            .with_path(target)
            .with_hint("write to another path, then rename it if you want to replace the input"));
        }
        // A replaced file keeps its permissions, as with `cp`; a new one gets the usual
        // 0666 minus the umask (the kernel applies it), not tempfile's private 0600.
        let permissions = match std::fs::metadata(target) {
            Ok(meta) if meta.is_dir() => {
                return Err(
                    Error::invalid("the output is a folder; give a file name").with_path(target)
                );
            }
            Ok(_) if !overwrite => {
                return Err(
                    Error::new(ErrorKind::OutputExists, "the output already exists")
                        .with_path(target),
                );
            }
            Ok(meta) => Some(meta.permissions()),
            Err(_) => None,
        };
        let temp = temporary_file(target)?;
        if let Some(permissions) = permissions {
            temp.file()
                .set_permissions(permissions)
                .map_err(|e| Error::io("cannot set the permissions of the output", target, e))?;
        }
        Ok(AtomicOutput {
            target: target.to_path_buf(),
            overwrite,
            durable: true,
            temp,
        })
    }

    /// Whether [`AtomicOutput::commit`] waits for the bytes to reach the disk (`fsync`)
    /// before the rename (the default). Without, the output still appears whole to every
    /// process, but a power loss or system crash soon after may leave it empty or partial.
    #[must_use]
    pub fn durable(mut self, durable: bool) -> Self {
        self.durable = durable;
        self
    }

    /// The temporary file to write to.
    pub fn file(&mut self) -> &mut File {
        match &mut self.temp {
            #[cfg(target_os = "linux")]
            Temp::Unnamed(file) => file,
            Temp::Named(temp) => temp.as_file_mut(),
        }
    }

    /// Whether the temporary file has no name, so that even a killed process leaves
    /// nothing behind (Linux, on file systems with `O_TMPFILE`).
    pub fn is_unnamed(&self) -> bool {
        match self.temp {
            #[cfg(target_os = "linux")]
            Temp::Unnamed(_) => true,
            Temp::Named(_) => false,
        }
    }

    /// Flushes the file to disk, renames it to the target and syncs the folder, so that
    /// the output is complete and durable once this returns (see [`AtomicOutput::durable`]).
    pub fn commit(mut self) -> Result<()> {
        let target = self.target.clone();
        let durable = self.durable;
        let file = self.file();
        file.flush()
            .and_then(|()| if durable { file.sync_all() } else { Ok(()) })
            .map_err(|e| Error::io("failed to write", &target, e))?;
        let persisted = match self.temp {
            #[cfg(target_os = "linux")]
            Temp::Unnamed(file) => unnamed::link(&file, &target, self.overwrite),
            Temp::Named(temp) if self.overwrite => {
                temp.persist(&target).map(drop).map_err(|e| e.error)
            }
            Temp::Named(temp) => temp
                .persist_noclobber(&target)
                .map(drop)
                .map_err(|e| e.error),
        };
        persisted.map_err(|error| {
            if error.kind() == io::ErrorKind::AlreadyExists {
                Error::new(
                    ErrorKind::OutputExists,
                    "the output appeared while it was being written",
                )
                .with_path(&target)
            } else {
                Error::io("cannot move the finished output into place", &target, error)
            }
        })?;
        if durable {
            sync_folder(&target);
        }
        Ok(())
    }
}

impl Temp {
    fn file(&self) -> &File {
        match self {
            #[cfg(target_os = "linux")]
            Temp::Unnamed(file) => file,
            Temp::Named(temp) => temp.as_file(),
        }
    }
}

/// A temporary file for `target` in its folder: unnamed where the system allows, else a
/// hidden sibling (see [`AtomicOutput`]), with the usual 0666 minus the umask. Either is
/// locked as being written, and what killed runs left for `target` is cleared first.
fn temporary_file(target: &Path) -> Result<Temp> {
    #[cfg(unix)]
    leftovers::clear(target);
    #[cfg(target_os = "linux")]
    {
        let folder = match target.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        if let Some(file) = unnamed::create(folder, 0o666) {
            // Locked too: its name between link and rename (when replacing) is then safe
            // from another run's clearing.
            #[cfg(unix)]
            if leftovers::claim(&file).is_ok() {
                return Ok(Temp::Unnamed(file));
            }
        }
    }
    claimed(
        || {
            beside(target, 0o666, "file", |builder, folder| {
                builder.tempfile_in(folder)
            })
        },
        |temp| temp.as_file(),
        target,
    )
    .map(Temp::Named)
}

/// Makes a temporary with `make` and locks it (`file` gives the handle to lock), making
/// another in the unlikely case that a concurrent run took the fresh one for a leftover.
fn claimed<T>(
    make: impl Fn() -> Result<T>,
    file: impl Fn(&T) -> &File,
    target: &Path,
) -> Result<T> {
    for _ in 0..8 {
        let temp = make()?;
        #[cfg(unix)]
        if leftovers::claim(file(&temp)).is_err() {
            continue;
        }
        #[cfg(not(unix))]
        let _ = &file;
        return Ok(temp);
    }
    Err(Error::io(
        "cannot lock a temporary output in the output's folder",
        target,
        io::Error::from(io::ErrorKind::WouldBlock),
    ))
}

/// Makes a temporary sibling of `target` with `make` (a file or a folder): in the same
/// folder, so that renaming it into place is atomic, named `.NAME.XXXXXX.ckpt-partial`, with
/// the permissions `mode` minus the umask (not tempfile's private ones).
fn beside<T>(
    target: &Path,
    mode: u32,
    what: &str,
    make: impl FnOnce(&tempfile::Builder<'_, '_>, &Path) -> io::Result<T>,
) -> Result<T> {
    let name = target
        .file_name()
        .ok_or_else(|| Error::invalid("the output path has no file name").with_path(target))?;
    let folder = match target.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let prefix = format!(".{}.", name.to_string_lossy());
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".ckpt-partial");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(mode));
    }
    #[cfg(not(unix))]
    let _ = mode;
    if !folder.is_dir() {
        // Said of the output, not of the temporary file tempfile's error would name.
        return Err(Error::invalid(format!(
            "the output's folder `{}` does not exist",
            folder.display()
        ))
        .with_path(target)
        .with_hint("create the folder first (mkdir -p), or write the output elsewhere"));
    }
    make(&builder, folder).map_err(|e| {
        // tempfile names the temporary file in its message ("at path ..."): the error is
        // about the output's folder.
        let e = io::Error::new(e.kind(), describe_io(&e));
        Error::io(
            format!("cannot create a temporary {what} in the output's folder"),
            target,
            e,
        )
    })
}

/// An I/O error's message without the path a wrapping library may have added to it.
fn describe_io(error: &io::Error) -> String {
    let text = error.to_string();
    match text.split_once(" at path ") {
        Some((message, _)) => message.to_owned(),
        None => text,
    }
}

/// Makes the rename durable. Best effort: some systems cannot open or sync folders.
fn sync_folder(target: &Path) {
    if let Some(folder) = target.parent().filter(|p| !p.as_os_str().is_empty())
        && let Ok(dir) = File::open(folder)
    {
        let _ = dir.sync_all();
    }
}

/// Whether two paths name the same existing file (the same inode on Unix, so hard links
/// and symlinks count).
fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a_meta), Ok(b_meta)) => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::MetadataExt;
                a_meta.dev() == b_meta.dev() && a_meta.ino() == b_meta.ino()
            }
            #[cfg(not(unix))]
            {
                let _ = (a_meta, b_meta);
                matches!(
                    (a.canonicalize(), b.canonicalize()),
                    (Ok(x), Ok(y)) if x == y
                )
            }
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leftovers(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".ckpt-partial"))
            .collect()
    }

    #[test]
    fn commit_writes_and_drop_discards() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.bin");
        let mut output = AtomicOutput::create(&target, false, &[]).unwrap();
        output.file().write_all(b"hello").unwrap();
        assert!(!target.exists());
        let named = usize::from(!output.is_unnamed());
        assert_eq!(leftovers(dir.path()).len(), named);
        output.commit().unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"hello");
        assert!(leftovers(dir.path()).is_empty());

        let mut dropped = AtomicOutput::create(&dir.path().join("never.bin"), false, &[]).unwrap();
        dropped.file().write_all(b"partial").unwrap();
        drop(dropped);
        assert!(!dir.path().join("never.bin").exists());
        assert!(leftovers(dir.path()).is_empty());
    }

    #[test]
    fn existing_outputs_need_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.bin");
        std::fs::write(&target, b"old").unwrap();
        let error = AtomicOutput::create(&target, false, &[]).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::OutputExists);
        let mut output = AtomicOutput::create(&target, true, &[]).unwrap();
        output.file().write_all(b"new").unwrap();
        output.commit().unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
    }

    #[test]
    fn the_input_is_never_the_output() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.bin");
        std::fs::write(&input, b"data").unwrap();
        let link = dir.path().join("link.bin");
        std::fs::hard_link(&input, &link).unwrap();
        for target in [&input, &link] {
            let error = AtomicOutput::create(target, true, &[&input]).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::Invalid);
            assert!(error.message().contains("input"), "{error}");
        }
        let relative = dir.path().join(".").join("in.bin");
        assert!(AtomicOutput::create(&relative, true, &[&input]).is_err());
        assert_eq!(std::fs::read(&input).unwrap(), b"data");
    }

    #[cfg(unix)]
    #[test]
    fn permissions_are_the_usual_ones_or_kept() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let fresh = dir.path().join("fresh.bin");
        AtomicOutput::create(&fresh, false, &[])
            .unwrap()
            .commit()
            .unwrap();
        let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o600, 0o600, "{mode:o}");
        assert_ne!(mode, 0o600, "a private tempfile mode leaked: {mode:o}");

        let kept = dir.path().join("kept.bin");
        std::fs::write(&kept, b"old").unwrap();
        std::fs::set_permissions(&kept, std::fs::Permissions::from_mode(0o640)).unwrap();
        AtomicOutput::create(&kept, true, &[])
            .unwrap()
            .commit()
            .unwrap();
        assert_eq!(
            std::fs::metadata(&kept).unwrap().permissions().mode() & 0o777,
            0o640
        );
    }

    /// On Linux the temporary file has no name (where the file system allows it, as the
    /// ext4, xfs, btrfs and tmpfs that tests run on do): nothing ever appears but the
    /// finished target, which keeps noclobber and overwrite semantics.
    #[cfg(target_os = "linux")]
    #[test]
    fn linux_outputs_are_unnamed_until_committed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.bin");
        let mut output = AtomicOutput::create(&target, false, &[]).unwrap();
        assert!(output.is_unnamed());
        output.file().write_all(b"one").unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        // The target appears meanwhile: without overwrite, it is kept.
        std::fs::write(&target, b"theirs").unwrap();
        let error = output.commit().unwrap_err();
        assert_eq!(error.kind(), ErrorKind::OutputExists);
        assert_eq!(std::fs::read(&target).unwrap(), b"theirs");

        let mut output = AtomicOutput::create(&target, true, &[]).unwrap();
        output.file().write_all(b"two").unwrap();
        output.commit().unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["out.bin"]);
    }

    /// What a killed run left (unlocked) is cleared by the next run for the same target;
    /// a temporary some live run holds (locked), another target's, or a link are kept.
    #[cfg(unix)]
    #[test]
    fn leftovers_of_killed_runs_are_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name);
        std::fs::write(path(".out.bin.dead1.ckpt-partial"), b"x").unwrap();
        std::fs::create_dir(path(".out.bin.dead2.ckpt-partial")).unwrap();
        std::fs::write(path(".out.bin.dead2.ckpt-partial/shard"), b"x").unwrap();
        std::fs::write(path(".out.bin.live.ckpt-partial"), b"x").unwrap();
        let live = File::open(path(".out.bin.live.ckpt-partial")).unwrap();
        leftovers::claim(&live).unwrap();
        std::fs::write(path(".other.bin.dead.ckpt-partial"), b"x").unwrap();
        std::fs::write(path("elsewhere"), b"x").unwrap();
        std::os::unix::fs::symlink(path("elsewhere"), path(".out.bin.link.ckpt-partial")).unwrap();

        let mut output = AtomicOutput::create(&path("out.bin"), false, &[]).unwrap();
        output.file().write_all(b"new").unwrap();
        output.commit().unwrap();
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                ".other.bin.dead.ckpt-partial",
                ".out.bin.link.ckpt-partial",
                ".out.bin.live.ckpt-partial",
                "elsewhere",
                "out.bin"
            ]
        );
        drop(live);
    }

    #[test]
    fn folders_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let error = AtomicOutput::create(dir.path(), true, &[]).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Invalid);
    }
}
