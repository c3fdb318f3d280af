//! `ckpt inspect`: what is in a checkpoint, and how to load it.

use std::collections::BTreeMap;

use ckpt::model::Quantization;
use ckpt::{Access, Checkpoint, Format, Kind, Source, TensorView, Value};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::args::InspectArgs;
use crate::exit::Outcome;
use crate::output;
use crate::term::Progress;

/// Everything `inspect` reports, as printed by `--json`.
#[derive(Debug, Serialize)]
pub(crate) struct InspectReport {
    pub(crate) path: String,
    pub(crate) format: &'static str,
    pub(crate) file_size: u64,
    /// What the file is: state-dict, checkpoint, module, torchscript, tensor, other.
    pub(crate) kind: &'static str,
    /// Whether `torch.load(f, weights_only=True)` accepts it (null when not a torch file).
    pub(crate) weights_only: Option<bool>,
    /// Globals that loading it in Python needs beyond torch's weights-only allowlist.
    pub(crate) needs: Vec<String>,
    /// A line of Python that loads it.
    pub(crate) load: String,
    /// The top-level keys, when the file holds a dict.
    pub(crate) keys: Vec<String>,
    pub(crate) metadata: BTreeMap<String, String>,
    pub(crate) tensors: Vec<TensorRow>,
    /// Groups of tensors that share one storage.
    pub(crate) shared: Vec<Vec<String>>,
    /// Plain values (not tensors), with their dotted names.
    pub(crate) values: Vec<ValueRow>,
    /// Objects of classes ckpt keeps inert (read as stored, never constructed), with their
    /// dotted names.
    pub(crate) objects: Vec<ObjectRow>,
    /// Every global the pickle references.
    pub(crate) globals: Vec<String>,
    /// The container's small records (`version`, `byteorder`...).
    pub(crate) records: BTreeMap<String, String>,
    pub(crate) pickle_protocol: Option<u8>,
    pub(crate) totals: Totals,
}

/// One tensor.
#[derive(Debug, Serialize)]
pub(crate) struct TensorRow {
    pub(crate) name: String,
    pub(crate) dtype: &'static str,
    pub(crate) shape: Vec<usize>,
    pub(crate) stride: Vec<usize>,
    pub(crate) storage_offset: usize,
    pub(crate) parameters: u64,
    pub(crate) bytes: u64,
    /// Where the tensor's bytes lie in the file, `[start, end)`, when they are contiguous.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) offsets: Option<[u64; 2]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) sha256: Option<String>,
    /// The files of a multi-file checkpoint that hold the tensor (its shard, or the
    /// `.distcp` files of its chunks); absent for a single file.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) files: Vec<String>,
    /// Quantized tensors: the scale (a list per channel).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) q_scale: Option<serde_json::Value>,
    /// Quantized tensors: the zero point (a list per channel).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) q_zero_point: Option<serde_json::Value>,
    /// Per-channel quantized tensors: the channel axis.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) q_axis: Option<usize>,
}

/// One plain value.
#[derive(Debug, Serialize)]
pub(crate) struct ValueRow {
    pub(crate) name: String,
    #[serde(rename = "type")]
    pub(crate) type_name: String,
    /// The value as JSON (exact integers of any size, `"nan"`/`"inf"` for such floats,
    /// hex for bytes, `[re, im]` for complex numbers).
    pub(crate) value: Box<RawValue>,
    /// The value as Python prints it, for the text output.
    #[serde(skip)]
    pub(crate) repr: String,
}

/// One object of a class ckpt keeps inert.
#[derive(Debug, Serialize)]
pub(crate) struct ObjectRow {
    pub(crate) name: String,
    pub(crate) class: String,
}

/// Sums over all tensors, and per dtype.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Totals {
    pub(crate) tensors: usize,
    pub(crate) parameters: u64,
    pub(crate) bytes: u64,
    pub(crate) by_dtype: BTreeMap<&'static str, DtypeTotals>,
}

/// Sums over the tensors of one dtype.
#[derive(Debug, Default, Serialize)]
pub(crate) struct DtypeTotals {
    pub(crate) tensors: usize,
    pub(crate) parameters: u64,
    pub(crate) bytes: u64,
}

pub(crate) fn run(args: &InspectArgs, limits: &ckpt::Limits) -> anyhow::Result<Outcome> {
    if let [file] = args.files.as_slice() {
        if let Some(report) = one(file, args, limits)? {
            print(&report, args.json)?;
        }
        return Ok(Outcome::Success);
    }
    // Several files: each in turn (a JSON array of reports), an unreadable one reported
    // and skipped; exit 2 at the end if one was.
    let (_, failed) = super::each_file(
        &args.files,
        args.json,
        |file| one(file, args, limits),
        output::inspect::render,
    )?;
    Ok(if failed {
        Outcome::Failed
    } else {
        Outcome::Success
    })
}

fn print(report: &InspectReport, json: bool) -> anyhow::Result<()> {
    if json {
        output::json(report)?;
    } else {
        output::inspect::render(report)?;
    }
    Ok(())
}

