//! Checkpoints stored in several files, read as one: Hugging Face sharded checkpoints (an
//! index JSON naming its shards) and `torch.distributed.checkpoint` folders (a `.metadata`
//! pickle and `.distcp` data files).
//!
//! Every file is opened and mapped once, when the folder is opened; the tensors of the
//! assembled checkpoint borrow the maps, so memory use does not grow with the model. The
//! files a folder names are plain file names inside the folder: absolute paths, `..`,
//! separators and symbolic links that lead out of the folder are refused.

mod dcp;
mod hf;
mod hf_dcp;

pub(crate) use dcp::Audit as DcpAudit;

/// The shard files a Hugging Face index names (checked as an index).
pub(crate) fn index_shards(bytes: &[u8]) -> Result<Vec<String>> {
    Ok(hf::Index::parse(bytes)?.shards())
}

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Access, Source};
use crate::error::{Error, Result};
use crate::format::Format;
use crate::limits::{self, Limits};
use crate::model::Checkpoint;

/// The name of a `torch.distributed.checkpoint` metadata file.
const DCP_METADATA: &str = ".metadata";

/// A multi-file checkpoint, opened.
#[derive(Debug)]
pub(super) struct Folder {
    /// The index or metadata file (the first rank's, for a DCP save without collectives).
    main: PathBuf,
    /// The other ranks' metadata files of a DCP save without collectives.
    more_main: Vec<PathBuf>,
    /// The size in bytes of the index or metadata files.
    main_len: u64,
    /// The names of the data files in the folder.
    names: Vec<Arc<str>>,
    /// The data files, each mapped once (in the order of `names`).
    sources: Vec<Source>,
    kind: Kind,
    limits: Limits,
}

/// One data file of a folder.
#[derive(Debug, Clone, Copy)]
struct Member<'f> {
    name: &'f Arc<str>,
    source: &'f Source,
}

#[derive(Debug)]
enum Kind {
    Hf(hf::Index),
    Dcp(dcp::Metadata),
    /// DCP's `HuggingFaceStorageWriter`, one safetensors file per rank (see [`hf_dcp`]).
    HfDcp,
}

impl Folder {
    /// Opens `path` as a multi-file checkpoint when it is one (a folder, an index JSON, a
    /// DCP `.metadata` file); `Ok(None)` for anything else (an ordinary checkpoint file).
    pub(super) fn open(path: &Path, limits: &Limits) -> Result<Option<Folder>> {
        let metadata = std::fs::metadata(path).map_err(|e| Error::io("cannot open", path, e))?;
        if metadata.is_dir() {
            return Folder::open_dir(path, limits).map(Some);
        }
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        match name.as_deref() {
            Some(DCP_METADATA) => Folder::open_dcp(path, parent(path), limits).map(Some),
            Some(n) if rank_of(n).is_some() => {
                Folder::open_dcp_ranks(parent(path), limits).map(Some)
            }
            Some(n) if n.ends_with(".json") && hf::looks_like_index(path, limits.index_len) => {
                Folder::open_hf(path, parent(path), limits).map(Some)
            }
            _ => Ok(None),
        }
    }

    fn open_dir(dir: &Path, limits: &Limits) -> Result<Folder> {
        let metadata = dir.join(DCP_METADATA);
        if metadata.is_file() {
            return Folder::open_dcp(&metadata, dir, limits);
        }
        if dir.join(rank_metadata_name(0)).is_file() {
            return Folder::open_dcp_ranks(dir, limits);
        }
        match find_index(dir) {
            Ok(index) => Folder::open_hf(&index, dir, limits),
            Err(error) => match hf_dcp::files(dir, limits)? {
                Some(names) => Folder::open_hf_dcp(dir, names, limits),
                None => Err(error),
            },
        }
    }

    fn open_hf(index_path: &Path, dir: &Path, limits: &Limits) -> Result<Folder> {
        let bytes = read_small(index_path, limits.index_len)?;
        let index = hf::Index::parse(&bytes).map_err(|e| e.with_path(index_path))?;
        let (names, sources) = open_members(dir, index.shards(), index_path, limits)?;
        Ok(Folder {
            main: index_path.to_path_buf(),
            more_main: Vec::new(),
            main_len: bytes.len() as u64,
            names,
            sources,
            kind: Kind::Hf(index),
            limits: limits.clone(),
        })
    }

