//! Converting a checkpoint from one file to another.

mod keys;
mod shard;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

pub use crate::size::parse_size;
pub use keys::{KeyMap, Mapped, common_wrapper_prefix};
pub use shard::{DEFAULT_MAX_SHARD_SIZE, Naming};

use crate::cast::{self, CastView, TensorCast};
use crate::error::{Error, Result};
use crate::model::{Checkpoint, Dict, Dtype, TensorView, Value};
use crate::output::{AtomicFolder, AtomicOutput, FileSink, MappedInput};
use crate::progress::Progress;
use crate::safetensors::Plan;
use crate::source::Source;

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Target {
    /// A safetensors file.
    Safetensors,
    /// A PyTorch zip checkpoint (`torch.save`).
    Torch,
}

impl Target {
    /// The target a file name asks for: `.safetensors`, or `.pt`/`.pth`/`.bin`/`.ckpt` for
    /// PyTorch (case-insensitive). `None` for other names.
    pub fn from_path(path: &Path) -> Option<Target> {
        let extension = path.extension()?.to_str()?.to_ascii_lowercase();
        match extension.as_str() {
            "safetensors" => Some(Target::Safetensors),
            "pt" | "pth" | "bin" | "ckpt" => Some(Target::Torch),
            _ => None,
        }
    }

    /// The target's name (`"safetensors"`, `"pth"`).
    pub fn name(self) -> &'static str {
        match self {
            Target::Safetensors => "safetensors",
            Target::Torch => "pth",
        }
    }
}

/// What [`convert`] should do.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConvertOptions {
    /// The output format.
    pub target: Target,
    /// Replace the output if it exists (never when it is the input).
    pub overwrite: bool,
    /// Convert only the subtree at this dotted path of dict keys (`model`, `state_dict`).
    pub key: Option<String>,
    /// Write tensors that are the same view of the same storage (tied weights) once, under
    /// the lexicographically smallest name, and record each dropped name in the metadata
    /// (`{dropped: kept}`, as HF's converter does). By default every name is written.
    /// PyTorch outputs keep tied tensors on one shared storage and ignore this.
    pub dedupe: bool,
    /// Which tensors to write and under which names (applied after `key`).
    pub keys: KeyMap,
    /// Write a folder of Hugging Face shards of at most this many bytes of tensor data
    /// each, with an index, instead of one file (see [`parse_size`]). PyTorch shards are
    /// flat state dicts; tensors that share a storage go to one shard.
    pub max_shard_size: Option<u64>,
    /// Cast floating point tensors to this dtype (one of [`cast::TARGETS`]), as torch's
    /// `tensor.to(dtype)` does, bit for bit (see [`cast`]). Other tensors (integers, bool,
    /// complex, the packed float4/float6 kinds) keep their dtype: [`Converted::kept`] lists
    /// them.
    pub dtype: Option<Dtype>,
    /// Wait for the output to reach the disk (`fsync`) before renaming it into place (the
    /// default). Without, the output still appears whole or not at all to every process,
    /// and the run is as fast as `cp`; but a power loss soon after may leave it empty or
    /// partial.
    pub sync: bool,
    /// The limits the input is read within (see [`crate::limits`]).
    pub limits: crate::Limits,
}

impl ConvertOptions {
    /// Options to write `target`, refusing to replace an existing output.
    pub fn new(target: Target) -> Self {
        ConvertOptions {
            target,
            overwrite: false,
            key: None,
            dedupe: false,
            keys: KeyMap::new(),
            max_shard_size: None,
            sync: true,
            dtype: None,
            limits: crate::Limits::default(),
        }
    }