/// The report on one file; `None` when `--pickle` printed its listing instead.
fn one(
    file: &std::path::Path,
    args: &InspectArgs,
    limits: &ckpt::Limits,
) -> anyhow::Result<Option<InspectReport>> {
    let source = super::open(file, limits)?;
    source.advise(if args.hash {
        Access::Sequential
    } else {
        Access::Sparse
    });
    // A multi-file checkpoint: the pickle of its main file (a DCP `.metadata`).
    let source = match source.files().first() {
        Some(main) if args.pickle && source.is_multi_file() => Source::open_file(main)?,
        _ => source,
    };
    if args.pickle {
        let pickles =
            ckpt::torch::pickles(source.bytes()).map_err(|e| e.with_path(source.path()))?;
        if args.files.len() > 1 {
            output::heading(&source.path().display().to_string())?;
        }
        output::inspect::listing(&pickles)?;
        return Ok(None);
    }
    let checkpoint = source.checkpoint()?;
    let tensors = checkpoint.tensors();
    let hashes = if args.hash {
        let progress = Progress::new("hashing");
        Some(ckpt::sha256_all(&tensors, &progress).map_err(|e| e.with_path(source.path()))?)
    } else {
        None
    };
    Ok(Some(report(
        &source,
        &checkpoint,
        &tensors,
        hashes.as_deref(),
    )?))
}