    fn open_dcp(metadata_path: &Path, dir: &Path, limits: &Limits) -> Result<Folder> {
        let (len, metadata) = read_dcp_metadata(metadata_path, limits)?;
        let (names, sources) = open_members(dir, metadata.files(), metadata_path, limits)?;
        Ok(Folder {
            main: metadata_path.to_path_buf(),
            more_main: Vec::new(),
            main_len: len,
            names,
            sources,
            kind: Kind::Dcp(metadata),
            limits: limits.clone(),
        })
    }

    /// A folder of DCP's `HuggingFaceStorageWriter`: the safetensors files `names`.
    fn open_hf_dcp(dir: &Path, names: Vec<String>, limits: &Limits) -> Result<Folder> {
        let (names, sources) = open_members(dir, names, dir, limits)?;
        Ok(Folder {
            main: dir.to_path_buf(),
            more_main: Vec::new(),
            main_len: 0,
            names,
            sources,
            kind: Kind::HfDcp,
            limits: limits.clone(),
        })
    }

    /// A DCP save without collectives: every rank's `__<rank>.metadata` in `dir`, read as
    /// one checkpoint (see [`dcp::Metadata::merge`]).
    fn open_dcp_ranks(dir: &Path, limits: &Limits) -> Result<Folder> {
        let paths = rank_metadata(dir, limits)?;
        let mut main_len = 0u64;
        let mut parts = Vec::with_capacity(paths.len());
        for path in &paths {
            let (len, metadata) = read_dcp_metadata(path, limits)?;
            main_len = main_len.saturating_add(len);
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            parts.push((name, metadata));
        }
        let mut paths = paths.into_iter();
        let main = paths
            .next()
            .ok_or_else(|| Error::malformed("no rank's metadata").with_path(dir))?;
        let metadata = dcp::Metadata::merge(parts).map_err(|e| e.with_path(&main))?;
        let (names, sources) = open_members(dir, metadata.files(), &main, limits)?;
        Ok(Folder {
            main,
            more_main: paths.collect(),
            main_len,
            names,
            sources,
            kind: Kind::Dcp(metadata),
            limits: limits.clone(),
        })
    }

    pub(super) fn advise(&self, access: Access) {
        for source in &self.sources {
            source.advise(access);
        }
    }

    pub(super) fn release(&self) {
        for source in &self.sources {
            source.release();
        }
    }

    /// The index or metadata files, then every data file.
    pub(super) fn files(&self) -> Vec<&Path> {
        if let Kind::HfDcp = self.kind {
            return self.sources.iter().map(Source::path).collect();
        }
        let mut files = vec![self.main.as_path()];
        files.extend(self.more_main.iter().map(PathBuf::as_path));
        files.extend(self.sources.iter().map(Source::path));
        files
    }

    /// The total size of the files.
    pub(super) fn len(&self) -> u64 {
        self.sources
            .iter()
            .map(Source::len)
            .fold(self.main_len, u64::saturating_add)
    }

    pub(super) fn format(&self) -> Format {
        match &self.kind {
            Kind::Dcp(_) | Kind::HfDcp => Format::DistributedCheckpoint,
            Kind::Hf(_) => self
                .sources
                .first()
                .and_then(|s| s.format().ok())
                .unwrap_or(Format::Safetensors),
        }
    }

    /// The data files with their names.
    fn members(&self) -> Vec<Member<'_>> {
        self.names
            .iter()
            .zip(&self.sources)
            .map(|(name, source)| Member { name, source })
            .collect()
    }

    pub(super) fn checkpoint(&self) -> Result<Checkpoint<'_>> {
        let members = self.members();
        match &self.kind {
            Kind::Hf(index) => hf::checkpoint(index, &self.main, &members, &self.limits),
            Kind::Dcp(metadata) => dcp::checkpoint(metadata, &self.main, &members, &self.limits),
            Kind::HfDcp => hf_dcp::checkpoint(&self.main, &members, &self.limits),
        }
    }

    /// For a DCP folder, every problem item by item (see [`dcp::audit`]).
    pub(super) fn dcp_audit(&self) -> Option<dcp::Audit<'_>> {
        let Kind::Dcp(metadata) = &self.kind else {
            return None;
        };
        Some(dcp::audit(metadata, &self.main, &self.members()))
    }

    /// Every data file with its map, for kernel copies of their bytes.
    pub(super) fn mapped_input(&self) -> Option<crate::output::MappedInput<'_>> {
        let first = self.sources.iter().find_map(Source::mapped_input)?;
        Some(first.with_more(&self.sources))
    }
}