    /// Reads the input within `limits` (see [`ConvertOptions::limits`]).
    #[must_use]
    pub fn limits(mut self, limits: crate::Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Casts floating point tensors to `dtype` (see [`ConvertOptions::dtype`]).
    #[must_use]
    pub fn dtype(mut self, dtype: Option<Dtype>) -> Self {
        self.dtype = dtype;
        self
    }

    /// Sets whether the output is synced to disk before it is renamed into place (see
    /// [`ConvertOptions::sync`]).
    #[must_use]
    pub fn sync(mut self, sync: bool) -> Self {
        self.sync = sync;
        self
    }

    /// Writes a folder of shards of at most `max` bytes each (see
    /// [`ConvertOptions::max_shard_size`]).
    #[must_use]
    pub fn max_shard_size(mut self, max: Option<u64>) -> Self {
        self.max_shard_size = max;
        self
    }

    /// Sets whether an existing output may be replaced.
    #[must_use]
    pub fn overwrite(mut self, overwrite: bool) -> Self {
        self.overwrite = overwrite;
        self
    }

    /// Converts only the subtree at `key`.
    #[must_use]
    pub fn key(mut self, key: Option<String>) -> Self {
        self.key = key;
        self
    }

    /// Filters and renames tensors (see [`KeyMap`]).
    #[must_use]
    pub fn keys(mut self, keys: KeyMap) -> Self {
        self.keys = keys;
        self
    }

    /// Writes tied tensors once (see [`ConvertOptions::dedupe`]).
    #[must_use]
    pub fn dedupe(mut self, dedupe: bool) -> Self {
        self.dedupe = dedupe;
        self
    }
}

/// What [`convert`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Converted {
    /// The number of tensors written.
    pub tensors: usize,
    /// The number of tensor elements written.
    pub parameters: u64,
    /// The size of the output: the file, or all files of the folder.
    pub bytes: u64,
    /// Every file written, with its size: the output file, or the shards and the index.
    pub files: Vec<(PathBuf, u64)>,
    /// Plain values of the source that the target cannot hold (safetensors holds only
    /// tensors), by dotted name: not written.
    pub skipped_values: Vec<String>,
    /// Names dropped by `dedupe`, with the name kept for the same tensor (output names).
    pub deduplicated: Vec<(String, String)>,
    /// `(source name, output name)` of every tensor renamed by the key map.
    pub renamed: Vec<(String, String)>,
    /// Source names of the tensors the key map's filters left out.
    pub excluded: Vec<String>,
    /// A prefix every written name has that looks added by a training wrapper (`module.`
    /// from `DataParallel`): stripping it ([`KeyMap::strip_prefix`]) would remove it. Only
    /// when nothing was renamed.
    pub wrapper_prefix: Option<&'static str>,
    /// What casting to [`ConvertOptions::dtype`] did to each tensor it changed, by output
    /// name (tensors already of that dtype are not listed: they are written as they are).
    pub casts: Vec<TensorCast>,
    /// Tensors that kept their dtype because they are not floating point (output name,
    /// dtype), when casting.
    pub kept: Vec<(String, Dtype)>,
    /// What opening the input chose that a person should know ([`Source::notes`]).
    pub notes: Vec<String>,
}

/// Converts the checkpoint at `input` into a new file at `output`, or into a folder of
/// shards when [`ConvertOptions::max_shard_size`] is set.
///
/// The output appears complete or not at all (see [`AtomicOutput`], [`AtomicFolder`]);
/// memory use does not grow with the checkpoint, because tensors are streamed from the
/// input's memory map in bounded chunks. `progress` hears about every chunk and can cancel
/// the work.
pub fn convert(
    input: &Path,
    output: &Path,
    options: &ConvertOptions,
    progress: &dyn Progress,
) -> Result<Converted> {
    let source = Source::open_with(input, &options.limits)?;
    // Parsing touches a few scattered places (zip headers, pickle); sparse access keeps
    // the kernel from mapping whole neighbourhoods around each. The data is then read in
    // order (or copied in the kernel without being mapped at all).
    source.advise(crate::Access::Sparse);
    let checkpoint = source.checkpoint()?;
    source.advise(crate::Access::Sequential);
    let origin = Origin {
        path: Some(input),
        files: source.files(),
        mapped: source.mapped_input(),
    };
    let mut converted = write_from(&origin, &checkpoint, output, options, progress)?;
    converted.notes = source.notes().to_vec();
    Ok(converted)
}

