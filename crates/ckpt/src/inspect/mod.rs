//! What a checkpoint holds, in one report: what the file is, how Python loads it, its
//! tensors, plain values and inert objects, and sums over its tensors.
//!
//! An [`Inspection`] is plain data computed from a [`Source`] and the [`Checkpoint`] read
//! from it. It serializes (with serde) to one JSON object whose shape is stable: names are
//! exact (never escaped), integers of any size stay exact, and every field is always
//! present except the optional ones of a tensor ([`TensorEntry`]).
//!
//! ```
//! use std::collections::BTreeMap;
//! use ckpt::inspect::{InspectOptions, inspect};
//! use ckpt::model::{ByteOrder, Dtype, Storage, TensorView};
//! use ckpt::{Limits, Source};
//!
//! // A one-tensor safetensors file, made in memory and opened as a stream would be...
//! let data: Vec<u8> = [1.0f32, 2.0, 3.0].iter().flat_map(|x| x.to_le_bytes()).collect();
//! let view = TensorView::contiguous(Dtype::Float32, vec![3], Storage::new(&data, ByteOrder::Little))?;
//! let tensors = vec![("w".to_string(), &view)];
//! let metadata = BTreeMap::new();
//! let plan = ckpt::safetensors::Plan::new(&tensors, &metadata)?;
//! let mut file = Vec::new();
//! plan.write_to(&mut file, &())?;
//! let source = Source::open_reader(&mut file.as_slice(), "w.safetensors", &Limits::default())?;
//!
//! // ...inspected with the hashes of its tensors...
//! let checkpoint = source.checkpoint()?;
//! let options = InspectOptions::default().with_hashes(true);
//! let inspection = inspect(&source, &checkpoint, &options, &())?;
//! assert_eq!(inspection.totals.parameters, 3);
//! assert_eq!(inspection.load, r#"safetensors.torch.load_file("w.safetensors")"#);
//!
//! // ...and as JSON.
//! let json = serde_json::to_value(&inspection).expect("an inspection is JSON");
//! assert_eq!(json["format"], "safetensors");
//! assert_eq!(json["tensors"][0]["dtype"], "float32");
//! assert_eq!(json["tensors"][0]["shape"], serde_json::json!([3]));
//! assert_eq!(json["tensors"][0]["sha256"].as_str().map(str::len), Some(64));
//! # Ok::<(), ckpt::Error>(())
//! ```

mod json;

pub(crate) use json::float as json_float;
mod load;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;
use serde_json::value::RawValue;

use crate::error::{Error, ErrorKind, Result};
use crate::format::Format;
use crate::model::{Checkpoint, Kind, Quantization, TensorView};
use crate::progress::Progress;
use crate::source::Source;

/// What an inspection computes beyond what reading the checkpoint gave.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct InspectOptions {
    /// Hash every tensor's elements ([`TensorEntry::sha256`]): this reads all of the
    /// tensor data, where the rest of an inspection reads only what describes it.
    pub hashes: bool,
}

impl InspectOptions {
    /// Options that hash every tensor's elements, or not.
    #[must_use]
    pub fn with_hashes(mut self, hashes: bool) -> Self {
        self.hashes = hashes;
        self
    }
}

/// Everything an inspection reports about one checkpoint (a file, or a folder of files).
///
/// It serializes as one JSON object, its fields in this order.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Inspection {
    /// The file (or folder) as it was opened ([`Source::path`]). Serialized as text: a name
    /// that is not UTF-8 has its odd bytes replaced.
    #[serde(serialize_with = "display_path")]
    pub path: PathBuf,
    /// The container format.
    pub format: Format,
    /// Its size in bytes (a folder: the sum of the files it reads).
    pub file_size: u64,
    /// What the checkpoint is: a state dict, a training checkpoint, a whole module...
    pub kind: Kind,
    /// Whether `torch.load(f, weights_only=True)` accepts it (`None` when the question does
    /// not apply: not a PyTorch file).
    pub weights_only: Option<bool>,
    /// Classes that loading it in Python needs beyond torch's weights-only allowlist.
    pub needs: Vec<String>,
    /// A line of Python that loads it (or says why torch will not, and what to do instead).
    pub load: String,
    /// The top-level keys, when the checkpoint is a dict.
    pub keys: Vec<String>,
    /// The string metadata (a safetensors header's `__metadata__`...).
    pub metadata: BTreeMap<String, String>,
    /// Every tensor, in the order [`Checkpoint::tensors`] lists them.
    pub tensors: Vec<TensorEntry>,
    /// Groups of tensors that share one storage (tied weights), by name.
    pub shared: Vec<Vec<String>>,
    /// Plain values (not tensors), with their dotted names.
    pub values: Vec<ValueEntry>,
    /// Objects of classes ckpt keeps inert (read as stored, never constructed), with their
    /// dotted names.
    pub objects: Vec<ObjectEntry>,
    /// Every global the pickle references, `module.name`, sorted.
    pub globals: Vec<String>,
    /// The container's small records (`version`, `byteorder`...).
    pub records: BTreeMap<String, String>,
    /// The protocol of the main pickle, for pickled formats.
    pub pickle_protocol: Option<u8>,
    /// Sums over all tensors, and per dtype.
    pub totals: Totals,
}