/// What a folder holds, as a multi-file checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FolderKind {
    /// A Hugging Face sharded checkpoint: the path of its index.
    Hf(PathBuf),
    /// A `torch.distributed.checkpoint` folder: the path of its `.metadata` (or of its first
    /// file, when it has none).
    Dcp(PathBuf),
}

/// Which multi-file checkpoint `path` is (a folder, an index JSON, a DCP `.metadata`), as
/// [`Source::open`] would read it; `Ok(None)` for an ordinary file.
pub(crate) fn folder_kind(path: &Path) -> Result<Option<FolderKind>> {
    let metadata = std::fs::metadata(path).map_err(|e| Error::io("cannot open", path, e))?;
    if metadata.is_dir() {
        for name in [DCP_METADATA.to_owned(), rank_metadata_name(0)] {
            let dcp = path.join(name);
            if dcp.is_file() {
                return Ok(Some(FolderKind::Dcp(dcp)));
            }
        }
        return match find_index(path) {
            Ok(index) => Ok(Some(FolderKind::Hf(index))),
            Err(error) => match hf_dcp::files(path, &Limits::default())? {
                Some(names) => Ok(names.first().map(|n| FolderKind::Dcp(path.join(n)))),
                None => Err(error),
            },
        };
    }
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    Ok(match name.as_deref() {
        Some(DCP_METADATA) => Some(FolderKind::Dcp(path.to_path_buf())),
        Some(n) if rank_of(n).is_some() => Some(FolderKind::Dcp(path.to_path_buf())),
        Some(n)
            if n.ends_with(".json") && hf::looks_like_index(path, Limits::default().index_len) =>
        {
            Some(FolderKind::Hf(path.to_path_buf()))
        }
        _ => None,
    })
}

/// Reads and parses one DCP metadata file, refusing one over the `index-len` limit; its
/// length and what it says.
fn read_dcp_metadata(path: &Path, limits: &Limits) -> Result<(u64, dcp::Metadata)> {
    let source = Source::open_file(path)?;
    if source.len() > limits.index_len {
        return Err(limits::exceeded(
            "index-len",
            limits.index_len,
            format_args!("the metadata file is {} bytes long", source.len()),
        )
        .with_path(path));
    }
    let metadata = dcp::Metadata::parse(source.bytes(), limits).map_err(|e| e.with_path(path))?;
    Ok((source.len(), metadata))
}

