//! numpy arrays and scalars in pickles (`_reconstruct` with its `BUILD` state, `scalar`),
//! read as tensors over the bytes the pickle holds.

use ckpt_pickle::{Object, ObjectId};

use super::Walker;
use super::values::latin1;
use crate::error::{Error, Result};
use crate::model::{ByteOrder, Dtype, Storage, TensorView, Value};
use crate::torch::globals::Meaning;

impl<'data> Walker<'_, '_, '_, 'data> {
    /// `numpy.core.multiarray._reconstruct(ndarray, (0,), b'b')` with a `BUILD` state
    /// `(version, shape, dtype, is_fortran, data)`.
    pub(super) fn numpy_array(&mut self, id: ObjectId, depth: usize) -> Result<TensorView<'data>> {
        let state = *self
            .pickle
            .extras(id)
            .states
            .last()
            .ok_or_else(|| self.error(id, "numpy array without its state"))?;
        let items = self.args(state)?;
        let [_version, shape, dtype, fortran, data] = items.as_slice() else {
            return Err(self.error(
                state,
                "numpy array state is not (version, shape, dtype, is_fortran, data)",
            ));
        };
        let shape = self.dims(*shape, "numpy shape")?;
        let (dtype, byte_order) = self.numpy_dtype(*dtype)?;
        let fortran = matches!(self.pickle.get(*fortran), Object::Bool(true));
        let bytes = match self.value(*data, depth + 1)? {
            Value::Bytes(bytes) | Value::ByteArray(bytes) => bytes,
            // Python 2 pickles hold the data as `str`, which numpy reads as Latin-1 bytes.
            Value::Str(text) => latin1(&text)
                .ok_or_else(|| self.error(*data, "numpy array data is text that is not Latin-1"))?,
            _ => return Err(self.error(*data, "numpy array data is not bytes (an object array?)")),
        };
        let storage = Storage::owned(bytes, byte_order);
        let strides = if fortran {
            let mut strides = vec![0; shape.len()];
            let mut step = 1usize;
            for (slot, &dim) in strides.iter_mut().zip(&shape) {
                *slot = step;
                step = step.saturating_mul(dim.max(1));
            }
            strides
        } else {
            crate::model::shape::contiguous_strides(&shape)
                .map_err(|_| self.error(id, "numpy shape overflows"))?
        };
        let view = TensorView::strided(dtype, shape, strides, 0, storage)
            .map_err(|e| e.at_offset(self.pickle.offset(id)))?;
        if view.nbytes() != view.storage().bytes().len() {
            return Err(self.error(
                id,
                format!(
                    "numpy array data holds {} bytes but its dtype and shape need {}",
                    view.storage().bytes().len(),
                    view.nbytes()
                ),
            ));
        }
        Ok(view)
    }

    /// `numpy.core.multiarray.scalar(dtype, data)`: a 0-d tensor.
    pub(super) fn numpy_scalar(
        &mut self,
        id: ObjectId,
        args: &[ObjectId],
        depth: usize,
    ) -> Result<TensorView<'data>> {
        let [dtype, data] = args else {
            return Err(self.error(id, "numpy scalar takes a dtype and its bytes"));
        };
        let (dtype, byte_order) = self.numpy_dtype(*dtype)?;
        let bytes = match self.value(*data, depth + 1)? {
            Value::Bytes(bytes) => bytes,
            Value::Str(text) => latin1(&text).ok_or_else(|| {
                self.error(*data, "numpy scalar data is text that is not Latin-1")
            })?,
            _ => return Err(self.error(*data, "numpy scalar data is not bytes")),
        };
        TensorView::contiguous(dtype, Vec::new(), Storage::owned(bytes, byte_order))
            .map_err(|e| e.at_offset(self.pickle.offset(id)))
    }

    /// `numpy.dtype('f4', False, True)` with state `(3, '<', ...)`.
    fn numpy_dtype(&self, id: ObjectId) -> Result<(Dtype, ByteOrder)> {
        let Object::Call { callable, args } = self.pickle.get(id) else {
            return Err(self.error(id, "numpy dtype is not a numpy.dtype(...) call"));
        };
        if self.meaning_of(*callable) != Some(Meaning::NumpyDtype) {
            return Err(self.error(id, "numpy dtype is not a numpy.dtype(...) call"));
        }
        let code = self
            .args(*args)?
            .first()
            .and_then(|&c| self.text(c))
            .ok_or_else(|| self.error(id, "numpy dtype without a type code"))?;
        let order = self
            .pickle
            .extras(id)
            .states
            .last()
            .and_then(|&s| self.pickle.as_seq(s))
            .and_then(|items| items.get(1).copied())
            .and_then(|o| self.text(o))
            .unwrap_or_else(|| "|".to_owned());
        let dtype = numpy_dtype(&code).ok_or_else(|| {
            Error::unsupported(format!(
                "numpy arrays of dtype `{code}` are not numeric data ckpt reads"
            ))
            .at_offset(self.pickle.offset(id))
        })?;
        let byte_order = if order == ">" {
            ByteOrder::Big
        } else {
            ByteOrder::Little
        };
        Ok((dtype, byte_order))
    }
}

/// A numpy type code (`f4`, `<i8`, `bool`...) as a dtype.
fn numpy_dtype(code: &str) -> Option<Dtype> {
    let code = code.trim_start_matches(['<', '>', '|', '=']);
    Some(match code {
        "b1" | "bool" | "?" => Dtype::Bool,
        "i1" | "int8" | "b" => Dtype::Int8,
        "u1" | "uint8" | "B" => Dtype::UInt8,
        "i2" | "int16" | "h" => Dtype::Int16,
        "u2" | "uint16" | "H" => Dtype::UInt16,
        "i4" | "int32" | "i" => Dtype::Int32,
        "u4" | "uint32" | "I" => Dtype::UInt32,
        "i8" | "int64" | "l" | "q" => Dtype::Int64,
        "u8" | "uint64" | "L" | "Q" => Dtype::UInt64,
        "f2" | "float16" | "e" => Dtype::Float16,
        "f4" | "float32" | "f" => Dtype::Float32,
        "f8" | "float64" | "d" => Dtype::Float64,
        "c8" | "complex64" | "F" => Dtype::Complex64,
        "c16" | "complex128" | "D" => Dtype::Complex128,
        _ => return None,
    })
}
