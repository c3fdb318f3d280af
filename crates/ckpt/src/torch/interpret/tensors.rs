//! Tensors: storages named by persistent ids, torch's rebuild functions (views of a
//! storage, parameters, quantized tensors, tensors with Python attributes), and the tensors
//! ckpt cannot read yet (meta, sparse, nested), refused with a reason.

use ckpt_pickle::{Object, ObjectId, Pickle};

use super::{Walker, global_of, text};
use crate::error::{Error, Result};
use crate::model::{Dtype, Quantization, Storage, TensorView, Value};
use crate::torch::globals::{self, Meaning, Rebuild, StorageKind};

/// A storage reference: `("storage", storage_type, key, location, numel[, view_metadata])`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StorageId {
    pub(crate) kind: StorageKind,
    pub(crate) key: String,
    pub(crate) numel: u64,
    /// Legacy views of a larger storage: `(view_key, offset, size)`, in elements.
    pub(crate) view: Option<(u64, u64)>,
}

/// Where a container finds the bytes of the storages a pickle refers to.
pub(crate) trait Storages<'data> {
    /// The storage for a persistent id, whose size has been checked against it.
    fn storage(&mut self, id: &StorageId) -> Result<Storage<'data>>;

    /// A persistent id that is not a storage tuple (the tar format refers to whole
    /// tensors by key). By default, refused.
    fn other(&mut self, pid: &str) -> Result<Value<'data>> {
        Err(Error::malformed(format!(
            "persistent id `{pid}` is not a storage reference"
        )))
    }
}

