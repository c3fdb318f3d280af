//! Folder trees walked for the files a command reads (`scan` and `verify` of a folder):
//! each file once, in a deterministic order, symbolic links followed and their loops
//! skipped, and every path that cannot be read an error in its place.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The deepest folder nesting walked.
const MAX_DEPTH: usize = 64;
/// The most paths one collection holds.
const MAX_PATHS: usize = 1 << 20;

/// What a walk does with a folder it meets.
pub(crate) enum Folder {
    /// Takes the folder as one path (a checkpoint stored in several files).
    Take,
    /// Walks into it.
    Enter,
}

/// The paths collected so far, each once (by canonical path), with the errors met.
#[derive(Default)]
pub(crate) struct Paths {
    out: Vec<Result<PathBuf>>,
    files: HashSet<PathBuf>,
    folders: HashSet<PathBuf>,
    full: bool,
}

impl Paths {
    /// Adds `path` unless it is already there (under any name).
    pub(crate) fn push(&mut self, path: &Path) {
        let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        if self.files.contains(&key) {
            return;
        }
        if self.out.len() >= MAX_PATHS {
            if !self.full {
                self.full = true;
                self.out.push(Err(Error::limit(format!(
                    "more than {MAX_PATHS} files to read: the rest are not read"
                ))
                .with_path(path)
                .with_hint("pass fewer or smaller folders at a time")));
            }
            return;
        }
        self.files.insert(key);
        self.out.push(Ok(path.to_path_buf()));
    }

    /// Adds an error in its place.
    pub(crate) fn error(&mut self, error: Error) {
        self.out.push(Err(error));
    }

    /// How many paths and errors are collected.
    pub(crate) fn len(&self) -> usize {
        self.out.len()
    }

    /// Walks `dir`: each folder met is taken or entered as `folder` says, each file kept
    /// when `file` says so. Folders are sorted by name, so the order does not depend on
    /// the file system.
    pub(crate) fn walk(
        &mut self,
        dir: &Path,
        folder: &dyn Fn(&Path) -> Folder,
        file: &dyn Fn(&Path) -> bool,
    ) {
        self.walk_at(dir, 0, folder, file);
    }

    fn walk_at(
        &mut self,
        dir: &Path,
        depth: usize,
        folder: &dyn Fn(&Path) -> Folder,
        file: &dyn Fn(&Path) -> bool,
    ) {
        let canonical = match std::fs::canonicalize(dir) {
            Ok(canonical) => canonical,
            Err(e) => return self.error(Error::io("cannot resolve", dir, e)),
        };
        if depth > MAX_DEPTH || !self.folders.insert(canonical) {
            return; // a symbolic link loop, or absurd nesting
        }
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) => return self.error(Error::io("cannot list", dir, e)),
        };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths {
            match std::fs::metadata(&path) {
                Ok(m) if m.is_dir() => match folder(&path) {
                    Folder::Take => self.push(&path),
                    Folder::Enter => self.walk_at(&path, depth + 1, folder, file),
                },
                Ok(_) => {
                    if file(&path) {
                        self.push(&path);
                    }
                }
                // A dangling link, or a file we may not read.
                Err(e) => self.error(Error::io("cannot open", &path, e)),
            }
        }
    }

    /// The paths and errors, in the order met.
    pub(crate) fn into_vec(self) -> Vec<Result<PathBuf>> {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_file_once_in_order_and_loops_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("b/inner")).unwrap();
        std::fs::write(root.join("b/inner/x.pt"), b"").unwrap();
        std::fs::write(root.join("a.pt"), b"").unwrap();
        std::fs::write(root.join("skip.txt"), b"").unwrap();
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(root, root.join("b/loop")).unwrap();
            std::os::unix::fs::symlink(root.join("a.pt"), root.join("c.pt")).unwrap();
        }
        let mut paths = Paths::default();
        paths.walk(root, &|_| Folder::Enter, &|p| {
            p.extension().is_some_and(|e| e == "pt")
        });
        let found: Vec<PathBuf> = paths
            .into_vec()
            .into_iter()
            .map(|p| p.unwrap().strip_prefix(root).unwrap().to_path_buf())
            .collect();
        assert_eq!(
            found,
            [PathBuf::from("a.pt"), PathBuf::from("b/inner/x.pt")]
        );
    }

    #[test]
    fn a_folder_taken_whole_is_one_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("shards")).unwrap();
        std::fs::write(dir.path().join("shards/a.pt"), b"").unwrap();
        let mut paths = Paths::default();
        paths.walk(dir.path(), &|_| Folder::Take, &|_| true);
        let found: Vec<PathBuf> = paths.into_vec().into_iter().map(|p| p.unwrap()).collect();
        assert_eq!(found, [dir.path().join("shards")]);
    }
}
