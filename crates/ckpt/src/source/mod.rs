//! The edge of the library: opening files.
//!
//! Everything else in ckpt works on byte slices; [`Source`] is where a path becomes bytes,
//! through a read-only memory map, so that tensor data is only read from disk when it is
//! used, and listing a checkpoint's tensors costs the size of its header, not of its data.

mod mmap;

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::{Advice, Mmap};

use crate::error::{Error, Result};
use crate::format::{self, Format};
use crate::model::Checkpoint;
use crate::output::MappedInput;

/// How a [`Source`] will be read: a hint for the kernel's read-ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Access {
    /// A few small places (headers, pickles): no read-ahead around them, so listing a
    /// 500 MB checkpoint reads kilobytes.
    Sparse,
    /// All of the data, front to back (converting, hashing): read ahead generously.
    Sequential,
}

/// A checkpoint file opened for reading, memory-mapped.
///
/// Only the pages that are used are read from disk. The file must not be truncated by
/// another program while it is open: reading a page that no longer exists kills the
/// process with SIGBUS (the caveat of every memory-mapped reader).
#[derive(Debug)]
pub struct Source {
    path: PathBuf,
    file: File,
    map: Option<Mmap>,
}

impl Source {
    /// Opens and maps the file at `path`.
    ///
    /// Folders (sharded checkpoints, `torch.distributed.checkpoint`) are not read yet and
    /// give an [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported) error.
    pub fn open(path: impl AsRef<Path>) -> Result<Source> {
        let path = path.as_ref();
        let metadata = std::fs::metadata(path).map_err(|e| Error::io("cannot open", path, e))?;
        if metadata.is_dir() {
            return Err(Error::unsupported(
                "this is a folder; reading sharded checkpoints and torch.distributed.checkpoint \
                 folders is not supported yet",
            )
            .with_path(path)
            .with_hint("pass a single checkpoint file"));
        }
        let file = File::open(path).map_err(|e| Error::io("cannot open", path, e))?;
        // Mapping an empty file fails on some systems; there is nothing to map anyway.
        let map = if metadata.len() == 0 {
            None
        } else {
            Some(mmap::map(&file).map_err(|e| Error::io("cannot map", path, e))?)
        };
        Ok(Source {
            path: path.to_path_buf(),
            file,
            map,
        })
    }

    /// Tells the kernel how the file will be read (best effort: systems without the hint
    /// read the same bytes, only perhaps more slowly).
    pub fn advise(&self, access: Access) {
        if let Some(map) = &self.map {
            let advice = match access {
                Access::Sparse => Advice::Random,
                Access::Sequential => Advice::Sequential,
            };
            let _ = map.advise(advice);
        }
    }

    /// The path the source was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or_default()
    }

    /// The file with its map, for writers that copy its bytes in the kernel (see
    /// [`FileSink`](crate::FileSink)).
    pub fn mapped_input(&self) -> Option<MappedInput<'_>> {
        self.map
            .as_deref()
            .map(|map| MappedInput::new(&self.file, map))
    }

    /// The file's format, detected from its content (see [`format::detect`]).
    pub fn format(&self) -> Result<Format> {
        format::detect(self.bytes()).map_err(|e| e.with_path(&self.path))
    }

    /// Reads the checkpoint; its tensors borrow from this source.
    pub fn checkpoint(&self) -> Result<Checkpoint<'_>> {
        crate::read(self.bytes()).map_err(|e| e.with_path(&self.path))
    }
}