impl<'data> Walker<'_, '_, '_, 'data> {
    /// A persistent id used as a value: a bare storage, read as a 1-d tensor of its
    /// elements, or whatever else the container says the id is.
    pub(super) fn persistent_value(&mut self, pid: ObjectId) -> Result<Value<'data>> {
        match self.storage_id(pid)? {
            Some(storage_id) => {
                // A bare storage: read as a 1-d tensor of its elements.
                let storage = self.storage(pid, &storage_id)?;
                let dtype = match storage_id.kind {
                    StorageKind::Typed(dtype) => dtype,
                    StorageKind::Untyped => Dtype::UInt8,
                };
                let numel = usize::try_from(storage_id.numel).unwrap_or(usize::MAX);
                TensorView::strided(dtype, vec![numel], vec![1], 0, storage)
                    .map(Value::Tensor)
                    .map_err(|e| e.at_offset(self.pickle.offset(pid)))
            }
            None => {
                let key = self
                    .text(pid)
                    .or_else(|| self.pickle.as_int(pid).map(|i| i.to_string()));
                match key {
                    Some(key) => self.storages.other(&key),
                    None => Err(self.error(pid, "persistent id of an unknown form")),
                }
            }
        }
    }

    fn storage_id(&self, pid: ObjectId) -> Result<Option<StorageId>> {
        storage_id(self.pickle, pid)
    }

    fn storage(&mut self, pid: ObjectId, id: &StorageId) -> Result<Storage<'data>> {
        self.storages
            .storage(id)
            .map_err(|e| e.at_offset(self.pickle.offset(pid)))
    }

    /// The storage argument of a rebuild function.
    fn storage_arg(&mut self, arg: ObjectId) -> Result<(StorageId, Storage<'data>)> {
        let Object::PersistentId(pid) = self.pickle.get(arg) else {
            return Err(self.error(arg, "tensor storage is not a persistent id"));
        };
        let pid = *pid;
        let id = self
            .storage_id(pid)?
            .ok_or_else(|| self.error(pid, "tensor storage is not a storage reference"))?;
        let storage = self.storage(arg, &id)?;
        Ok((id, storage))
    }

    /// A flag as Python's `bool()` sees it (`requires_grad` arguments): `True`, nonzero
    /// integers; anything else reads as false.
    fn truthy(&self, id: ObjectId) -> bool {
        match self.pickle.get(id) {
            Object::Bool(b) => *b,
            Object::Int(i) => *i != 0,
            _ => false,
        }
    }

    /// The Python attributes a tensor's state sets (`_set_obj_state`): a dict, or a
    /// `(dict, slots)` pair, or `None`. Entries whose key is not text are left out (Python
    /// cannot set them as attributes).
    fn object_state(
        &mut self,
        state: ObjectId,
        depth: usize,
    ) -> Result<Vec<(String, Value<'data>)>> {
        let parts = match self.value(state, depth + 1)? {
            Value::Tuple(parts) if parts.len() == 2 => parts,
            other => vec![other],
        };
        let mut attributes = Vec::new();
        for part in parts {
            if let Value::Dict(dict) = part {
                for (key, value) in dict.entries {
                    if let Value::Str(name) = key {
                        attributes.push((name, value));
                    }
                }
            }
        }
        Ok(attributes)
    }

    /// `{"conj": True, "neg": True}` of `_rebuild_tensor_v2/3`.
    fn tensor_flags(&mut self, metadata: Option<ObjectId>, depth: usize) -> Result<(bool, bool)> {
        let Some(metadata) = metadata else {
            return Ok((false, false));
        };
        let mut flags = (false, false);
        let Value::Dict(dict) = self.value(metadata, depth + 1)? else {
            return Err(self.error(metadata, "tensor metadata is not a dict"));
        };
        for (key, value) in dict.entries {
            let on = matches!(value, Value::Bool(true));
            match key {
                Value::Str(k) if k == "conj" => flags.0 = on,
                Value::Str(k) if k == "neg" => flags.1 = on,
                _ => {}
            }
        }
        Ok(flags)
    }

    fn view(
        &mut self,
        id: ObjectId,
        storage_arg: ObjectId,
        offset: ObjectId,
        size: ObjectId,
        stride: ObjectId,
        dtype: Option<Dtype>,
    ) -> Result<TensorView<'data>> {
        let (storage_id, storage) = self.storage_arg(storage_arg)?;
        let dtype = match (dtype, storage_id.kind) {
            (Some(dtype), _) => dtype,
            (None, StorageKind::Typed(dtype)) => dtype,
            (None, StorageKind::Untyped) => {
                return Err(self.error(
                    id,
                    "an untyped storage needs _rebuild_tensor_v3 and a dtype",
                ));
            }
        };
        let offset = self.unsigned(offset, "storage offset")?;
        let shape = self.dims(size, "tensor size")?;
        let strides = self.dims(stride, "tensor stride")?;
        TensorView::strided(dtype, shape, strides, offset, storage).map_err(|e| {
            e.with_member(format!("data/{}", storage_id.key))
                .at_offset(self.pickle.offset(id))
        })
    }

    /// A call of a rebuild function of `torch._utils`, `function`.
    pub(super) fn rebuild(
        &mut self,
        id: ObjectId,
        how: Rebuild,
        function: &str,
        args: &[ObjectId],
        depth: usize,
    ) -> Result<Value<'data>> {
        let tensor = match (how, args) {
            (Rebuild::Tensor, [storage, offset, size, stride]) => {
                self.view(id, *storage, *offset, *size, *stride, None)?
            }
            (Rebuild::TensorV2, [storage, offset, size, stride, grad, _hooks, metadata @ ..])
                if metadata.len() <= 1 =>
            {
                let flags = self.tensor_flags(metadata.first().copied(), depth)?;
                self.view(id, *storage, *offset, *size, *stride, None)?
                    .with_conj(flags.0)
                    .with_neg(flags.1)
                    .with_requires_grad(self.truthy(*grad))
            }
            (
                Rebuild::TensorV3,
                [
                    storage,
                    offset,
                    size,
                    stride,
                    grad,
                    _hooks,
                    dtype,
                    metadata @ ..,
                ],
            ) if metadata.len() <= 1 => {
                let dtype = match self.value(*dtype, depth + 1)? {
                    Value::Dtype(dtype) => dtype,
                    _ => return Err(self.error(*dtype, "_rebuild_tensor_v3 needs a dtype")),
                };
                let flags = self.tensor_flags(metadata.first().copied(), depth)?;
                self.view(id, *storage, *offset, *size, *stride, Some(dtype))?
                    .with_conj(flags.0)
                    .with_neg(flags.1)
                    .with_requires_grad(self.truthy(*grad))
            }
            (Rebuild::Parameter, [data, grad, _hooks]) => {
                return match self.value(*data, depth + 1)? {
                    Value::Tensor(tensor) => Ok(Value::Tensor(
                        tensor
                            .with_parameter(true)
                            .with_requires_grad(self.truthy(*grad)),
                    )),
                    _ => Err(self.error(id, "a Parameter whose data is not a tensor")),
                };
            }
            (Rebuild::ParameterWithState, [data, grad, _hooks, state]) => {
                return match self.value(*data, depth + 1)? {
                    Value::Tensor(tensor) => {
                        let attributes = self.object_state(*state, depth)?;
                        Ok(Value::Tensor(
                            tensor
                                .with_parameter(true)
                                .with_requires_grad(self.truthy(*grad))
                                .with_attributes(attributes),
                        ))
                    }
                    _ => Err(self.error(id, "a Parameter whose data is not a tensor")),
                };
            }
            (Rebuild::QTensor, [storage, offset, size, stride, qparams, grad, _hooks]) => {
                let quantization = self.quantization(*qparams, depth)?;
                self.view(id, *storage, *offset, *size, *stride, None)?
                    .with_quantization(quantization)
                    .with_requires_grad(self.truthy(*grad))
            }
            (Rebuild::FromData, [data, ..]) => {
                return self.value(*data, depth + 1);
            }
            (Rebuild::Meta, _) => {
                return Err(Error::unsupported(
                    "the file holds a meta tensor, which has a shape but no data",
                )
                .at_offset(self.pickle.offset(id)));
            }
            (Rebuild::Sparse, _) => {
                return Err(Error::unsupported("sparse tensors are not supported yet")
                    .at_offset(self.pickle.offset(id)));
            }
            (Rebuild::Unsupported, _) => {
                return Err(Error::unsupported(format!(
                    "tensors rebuilt by torch._utils.{function} are not supported"
                ))
                .at_offset(self.pickle.offset(id)));
            }
            (
                Rebuild::Tensor
                | Rebuild::TensorV2
                | Rebuild::TensorV3
                | Rebuild::Parameter
                | Rebuild::ParameterWithState
                | Rebuild::QTensor,
                _,
            ) => {
                return Err(self.error(
                    id,
                    format!(
                        "torch._utils.{function} called with {} arguments",
                        args.len()
                    ),
                ));
            }
            // Without the argument that holds its data, refused as an unknown call.
            (Rebuild::FromData, []) => {
                return Err(self.refuse(id, "calls", "torch._utils", function));
            }
        };
        Ok(Value::Tensor(tensor))
    }

    /// `_rebuild_from_type_v2(func, new_type, args, state)`: the tensor `func(*args)`
    /// rebuilds, as a plain tensor or a parameter, with the Python attributes of `state`.
    pub(super) fn rebuild_from_type(
        &mut self,
        id: ObjectId,
        args: &[ObjectId],
        depth: usize,
    ) -> Result<Value<'data>> {
        match args {
            [func, new_type, inner_args, state] => {
                let parameter = match self.meaning_of(*new_type) {
                    Some(Meaning::Tensor) => false,
                    Some(Meaning::Parameter) => true,
                    _ => {
                        let (m, n) = self.global_of(*new_type).unwrap_or_default();
                        return Err(self.refuse(id, "rebuilds a tensor as the subclass", &m, &n));
                    }
                };
                // The inner call is a value of its own: depth, cycles and budget apply.
                self.enter(*inner_args, depth + 1)?;
                let result = self.call(id, *func, *inner_args, depth + 1);
                self.leave(*inner_args);
                match result? {
                    Value::Tensor(tensor) => {
                        let mut attributes = tensor.attributes().to_vec();
                        attributes.extend(self.object_state(*state, depth)?);
                        let parameter = parameter || tensor.is_parameter();
                        Ok(Value::Tensor(
                            tensor.with_parameter(parameter).with_attributes(attributes),
                        ))
                    }
                    other => Ok(other),
                }
            }
            _ => Err(self.error(id, "_rebuild_from_type_v2 takes 4 arguments")),
        }
    }

    /// `Parameter(data, requires_grad=True)`, built by `NEWOBJ`.
    pub(super) fn parameter(
        &mut self,
        id: ObjectId,
        args: ObjectId,
        depth: usize,
    ) -> Result<Value<'data>> {
        let args = self.args(args)?;
        let requires_grad = args.get(1).is_none_or(|&grad| self.truthy(grad));
        match args.first() {
            Some(&data) => match self.value(data, depth + 1)? {
                Value::Tensor(tensor) => Ok(Value::Tensor(
                    tensor
                        .with_parameter(true)
                        .with_requires_grad(requires_grad),
                )),
                _ => Err(self.error(id, "a Parameter whose data is not a tensor")),
            },
            None => Err(self.error(id, "a Parameter without data")),
        }
    }

    /// The quantizer parameters of `_rebuild_qtensor`: `(per_tensor_affine, scale,
    /// zero_point)` or `(per_channel_affine, scales, zero_points, axis)`.
    fn quantization(&mut self, params: ObjectId, depth: usize) -> Result<Quantization> {
        let items = self.args(params)?;
        let scheme = match items
            .first()
            .map(|&s| self.value(s, depth + 1))
            .transpose()?
        {
            Some(Value::Named { name, .. }) => name,
            _ => return Err(self.error(params, "quantizer parameters without a qscheme")),
        };
        let number = |w: &Self, id: ObjectId| -> Result<f64> {
            match w.pickle.get(id) {
                Object::Float(x) => Ok(*x),
                #[allow(clippy::cast_precision_loss)] // scales are floats in torch
                Object::Int(i) => Ok(*i as f64),
                _ => Err(w.error(id, "a quantization scale is not a number")),
            }
        };
        match (scheme.as_str(), items.as_slice()) {
            ("torch.per_tensor_affine" | "torch.per_tensor_symmetric", [_, scale, zero_point]) => {
                Ok(Quantization::PerTensor {
                    scale: number(self, *scale)?,
                    zero_point: self.int(*zero_point, "a zero point")?,
                })
            }
            (
                "torch.per_channel_affine"
                | "torch.per_channel_symmetric"
                | "torch.per_channel_affine_float_qparams",
                [_, scales, zero_points, axis],
            ) => {
                let scales = match self.value(*scales, depth + 1)? {
                    Value::Tensor(t) => tensor_numbers(&t)?,
                    _ => return Err(self.error(*scales, "per-channel scales are not a tensor")),
                };
                let (zero_points, float_qparams) = match self.value(*zero_points, depth + 1)? {
                    // Float zero points (per_channel_affine_float_qparams) stay floats; torch
                    // tells the two schemes apart by the zero points' dtype.
                    Value::Tensor(t) => (tensor_numbers(&t)?, t.dtype().is_float()),
                    _ => {
                        return Err(
                            self.error(*zero_points, "per-channel zero points are not a tensor")
                        );
                    }
                };
                Ok(Quantization::PerChannel {
                    scales,
                    zero_points,
                    float_qparams,
                    axis: self.unsigned(*axis, "a quantization axis")?,
                })
            }
            _ => Err(Error::unsupported(format!(
                "quantization scheme `{scheme}` is not supported"
            ))
            .at_offset(self.pickle.offset(params))),
        }
    }

    /// Whether an object is a tensor rebuild (so a TorchScript attribute is a tensor).
    pub(super) fn is_tensor_object(&self, id: ObjectId) -> bool {
        match self.pickle.get(id) {
            Object::Call { callable, .. } => matches!(
                self.meaning_of(*callable),
                Some(Meaning::Rebuild(_) | Meaning::RebuildFromType)
            ),
            _ => false,
        }
    }
}