/// The names of the files in `dir` that `keep` accepts (in no particular order), at most
/// the `files` limit of them; `what` names them in the error.
fn list_names(
    dir: &Path,
    limits: &Limits,
    what: &str,
    keep: impl Fn(&str) -> bool,
) -> Result<Vec<String>> {
    let mut names = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("cannot list", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("cannot list", dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if keep(&name) {
            names.push(name);
            if names.len() > limits.files {
                return Err(limits::exceeded(
                    "files",
                    limits.files as u64,
                    format_args!("the folder holds more {what}"),
                )
                .with_path(dir));
            }
        }
    }
    Ok(names)
}

/// The metadata file rank `rank` writes in a DCP save without collectives.
fn rank_metadata_name(rank: usize) -> String {
    format!("__{rank}{DCP_METADATA}")
}

/// The rank of a `__<rank>.metadata` file name.
fn rank_of(name: &str) -> Option<usize> {
    let digits = name.strip_prefix("__")?.strip_suffix(DCP_METADATA)?;
    let leading_zero = digits.len() > 1 && digits.starts_with('0');
    if digits.is_empty() || leading_zero || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Every rank's metadata file in `dir`, in rank order: `__0.metadata` to `__<n-1>.metadata`,
/// with none missing (a missing rank's tensors would be missing or have holes).
fn rank_metadata(dir: &Path, limits: &Limits) -> Result<Vec<PathBuf>> {
    let names = list_names(dir, limits, "rank metadata files", |n| rank_of(n).is_some())?;
    let mut ranks: Vec<usize> = names.iter().filter_map(|n| rank_of(n)).collect();
    ranks.sort_unstable();
    for (expected, &rank) in ranks.iter().enumerate() {
        if rank != expected {
            return Err(Error::malformed(format!(
                "`{}` is missing: a save without collectives writes one metadata file per rank, \
                 and without it that rank's parts of the checkpoint are unknown",
                rank_metadata_name(expected)
            ))
            .with_path(dir)
            .with_hint("copy every `__<rank>.metadata` file of the checkpoint"));
        }
    }
    Ok(ranks
        .into_iter()
        .map(|r| dir.join(rank_metadata_name(r)))
        .collect())
}

/// The index of the sharded checkpoint in `dir`: transformers' preferred names first.
fn find_index(dir: &Path) -> Result<PathBuf> {
    let mut indexes = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("cannot list", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("cannot list", dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".index.json") || name.contains(".index.") && name.ends_with(".json") {
            indexes.push(name);
        }
    }
    indexes.sort();
    // As transformers: the safetensors index first, then the PyTorch one.
    let preferred = [
        "model.safetensors.index.json",
        "pytorch_model.bin.index.json",
    ];
    let chosen = preferred
        .iter()
        .find(|p| indexes.iter().any(|i| i == *p))
        .map(|p| (*p).to_owned());
    let chosen = match (chosen, indexes.as_slice()) {
        (Some(name), _) => name,
        (None, [only]) => only.clone(),
        (None, []) => {
            return Err(Error::unsupported(
                "this folder holds neither a Hugging Face index (`*.index.json`) nor a \
                     torch.distributed.checkpoint `.metadata` file",
            )
            .with_path(dir)
            .with_hint("pass a checkpoint file, or the folder of a sharded checkpoint"));
        }
        (None, several) => {
            return Err(Error::invalid(format!(
                "this folder holds several indexes ({}); which checkpoint is meant?",
                several.join(", ")
            ))
            .with_path(dir)
            .with_hint("pass the index file itself"));
        }
    };
    Ok(dir.join(chosen))
}

/// The folder a file is in (`.` for a bare name).
fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Reads a small file whole, refusing large ones before reading.
pub(crate) fn read_small(path: &Path, max_len: u64) -> Result<Vec<u8>> {
    let len = std::fs::metadata(path)
        .map_err(|e| Error::io("cannot open", path, e))?
        .len();
    if len > max_len {
        return Err(limits::exceeded(
            "index-len",
            max_len,
            format_args!("the index is {len} bytes long"),
        )
        .with_path(path));
    }
    std::fs::read(path).map_err(|e| Error::io("cannot read", path, e))
}

/// Checks that `name`, read from `main`, is a plain file name: not empty, not `.` or `..`,
/// without a separator or NUL.
pub(crate) fn check_name(name: &str, main: &Path) -> Result<()> {
    let bad = name.is_empty()
        || name == "."
        || name == ".."
        || name.contains(['/', '\\', '\0'])
        || Path::new(name).is_absolute();
    if bad {
        return Err(Error::malformed(format!(
            "it names the file `{}`, which is not a plain file name in its folder; ckpt reads \
             only files next to it",
            name.escape_debug()
        ))
        .with_path(main)
        .with_hint("the index or metadata was edited or crafted; fetch the checkpoint again"));
    }
    Ok(())
}

/// Opens every file in `names` (each once, in the given order) from the folder `dir`.
fn open_members(
    dir: &Path,
    names: Vec<String>,
    main: &Path,
    limits: &Limits,
) -> Result<(Vec<Arc<str>>, Vec<Source>)> {
    if names.len() > limits.files {
        return Err(limits::exceeded(
            "files",
            limits.files as u64,
            format_args!("it names {} files", names.len()),
        )
        .with_path(main));
    }
    let real_dir = std::fs::canonicalize(dir).map_err(|e| Error::io("cannot open", dir, e))?;
    let mut opened: Vec<Arc<str>> = Vec::with_capacity(names.len());
    let mut sources = Vec::with_capacity(names.len());
    let mut seen = std::collections::HashSet::new();
    for name in names {
        check_name(&name, main)?;
        if !seen.insert(name.clone()) {
            continue;
        }
        let path = dir.join(&name);
        let real = std::fs::canonicalize(&path).map_err(|e| {
            Error::from_io("cannot open a file it names", e)
                .with_path(main)
                .with_member(name.clone())
                .with_hint("a file of the checkpoint is missing; fetch all of its files")
        })?;
        if real.parent() != Some(real_dir.as_path()) {
            return Err(Error::malformed(format!(
                "`{name}` is a link to `{}`, outside the checkpoint's folder; ckpt reads only \
                 files inside it",
                real.display()
            ))
            .with_path(main)
            .with_member(name));
        }
        let mut source = Source::open_file(&path)?;
        source.limits = limits.clone();
        sources.push(source);
        opened.push(Arc::from(name.as_str()));
    }
    Ok((opened, sources))
}
