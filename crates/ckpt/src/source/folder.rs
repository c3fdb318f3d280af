//! Checkpoints stored in several files, opened as one: Hugging Face sharded checkpoints (an
//! index JSON naming its shards) and `torch.distributed.checkpoint` folders (a `.metadata`
//! pickle and `.distcp` data files, or one safetensors file per rank).
//!
//! This is the edge of such checkpoints: which kind of folder a path is (by its names),
//! opening and mapping the index or metadata and every file it names, listing a folder. What
//! the files mean is the format readers' ([`crate::hf`], [`crate::dcp`]): they say which
//! files an index or metadata names, and read the mapped files as one checkpoint.
//!
//! Every file is opened and mapped once, when the folder is opened; the tensors of the
//! assembled checkpoint borrow the maps, so memory use does not grow with the model. The
//! files a folder names are plain file names inside the folder: absolute paths, `..`,
//! separators and symbolic links that lead out of the folder are refused.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Access, Source};
use crate::dcp;
use crate::error::{Error, Result};
use crate::format::Format;
use crate::hf;
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

/// One data file of a folder, as the format readers see it: its name in the folder and its
/// mapped bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Member<'f> {
    name: &'f Arc<str>,
    source: &'f Source,
}

impl<'f> Member<'f> {
    /// The file's name in its folder.
    pub(crate) fn name(&self) -> &'f Arc<str> {
        self.name
    }

    /// The file's bytes.
    pub(crate) fn bytes(&self) -> &'f [u8] {
        self.source.bytes()
    }

    /// The file read as a checkpoint of its own (within the folder's limits).
    pub(crate) fn checkpoint(&self) -> Result<Checkpoint<'f>> {
        self.source.checkpoint()
    }
}

/// Which kind of folder it is, with what its index or metadata says.
#[derive(Debug)]
enum Kind {
    Hf(hf::Index),
    Dcp(dcp::Metadata),
    /// DCP's `HuggingFaceStorageWriter`, one safetensors file per rank (see
    /// [`dcp::hf_storage`]).
    HfStorage,
}

impl Folder {
    /// Opens the multi-file checkpoint of `kind` (`None` for one file).
    pub(super) fn open_kind(kind: Option<FolderKind>, limits: &Limits) -> Result<Option<Folder>> {
        let Some(kind) = kind else {
            return Ok(None);
        };
        match kind {
            FolderKind::Dcp(metadata) => Folder::open_dcp(&metadata, parent(&metadata), limits),
            FolderKind::DcpRanks { dir, .. } => Folder::open_dcp_ranks(&dir, limits),
            FolderKind::Hf(index) => Folder::open_hf(&index, parent(&index), limits),
            FolderKind::HfStorage { dir, names } => Folder::open_hf_storage(&dir, names, limits),
            // One file: the source opens it (see `Source::open_with`).
            FolderKind::Model { .. } => return Ok(None),
        }
        .map(Some)
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
    fn open_hf_storage(dir: &Path, names: Vec<String>, limits: &Limits) -> Result<Folder> {
        let (names, sources) = open_members(dir, names, dir, limits)?;
        Ok(Folder {
            main: dir.to_path_buf(),
            more_main: Vec::new(),
            main_len: 0,
            names,
            sources,
            kind: Kind::HfStorage,
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
        if let Kind::HfStorage = self.kind {
            return self.sources.iter().map(Source::path).collect();
        }
        let mut files = vec![self.main.as_path()];
        files.extend(self.more_main.iter().map(PathBuf::as_path));
        files.extend(self.sources.iter().map(Source::path));
        files
    }

    /// The data file called `name` in the folder.
    pub(super) fn source_named(&self, name: &str) -> Option<&Source> {
        let at = self.names.iter().position(|n| &**n == name)?;
        self.sources.get(at)
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
            Kind::Dcp(_) | Kind::HfStorage => Format::DistributedCheckpoint,
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
            Kind::HfStorage => dcp::hf_storage::checkpoint(&self.main, &members, &self.limits),
        }
    }

    /// For a DCP folder, every problem item by item (see [`dcp::Audit::of`]).
    pub(super) fn dcp_audit(&self) -> Option<dcp::Audit<'_>> {
        let Kind::Dcp(metadata) = &self.kind else {
            return None;
        };
        Some(dcp::Audit::of(metadata, &self.main, &self.members()))
    }

    /// Every data file with its map, for kernel copies of their bytes.
    pub(super) fn mapped_input(&self) -> Option<crate::output::MappedInput<'_>> {
        let first = self.sources.iter().find_map(Source::mapped_input)?;
        Some(first.with_more(&self.sources))
    }
}