/// The elements of a small float or integer tensor, as f64 (quantization parameters).
#[allow(clippy::cast_precision_loss)] // the values are scales and zero points
fn tensor_numbers(tensor: &TensorView<'_>) -> Result<Vec<f64>> {
    // One value per channel: a short 1-d tensor that does not repeat its storage.
    if tensor.shape().len() != 1 || tensor.nbytes() > tensor.storage().bytes().len() {
        return Err(Error::malformed(
            "per-channel quantization parameters are not a plain 1-d tensor",
        ));
    }
    let bytes = tensor.to_le_bytes()?;
    let values = match tensor.dtype() {
        Dtype::Float64 => bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap_or_default()))
            .collect(),
        Dtype::Float32 => bytes
            .chunks_exact(4)
            .map(|c| f64::from(f32::from_le_bytes(c.try_into().unwrap_or_default())))
            .collect(),
        Dtype::Int64 => bytes
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap_or_default()) as f64)
            .collect(),
        Dtype::Int32 => bytes
            .chunks_exact(4)
            .map(|c| f64::from(i32::from_le_bytes(c.try_into().unwrap_or_default())))
            .collect(),
        other => {
            return Err(Error::unsupported(format!(
                "quantization parameters of dtype {other}"
            )));
        }
    };
    Ok(values)
}