/// Writes `checkpoint` (one you read, or built: its tensors may borrow any memory) to
/// `output`, as [`convert`] writes what it reads: every option but the input's
/// [`ConvertOptions::limits`] applies. The output appears whole or not at all.
///
/// ```
/// use std::collections::BTreeMap;
/// use ckpt::model::{ByteOrder, Dict, Dtype, Storage, TensorView};
/// use ckpt::{Checkpoint, ConvertOptions, Format, Target, Value};
///
/// let data: Vec<u8> = [1.0f32, 2.0].iter().flat_map(|x| x.to_le_bytes()).collect();
/// let view = TensorView::contiguous(Dtype::Float32, vec![2], Storage::new(&data, ByteOrder::Little))?;
/// let root = Value::Dict(Dict::new(vec![(Value::Str("w".into()), Value::Tensor(view))]));
/// let checkpoint = Checkpoint::new(Format::Safetensors, BTreeMap::new(), root);
/// let dir = tempfile::tempdir().unwrap();
/// let out = dir.path().join("w.safetensors");
/// let written = ckpt::write(&checkpoint, &out, &ConvertOptions::new(Target::Safetensors), &())?;
/// assert_eq!(written.tensors, 1);
/// assert_eq!(ckpt::Source::open(&out)?.checkpoint()?.tensors()[0].0, "w");
/// # Ok::<(), ckpt::Error>(())
/// ```
pub fn write(
    checkpoint: &Checkpoint<'_>,
    output: &Path,
    options: &ConvertOptions,
    progress: &dyn Progress,
) -> Result<Converted> {
    let origin = Origin {
        path: None,
        files: Vec::new(),
        mapped: None,
    };
    write_from(&origin, checkpoint, output, options, progress)
}

/// Where the tensors being written come from: the input's path (for errors), the files an
/// output may not replace, and the mapped input the kernel may copy from.
struct Origin<'s> {
    path: Option<&'s Path>,
    files: Vec<&'s Path>,
    mapped: Option<MappedInput<'s>>,
}

impl Origin<'_> {
    /// `error`, placed in the input when there is one.
    fn at(&self, error: Error) -> Error {
        match self.path {
            Some(path) => error.with_path(path),
            None => error,
        }
    }
}

fn write_from(
    origin: &Origin<'_>,
    checkpoint: &Checkpoint<'_>,
    output: &Path,
    options: &ConvertOptions,
    progress: &dyn Progress,
) -> Result<Converted> {
    let root = match &options.key {
        Some(key) => checkpoint.select(key).map_err(|e| origin.at(e))?,
        None => checkpoint.root(),
    };
    let Mapped {
        kept: mut tensors,
        renamed,
        dropped: excluded,
    } = options
        .keys
        .apply(root.tensors())
        .map_err(|e| origin.at(e))?;
    if tensors.is_empty() && !excluded.is_empty() {
        return Err(origin
            .at(Error::invalid(format!(
                "the filters leave no tensor to write (all {} were excluded)",
                excluded.len()
            )))
            .with_hint(
                "check the include patterns and the exclude patterns against the names of the \
             checkpoint's tensors",
            ));
    }
    // Suggested only for names as the source has them, not for names chosen by renames.
    let wrapper_prefix = if renamed.is_empty() {
        common_wrapper_prefix(tensors.iter().map(|(n, _)| n.as_str()))
    } else {
        None
    };
    if options.target == Target::Torch {
        // Checks the target and finds the tensors a cast leaves as they are.
        let views = cast::cast_all(&tensors, options.dtype).map_err(|e| origin.at(e))?;
        let kept = kept_dtypes(&views, options.dtype);
        let (files, skipped_values, mut casts) =
            convert_to_torch(origin, root, &tensors, options, output, progress)?;
        casts.sort_by(|a, b| a.name.cmp(&b.name));
        return Ok(Converted {
            parameters: parameters_of(&tensors),
            tensors: tensors.len(),
            bytes: files.iter().map(|(_, len)| len).sum(),
            files,
            skipped_values,
            deduplicated: Vec::new(),
            renamed,
            excluded,
            wrapper_prefix,
            casts,
            kept,
            notes: Vec::new(),
        });
    }
    let skipped_values: Vec<String> = root.values().into_iter().map(|(name, _)| name).collect();
    let mut metadata = checkpoint.metadata().clone();
    if checkpoint.format() != crate::Format::Safetensors {
        // What transformers expects of a PyTorch-origin safetensors file.
        metadata.insert("format".to_owned(), "pt".to_owned());
    }
    let deduplicated = if options.dedupe {
        let dropped = tied_duplicates(&tensors);
        let names: std::collections::HashSet<&str> =
            dropped.iter().map(|(d, _)| d.as_str()).collect();
        tensors.retain(|(name, _)| !names.contains(name.as_str()));
        for (dropped, kept) in &dropped {
            metadata
                .entry(dropped.clone())
                .or_insert_with(|| kept.clone());
        }
        dropped
    } else {
        Vec::new()
    };
    let parameters = parameters_of(&tensors);
    let views = cast::cast_all(&tensors, options.dtype).map_err(|e| origin.at(e))?;
    let kept = kept_dtypes(&views, options.dtype);
    let (files, mut casts) = match options.max_shard_size {
        None => {
            let plan = Plan::with_casts(&views, &metadata).map_err(|e| origin.at(e))?;
            let mut out = AtomicOutput::create(output, options.overwrite, &origin.files)?
                .durable(options.sync);
            let casts = write_file(out.file(), origin.mapped, options.sync, |sink| {
                plan.write_to(sink, progress)
            })
            .map_err(|e| e.with_path(output))?;
            out.commit()?;
            (vec![(output.to_path_buf(), plan.file_len())], casts)
        }
        Some(max) => write_shards(origin, output, options, &views, &metadata, max, progress)?,
    };
    casts.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Converted {
        tensors: tensors.len(),
        parameters,
        bytes: files.iter().map(|(_, len)| len).sum(),
        files,
        skipped_values,
        deduplicated,
        renamed,
        excluded,
        wrapper_prefix,
        casts,
        kept,
        notes: Vec::new(),
    })
}

