//! Writing a folder of files (a sharded checkpoint) atomically.

use std::fs::File;
use std::path::{Path, PathBuf};

use tempfile::TempDir;

use super::{same_file, sync_folder};
use crate::error::{Error, ErrorKind, Result};

/// An output folder being written: shards and their index.
///
/// The files go to a hidden temporary folder beside the target. [`AtomicFolder::commit`]
/// syncs them and renames the whole folder into place when the target does not exist (or
/// is an empty folder); when replacing a non-empty folder (only when asked), each file is
/// renamed into it in the order it was created (so an index written last never points at
/// missing shards), then the files a previous conversion left there are removed.
/// Dropping it without committing removes the temporary folder: a failed or interrupted
/// run leaves nothing.
#[derive(Debug)]
pub struct AtomicFolder {
    target: PathBuf,
    inputs: Vec<PathBuf>,
    temp: TempDir,
    /// The temporary folder, open and locked while it is written (see `leftovers`).
    _lock: File,
    files: Vec<String>,
    durable: bool,
}

impl AtomicFolder {
    /// Prepares to write the folder `target`.
    ///
    /// Fails with [`ErrorKind::OutputExists`] if `target` is a non-empty folder and
    /// `overwrite` is false, and with [`ErrorKind::Invalid`] if it is a file.
    pub fn create(target: &Path, overwrite: bool, inputs: &[&Path]) -> Result<AtomicFolder> {
        match std::fs::metadata(target) {
            Ok(meta) if !meta.is_dir() => {
                return Err(Error::invalid(
                    "the output exists and is not a folder; sharded output goes to a folder",
                )
                .with_path(target));
            }
            Ok(_) if !overwrite && !is_empty_folder(target)? => {
                return Err(Error::new(
                    ErrorKind::OutputExists,
                    "the output folder exists and is not empty",
                )
                .with_path(target)
                .with_hint(
                    "allow overwriting to write into it (files of an earlier sharded \
                     conversion are replaced, other files are kept)",
                ));
            }
            _ => {}
        }
        #[cfg(unix)]
        super::leftovers::clear(target);
        // The usual 0777 minus the umask, not tempfile's private 0700.
        let (temp, lock) = super::claimed(
            || {
                let temp = super::beside(target, 0o777, "folder", |builder, folder| {
                    builder.tempdir_in(folder)
                })?;
                let lock = File::open(temp.path())
                    .map_err(|e| Error::io("cannot open the temporary folder", temp.path(), e))?;
                Ok((temp, lock))
            },
            |(_, lock)| lock,
            target,
        )?;
        Ok(AtomicFolder {
            target: target.to_path_buf(),
            inputs: inputs.iter().map(|p| p.to_path_buf()).collect(),
            temp,
            _lock: lock,
            files: Vec::new(),
            durable: true,
        })
    }

    /// Whether [`AtomicFolder::commit`] waits for every file to reach the disk (`fsync`)
    /// before moving them into place (the default); see
    /// [`AtomicOutput::durable`](super::AtomicOutput::durable).
    #[must_use]
    pub fn durable(mut self, durable: bool) -> Self {
        self.durable = durable;
        self
    }

    /// Creates the file `name` (a plain file name) in the folder, to be written now.
    pub fn create_file(&mut self, name: &str) -> Result<File> {
        if name.is_empty() || name.contains(['/', '\\']) || name == "." || name == ".." {
            return Err(Error::invalid(format!("`{name}` is not a plain file name")));
        }
        let final_path = self.target.join(name);
        if self
            .inputs
            .iter()
            .any(|input| same_file(input, &final_path))
        {
            return Err(Error::invalid(
                "this output file is one of the inputs; ckpt never overwrites its input",
            )
            .with_path(&final_path)
            .with_hint("write to another folder"));
        }
        let path = self.temp.path().join(name);
        let file = File::create(&path).map_err(|e| Error::io("cannot create", &final_path, e))?;
        self.files.push(name.to_owned());
        Ok(file)
    }

