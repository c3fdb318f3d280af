//! An opened checkpoint, held by a Python object: the files (mapped once) and the
//! checkpoint read from them, its tensors listed once by name.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use ckpt::model::{ByteOrder, Quantization, TensorView};
use ckpt::{Checkpoint, Limits, Source};
use pyo3::exceptions::PyKeyError;
use pyo3::prelude::*;
use pyo3::types::PyByteArray;

use crate::errors;

/// The checkpoint and its tensors by name, borrowing the mapped files.
struct Loaded<'a> {
    checkpoint: Checkpoint<'a>,
    tensors: Vec<(String, TensorView<'a>)>,
    index: HashMap<String, usize>,
}

self_cell::self_cell!(
    struct Opened {
        owner: Source,
        #[covariant]
        dependent: Loaded,
    }
);

/// How a tensor lies in its storage, for a view of it: where the storage's bytes lie as
/// they are (the descriptor of the file, open while the handle lives, and the offset in
/// it; `None` when they cannot be mapped: inflated, read from a stream, or big-endian),
/// the storage's length in bytes, the tensor's offset (in elements) and strides in it, and
/// a key that is equal for tensors of one storage. Last, whether torch keeps it as a
/// conjugate or negative view (its bits).
type Layout = (
    Option<(i64, u64)>,
    usize,
    usize,
    Vec<usize>,
    (usize, usize),
    (bool, bool),
);

/// What `ckpt.load` needs to make one tensor: its dtype's name and shape, its [`Layout`]
/// when it is a view of its storage, and whether it is quantized.
type Plan = (&'static str, Vec<usize>, Option<Layout>, bool);

/// The descriptor of `file`, for Python's `mmap` (which maps it copy-on-write, holding a
/// duplicate of it): the file ckpt read, not whatever its path names by then.
#[cfg(unix)]
fn descriptor(file: &std::fs::File) -> Option<i64> {
    use std::os::fd::AsRawFd;
    Some(i64::from(file.as_raw_fd()))
}

/// Elsewhere, storages are copied.
#[cfg(not(unix))]
fn descriptor(_file: &std::fs::File) -> Option<i64> {
    None
}

/// A checkpoint opened by the `ckpt` library (any container it reads): `ckpt.safe_open`
/// and `ckpt.load` are built on it.
#[pyclass(module = "ckpt._ckpt", frozen)]
pub(crate) struct Handle {
    inner: Opened,
}

/// The limits `--limit NAME=VALUE` would set, from a dict of names to numbers or sizes.
pub(crate) fn limits_from(
    py: Python<'_>,
    given: Option<HashMap<String, Bound<'_, PyAny>>>,
) -> PyResult<Limits> {
    let mut limits = Limits::default();
    for (name, value) in given.unwrap_or_default() {
        let text = value.str()?.to_string();
        errors::check(py, limits.set(&name, &text))?;
    }
    Ok(limits)
}

/// The names of the limits and what each bounds.
#[pyfunction]
pub(crate) fn limit_names() -> Vec<(&'static str, &'static str)> {
    ckpt::limits::NAMES.to_vec()
}

impl Handle {
    /// How `view` lies in its storage (see [`Layout`]), when it is a view of it: whole-byte
    /// elements, not quantized, not tiled. `None` when its elements must be produced
    /// (`read`).
    fn layout(&self, view: &TensorView<'_>) -> Option<Layout> {
        let size = view.dtype().byte_size()?;
        if view.tiles().is_some() || view.quantization().is_some() {
            return None;
        }
        let storage = view.storage();
        let as_is = size == 1 || storage.byte_order() == ByteOrder::Little;
        let source = self.inner.borrow_owner();
        let place = as_is
            .then(|| source.locate(storage))
            .flatten()
            .and_then(|stored| Some((descriptor(stored.file)?, stored.offset)));
        // An empty storage shares nothing.
        let key = view.storage_identity().unwrap_or((0, 0));
        Some((
            place,
            view.storage_nbytes(),
            view.storage_offset(),
            view.strides().to_vec(),
            key,
            (view.is_conj(), view.is_neg()),
        ))
    }

    fn view(&self, name: &str) -> PyResult<&TensorView<'_>> {
        let loaded = self.inner.borrow_dependent();
        loaded
            .index
            .get(name)
            .and_then(|&at| loaded.tensors.get(at))
            .map(|(_, view)| view)
            .ok_or_else(|| PyKeyError::new_err(format!("no tensor is called {name:?}")))
    }
}

