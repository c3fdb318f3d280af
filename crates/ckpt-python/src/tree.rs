//! A checkpoint's values as Python objects: containers, numbers and strings as Python's
//! own; what needs torch or numpy (tensors, sizes, devices, dtypes) and inert objects made
//! by a factory the Python half passes in, so that this crate imports neither.

use std::collections::HashMap;

use ckpt::model::{Object, TensorView, Value};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyComplex, PyDict, PyFrozenSet, PyList, PySet, PySlice, PyTuple};

/// Converts values, naming each tensor as the checkpoint lists it.
pub(crate) struct Builder<'a, 'py> {
    py: Python<'py>,
    factory: &'a Bound<'py, PyAny>,
    /// The name of each tensor of the checkpoint, by the address of its view in the tree.
    names: HashMap<usize, String>,
}

fn address(view: &TensorView<'_>) -> usize {
    std::ptr::from_ref(view) as usize
}

impl<'a, 'py> Builder<'a, 'py> {
    pub(crate) fn new<'t>(
        py: Python<'py>,
        factory: &'a Bound<'py, PyAny>,
        tensors: impl IntoIterator<Item = (String, &'t TensorView<'t>)>,
    ) -> Self {
        let names = tensors
            .into_iter()
            .map(|(name, view)| (address(view), name))
            .collect();
        Builder { py, factory, names }
    }

    /// `value` as a Python object.
    pub(crate) fn value(&self, value: &Value<'_>) -> PyResult<Bound<'py, PyAny>> {
        // Values nest as deep as the `depth` limit allows: grow the stack on the heap
        // rather than overflow the interpreter's thread.
        stacker::maybe_grow(64 << 10, 1 << 20, || self.value_inner(value))
    }

    fn values(&self, values: &[Value<'_>]) -> PyResult<Vec<Bound<'py, PyAny>>> {
        values.iter().map(|v| self.value(v)).collect()
    }

    fn pairs(&self, pairs: &[(Value<'_>, Value<'_>)]) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(self.py);
        for (key, value) in pairs {
            list.append((self.value(key)?, self.value(value)?))?;
        }
        Ok(list)
    }

    fn call(
        &self,
        method: &str,
        args: impl pyo3::call::PyCallArgs<'py>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.factory.call_method1(method, args)
    }

    fn value_inner(&self, value: &Value<'_>) -> PyResult<Bound<'py, PyAny>> {
        let py = self.py;
        Ok(match value {
            Value::None => py.None().into_bound(py),
            Value::Bool(b) => b.into_pyobject(py)?.to_owned().into_any(),
            Value::Int(i) => i.into_pyobject(py)?.into_any(),
            Value::BigInt(decimal) => py
                .get_type::<pyo3::types::PyInt>()
                .call1((decimal.as_str(),))?,
            Value::Float(x) => x.into_pyobject(py)?.into_any(),
            Value::Complex(re, im) => PyComplex::from_doubles(py, *re, *im).into_any(),
            Value::Str(s) => s.into_pyobject(py)?.into_any(),
            Value::Bytes(b) => PyBytes::new(py, b).into_any(),
            Value::ByteArray(b) => pyo3::types::PyByteArray::new(py, b).into_any(),
            Value::List(items) => PyList::new(py, self.values(items)?)?.into_any(),
            Value::Tuple(items) => PyTuple::new(py, self.values(items)?)?.into_any(),
            Value::Set(items) => PySet::new(py, self.values(items)?)?.into_any(),
            Value::FrozenSet(items) => PyFrozenSet::new(py, self.values(items)?)?.into_any(),
            Value::Dict(dict) => {
                if dict.ordered {
                    self.call("ordered_dict", (self.pairs(&dict.entries)?,))?
                } else {
                    let out = PyDict::new(py);
                    for (key, value) in &dict.entries {
                        out.set_item(self.value(key)?, self.value(value)?)?;
                    }
                    out.into_any()
                }
            }
            Value::Slice(parts) => {
                let [start, stop, step] = &**parts;
                py.get_type::<PySlice>().call1((
                    self.value(start)?,
                    self.value(stop)?,
                    self.value(step)?,
                ))?
            }
            Value::Size(dims) => self.call("size", (dims.clone(),))?,
            Value::Device(device) => self.call("device", (device.as_str(),))?,
            Value::Dtype(dtype) => self.call("dtype", (dtype.name(),))?,
            Value::Named { type_name, name } => {
                self.call("named", (type_name.as_str(), name.as_str()))?
            }
            Value::Tensor(view) => {
                let name = self.names.get(&address(view)).ok_or_else(|| {
                    crate::errors::InvalidError::new_err(
                        "a tensor of the checkpoint is not listed under any name",
                    )
                })?;
                self.call("tensor", (name.as_str(),))?
            }
            Value::Object(object) => self.object(object)?,
            Value::Global(name) => self.call("global_", (name.as_str(),))?,
            Value::Backref(class) => self.call("backref", (class.as_str(),))?,
            // A value of a kind this package does not know yet: by its text.
            other => other.to_string().into_pyobject(py)?.into_any(),
        })
    }

    /// An inert object: its natural reading where ckpt knows its shape (a path as text, a
    /// config as its dict), else a record of its class and parts.
    fn object(&self, object: &Object<'_>) -> PyResult<Bound<'py, PyAny>> {
        if let Some(reading) = &object.reading {
            return self.value(reading);
        }
        let state = match &object.state {
            Some(state) => self.value(state)?,
            None => self.py.None().into_bound(self.py),
        };
        self.call(
            "object",
            (
                object.class.as_str(),
                PyTuple::new(self.py, self.values(&object.args)?)?,
                self.pairs(&object.kwargs)?,
                state,
                PyList::new(self.py, self.values(&object.items)?)?,
                self.pairs(&object.entries)?,
            ),
        )
    }
}