    /// Syncs every file and moves them into place. `stale` says which files already in a
    /// replaced folder belong to an earlier conversion and are removed (unless just written).
    pub fn commit(self, stale: impl Fn(&str) -> bool) -> Result<()> {
        if self.durable {
            for name in &self.files {
                let path = self.temp.path().join(name);
                File::open(&path)
                    .and_then(|file| file.sync_all())
                    .map_err(|e| Error::io("failed to write", &self.target.join(name), e))?;
            }
            sync_folder_itself(self.temp.path());
        }
        let target = self.target.clone();
        if !target.exists() || is_empty_folder(&target)? {
            // One rename: the folder appears complete (an empty target folder is replaced).
            let temp_path = self.temp.path().to_path_buf();
            match std::fs::rename(&temp_path, &target) {
                Ok(()) => {
                    let _ = self.temp.keep();
                    sync_folder(&target);
                    return Ok(());
                }
                // Some systems cannot rename over an empty folder: move file by file.
                Err(_) if target.exists() => {}
                Err(e) => {
                    return Err(Error::io(
                        "cannot move the finished output into place",
                        &target,
                        e,
                    ));
                }
            }
        }
        for name in &self.files {
            let to = target.join(name);
            std::fs::rename(self.temp.path().join(name), &to)
                .map_err(|e| Error::io("cannot move the finished output into place", &to, e))?;
        }
        let entries = std::fs::read_dir(&target)
            .map_err(|e| Error::io("cannot list the output folder", &target, e))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if stale(&name) && !self.files.contains(&name) {
                let path = entry.path();
                std::fs::remove_file(&path)
                    .map_err(|e| Error::io("cannot remove the earlier shard", &path, e))?;
            }
        }
        sync_folder_itself(&target);
        Ok(())
    }
}

fn is_empty_folder(path: &Path) -> Result<bool> {
    let mut entries =
        std::fs::read_dir(path).map_err(|e| Error::io("cannot list the output folder", path, e))?;
    Ok(entries.next().is_none())
}

/// Makes a folder's entries durable. Best effort.
fn sync_folder_itself(folder: &Path) {
    if let Ok(dir) = File::open(folder) {
        let _ = dir.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_new_folder_appears_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out");
        let mut folder = AtomicFolder::create(&target, false, &[]).unwrap();
        folder.create_file("a").unwrap().write_all(b"1").unwrap();
        folder.create_file("b").unwrap().write_all(b"2").unwrap();
        assert!(!target.exists());
        folder.commit(|_| false).unwrap();
        assert_eq!(listing(&target), ["a", "b"]);
        assert_eq!(listing(dir.path()), ["out"]);

        let mut folder = AtomicFolder::create(&dir.path().join("dropped"), false, &[]).unwrap();
        folder.create_file("a").unwrap().write_all(b"1").unwrap();
        drop(folder);
        assert_eq!(listing(dir.path()), ["out"]);
    }

    #[test]
    fn a_non_empty_folder_is_replaced_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("model-00001-of-00003.safetensors"), b"old").unwrap();
        std::fs::write(target.join("config.json"), b"{}").unwrap();
        let error = AtomicFolder::create(&target, false, &[]).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::OutputExists);

        let mut folder = AtomicFolder::create(&target, true, &[]).unwrap();
        folder
            .create_file("model.safetensors")
            .unwrap()
            .write_all(b"new")
            .unwrap();
        folder.commit(|name| name.starts_with("model")).unwrap();
        assert_eq!(listing(&target), ["config.json", "model.safetensors"]);
        assert_eq!(listing(dir.path()), ["out"]);
    }

    /// A temporary folder is locked while it is written, so another run's clearing of
    /// leftovers keeps it; once dropped, nothing is left.
    #[cfg(unix)]
    #[test]
    fn a_folder_being_written_is_not_a_leftover() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out");
        let mut first = AtomicFolder::create(&target, false, &[]).unwrap();
        first.create_file("a").unwrap().write_all(b"1").unwrap();
        super::super::leftovers::clear(&target);
        assert_eq!(listing(dir.path()).len(), 1);
        first.commit(|_| false).unwrap();
        assert_eq!(listing(dir.path()), ["out"]);
    }

    #[test]
    fn an_empty_folder_is_filled() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out");
        std::fs::create_dir(&target).unwrap();
        let mut folder = AtomicFolder::create(&target, false, &[]).unwrap();
        folder.create_file("a").unwrap();
        folder.commit(|_| false).unwrap();
        assert_eq!(listing(&target), ["a"]);
    }

    #[test]
    fn inputs_and_odd_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out");
        std::fs::create_dir(&target).unwrap();
        let input = target.join("model.safetensors");
        std::fs::write(&input, b"x").unwrap();
        let mut folder = AtomicFolder::create(&target, true, &[&input]).unwrap();
        assert_eq!(
            folder.create_file("model.safetensors").unwrap_err().kind(),
            ErrorKind::Invalid
        );
        assert!(folder.create_file("../escape").is_err());
        assert!(folder.create_file("").is_err());

        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        assert_eq!(
            AtomicFolder::create(&file, true, &[]).unwrap_err().kind(),
            ErrorKind::Invalid
        );
    }
}