/// Which kind of multi-file checkpoint a path is, found by its names (and a look inside
/// an index JSON, or the first file of a folder of safetensors files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FolderKind {
    /// A Hugging Face sharded checkpoint: the path of its index.
    Hf(PathBuf),
    /// A `torch.distributed.checkpoint` folder: the path of its `.metadata`.
    Dcp(PathBuf),
    /// A `torch.distributed.checkpoint` saved without collectives: the folder of every
    /// rank's `__<rank>.metadata`, and the one named (the first rank's, for the folder).
    DcpRanks { dir: PathBuf, named: PathBuf },
    /// A folder of DCP's `HuggingFaceStorageWriter` (see [`dcp::hf_storage`]): the folder,
    /// and its safetensors files, sorted by name (at least one).
    HfStorage { dir: PathBuf, names: Vec<String> },
    /// A Hugging Face model folder without an index: its one weights file, chosen as
    /// transformers chooses (see [`model_weights`]), and what the choice left aside.
    Model {
        weights: PathBuf,
        notes: Vec<String>,
    },
}

/// What a model folder says besides its weights, as records: the other files it holds
/// (`folder also holds`), and what its `config.json` says that a reader of the weights
/// wants to know (`config.json architectures`, `model_type`, `dtype`,
/// `tie_word_embeddings`; none when it is missing, too large or not JSON).
pub(super) fn model_config(
    dir: &Path,
    limits: &Limits,
) -> std::collections::BTreeMap<String, String> {
    let mut records = std::collections::BTreeMap::new();
    let Ok(bytes) = read_small(&dir.join("config.json"), limits.index_len) else {
        records.extend(folder_files(dir, limits));
        return records;
    };
    let Ok(serde_json::Value::Object(config)) = serde_json::from_slice(&bytes) else {
        return records;
    };
    let text = |value: &serde_json::Value| match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(items) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map_or_else(|| item.to_string(), str::to_owned)
            })
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    };
    records.extend(folder_files(dir, limits));
    for (key, record) in [
        ("architectures", "architectures"),
        ("model_type", "model_type"),
        ("torch_dtype", "dtype"),
        ("dtype", "dtype"),
        ("tie_word_embeddings", "tie_word_embeddings"),
    ] {
        if let Some(value) = config.get(key).filter(|v| !v.is_null()) {
            records.insert(format!("config.json {record}"), text(value));
        }
    }
    records
}

/// The other checkpoint files of a model folder (a Trainer's `checkpoint-N/` holds the
/// optimizer, scheduler and RNG states, `training_args.bin`...), as a record that names
/// them; none when there are none or too many to list.
fn folder_files(dir: &Path, limits: &Limits) -> Option<(String, String)> {
    let skip =
        |name: &str| MODEL_FILES.contains(&name) || name == "config.json" || name.starts_with('.');
    let mut names = list_names(dir, limits, "files", |name| !skip(name)).ok()?;
    names.retain(|name| dir.join(name).is_file());
    if names.is_empty() {
        return None;
    }
    names.sort();
    Some(("folder also holds".to_owned(), names.join(", ")))
}

/// The weights files transformers (and diffusers, PEFT) load from a folder without an
/// index, in the order it prefers them: safetensors first.
const MODEL_FILES: &[&str] = &[
    "model.safetensors",
    "pytorch_model.bin",
    "diffusion_pytorch_model.safetensors",
    "diffusion_pytorch_model.bin",
    "adapter_model.safetensors",
    "adapter_model.bin",
];

/// The weights file of a Hugging Face model folder without an index (the Hub's most
/// common layout, and a `checkpoint-N/` folder of the Trainer), chosen as
/// `from_pretrained` chooses: `model.safetensors` before `pytorch_model.bin`; a note
/// names each weights file left aside.
fn model_weights(dir: &Path) -> Option<FolderKind> {
    let present: Vec<&str> = MODEL_FILES
        .iter()
        .copied()
        .filter(|name| dir.join(name).is_file())
        .collect();
    let (&chosen, rest) = present.split_first()?;
    let notes = rest
        .iter()
        .map(|other| {
            format!(
                "the folder holds `{chosen}` and `{other}`: `{chosen}` was read, as \
                 transformers reads it"
            )
        })
        .collect();
    Some(FolderKind::Model {
        weights: dir.join(chosen),
        notes,
    })
}

