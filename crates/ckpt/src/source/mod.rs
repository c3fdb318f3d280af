//! The edge of the library: opening files.
//!
//! Everything else in ckpt works on byte slices; [`Source`] is where a path becomes bytes,
//! through a read-only memory map, so that tensor data is only read from disk when it is
//! used, and listing a checkpoint's tensors costs the size of its header, not of its data.
//!
//! A checkpoint stored in several files (a Hugging Face sharded checkpoint, a
//! `torch.distributed.checkpoint` folder) is one [`Source`] too: each of its files is mapped
//! once, and [`Source::checkpoint`] presents their union.

mod folder;
mod mmap;
pub(crate) mod tree;

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::{Advice, Mmap};

use crate::error::{Error, Result};
use crate::format::{self, Format};
pub(crate) use crate::input::Input;
use crate::limits::Limits;
use crate::model::Checkpoint;
use crate::output::MappedInput;
use folder::Folder;
use folder::parent as parent_dir;
pub(crate) use folder::{FolderKind, Member, check_name, folder_kind, read_small};

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

/// Where a storage's bytes lie as they are in a file of a [`Source`] (see
/// [`Source::locate`]).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Stored<'s> {
    /// The file's path.
    pub path: &'s Path,
    /// The file, as the source opened it.
    pub file: &'s File,
    /// The offset of the storage's first byte in the file.
    pub offset: u64,
}

/// A checkpoint opened for reading, memory-mapped: one file, or the files of a sharded
/// checkpoint or a `torch.distributed.checkpoint` folder.
///
/// Only the pages that are used are read from disk. The files must not be truncated by
/// another program while they are open: reading a page that no longer exists kills the
/// process with SIGBUS (the caveat of every memory-mapped reader).
#[derive(Debug)]
pub struct Source {
    path: PathBuf,
    file: Option<File>,
    map: Option<Mmap>,
    folder: Option<Box<Folder>>,
    limits: Limits,
    /// What opening it chose that a person should know (see [`Source::notes`]).
    notes: Vec<String>,
    /// Records of the folder the file was found in (`config.json`), added to the
    /// checkpoint's.
    records: std::collections::BTreeMap<String, String>,
    /// Whether the bytes are those of the file at `path` (not a stream spooled to a
    /// temporary file).
    at_path: bool,
}

impl Source {
    /// Opens and maps the checkpoint at `path`.
    ///
    /// `path` is a checkpoint file; or a Hugging Face index (`model.safetensors.index.json`,
    /// `pytorch_model.bin.index.json`) or a folder holding one, whose shards are then read
    /// as one checkpoint; or a `torch.distributed.checkpoint` folder (or its `.metadata`).
    pub fn open(path: impl AsRef<Path>) -> Result<Source> {
        Source::open_with(path, &Limits::default())
    }

    /// [`Source::open`] within `limits` (see [`crate::limits`]), which also hold for
    /// reading the checkpoint later ([`Source::checkpoint`]).
    pub fn open_with(path: impl AsRef<Path>, limits: &Limits) -> Result<Source> {
        let path = path.as_ref();
        let kind = folder::folder_kind_with(path, limits)?;
        if let Some(FolderKind::Model { weights, notes }) = kind {
            let mut source = Source::open_file(&weights)?;
            source.limits = limits.clone();
            source.notes = notes;
            source.records = folder::model_config(parent_dir(&weights), limits);
            return Ok(source);
        }
        if let Some(folder) = Folder::open_kind(kind, limits)? {
            return Ok(Source {
                path: path.to_path_buf(),
                file: None,
                map: None,
                folder: Some(Box::new(folder)),
                limits: limits.clone(),
                notes: Vec::new(),
                records: std::collections::BTreeMap::new(),
                at_path: true,
            });
        }
        let mut source = Source::open_file(path)?;
        source.limits = limits.clone();
        Ok(source)
    }

    /// Opens and maps exactly the file at `path`, never as part of a multi-file checkpoint
    /// (an index JSON or a DCP `.metadata` file is then just that file). A path that is
    /// not a regular file (a pipe: `<(curl ...)`, `/dev/stdin`) is read to its end first
    /// (see [`Source::open_reader`]).
    pub fn open_file(path: impl AsRef<Path>) -> Result<Source> {
        let path = path.as_ref();
        let metadata = std::fs::metadata(path).map_err(|e| Error::io("cannot open", path, e))?;
        if metadata.is_dir() {
            return Err(Error::invalid("this is a folder, not a checkpoint file").with_path(path));
        }
        let mut file = File::open(path).map_err(|e| Error::io("cannot open", path, e))?;
        if !metadata.is_file() {
            return Source::open_reader(&mut file, path, &Limits::default());
        }
        let mut source = Source::from_file(file, metadata.len(), path)?;
        source.at_path = true;
        Ok(source)
    }

