//! Writing outputs atomically: all of the new file (or folder), or nothing.

mod folder;
mod sink;

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
/// The bytes go to a hidden temporary file in the target's folder (so that the final
/// rename stays on one file system). [`AtomicOutput::commit`] flushes it to disk and renames
/// it over the target; dropping it without committing (an error, Ctrl-C) deletes the
/// temporary file, so a failed run never leaves a partial output. An existing target is
/// only replaced when asked, and never when it is one of the inputs.
#[derive(Debug)]
pub struct AtomicOutput {
    target: PathBuf,
    overwrite: bool,
    durable: bool,
    temp: NamedTempFile,
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
        let temp = beside(target, 0o666, "file", |builder, folder| {
            builder.tempfile_in(folder)
        })?;
        if let Some(permissions) = permissions {
            temp.as_file()
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
        self.temp.as_file_mut()
    }

    /// Flushes the file to disk, renames it to the target and syncs the folder, so that
    /// the output is complete and durable once this returns (see [`AtomicOutput::durable`]).
    pub fn commit(mut self) -> Result<()> {
        let target = self.target.clone();
        let durable = self.durable;
        let file = self.temp.as_file_mut();
        file.flush()
            .and_then(|()| if durable { file.sync_all() } else { Ok(()) })
            .map_err(|e| Error::io("failed to write", &target, e))?;
        let persisted = if self.overwrite {
            self.temp.persist(&target)
        } else {
            self.temp.persist_noclobber(&target)
        };
        persisted.map_err(|e| {
            if e.error.kind() == io::ErrorKind::AlreadyExists {
                Error::new(
                    ErrorKind::OutputExists,
                    "the output appeared while it was being written",
                )
                .with_path(&target)
            } else {
                Error::io(
                    "cannot move the finished output into place",
                    &target,
                    e.error,
                )
            }
        })?;
        if durable {
            sync_folder(&target);
        }
        Ok(())
    }
}

/// Makes the rename durable. Best effort: some systems cannot open or sync folders.
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
    make(&builder, folder).map_err(|e| {
        Error::io(
            format!("cannot create a temporary {what} in the output's folder"),
            target,
            e,
        )
    })
}

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
        assert_eq!(leftovers(dir.path()).len(), 1);
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

    #[test]
    fn folders_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let error = AtomicOutput::create(dir.path(), true, &[]).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Invalid);
    }
}