/// Which multi-file checkpoint `path` is (a folder, an index JSON, a DCP `.metadata`), as
/// [`Source::open`] would read it; `Ok(None)` for an ordinary file.
pub(crate) fn folder_kind(path: &Path) -> Result<Option<FolderKind>> {
    folder_kind_with(path, &Limits::default())
}

/// [`folder_kind`], reading within `limits`.
pub(super) fn folder_kind_with(path: &Path, limits: &Limits) -> Result<Option<FolderKind>> {
    let metadata = std::fs::metadata(path).map_err(|e| Error::io("cannot open", path, e))?;
    if metadata.is_dir() {
        let dcp = path.join(DCP_METADATA);
        if dcp.is_file() {
            return Ok(Some(FolderKind::Dcp(dcp)));
        }
        let first_rank = path.join(rank_metadata_name(0));
        if first_rank.is_file() {
            return Ok(Some(FolderKind::DcpRanks {
                dir: path.to_path_buf(),
                named: first_rank,
            }));
        }
        return match find_index(path) {
            Ok(index) => Ok(Some(FolderKind::Hf(index))),
            Err(error) => match hf_storage_files(path, limits)? {
                Some(names) => Ok(Some(FolderKind::HfStorage {
                    dir: path.to_path_buf(),
                    names,
                })),
                None => model_weights(path).map(Some).ok_or(error),
            },
        };
    }
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    Ok(match name.as_deref() {
        Some(DCP_METADATA) => Some(FolderKind::Dcp(path.to_path_buf())),
        Some(n) if rank_of(n).is_some() => Some(FolderKind::DcpRanks {
            dir: parent(path).to_path_buf(),
            named: path.to_path_buf(),
        }),
        Some(n) if n.ends_with(".json") && looks_like_index(path, limits.index_len) => {
            Some(FolderKind::Hf(path.to_path_buf()))
        }
        _ => None,
    })
}

/// Whether the JSON file at `path` looks like a shard index (see [`hf::looks_like_index`]),
/// read only when it is at most `max_len` bytes long.
fn looks_like_index(path: &Path, max_len: u64) -> bool {
    read_small(path, max_len).is_ok_and(|bytes| hf::looks_like_index(&bytes))
}

/// The safetensors files of `dir` (sorted by name) when it is a folder of DCP's
/// `HuggingFaceStorageWriter`: its first one says where its parts start (see
/// [`dcp::hf_storage`]); `None` otherwise.
fn hf_storage_files(dir: &Path, limits: &Limits) -> Result<Option<Vec<String>>> {
    let mut names = list_names(dir, limits, "safetensors files", |name| {
        name.ends_with(".safetensors") && !name.starts_with('.')
    })?;
    names.sort();
    let Some(first) = names.first() else {
        return Ok(None);
    };
    let first = Source::open_file(dir.join(first))?;
    if !first
        .checkpoint()
        .is_ok_and(|c| dcp::hf_storage::is_part(&c))
    {
        return Ok(None);
    }
    dcp::hf_storage::check_ranks(dir, &names)?;
    Ok(Some(names))
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
                "this folder holds no checkpoint ckpt reads as one: no `model.safetensors` \
                 or `pytorch_model.bin`, no Hugging Face index (`*.index.json`), no \
                 torch.distributed.checkpoint `.metadata` file",
            )
            .with_path(dir)
            .with_hint(
                "pass a checkpoint file, or the folder of a model or a sharded checkpoint",
            ));
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
pub(super) fn parent(path: &Path) -> &Path {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_names_are_plain_file_names() {
        let main = Path::new("model.safetensors.index.json");
        for bad in ["", ".", "..", "../x", "/etc/passwd", "a/b", "a\\b", "x\0"] {
            assert!(check_name(bad, main).is_err(), "{bad:?}");
        }
        check_name("model-00001-of-00002.safetensors", main).unwrap();
    }
}