/// One tensor of an [`Inspection`].
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct TensorEntry {
    /// Its dotted name.
    pub name: String,
    /// Its dtype (serialized as torch's name: `float32`, `bfloat16`...).
    pub dtype: crate::Dtype,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Its strides, in elements.
    pub stride: Vec<usize>,
    /// Where it starts in its storage, in elements.
    pub storage_offset: usize,
    /// How many numbers it holds (elements, times two for complex dtypes...).
    pub parameters: u64,
    /// The bytes of its elements.
    pub bytes: u64,
    /// Where its bytes lie in the file, `[start, end)`, when they are contiguous there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offsets: Option<[u64; 2]>,
    /// The SHA-256 of its elements as packed row-major little-endian bytes, in lowercase
    /// hex (see [`TensorView::sha256`]), when [`InspectOptions::hashes`] asked for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The files of a multi-file checkpoint that hold it (its shard, or the `.distcp`
    /// files of its chunks); empty for a single file.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
    /// Quantized tensors: the scale (a list, one per channel, for per-channel schemes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub q_scale: Option<serde_json::Value>,
    /// Quantized tensors: the zero point (a list, one per channel, for per-channel schemes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub q_zero_point: Option<serde_json::Value>,
    /// Per-channel quantized tensors: the dimension the scales run along.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub q_axis: Option<usize>,
}

/// One plain value of an [`Inspection`].
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct ValueEntry {
    /// Its dotted name.
    pub name: String,
    /// Its Python type (`int`, `str`, `torch.Size`, a class of an inert object...).
    #[serde(rename = "type")]
    pub type_name: String,
    /// The value as JSON: integers exact whatever their size, `"nan"`, `"inf"` and
    /// `"-inf"` for such floats, lowercase hex for bytes, `[re, im]` for complex numbers,
    /// lists for sequences and sets.
    pub value: Box<RawValue>,
    /// The value as Python prints it (not serialized: the JSON has [`ValueEntry::value`]).
    #[serde(skip)]
    pub repr: String,
}

/// One object of a class ckpt keeps inert, in an [`Inspection`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ObjectEntry {
    /// Its dotted name.
    pub name: String,
    /// Its class, `module.qualname` as the pickle names it.
    pub class: String,
}

/// Sums over the tensors of an [`Inspection`], and per dtype.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Totals {
    /// How many tensors.
    pub tensors: usize,
    /// Their parameters ([`TensorEntry::parameters`]).
    pub parameters: u64,
    /// Their bytes.
    pub bytes: u64,
    /// The same sums per dtype, by dtype name ([`crate::Dtype::name`]), in name order.
    pub by_dtype: BTreeMap<&'static str, DtypeTotals>,
}

/// Sums over the tensors of one dtype.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct DtypeTotals {
    /// How many tensors.
    pub tensors: usize,
    /// Their parameters.
    pub parameters: u64,
    /// Their bytes.
    pub bytes: u64,
}

impl Totals {
    /// Counts one more tensor.
    fn add(&mut self, dtype: &'static str, parameters: u64, bytes: u64) {
        self.tensors += 1;
        self.parameters = self.parameters.saturating_add(parameters);
        self.bytes = self.bytes.saturating_add(bytes);
        let by_dtype = self.by_dtype.entry(dtype).or_default();
        by_dtype.tensors += 1;
        by_dtype.parameters = by_dtype.parameters.saturating_add(parameters);
        by_dtype.bytes = by_dtype.bytes.saturating_add(bytes);
    }
}