#[pymethods]
impl Handle {
    /// Opens the checkpoint at `path` (a file, a shard index or folder, a DCP folder) and
    /// reads its structure; tensor data is read only when asked for.
    /// With `key`, only what lies under that dotted key, named without it.
    #[new]
    #[pyo3(signature = (path, limits=None, key=None))]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        limits: Option<HashMap<String, Bound<'_, PyAny>>>,
        key: Option<String>,
    ) -> PyResult<Self> {
        let limits = limits_from(py, limits)?;
        let opened = py.detach(|| {
            let source = Source::open_with(&path, &limits)?;
            Opened::try_new(source, |source| {
                let mut checkpoint = source.checkpoint()?;
                if let Some(key) = &key {
                    checkpoint = checkpoint.at_key(key)?;
                }
                let tensors: Vec<(String, TensorView<'_>)> = checkpoint
                    .tensors()
                    .into_iter()
                    .map(|(name, view)| (name, view.clone()))
                    .collect();
                let index = tensors
                    .iter()
                    .enumerate()
                    .map(|(at, (name, _))| (name.clone(), at))
                    .collect();
                Ok::<_, ckpt::Error>(Loaded {
                    checkpoint,
                    tensors,
                    index,
                })
            })
        });
        Ok(Handle {
            inner: errors::check(py, opened)?,
        })
    }

    /// The tensors' names, in the checkpoint's order.
    fn names(&self) -> Vec<String> {
        let loaded = self.inner.borrow_dependent();
        loaded
            .tensors
            .iter()
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// The tensors' names kept by glob `include` and `exclude` patterns (as the CLI's
    /// `--include`/`--exclude` match them), in the checkpoint's order.
    fn select(
        &self,
        py: Python<'_>,
        include: Vec<String>,
        exclude: Vec<String>,
    ) -> PyResult<Vec<String>> {
        let keys = errors::check(py, crate::commands::key_map(&include, &exclude, &[], &[]))?;
        let loaded = self.inner.borrow_dependent();
        Ok(loaded
            .tensors
            .iter()
            .filter(|(name, _)| keys.keeps(name))
            .map(|(name, _)| name.clone())
            .collect())
    }

    /// The checkpoint's text metadata (a safetensors header's `__metadata__`, a torch
    /// archive's records).
    fn metadata(&self) -> BTreeMap<String, String> {
        self.inner.borrow_dependent().checkpoint.metadata().clone()
    }

    /// The container's format (`safetensors`, `torch-zip`, ...).
    fn format(&self) -> &'static str {
        self.inner.borrow_dependent().checkpoint.format().name()
    }

    /// What the checkpoint holds, in a few words (`a state dict`, `a whole module`...).
    fn kind(&self) -> &'static str {
        self.inner.borrow_dependent().checkpoint.kind().name()
    }

    /// What opening the path chose that a person should know (which file of a model
    /// folder was read...).
    fn notes(&self) -> Vec<String> {
        self.inner.borrow_owner().notes().to_vec()
    }

    /// Every file the checkpoint is read from.
    fn files(&self) -> Vec<PathBuf> {
        let source = self.inner.borrow_owner();
        source.files().into_iter().map(PathBuf::from).collect()
    }

    /// The checkpoint's whole value as Python objects, built with `factory` (the Python
    /// half's maker of tensors, sizes, devices, dtypes and inert objects).
    fn tree<'py>(
        &self,
        py: Python<'py>,
        factory: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let checkpoint = &self.inner.borrow_dependent().checkpoint;
        let builder = crate::tree::Builder::new(py, factory, checkpoint.tensors());
        builder.value(checkpoint.root())
    }

    /// `(dtype, shape)` of the tensor `name`, without reading its data.
    fn info(&self, name: &str) -> PyResult<(&'static str, Vec<usize>)> {
        let view = self.view(name)?;
        Ok((view.dtype().name(), view.shape().to_vec()))
    }

    /// How `name` is made (see [`Plan`]): one call per tensor, without reading its data.
    fn plan(&self, name: &str) -> PyResult<Plan> {
        let view = self.view(name)?;
        let layout = self.layout(view);
        Ok((
            view.dtype().name(),
            view.shape().to_vec(),
            layout,
            view.quantization().is_some(),
        ))
    }

    /// The bytes of the storage `name` is a view of, its elements little-endian, in a new
    /// `bytearray` (for views whose storage cannot be mapped from the file).
    fn storage<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyByteArray>> {
        let view = self.view(name)?;
        let storage = view.storage();
        let bytes = storage.bytes();
        // Complex numbers swap each of their two parts.
        let size = view.dtype().swap_size();
        let swap = size > 1 && storage.byte_order() == ByteOrder::Big;
        PyByteArray::new_with(py, bytes.len(), |buffer| {
            py.detach(|| {
                buffer.copy_from_slice(bytes);
                if swap {
                    for element in buffer.chunks_exact_mut(size) {
                        element.reverse();
                    }
                }
            });
            Ok(())
        })
    }

    /// How the integers of a quantized tensor map to real numbers: `None`, or
    /// `("per_tensor", scale, zero_point)`, or `("per_channel", scales, zero_points, axis,
    /// float_qparams)`.
    fn quantization<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        let view = self.view(name)?;
        Ok(match view.quantization() {
            None => py.None().into_bound(py),
            Some(Quantization::PerTensor { scale, zero_point }) => {
                ("per_tensor", *scale, *zero_point)
                    .into_pyobject(py)?
                    .into_any()
            }
            Some(Quantization::PerChannel {
                scales,
                zero_points,
                axis,
                float_qparams,
            }) => (
                "per_channel",
                scales.clone(),
                zero_points.clone(),
                *axis,
                *float_qparams,
            )
                .into_pyobject(py)?
                .into_any(),
        })
    }

    /// The elements of `name` as packed row-major little-endian bytes, in a new
    /// `bytearray` (the GIL is released while they are produced).
    fn read<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyByteArray>> {
        produce(py, self.view(name)?, name)
    }

    /// The elements of rows `start..start + len` of `name` (along its first dimension), as
    /// [`Handle::read`] gives all of them: only those rows are read (for `get_slice`).
    fn read_rows<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        start: usize,
        len: usize,
    ) -> PyResult<Bound<'py, PyByteArray>> {
        let rows = self.view(name)?.narrow(0, start, len);
        let rows = errors::check(py, rows.map_err(|e| e.with_tensor(name)))?;
        produce(py, &rows, name)
    }
}

/// The elements of `view` as packed row-major little-endian bytes, in a new `bytearray`,
/// produced with the GIL released; errors name the tensor `name`.
fn produce<'py>(
    py: Python<'py>,
    view: &TensorView<'_>,
    name: &str,
) -> PyResult<Bound<'py, PyByteArray>> {
    errors::check(py, view.check_producible())?;
    let len = view.nbytes();
    PyByteArray::new_with(py, len, |buffer| {
        let filled = py.detach(|| {
            let mut at = 0usize;
            view.for_each_chunk(|chunk| {
                let end = at.saturating_add(chunk.len());
                let Some(place) = buffer.get_mut(at..end) else {
                    return Err(ckpt::Error::malformed(
                        "the tensor produced more bytes than its shape holds",
                    ));
                };
                place.copy_from_slice(chunk);
                at = end;
                Ok(())
            })?;
            if at != buffer.len() {
                return Err(ckpt::Error::malformed(
                    "the tensor produced fewer bytes than its shape holds",
                ));
            }
            Ok(())
        });
        errors::check(py, filled.map_err(|e: ckpt::Error| e.with_tensor(name)))
    })
}