/// The number of values of `tensors` (a packed `float4_e2m1fn_x2` element counts two).
fn parameters_of(tensors: &[(String, &TensorView<'_>)]) -> u64 {
    tensors
        .iter()
        .map(|(_, t)| t.numel() as u64 * t.dtype().values_per_element())
        .sum()
}

/// Writes a PyTorch output: the whole tree of `root` when nothing reshapes it, else a flat
/// state dict of `tensors` (the key map's survivors, under their output names), as one
/// file or as shards. Returns the files written and the plain values left out.
///
/// The whole tree is kept (dicts and their order, plain values, parameters, tied storages)
/// when the key map is the identity, the output is one file, and the subtree the key
/// chose is a dict (or there is no key). A whole module or a TorchScript archive is
/// already its `state_dict()` in the tree.
fn convert_to_torch(
    origin: &Origin<'_>,
    root: &Value<'_>,
    tensors: &[(String, &TensorView<'_>)],
    options: &ConvertOptions,
    output: &Path,
    progress: &dyn Progress,
) -> Result<(Files, Vec<String>, Vec<TensorCast>)> {
    if let Some(max) = options.max_shard_size {
        let (files, casts) = write_torch_shards(origin, output, options, tensors, max, progress)?;
        return Ok((files, skipped_names(root), casts));
    }
    let whole =
        options.keys.is_identity() && (options.key.is_none() || matches!(root, Value::Dict(_)));
    let flat;
    let (tree, skipped) = if whole {
        (root, Vec::new())
    } else {
        flat = flat_state_dict(tensors);
        (&flat, skipped_names(root))
    };
    let archive = crate::torch::write::archive_name(output);
    let plan = crate::torch::write::Plan::with_cast(tree, &archive, options.dtype)
        .map_err(|e| origin.at(e))?;
    let mut out =
        AtomicOutput::create(output, options.overwrite, &origin.files)?.durable(options.sync);
    let input_map = origin.mapped;
    let casts = write_file(out.file(), input_map, options.sync, |sink| {
        plan.write_reading(sink, input_map, progress)
    })
    .map_err(|e| e.with_path(output))?;
    out.commit()?;
    Ok((
        vec![(output.to_path_buf(), plan.file_len())],
        skipped,
        casts,
    ))
}

/// Files written, with their sizes.
type Files = Vec<(PathBuf, u64)>;

/// The dotted names of the plain values under `root`.
fn skipped_names(root: &Value<'_>) -> Vec<String> {
    root.values().into_iter().map(|(name, _)| name).collect()
}

/// `{name: tensor}` in order, as a plain dict (what `transformers` saves in its shards).
fn flat_state_dict<'data>(tensors: &[(String, &TensorView<'data>)]) -> Value<'data> {
    Value::Dict(Dict::new(
        tensors
            .iter()
            .map(|(name, view)| (Value::Str(name.clone()), Value::Tensor((*view).clone())))
            .collect(),
    ))
}