/// Inspects `checkpoint`, read from `source`: its tensors, values and objects, how to
/// load it, and the hashes of its tensors when `options` asks for them.
///
/// Only hashing reads tensor data; `progress` hears about it (in bytes) and can cancel
/// it, which ends the inspection with an [`ErrorKind::Interrupted`] error. Errors name the
/// file and, for hashing, the tensor.
pub fn inspect(
    source: &Source,
    checkpoint: &Checkpoint<'_>,
    options: &InspectOptions,
    progress: &dyn Progress,
) -> Result<Inspection> {
    let tensors = checkpoint.tensors();
    let hashes = if options.hashes {
        Some(crate::sha256_all(&tensors, progress).map_err(|e| e.with_path(source.path()))?)
    } else {
        None
    };
    let mut totals = Totals::default();
    let entries = tensors
        .iter()
        .enumerate()
        .map(|(i, (name, view))| {
            let entry = tensor_entry(name, view, hashes.as_deref().and_then(|h| h.get(i)));
            totals.add(view.dtype().name(), entry.parameters, entry.bytes);
            entry
        })
        .collect();
    let values = checkpoint
        .values()
        .into_iter()
        .map(|(name, value)| {
            let json = json::value_json(value).map_err(|e| {
                Error::new(
                    ErrorKind::Malformed,
                    format!("the value `{name}` cannot be written as JSON: {e}"),
                )
                .with_path(source.path())
            })?;
            Ok(ValueEntry {
                type_name: value.type_name().to_owned(),
                value: json,
                repr: value.to_string(),
                name,
            })
        })
        .collect::<Result<_>>()?;
    let objects = checkpoint
        .objects()
        .into_iter()
        .map(|(name, object)| ObjectEntry {
            name,
            class: object.class.clone(),
        })
        .collect();
    let details = checkpoint.details();
    let path = source.path().to_path_buf();
    Ok(Inspection {
        load: load::load_line(checkpoint, &path.display().to_string()),
        path,
        format: checkpoint.format(),
        file_size: source.len(),
        kind: checkpoint.kind(),
        weights_only: details.weights_only,
        needs: details.needs.clone(),
        keys: checkpoint.top_level_keys(),
        metadata: checkpoint.metadata().clone(),
        tensors: entries,
        shared: checkpoint.shared_storages(),
        values,
        objects,
        globals: details.globals.clone(),
        records: details.records.clone(),
        pickle_protocol: details.pickle_protocol,
        totals,
    })
}

/// The entry of one tensor, with the hash of its elements when there is one.
fn tensor_entry(name: &str, view: &TensorView<'_>, hash: Option<&[u8; 32]>) -> TensorEntry {
    let quantization = view.quantization();
    TensorEntry {
        name: name.to_owned(),
        dtype: view.dtype(),
        shape: view.shape().to_vec(),
        stride: view.strides().to_vec(),
        storage_offset: view.storage_offset(),
        parameters: (view.numel() as u64).saturating_mul(view.dtype().values_per_element()),
        bytes: view.nbytes() as u64,
        offsets: view.file_range().map(|(start, end)| [start, end]),
        sha256: hash.map(|digest| crate::digest::hex(digest)),
        files: view.files().into_iter().map(str::to_owned).collect(),
        q_scale: quantization.map(|q| match q {
            Quantization::PerTensor { scale, .. } => (*scale).into(),
            Quantization::PerChannel { scales, .. } => scales.clone().into(),
        }),
        q_zero_point: quantization.map(|q| match q {
            Quantization::PerTensor { zero_point, .. } => (*zero_point).into(),
            Quantization::PerChannel { zero_points, .. } => zero_points
                .iter()
                .map(|&z| json::integral_or_float(z))
                .collect(),
        }),
        q_axis: quantization.and_then(|q| match q {
            Quantization::PerTensor { .. } => None,
            Quantization::PerChannel { axis, .. } => Some(*axis),
        }),
    }
}

/// A path as text (see [`Inspection::path`]).
fn display_path<S: serde::Serializer>(
    path: &std::path::Path,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    serializer.collect_str(&path.display())
}
