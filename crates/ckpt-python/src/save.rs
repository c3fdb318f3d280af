//! `ckpt.save`: tensors a caller holds, written by the library's writers (safetensors,
//! `.pth`, shards), atomically, without copying them first.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ckpt::model::{ByteOrder, Dict, Storage, TensorView};
use ckpt::{Checkpoint, ConvertOptions, Dtype, Format, Target, Value};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors;
use crate::memory::Held;

/// One tensor to save: its name, dtype name, shape, strides and offset (in elements) in
/// its storage, the object that owns the storage (a torch CPU `UntypedStorage`, or a
/// C-contiguous numpy array), and whether it is a conjugate or negative view of it.
type Entry<'py> = (
    String,
    String,
    Vec<usize>,
    Vec<usize>,
    usize,
    Bound<'py, PyAny>,
    (bool, bool),
);

/// The address and length of the memory `owner` holds.
fn region(owner: &Bound<'_, PyAny>) -> PyResult<(usize, usize)> {
    if owner.hasattr("data_ptr")? {
        // A torch UntypedStorage.
        let device = owner
            .getattr("device")?
            .getattr("type")?
            .extract::<String>()?;
        if device != "cpu" {
            return Err(errors::InvalidError::new_err(format!(
                "a tensor on {device} cannot be saved from where it is: move it to the CPU"
            )));
        }
        return Ok((
            owner.call_method0("data_ptr")?.extract()?,
            owner.call_method0("nbytes")?.extract()?,
        ));
    }
    // A numpy array.
    let address = owner.getattr("ctypes")?.getattr("data")?.extract()?;
    Ok((address, owner.getattr("nbytes")?.extract()?))
}

/// Writes `tensors` to `path` (see `ckpt.save`).
#[pyfunction]
#[pyo3(signature = (tensors, path, *, target=None, metadata=None, max_shard_size=None, sync=true))]
pub(crate) fn save<'py>(
    py: Python<'py>,
    tensors: Vec<Entry<'py>>,
    path: PathBuf,
    target: Option<&str>,
    metadata: Option<BTreeMap<String, String>>,
    max_shard_size: Option<Bound<'py, PyAny>>,
    sync: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let target = match target {
        Some("safetensors") => Target::Safetensors,
        Some("pth") => Target::Torch,
        Some(other) => {
            return Err(errors::InvalidError::new_err(format!(
                "the format is safetensors or pth, not {other:?}"
            )));
        }
        // Named as `ckpt convert` names its outputs; a folder of shards is safetensors.
        None => Target::from_path(&path)
            .or(max_shard_size.is_some().then_some(Target::Safetensors))
            .ok_or_else(|| {
                errors::InvalidError::new_err(format!(
                    "cannot tell the format from the name {:?}: end it in .safetensors or \
                     .pt/.pth/.bin, or give format='safetensors' or 'pth'",
                    path.display().to_string()
                ))
            })?,
    };
    let mut held = Held::new();
    let mut parts = Vec::with_capacity(tensors.len());
    for (name, dtype, shape, strides, offset, owner, bits) in tensors {
        let dtype = Dtype::from_name(&dtype).ok_or_else(|| {
            errors::InvalidError::new_err(format!("{name}: {dtype:?} is not a dtype ckpt knows"))
        })?;
        let (address, len) = region(&owner)?;
        let index = held.hold(owner, address, len)?;
        parts.push((name, dtype, shape, strides, offset, index, bits));
    }
    let mut entries = Vec::with_capacity(parts.len());
    for (name, dtype, shape, strides, offset, index, (conj, neg)) in parts {
        let storage = Storage::new(held.bytes(index), ByteOrder::Little);
        let view = errors::check(
            py,
            TensorView::strided(dtype, shape, strides, offset, storage)
                .map_err(|e| e.with_tensor(name.clone())),
        )?
        .with_conj(conj)
        .with_neg(neg);
        entries.push((Value::Str(name), Value::Tensor(view)));
    }
    // A safetensors output holds the metadata given and nothing else, as save_file writes
    // it; a `.pth` holds the dict of tensors.
    let format = match target {
        Target::Safetensors => Format::Safetensors,
        _ => Format::TorchZip,
    };
    let checkpoint = Checkpoint::new(
        format,
        metadata.unwrap_or_default(),
        Value::Dict(Dict::new(entries)),
    );
    let options = ConvertOptions::new(target)
        .overwrite(true)
        .sync(sync)
        .max_shard_size(crate::commands::shard_size(py, max_shard_size)?);
    // The GIL stays held: the tensors' memory is read where it is, and no Python code may
    // run meanwhile.
    let written = errors::check(py, ckpt::write(&checkpoint, &path, &options, &()))?;
    let report = PyDict::new(py);
    report.set_item("tensors", written.tensors)?;
    report.set_item("bytes", written.bytes)?;
    report.set_item("files", written.files)?;
    Ok(report)
}