    /// Reads a checkpoint from a stream (standard input, a pipe) to its end, into an
    /// unnamed temporary file that is mapped as any file is (it disappears when the source
    /// is dropped); `name` is what reports and errors call it (`-` for standard input).
    /// Memory does not grow with the stream; the temporary folder must have room for it.
    /// The checkpoint is read within `limits`.
    pub fn open_reader(
        reader: &mut dyn std::io::Read,
        name: impl AsRef<Path>,
        limits: &Limits,
    ) -> Result<Source> {
        let name = name.as_ref();
        let mut spool = tempfile::tempfile()
            .map_err(|e| Error::io("cannot create a temporary file for", name, e))?;
        let len =
            std::io::copy(reader, &mut spool).map_err(|e| Error::io("cannot read", name, e))?;
        let mut source = Source::from_file(spool, len, name)?;
        source.limits = limits.clone();
        Ok(source)
    }

    /// Maps `file`, `len` bytes long, read as `path`.
    fn from_file(file: File, len: u64, path: &Path) -> Result<Source> {
        // Mapping an empty file fails on some systems; there is nothing to map anyway.
        let map = if len == 0 {
            None
        } else {
            Some(mmap::map(&file).map_err(|e| Error::io("cannot map", path, e))?)
        };
        Ok(Source {
            path: path.to_path_buf(),
            file: Some(file),
            map,
            folder: None,
            limits: Limits::default(),
            notes: Vec::new(),
            records: std::collections::BTreeMap::new(),
            at_path: false,
        })
    }

    /// Tells the kernel how the file will be read (best effort: systems without the hint
    /// read the same bytes, only perhaps more slowly).
    pub fn advise(&self, access: Access) {
        if let Some(folder) = &self.folder {
            folder.advise(access);
        }
        if let Some(map) = &self.map {
            let advice = match access {
                Access::Sparse => Advice::Random,
                Access::Sequential => Advice::Sequential,
            };
            let _ = map.advise(advice);
        }
    }

    /// What opening the path chose that a person should know: the weights file of a model
    /// folder that also holds another one (`model.safetensors` read, `pytorch_model.bin`
    /// left aside).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The path the source was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every file the checkpoint is read from: the file itself, or the index or metadata
    /// file and every shard of a multi-file checkpoint.
    pub fn files(&self) -> Vec<&Path> {
        match &self.folder {
            Some(folder) => folder.files(),
            None => vec![self.path.as_path()],
        }
    }

    /// Where the bytes of `storage` (of a tensor of this source's checkpoint) lie on disk:
    /// the file that holds them (opened: the very file this source read) and the offset of
    /// their first byte in it. `None` when they are not stored there as they are: inflated
    /// from a compressed member, or read from a stream. A caller may map that part of the
    /// file itself (copy-on-write, so that its writes never reach the file) instead of
    /// copying the bytes; mapping [`Stored::file`] rather than opening [`Stored::path`]
    /// again maps the bytes that were read, even if the path has been replaced since.
    pub fn locate(&self, storage: &crate::model::Storage<'_>) -> Option<Stored<'_>> {
        let offset = storage.file_offset()?;
        let source = match (&self.folder, storage.file()) {
            (Some(folder), Some(name)) => folder.source_named(name)?,
            (None, None) if self.at_path => self,
            _ => return None,
        };
        Some(Stored {
            path: &source.path,
            file: source.file.as_ref()?,
            offset,
        })
    }

    /// The total size of the files read, in bytes.
    pub fn len(&self) -> u64 {
        match &self.folder {
            Some(folder) => folder.len(),
            None => self.bytes().len() as u64,
        }
    }

    /// Whether the source holds no bytes at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the checkpoint is stored in several files.
    pub fn is_multi_file(&self) -> bool {
        self.folder.is_some()
    }

    /// The file's bytes; empty for a checkpoint stored in several files.
    pub fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or_default()
    }