/// Parses a storage persistent id `("storage", type, key, location, numel[, view])`, or
/// `None` when `pid` is not a storage tuple.
pub(crate) fn storage_id(pickle: &Pickle<'_>, pid: ObjectId) -> Result<Option<StorageId>> {
    let error = |message: &str| Error::malformed(message.to_owned()).at_offset(pickle.offset(pid));
    let Some(items) = pickle.as_seq(pid) else {
        return Ok(None);
    };
    let [tag, storage_type, key, _location, numel, rest @ ..] = items else {
        return Ok(None);
    };
    if text(pickle, *tag).as_deref() != Some("storage") {
        return Ok(None);
    }
    let (module, name) = global_of(pickle, *storage_type)
        .ok_or_else(|| error("storage type is not a class name"))?;
    let kind = storage_kind(&module, &name)
        .ok_or_else(|| error(&format!("unknown storage type `{module}.{name}`")))?;
    let key = text(pickle, *key)
        .or_else(|| pickle.as_int(*key).map(|i| i.to_string()))
        .ok_or_else(|| error("storage key is not text"))?;
    let count = |id: ObjectId, what: &str| -> Result<u64> {
        pickle
            .as_int(id)
            .and_then(|i| u64::try_from(i).ok())
            .ok_or_else(|| error(&format!("{what} is not a non-negative integer")))
    };
    let numel = count(*numel, "storage size")?;
    let view = match rest {
        [] => None,
        [view] if matches!(pickle.get(*view), Object::None) => None,
        [view] => match pickle.as_seq(*view) {
            Some(&[_view_key, offset, size]) => {
                Some((count(offset, "view offset")?, count(size, "view size")?))
            }
            _ => return Err(error("storage view metadata is malformed")),
        },
        _ => return Err(error("storage persistent id has too many fields")),
    };
    Ok(Some(StorageId {
        kind,
        key,
        numel,
        view,
    }))
}

/// The dtype of a storage class (`torch.FloatStorage`, `torch.cuda.HalfStorage`,
/// `torch.storage.UntypedStorage`).
pub(crate) fn storage_kind(module: &str, name: &str) -> Option<StorageKind> {
    match globals::interpreted_meaning(module, name)? {
        Meaning::Storage(kind) => Some(kind),
        _ => None,
    }
}