fn report(
    source: &Source,
    checkpoint: &Checkpoint<'_>,
    tensors: &[(String, &TensorView<'_>)],
    hashes: Option<&[[u8; 32]]>,
) -> serde_json::Result<InspectReport> {
    let mut totals = Totals::default();
    let rows = tensors
        .iter()
        .enumerate()
        .map(|(i, (name, view))| {
            let parameters = view.numel() as u64 * view.dtype().values_per_element();
            let bytes = view.nbytes() as u64;
            totals.tensors += 1;
            totals.parameters += parameters;
            totals.bytes += bytes;
            let by_dtype = totals.by_dtype.entry(view.dtype().name()).or_default();
            by_dtype.tensors += 1;
            by_dtype.parameters += parameters;
            by_dtype.bytes += bytes;
            TensorRow {
                name: name.clone(),
                dtype: view.dtype().name(),
                shape: view.shape().to_vec(),
                stride: view.strides().to_vec(),
                storage_offset: view.storage_offset(),
                parameters,
                bytes,
                offsets: view.file_range().map(|(start, end)| [start, end]),
                files: view.files().into_iter().map(str::to_owned).collect(),
                sha256: hashes
                    .and_then(|h| h.get(i))
                    .map(|digest| output::hex(digest)),
                q_scale: view.quantization().map(|q| match q {
                    Quantization::PerTensor { scale, .. } => (*scale).into(),
                    Quantization::PerChannel { scales, .. } => scales.clone().into(),
                }),
                q_zero_point: view.quantization().map(|q| match q {
                    Quantization::PerTensor { zero_point, .. } => (*zero_point).into(),
                    Quantization::PerChannel { zero_points, .. } => zero_points
                        .iter()
                        .map(|&z| match z {
                            #[allow(clippy::cast_possible_truncation)] // integral, in range
                            z if z.fract() == 0.0 && z.abs() < 9e15 => {
                                serde_json::Value::from(z as i64)
                            }
                            z => serde_json::Value::from(z),
                        })
                        .collect(),
                }),
                q_axis: view.quantization().and_then(|q| match q {
                    Quantization::PerTensor { .. } => None,
                    Quantization::PerChannel { axis, .. } => Some(*axis),
                }),
            }
        })
        .collect();
    let details = checkpoint.details();
    let path = source.path().display().to_string();
    let values = checkpoint
        .values()
        .into_iter()
        .map(|(name, value)| {
            Ok(ValueRow {
                name,
                type_name: value.type_name().to_owned(),
                value: value_json(value)?,
                repr: value.to_string(),
            })
        })
        .collect::<serde_json::Result<_>>()?;
    Ok(InspectReport {
        load: load_line(checkpoint, &path),
        path,
        format: checkpoint.format().name(),
        file_size: source.len(),
        kind: checkpoint.kind().name(),
        keys: checkpoint.top_level_keys(),
        weights_only: details.weights_only,
        needs: details.needs.clone(),
        metadata: checkpoint.metadata().clone(),
        tensors: rows,
        shared: checkpoint.shared_storages(),
        values,
        objects: checkpoint
            .objects()
            .into_iter()
            .map(|(name, object)| ObjectRow {
                name,
                class: object.class.clone(),
            })
            .collect(),
        globals: details.globals.clone(),
        records: details.records.clone(),
        pickle_protocol: details.pickle_protocol,
        totals,
    })
}

/// A plain value as JSON (see [`ValueRow::value`]).
fn value_json(value: &Value<'_>) -> serde_json::Result<Box<RawValue>> {
    fn float(x: f64) -> serde_json::Value {
        if x.is_nan() {
            "nan".into()
        } else if x.is_infinite() {
            if x > 0.0 { "inf" } else { "-inf" }.into()
        } else {
            x.into()
        }
    }
    fn plain(value: &Value<'_>) -> String {
        let json = match value {
            Value::None => serde_json::Value::Null,
            Value::Bool(b) => (*b).into(),
            Value::Int(i) => (*i).into(),
            // Exact, as a JSON number of any size.
            Value::BigInt(digits) => return digits.clone(),
            Value::Float(x) => float(*x),
            Value::Complex(re, im) => serde_json::Value::Array(vec![float(*re), float(*im)]),
            Value::Str(s) => s.clone().into(),
            Value::Bytes(b) | Value::ByteArray(b) => output::hex(b).into(),
            Value::Size(dims) => dims.clone().into(),
            Value::Device(d) => d.clone().into(),
            Value::Dtype(d) => d.name().into(),
            Value::Named { name, .. } => name.clone().into(),
            // An inert object listed as one value (a path, a date, an enum): its reading,
            // or its one argument, as JSON; `type` names the class.
            Value::Object(object) => match (&object.reading, object.args.as_slice()) {
                (Some(reading), _) => return plain(reading),
                (None, [only]) if object.state.is_none() && object.entries.is_empty() => {
                    return plain(only);
                }
                _ => object.to_string().into(),
            },
            Value::Global(name) => name.clone().into(),
            Value::Dict(dict) if dict.entries.is_empty() => serde_json::json!({}),
            Value::List(items)
            | Value::Tuple(items)
            | Value::Set(items)
            | Value::FrozenSet(items) => {
                let parts: Vec<String> = items.iter().map(plain).collect();
                return format!("[{}]", parts.join(","));
            }
            Value::Slice(parts) => {
                let parts: Vec<String> = parts.iter().map(plain).collect();
                return format!("[{}]", parts.join(","));
            }
            other => other.to_string().into(),
        };
        json.to_string()
    }
    RawValue::from_string(plain(value))
}

/// A line of Python that loads the file, given what it is.
fn load_line(checkpoint: &Checkpoint<'_>, path: &str) -> String {
    let path = format!("{path:?}");
    let details = checkpoint.details();
    match (checkpoint.format(), checkpoint.kind(), details.weights_only) {
        (Format::DistributedCheckpoint, ..) if details.records.contains_key("ranks") => format!(
            "saved without collectives: torch loads it only rank by rank, each rank its own \
             part (dcp.load in the same world); as one file: ckpt convert {path} \
             weights.safetensors"
        ),
        (Format::DistributedCheckpoint, ..) if details.records.contains_key("writer") => format!(
            "torch.distributed.checkpoint.load with HuggingFaceStorageReader({path}) into \
             tensors of the right shapes; as one file: ckpt convert {path} weights.safetensors"
        ),
        (Format::DistributedCheckpoint, ..) => format!(
            "torch.distributed.checkpoint.format_utils.dcp_to_torch_save({path}, \"out.pt\"), \
             or: ckpt convert {path} weights.safetensors"
        ),
        _ if details.records.contains_key("index") => format!(
            "a sharded checkpoint: transformers' from_pretrained on its folder, or \
             ckpt convert {path} weights.safetensors for one file"
        ),
        (Format::Safetensors, ..) if checkpoint.metadata().contains_key("DCP_SHARDING_INFO") => {
            "one rank's file of a DCP HuggingFaceStorageWriter save: its tensors may be parts \
             (DCP_SHARDING_INFO says where each starts); read them whole from the folder: \
             ckpt convert FOLDER weights.safetensors"
                .to_owned()
        }
        (Format::Safetensors, ..) => format!("safetensors.torch.load_file({path})"),
        (Format::TorchScript, ..) => format!(
            "torch.jit.load({path}) runs the archive's TorchScript code; for the weights alone: \
             ckpt convert {path} weights.safetensors"
        ),
        (_, Kind::StateDict, Some(true)) => {
            format!("model.load_state_dict(torch.load({path}, weights_only=True))")
        }
        (_, Kind::Checkpoint, Some(true)) => {
            let keys = checkpoint.top_level_keys();
            match keys.iter().find(|k| {
                matches!(
                    k.as_str(),
                    "model" | "state_dict" | "model_state_dict" | "model_state"
                )
            }) {
                Some(key) => {
                    format!("model.load_state_dict(torch.load({path}, weights_only=True)[{key:?}])")
                }
                None => format!("torch.load({path}, weights_only=True)"),
            }
        }
        (_, _, Some(true)) => format!("torch.load({path}, weights_only=True)"),
        _ => format!(
            "torch.load refuses this file with weights_only=True (it needs {}); convert it \
             first: ckpt convert {path} weights.safetensors, then safetensors.torch.load_file",
            if details.needs.is_empty() {
                "opcodes the weights-only unpickler lacks".to_owned()
            } else {
                details.needs.join(", ")
            }
        ),
    }
}