    /// The file's bytes as the readers read them: through the map, and small places at
    /// their offsets from the file.
    pub(crate) fn input(&self) -> Input<'_> {
        Input::mapped(self.bytes(), self.file.as_ref())
    }

    /// The file with its map (or all the files of a multi-file checkpoint), for writers
    /// that copy their bytes in the kernel (see [`FileSink`](crate::output::FileSink)).
    pub fn mapped_input(&self) -> Option<MappedInput<'_>> {
        if let Some(folder) = &self.folder {
            return folder.mapped_input();
        }
        match (&self.file, self.map.as_deref()) {
            (Some(file), Some(map)) => {
                Some(MappedInput::new(file, map).releasing(std::slice::from_ref(self)))
            }
            _ => None,
        }
    }

    /// Lets go of the pages read through the maps so far: they leave this process's
    /// resident memory (staying in the page cache), and are read again if used again.
    pub(crate) fn release(&self) {
        if let Some(folder) = &self.folder {
            folder.release();
        }
        if let Some(map) = &self.map {
            mmap::release(map);
        }
    }

    /// The format, detected from the content (see [`format::detect`]).
    pub fn format(&self) -> Result<Format> {
        match &self.folder {
            Some(folder) => Ok(folder.format()),
            None => format::detect(self.bytes()).map_err(|e| e.with_path(&self.path)),
        }
    }

    /// The limits the source was opened with ([`Source::open_with`]).
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// For a `torch.distributed.checkpoint` folder, every problem of its items, and the
    /// archive of each item to verify on its own; `None` for anything else.
    pub(crate) fn dcp_audit(&self) -> Option<crate::dcp::Audit<'_>> {
        self.folder.as_ref().and_then(|folder| folder.dcp_audit())
    }

    /// Reads the checkpoint (within the limits it was opened with); its tensors borrow from
    /// this source.
    pub fn checkpoint(&self) -> Result<Checkpoint<'_>> {
        match &self.folder {
            Some(folder) => folder.checkpoint(),
            None => {
                let checkpoint = crate::read_from(self.bytes(), self.file.as_ref(), &self.limits)
                    .map_err(|e| e.with_path(&self.path))?;
                if self.records.is_empty() {
                    return Ok(checkpoint);
                }
                let mut details = checkpoint.details().clone();
                details.records.extend(self.records.clone());
                Ok(checkpoint.with_details(details))
            }
        }
    }
}

#[cfg(test)]
#[cfg(target_os = "linux")]
mod tests {
    use std::io::Write;

    use super::*;

    /// Resident bytes of the mapping that holds `address` (its `Rss` in /proc/self/smaps):
    /// this mapping's pages alone, whatever other tests do meanwhile.
    fn resident(address: usize) -> u64 {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut inside = false;
        for line in smaps.lines() {
            let first = line.split_whitespace().next().unwrap_or_default();
            if let Some((start, end)) = first.split_once('-')
                && let (Ok(start), Ok(end)) = (
                    usize::from_str_radix(start, 16),
                    usize::from_str_radix(end, 16),
                )
            {
                inside = (start..end).contains(&address);
            } else if inside && first == "Rss:" {
                let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
                return kib * 1024;
            }
        }
        panic!("no mapping holds {address:#x}");
    }

    fn pattern(len: u32) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn released_pages_leave_resident_memory_and_read_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        let data = pattern(8 << 20);
        std::fs::write(&path, &data).unwrap();
        let source = Source::open_file(&path).unwrap();
        let address = source.bytes().as_ptr() as usize;
        // Comparing reads every page through the map.
        assert!(source.bytes() == data.as_slice());
        assert!(resident(address) >= 8 << 20);
        source.release();
        assert!(resident(address) < 1 << 20, "{}", resident(address));
        assert!(source.bytes() == data.as_slice());
    }

    #[test]
    fn a_writer_reading_through_the_map_keeps_little_of_it_resident() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        let data = pattern(64 << 20);
        std::fs::write(&path, &data).unwrap();
        let source = Source::open_file(&path).unwrap();
        let address = source.bytes().as_ptr() as usize;
        let mut out = tempfile::tempfile_in(dir.path()).unwrap();
        {
            let mut sink =
                crate::output::FileSink::new(&out, source.mapped_input()).without_writeback();
            // Bytes read through the map and changed (as a cast does): written, not copied.
            for chunk in source.bytes().chunks(1 << 20) {
                let changed: Vec<u8> = chunk.iter().map(|b| b ^ 0xFF).collect();
                sink.write_all(&changed).unwrap();
            }
            sink.flush().unwrap();
        }
        // At most the last 4 MiB (and the pages mapped with them) are still mapped in.
        assert!(resident(address) <= 8 << 20, "{}", resident(address));
        let mut written = Vec::new();
        std::io::Seek::rewind(&mut out).unwrap();
        std::io::Read::read_to_end(&mut out, &mut written).unwrap();
        assert!(written.iter().zip(&data).all(|(w, d)| *w == d ^ 0xFF));
        assert_eq!(written.len(), data.len());
    }
}