/// Writes `tensors` as `pytorch_model-0000K-of-0000N.bin` shards of at most `max` bytes of
/// storage each, with `pytorch_model.bin.index.json`, into the folder `output`, as
/// `transformers`' `save_pretrained(safe_serialization=False)` does: tensors that share a
/// storage go to one shard (where the storage is written once), each storage counts whole
/// (`untyped_storage().nbytes()`) and once toward the shard sizes and `total_size`.
fn write_torch_shards(
    origin: &Origin<'_>,
    output: &Path,
    options: &ConvertOptions,
    tensors: &[(String, &TensorView<'_>)],
    max: u64,
    progress: &dyn Progress,
) -> Result<(Files, Vec<TensorCast>)> {
    let input_map = origin.mapped;
    let naming = Naming::TORCH;
    let sizes: Vec<(u64, Option<(usize, usize)>)> = tensors
        .iter()
        .map(|(_, t)| {
            let cast = CastView::new(t, options.dtype)?;
            Ok(match cast.cast() {
                None => (t.storage_nbytes() as u64, t.storage_identity()),
                // A cast tensor is written on a storage of its own, shared only by the same
                // view (tied weights): identified by where the view starts and its size.
                Some(_) => (
                    cast.nbytes() as u64,
                    t.storage_identity().map(|(address, _)| {
                        let start = t
                            .storage_offset()
                            .saturating_mul(t.dtype().byte_size().unwrap_or(1));
                        (address.saturating_add(start), t.nbytes())
                    }),
                ),
            })
        })
        .collect::<Result<_>>()
        .map_err(|e| origin.at(e))?;
    let mut total_size = 0u64;
    let mut counted = std::collections::HashSet::new();
    for (size, identity) in &sizes {
        if identity.is_none_or(|id| counted.insert(id)) {
            total_size += size;
        }
    }
    let members = shard_members(&shard::split(&sizes, max), tensors);
    let count = members.len();
    let trees: Vec<Value<'_>> = members.iter().map(|m| flat_state_dict(m)).collect();
    let mut plans = Vec::with_capacity(count);
    for (index, tree) in trees.iter().enumerate() {
        let name = naming.shard(index, count);
        let archive = crate::torch::write::archive_name(Path::new(&name));
        plans.push(
            crate::torch::write::Plan::with_cast(tree, &archive, options.dtype)
                .map_err(|e| origin.at(e))?,
        );
    }
    let layout = ShardLayout::new(naming, plans.iter().map(|plan| plan.file_len()), &members);
    write_shard_folder(
        origin,
        output,
        options,
        &layout,
        |map| shard::index_json(total_size, parameters_of(tensors), &BTreeMap::new(), map),
        |index, file, progress| {
            let plan = plans
                .get(index)
                .ok_or_else(|| Error::invalid("a shard was not planned (a bug in ckpt)"))?;
            write_file(file, input_map, options.sync, |sink| {
                plan.write_reading(sink, input_map, progress)
            })
        },
        progress,
    )
}

/// The tensors that a cast to `dtype` leaves with another dtype (not floating point).
fn kept_dtypes(views: &[(String, CastView<'_, '_>)], dtype: Option<Dtype>) -> Vec<(String, Dtype)> {
    let Some(dtype) = dtype else {
        return Vec::new();
    };
    let mut kept: Vec<(String, Dtype)> = views
        .iter()
        .filter(|(_, view)| view.dtype() != dtype)
        .map(|(name, view)| (name.clone(), view.dtype()))
        .collect();
    kept.sort();
    kept
}

/// Streams a planned file into `file` with `write` (a safetensors or PyTorch plan's
/// writer): tensor data stored as is in the input is copied by the kernel (see
/// [`FileSink`]), and the disk writing starts early unless the output will not be synced.
/// Returns what the casts did.
fn write_file(
    file: &std::fs::File,
    input: Option<MappedInput<'_>>,
    sync: bool,
    write: impl FnOnce(&mut FileSink<'_>) -> Result<Vec<TensorCast>>,
) -> Result<Vec<TensorCast>> {
    let mut sink = FileSink::new(file, input);
    if !sync {
        sink = sink.without_writeback();
    }
    let casts = write(&mut sink)?;
    sink.flush()
        .map_err(|e| Error::from_io("failed to write", e))?;
    Ok(casts)
}

/// The files written, with their sizes, and what the casts did.
type Written = (Vec<(PathBuf, u64)>, Vec<TensorCast>);

/// Writes `tensors` as Hugging Face shards of at most `max` bytes, with an index, into the
/// folder `output`.
fn write_shards(
    origin: &Origin<'_>,
    output: &Path,
    options: &ConvertOptions,
    tensors: &[(String, CastView<'_, '_>)],
    metadata: &BTreeMap<String, String>,
    max: u64,
    progress: &dyn Progress,
) -> Result<Written> {
    let input_map = origin.mapped;
    let naming = Naming::SAFETENSORS;
    // Every safetensors tensor is written as an independent copy: none share storage.
    let sizes: Vec<(u64, Option<()>)> = tensors
        .iter()
        .map(|(_, t)| (t.nbytes() as u64, None))
        .collect();
    let members = shard_members(&shard::split(&sizes, max), tensors);
    let count = members.len();
    // As huggingface_hub: shards of a sharded checkpoint carry only `format`; the rest of
    // the metadata goes to the index. One shard is a plain file with all of it.
    let shard_metadata: BTreeMap<String, String> = if count == 1 {
        metadata.clone()
    } else {
        BTreeMap::from([("format".to_owned(), "pt".to_owned())])
    };
    let mut plans = Vec::with_capacity(count);
    for shard in &members {
        plans.push(Plan::with_casts(shard, &shard_metadata).map_err(|e| origin.at(e))?);
    }
    let layout = ShardLayout::new(naming, plans.iter().map(|plan| plan.file_len()), &members);
    write_shard_folder(
        origin,
        output,
        options,
        &layout,
        |map| {
            let total_size = tensors.iter().map(|(_, t)| t.nbytes() as u64).sum();
            let total_parameters = tensors
                .iter()
                .map(|(_, t)| t.view().numel() as u64 * t.dtype().values_per_element())
                .sum();
            shard::index_json(total_size, total_parameters, metadata, map)
        },
        |index, file, progress| {
            let plan = plans
                .get(index)
                .ok_or_else(|| Error::invalid("a shard was not planned (a bug in ckpt)"))?;
            write_file(file, input_map, options.sync, |sink| {
                plan.write_to(sink, progress)
            })
        },
        progress,
    )
}

/// The files of a sharded output: how its shards are named, and for each shard its size
/// and the names of its tensors.
struct ShardLayout<'n> {
    naming: Naming,
    shards: Vec<(u64, Vec<&'n str>)>,
}

impl<'n> ShardLayout<'n> {
    /// Shards of the given file lengths, holding `members` in order.
    fn new<T>(
        naming: Naming,
        lens: impl IntoIterator<Item = u64>,
        members: &'n [Vec<(String, T)>],
    ) -> Self {
        let shards = lens
            .into_iter()
            .zip(members)
            .map(|(len, shard)| (len, shard.iter().map(|(n, _)| n.as_str()).collect()))
            .collect();
        ShardLayout { naming, shards }
    }
}

/// The tensors of each shard, from `shard::split`'s groups of indices into `tensors`; a
/// checkpoint without tensors is one empty shard.
fn shard_members<T: Copy>(groups: &[Vec<usize>], tensors: &[(String, T)]) -> Vec<Vec<(String, T)>> {
    let mut members: Vec<Vec<(String, T)>> = groups
        .iter()
        .map(|group| {
            group
                .iter()
                .filter_map(|&i| tensors.get(i))
                .map(|(name, t)| (name.clone(), *t))
                .collect()
        })
        .collect();
    if members.is_empty() {
        members.push(Vec::new());
    }
    members
}

/// Writes the shards of `layout` into the folder `output`, atomically: shard `i` is
/// written by `write(i, file, progress)`, and with more than one shard the index file holds
/// `index(weight_map)`. The progress bar spans all shards.
fn write_shard_folder(
    origin: &Origin<'_>,
    output: &Path,
    options: &ConvertOptions,
    layout: &ShardLayout<'_>,
    index: impl FnOnce(&[(&str, &str)]) -> Result<Vec<u8>>,
    mut write: impl FnMut(usize, &std::fs::File, &dyn Progress) -> Result<Vec<TensorCast>>,
    progress: &dyn Progress,
) -> Result<Written> {
    let naming = layout.naming;
    let count = layout.shards.len();
    progress.start(layout.shards.iter().map(|(len, _)| len).sum());
    let shared_progress = Continuing(progress);
    let mut folder =
        AtomicFolder::create(output, options.overwrite, &origin.files)?.durable(options.sync);
    let mut files = Vec::with_capacity(count + 1);
    let mut casts = Vec::new();
    let mut weight_map: Vec<(&str, String)> = Vec::new();
    for (index, (len, names)) in layout.shards.iter().enumerate() {
        let name = naming.shard(index, count);
        let path = output.join(&name);
        let file = folder.create_file(&name).map_err(|e| e.with_path(&path))?;
        casts.extend(write(index, &file, &shared_progress).map_err(|e| e.with_path(&path))?);
        weight_map.extend(names.iter().map(|tensor| (*tensor, name.clone())));
        files.push((path, *len));
    }
    if count > 1 {
        let map: Vec<(&str, &str)> = weight_map.iter().map(|(t, f)| (*t, f.as_str())).collect();
        let json = index(&map)?;
        let name = naming.index();
        let path = output.join(&name);
        let mut file = folder.create_file(&name).map_err(|e| e.with_path(&path))?;
        file.write_all(&json)
            .map_err(|e| Error::io("failed to write", &path, e))?;
        files.push((path, json.len() as u64));
    }
    folder.commit(|name| naming.owns(name))?;
    Ok((files, casts))
}

/// Passes progress through, but not the `start` of each file: the bar spans all shards.
struct Continuing<'p>(&'p dyn Progress);

impl Progress for Continuing<'_> {
    fn advance(&self, bytes: u64) {
        self.0.advance(bytes);
    }

    fn is_cancelled(&self) -> bool {
        self.0.is_cancelled()
    }
}

/// Tensors that are the same view (dtype, shape, strides, offset, conj/neg bits) of the same
/// storage as another: `(dropped, kept)`, keeping the lexicographically smallest name.
fn tied_duplicates(tensors: &[(String, &TensorView<'_>)]) -> Vec<(String, String)> {
    type ViewKey<'v> = (
        (usize, usize),
        Dtype,
        &'v [usize],
        &'v [usize],
        usize,
        bool,
        bool,
    );
    let mut groups: std::collections::HashMap<ViewKey<'_>, Vec<&str>> =
        std::collections::HashMap::new();
    for (name, view) in tensors {
        if view.numel() == 0 {
            continue;
        }
        // Views of nothing shared (chunk-assembled tensors) are never tied.
        let Some(identity) = view.storage_identity() else {
            continue;
        };
        let key = (
            identity,
            view.dtype(),
            view.shape(),
            view.strides(),
            view.storage_offset(),
            view.is_conj(),
            view.is_neg(),
        );
        groups.entry(key).or_default().push(name);
    }
    let mut dropped = Vec::new();
    for names in groups.into_values() {
        let Some(kept) = names.iter().min().copied() else {
            continue;
        };
        for name in names {
            if name != kept {
                dropped.push((name.to_owned(), kept.to_owned()));
            }
        }
    }
    dropped.sort();
    dropped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensors_assembled_from_chunks_are_never_tied() {
        use crate::model::{ByteOrder, Storage, Tile};
        let a = [1u8, 2, 3, 4];
        let b = [5u8, 6, 7, 8];
        let tiled = |bytes: &'static [u8]| {
            let halves = [&bytes[..2], &bytes[2..]].map(|half| {
                TensorView::contiguous(Dtype::UInt8, vec![2], Storage::new(half, ByteOrder::Little))
                    .unwrap()
            });
            let [first, second] = halves;
            TensorView::tiled(
                Dtype::UInt8,
                vec![4],
                vec![Tile::new(vec![0], first), Tile::new(vec![2], second)],
            )
            .unwrap()
        };
        let (x, y) = (tiled(Box::leak(Box::new(a))), tiled(Box::leak(Box::new(b))));
        assert!(x.storage_identity().is_none());
        // The same dtype, shape and strides, and both with an empty storage.
        let tensors = [("x".to_owned(), &x), ("y".to_owned(), &y)];
        assert!(tied_duplicates(&tensors).is_empty());
        // A real tie still is one.
        let data = [0u8; 4];
        let storage = Storage::new(&data, ByteOrder::Little);
        let w = TensorView::contiguous(Dtype::UInt8, vec![4], storage).unwrap();
        let tied = [("w".to_owned(), &w), ("v".to_owned(), &w)];
        assert_eq!(
            tied_duplicates(&tied),
            vec![("w".to_owned(), "v".to_owned())]
        );
    }

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/ok")
            .join(name)
    }

    fn read_back(path: &Path, check: impl FnOnce(&Checkpoint<'_>)) {
        let source = Source::open(path).unwrap();
        let checkpoint = source.checkpoint().unwrap();
        assert_eq!(checkpoint.format(), crate::Format::TorchZip);
        assert_eq!(checkpoint.details().weights_only, Some(true));
        check(&checkpoint);
    }

    #[test]
    fn torch_output_keeps_the_tree_or_flattens_it() {
        let dir = tempfile::tempdir().unwrap();
        let input = fixture("torch/checkpoint-2.15-zip.pt");
        let source = Source::open(&input).unwrap();
        let values = source.checkpoint().unwrap().values().len();
        assert!(values > 30);
        let whole = dir.path().join("whole.pth");
        let done = convert(&input, &whole, &ConvertOptions::new(Target::Torch), &()).unwrap();
        assert_eq!(done.tensors, 27);
        assert!(done.skipped_values.is_empty());
        read_back(&whole, |c| {
            assert_eq!(c.kind(), crate::Kind::Checkpoint);
            assert_eq!(c.values().len(), values);
            assert_eq!(c.details().records["archive_folder"], "whole");
        });

        // The key of a dict keeps that dict whole.
        let model = dir.path().join("model.pt");
        let options = ConvertOptions::new(Target::Torch).key(Some("model".into()));
        convert(&input, &model, &options, &()).unwrap();
        read_back(&model, |c| {
            assert_eq!(c.kind(), crate::Kind::StateDict);
            assert_eq!(c.tensors().len(), 9);
        });

        // Key surgery: a flat state dict, the plain values reported.
        let flat = dir.path().join("flat.bin");
        let keys = KeyMap::new().include("optimizer.*").unwrap();
        let options = ConvertOptions::new(Target::Torch).keys(keys);
        let done = convert(&input, &flat, &options, &()).unwrap();
        assert_eq!(done.tensors, 18);
        assert_eq!(done.skipped_values.len(), values);
        assert_eq!(done.excluded.len(), 9);
        read_back(&flat, |c| {
            assert_eq!(c.kind(), crate::Kind::StateDict);
            assert!(c.values().is_empty());
            assert_eq!(c.tensors()[0].0, "optimizer.state.0.step");
        });

        // The key of a list: a flat state dict of its tensors.
        let list = dir.path().join("list.pth");
        let options = ConvertOptions::new(Target::Torch).key(Some("optimizer.param_groups".into()));
        let done = convert(&input, &list, &options, &()).unwrap();
        assert_eq!(done.tensors, 0);
        assert!(!done.skipped_values.is_empty());
        read_back(&list, |c| assert!(c.tensors().is_empty()));
    }

    #[test]
    fn torch_shards_group_shared_storages() {
        let dir = tempfile::tempdir().unwrap();
        let input = fixture("torch/tied-2.15-zip.pt");
        let out = dir.path().join("shards");
        let options = ConvertOptions::new(Target::Torch).max_shard_size(Some(40));
        let done = convert(&input, &out, &options, &()).unwrap();
        let names: Vec<String> = done
            .files
            .iter()
            .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "pytorch_model-00001-of-00002.bin",
                "pytorch_model-00002-of-00002.bin",
                "pytorch_model.bin.index.json"
            ]
        );
        assert_eq!(done.tensors, 4);
        read_back(&done.files[0].0, |c| {
            assert_eq!(
                c.shared_storages(),
                [vec!["embed.weight".to_owned(), "lm_head.weight".to_owned()]]
            );
            assert_eq!(
                c.details().records["archive_folder"],
                "pytorch_model-00001-of-00002"
            );
        });
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&done.files[2].0).unwrap()).unwrap();
        assert_eq!(index["metadata"]["total_size"], 84);

        // Everything in one shard: a plain pytorch_model.bin, no index.
        let one = dir.path().join("one");
        let options = ConvertOptions::new(Target::Torch).max_shard_size(Some(1 << 20));
        let done = convert(&input, &one, &options, &()).unwrap();
        assert_eq!(done.files.len(), 1);
        assert!(done.files[0].0.ends_with("pytorch_model.bin"));
    }
}
