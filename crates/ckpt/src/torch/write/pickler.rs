//! A [`Value`] tree as the protocol-2 pickle `torch.save` writes in `data.pkl`.
//!
//! The output uses only the opcodes of torch's weights-only unpickler and only globals of
//! its allowlist, spelled as Python 3's pickler spells them at protocol 2
//! (`__builtin__.set`), so that `torch.load(f, weights_only=True)` gives back the tree:
//!
//! - containers as Python's pickler writes them: `APPENDS`/`SETITEMS` in batches of 1000
//!   (a batch of one without a `MARK`), tuples of up to three items with `TUPLE1..3`;
//!   `OrderedDict()` with its items, then its attributes (`_metadata`) through `BUILD`;
//! - `bytes` through `_codecs.encode(text, 'latin1')` (also when empty: protocol 2 writes
//!   `b''` as `__builtin__.bytes()`, which the weights-only unpickler refuses), sets
//!   through `set([...])`, complex numbers through `complex(re, im)`, `torch.Size`,
//!   `torch.device`, dtypes and qschemes as bare globals, layouts through `_get_layout`;
//! - tensors as `torch._utils._rebuild_tensor_v2` of a typed storage, `_rebuild_tensor_v3`
//!   of an untyped one (with the dtype), `_rebuild_qtensor` for quantized ones, wrapped in
//!   `_rebuild_parameter[_with_state]` for `nn.Parameter`s and in
//!   `torch._tensor._rebuild_from_type_v2` for tensors with Python attributes, exactly as
//!   `Tensor.__reduce_ex__` and `Parameter.__reduce_ex__` write them. Storages are
//!   persistent ids `('storage', torch.FloatStorage, '0', 'cpu', numel)`.
//!
//! Globals are memoized (`BINPUT` on first use, `BINGET` after), as Python's pickler does.
//! What weights-only loading cannot give back (frozensets, slices, integers longer than
//! `LONG1` holds, dtypes torch does not have...) is collected as problems, each under its
//! dotted name, and refused together before anything is written.

use std::collections::HashMap;

use ckpt_pickle::{Opcode, bigint_from_decimal, bigint_from_i128};

use super::storage::{Reference, Registry, StorageType, torch_dtype};
use crate::model::{Dict, Dtype, DtypeClass, Quantization, TensorView, Value, shape};
use crate::torch::allowlist;
use crate::torch::globals::{self, Meaning};

/// Values nested deeper than this are refused (the pickler recurses).
const MAX_DEPTH: usize = 512;
/// Python's `pickle._BATCHSIZE`: items per `APPENDS` / `SETITEMS`.
const BATCH: usize = 1000;

/// A value that cannot be written, by its dotted name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Problem {
    /// The dotted name (`""` for the root).
    pub(super) name: String,
    /// What is wrong, as a short phrase.
    pub(super) what: String,
}

/// The pickle of a tree, and what could not be pickled.
pub(super) struct Pickled {
    pub(super) bytes: Vec<u8>,
    pub(super) problems: Vec<Problem>,
}

/// Pickles `root`, numbering its storages in `registry` as they first appear.
///
/// With `cast`, floating point tensors of another dtype are written cast to it, each on a
/// storage of its own (see [`Registry::cast`]).
pub(super) fn pickle<'data>(
    root: &Value<'data>,
    registry: &mut Registry<'data>,
    cast: Option<Dtype>,
) -> Pickled {
    let mut pickler = Pickler {
        out: Vec::new(),
        memo: HashMap::new(),
        registry,
        problems: Vec::new(),
        path: String::new(),
        cast,
    };
    pickler.op(Opcode::Proto);
    pickler.out.push(2);
    pickler.value(root, 0);
    pickler.op(Opcode::Stop);
    Pickled {
        bytes: pickler.out,
        problems: pickler.problems,
    }
}

/// Notes every tensor of `root` (attributes included) in `registry`, so that each
/// storage's class is decided from all its views before the pickle names it.
pub(super) fn scan<'data>(value: &Value<'data>, registry: &mut Registry<'data>, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    match value {
        Value::Tensor(view) => {
            if let Some(dtype) = torch_dtype(view.dtype()) {
                registry.add_view(view, dtype);
            }
            for (_, attribute) in view.attributes() {
                scan(attribute, registry, depth + 1);
            }
        }
        Value::List(items) | Value::Tuple(items) | Value::Set(items) | Value::FrozenSet(items) => {
            for item in items {
                scan(item, registry, depth + 1);
            }
        }
        Value::Slice(parts) => {
            for part in parts.iter() {
                scan(part, registry, depth + 1);
            }
        }
        Value::Dict(dict) => {
            for (key, item) in &dict.entries {
                scan(key, registry, depth + 1);
                scan(item, registry, depth + 1);
            }
            for (_, item) in &dict.attributes {
                scan(item, registry, depth + 1);
            }
        }
        _ => {}
    }
}

struct Pickler<'r, 'data> {
    out: Vec<u8>,
    /// Memo slots of the globals written so far.
    memo: HashMap<(&'static str, &'static str), u32>,
    registry: &'r mut Registry<'data>,
    problems: Vec<Problem>,
    /// The dotted name of the value being written.
    path: String,
    /// The dtype floating point tensors are cast to.
    cast: Option<Dtype>,
}

/// How a tensor is laid out for torch: its dtype, shape, strides and offset (a safetensors
/// `F4` tensor becomes `float4_e2m1fn_x2` with half the last dimension).
struct TorchLayout {
    dtype: Dtype,
    shape: Vec<usize>,
    strides: Vec<usize>,
    offset: usize,
}

impl<'data> Pickler<'_, 'data> {
    fn problem(&mut self, what: impl Into<String>) {
        self.problems.push(Problem {
            name: self.path.clone(),
            what: what.into(),
        });
        // Something must stand in the stream; nothing is written anyway.
        self.op(Opcode::None);
    }

    /// Runs `f` with `segment` appended to the dotted name.
    fn named(&mut self, segment: &str, f: impl FnOnce(&mut Self)) {
        let len = self.path.len();
        if !self.path.is_empty() {
            self.path.push('.');
        }
        self.path.push_str(segment);
        f(self);
        self.path.truncate(len);
    }

    // --- opcodes -------------------------------------------------------------------------

    /// An opcode byte, from the one opcode table.
    fn op(&mut self, opcode: Opcode) {
        self.out.push(opcode.byte());
    }

    fn ops(&mut self, opcodes: &[Opcode]) {
        self.out.extend(opcodes.iter().map(|op| op.byte()));
    }

    fn put(&mut self, slot: u32) {
        match u8::try_from(slot) {
            Ok(small) => {
                self.op(Opcode::BinPut);
                self.out.push(small);
            }
            Err(_) => {
                self.op(Opcode::LongBinPut);
                self.out.extend_from_slice(&slot.to_le_bytes());
            }
        }
    }

    fn get(&mut self, slot: u32) {
        match u8::try_from(slot) {
            Ok(small) => {
                self.op(Opcode::BinGet);
                self.out.push(small);
            }
            Err(_) => {
                self.op(Opcode::LongBinGet);
                self.out.extend_from_slice(&slot.to_le_bytes());
            }
        }
    }

    /// `GLOBAL module name`, memoized. Every global ckpt writes is in torch's weights-only
    /// allowlist; one that is not would be a bug, reported as a problem rather than
    /// written.
    fn global(&mut self, module: &'static str, name: &'static str) {
        if let Some(&slot) = self.memo.get(&(module, name)) {
            self.get(slot);
            return;
        }
        let (py3_module, py3_name) = ckpt_pickle::python3_name(module, name);
        if !allowlist::weights_only_allows(py3_module, py3_name) {
            self.problem(format!(
                "ckpt would write the global `{module}.{name}`, which torch's weights-only \
                 loader refuses (a bug in ckpt)"
            ));
            return;
        }
        self.op(Opcode::Global);
        self.out.extend_from_slice(module.as_bytes());
        self.out.push(b'\n');
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(b'\n');
        let slot = u32::try_from(self.memo.len()).unwrap_or(u32::MAX);
        self.put(slot);
        self.memo.insert((module, name), slot);
    }

    fn none(&mut self) {
        self.op(Opcode::None);
    }

    fn bool(&mut self, value: bool) {
        self.op(if value {
            Opcode::NewTrue
        } else {
            Opcode::NewFalse
        });
    }

    /// An integer, in the shortest form Python's pickler uses at protocol 2.
    fn int(&mut self, value: i64) {
        if let Ok(small) = u8::try_from(value) {
            self.op(Opcode::BinInt1);
            self.out.push(small);
        } else if let Ok(short) = u16::try_from(value) {
            self.op(Opcode::BinInt2);
            self.out.extend_from_slice(&short.to_le_bytes());
        } else if let Ok(int) = i32::try_from(value) {
            self.op(Opcode::BinInt);
            self.out.extend_from_slice(&int.to_le_bytes());
        } else {
            self.long1(&bigint_from_i128(i128::from(value)));
        }
    }

    fn long1(&mut self, bytes: &[u8]) {
        // Callers pass at most 255 bytes.
        self.op(Opcode::Long1);
        self.out.push(u8::try_from(bytes.len()).unwrap_or(u8::MAX));
        self.out.extend_from_slice(bytes);
    }

    /// A count or index (a dimension, a stride, an offset, an axis).
    fn count(&mut self, value: usize) {
        match i64::try_from(value) {
            Ok(value) => self.int(value),
            Err(_) => self.problem(format!("the number {value} does not fit in 64 bits")),
        }
    }

    fn big_int(&mut self, decimal: &str) {
        match bigint_from_decimal(decimal) {
            Some(bytes) if bytes.len() <= usize::from(u8::MAX) => {
                match i64::try_from(decimal.parse::<i128>().unwrap_or(i128::MAX)) {
                    Ok(small) => self.int(small),
                    Err(_) => self.long1(&bytes),
                }
            }
            Some(_) => self.problem(
                "an integer longer than 255 bytes: pickle writes it with LONG4, which \
                 torch.load(weights_only=True) does not read",
            ),
            None => self.problem(format!("`{decimal}` is not a decimal integer")),
        }
    }

    fn float(&mut self, value: f64) {
        self.op(Opcode::BinFloat);
        self.out.extend_from_slice(&value.to_be_bytes());
    }

    fn str(&mut self, text: &str) {
        match u32::try_from(text.len()) {
            Ok(len) => {
                self.op(Opcode::BinUnicode);
                self.out.extend_from_slice(&len.to_le_bytes());
                self.out.extend_from_slice(text.as_bytes());
            }
            Err(_) => self.problem("a string of 4 GiB or more"),
        }
    }

    /// Starts a tuple of `len` items: a `MARK` when `TUPLE1..3` cannot close it.
    fn tuple_start(&mut self, len: usize) {
        if len > 3 {
            self.op(Opcode::Mark);
        }
    }

    /// Ends a tuple of `len` items.
    fn tuple_end(&mut self, len: usize) {
        self.op(match len {
            0 => Opcode::EmptyTuple,
            1 => Opcode::Tuple1,
            2 => Opcode::Tuple2,
            3 => Opcode::Tuple3,
            _ => Opcode::Tuple,
        });
    }

    /// `collections.OrderedDict()`, empty (the `backward_hooks` of every tensor).
    fn empty_ordered_dict(&mut self) {
        self.global("collections", "OrderedDict");
        self.ops(&[Opcode::EmptyTuple, Opcode::Reduce]);
    }

    // --- values --------------------------------------------------------------------------

    fn value(&mut self, value: &Value<'data>, depth: usize) {
        if depth > MAX_DEPTH {
            self.problem(format!("values nested deeper than {MAX_DEPTH} levels"));
            return;
        }
        match value {
            Value::None => self.none(),
            Value::Bool(b) => self.bool(*b),
            Value::Int(i) => self.int(*i),
            Value::BigInt(decimal) => self.big_int(decimal),
            Value::Float(x) => self.float(*x),
            Value::Complex(re, im) => {
                self.global("__builtin__", "complex");
                self.float(*re);
                self.float(*im);
                self.ops(&[Opcode::Tuple2, Opcode::Reduce]);
            }
            Value::Str(text) => self.str(text),
            Value::Bytes(bytes) => self.bytes(bytes),
            Value::ByteArray(bytes) => {
                self.global("__builtin__", "bytearray");
                if bytes.is_empty() {
                    self.op(Opcode::EmptyTuple);
                } else {
                    self.bytes(bytes);
                    self.op(Opcode::Tuple1);
                }
                self.op(Opcode::Reduce);
            }
            Value::List(items) => self.list(items, depth),
            Value::Tuple(items) => {
                self.tuple_start(items.len());
                for (i, item) in items.iter().enumerate() {
                    self.named(&i.to_string(), |p| p.value(item, depth + 1));
                }
                self.tuple_end(items.len());
            }
            Value::Set(items) => {
                // Protocol 2: `set([items])`.
                self.global("__builtin__", "set");
                self.list(items, depth);
                self.ops(&[Opcode::Tuple1, Opcode::Reduce]);
            }
            Value::FrozenSet(_) => self.problem(
                "a frozenset: torch.load(weights_only=True) cannot build one (builtins.frozenset \
                 is not in its allowlist)",
            ),
            Value::Slice(_) => self.problem(
                "a slice: torch.load(weights_only=True) cannot build one (builtins.slice is not \
                 in its allowlist)",
            ),
            Value::Dict(dict) => self.dict(dict, depth),
            Value::Size(dims) => {
                self.global("torch", "Size");
                self.tuple_start(dims.len());
                for &dim in dims {
                    self.int(dim);
                }
                self.tuple_end(dims.len());
                self.ops(&[Opcode::Tuple1, Opcode::Reduce]);
            }
            Value::Device(device) => self.device(device),
            Value::Dtype(dtype) => self.dtype(*dtype),
            Value::Named { type_name, name } => self.named_value(type_name, name),
            Value::Tensor(view) => self.tensor(view, depth),
            Value::Object(object) => self.problem(format!(
                "a `{}` object, which ckpt reads (inert, as stored) but does not write",
                object.class
            )),
            Value::Backref(class) => self.problem(format!(
                "a reference back to an enclosing `{class}` object, which ckpt does not write"
            )),
            Value::Global(name) => self.problem(format!(
                "a reference to `{name}`, which torch.load(weights_only=True) does not allow"
            )),
        }
    }

    /// `_codecs.encode('<latin-1 text>', 'latin1')`, as Python writes bytes at protocol 2.
    fn bytes(&mut self, bytes: &[u8]) {
        self.global("_codecs", "encode");
        let text: String = bytes.iter().map(|&b| char::from(b)).collect();
        self.str(&text);
        self.str("latin1");
        self.ops(&[Opcode::Tuple2, Opcode::Reduce]);
    }

    fn list(&mut self, items: &[Value<'data>], depth: usize) {
        self.op(Opcode::EmptyList);
        let mut index = 0usize;
        for batch in items.chunks(BATCH) {
            if batch.len() > 1 {
                self.op(Opcode::Mark);
            }
            for item in batch {
                self.named(&index.to_string(), |p| p.value(item, depth + 1));
                index += 1;
            }
            self.op(if batch.len() > 1 {
                Opcode::Appends
            } else {
                Opcode::Append
            });
        }
    }

    fn dict(&mut self, dict: &Dict<'data>, depth: usize) {
        if dict.ordered {
            self.global("collections", "OrderedDict");
            self.ops(&[Opcode::EmptyTuple, Opcode::Reduce]);
        } else {
            if !dict.attributes.is_empty() {
                self.problem(
                    "a plain dict with attributes: torch.load(weights_only=True) sets \
                     attributes on an OrderedDict only",
                );
                return;
            }
            self.op(Opcode::EmptyDict);
        }
        for batch in dict.entries.chunks(BATCH) {
            if batch.len() > 1 {
                self.op(Opcode::Mark);
            }
            for (key, item) in batch {
                let segment = key.name_segment();
                self.named(&segment, |p| {
                    p.value(key, depth + 1);
                    p.value(item, depth + 1);
                });
            }
            self.op(if batch.len() > 1 {
                Opcode::SetItems
            } else {
                Opcode::SetItem
            });
        }
        if !dict.attributes.is_empty() {
            // `OrderedDict.__reduce__` gives its `__dict__` as the state: BUILD sets it.
            self.attributes(&dict.attributes, depth);
            self.op(Opcode::Build);
        }
    }

    /// A dict of attribute names to values (an object's `__dict__`).
    fn attributes(&mut self, attributes: &[(String, Value<'data>)], depth: usize) {
        self.op(Opcode::EmptyDict);
        for batch in attributes.chunks(BATCH) {
            if batch.len() > 1 {
                self.op(Opcode::Mark);
            }
            for (name, item) in batch {
                self.named(name, |p| {
                    p.str(name);
                    p.value(item, depth + 1);
                });
            }
            self.op(if batch.len() > 1 {
                Opcode::SetItems
            } else {
                Opcode::SetItem
            });
        }
    }

    /// `torch.device('cuda', 1)` or `torch.device('cpu')`, as `device.__reduce__` gives.
    fn device(&mut self, device: &str) {
        let (kind, index) = match device.rsplit_once(':') {
            Some((kind, index)) => match index.parse::<i64>() {
                Ok(index) => (kind, Some(index)),
                Err(_) => (device, None),
            },
            None => (device, None),
        };
        self.global("torch", "device");
        self.str(kind);
        match index {
            Some(index) => {
                self.int(index);
                self.op(Opcode::Tuple2);
            }
            None => self.op(Opcode::Tuple1),
        }
        self.op(Opcode::Reduce);
    }

    fn dtype(&mut self, dtype: Dtype) {
        if matches!(
            dtype,
            Dtype::Float4E2M1Fn | Dtype::Float6E2M3Fn | Dtype::Float6E3M2Fn
        ) {
            self.problem(format!("the dtype {dtype}, which torch does not have"));
            return;
        }
        self.global("torch", dtype.name());
    }

    fn named_value(&mut self, type_name: &str, name: &str) {
        let bare = name.strip_prefix("torch.").unwrap_or(name);
        match type_name {
            "torch.qscheme" => match globals::lookup("torch", bare) {
                Some(qscheme) if qscheme.meaning == Meaning::QScheme => {
                    self.global("torch", qscheme.name);
                }
                _ => self.problem(format!("the unknown qscheme `{name}`")),
            },
            "torch.layout" => {
                self.global("torch.serialization", "_get_layout");
                self.str(name);
                self.ops(&[Opcode::Tuple1, Opcode::Reduce]);
            }
            other => self.problem(format!(
                "a `{other}` value (`{name}`), which torch.load(weights_only=True) cannot build"
            )),
        }
    }

    // --- tensors -------------------------------------------------------------------------

    fn layout(&mut self, view: &TensorView<'data>) -> Option<TorchLayout> {
        let dtype = view.dtype();
        let Some(torch) = torch_dtype(dtype) else {
            self.problem(format!(
                "a {dtype} tensor: torch has no such dtype (keep it in safetensors)"
            ));
            return None;
        };
        if dtype == Dtype::Float4E2M1Fn {
            // Dense by construction: two values per byte along the last dimension.
            let mut shape = view.shape().to_vec();
            match shape.last_mut() {
                Some(last) if *last % 2 == 0 => *last /= 2,
                _ => {
                    self.problem(format!(
                        "a float4_e2m1fn tensor of shape {:?}: torch holds float4 values in \
                         pairs (float4_e2m1fn_x2), so its last dimension must be even",
                        view.shape()
                    ));
                    return None;
                }
            }
            let strides = shape::contiguous_strides(&shape).unwrap_or_default();
            return Some(TorchLayout {
                dtype: torch,
                shape,
                strides,
                offset: 0,
            });
        }
        Some(TorchLayout {
            dtype: torch,
            shape: view.shape().to_vec(),
            strides: view.strides().to_vec(),
            offset: view.storage_offset(),
        })
    }

    fn tensor(&mut self, view: &TensorView<'data>, depth: usize) {
        let Some(mut layout) = self.layout(view) else {
            return;
        };
        let cast = self
            .cast
            .and_then(|to| crate::cast::Cast::new(view.dtype(), to).ok())
            .filter(|cast| !cast.is_identity());
        let reference = match cast {
            Some(cast) => {
                // A storage of its own: the cast elements, dense and row-major.
                layout.dtype = cast.to();
                layout.strides = shape::contiguous_strides(&layout.shape).unwrap_or_default();
                layout.offset = 0;
                let path = self.path.clone();
                self.registry.cast(view, cast, &path)
            }
            None => self.registry.reference(view, layout.dtype),
        };
        let reference = match reference {
            Ok(reference) => reference,
            Err(why) => {
                self.problem(format!("a {} tensor: {why}", layout.dtype));
                return;
            }
        };
        let attributes = view.attributes();
        if view.is_parameter() {
            // `Parameter.__reduce_ex__`: the data (requires_grad false), the flag, hooks,
            // and the attributes when there are any.
            let (function, len) = if attributes.is_empty() {
                ("_rebuild_parameter", 3)
            } else {
                ("_rebuild_parameter_with_state", 4)
            };
            self.global("torch._utils", function);
            self.tuple_start(len);
            self.rebuild(view, &layout, &reference, false);
            self.bool(view.requires_grad());
            self.empty_ordered_dict();
            if !attributes.is_empty() {
                self.attributes(attributes, depth);
            }
            self.tuple_end(len);
            self.op(Opcode::Reduce);
        } else if !attributes.is_empty() {
            // `Tensor.__reduce_ex__` of a tensor with Python state.
            self.global("torch._tensor", "_rebuild_from_type_v2");
            self.op(Opcode::Mark);
            self.global("torch._utils", rebuild_function(&reference, layout.dtype));
            self.global("torch", "Tensor");
            self.rebuild_args(view, &layout, &reference, view.requires_grad());
            self.attributes(attributes, depth);
            self.ops(&[Opcode::Tuple, Opcode::Reduce]);
        } else {
            self.rebuild(view, &layout, &reference, view.requires_grad());
        }
    }

    /// The call that rebuilds the tensor itself.
    fn rebuild(
        &mut self,
        view: &TensorView<'data>,
        layout: &TorchLayout,
        reference: &Reference,
        requires_grad: bool,
    ) {
        self.global("torch._utils", rebuild_function(reference, layout.dtype));
        self.rebuild_args(view, layout, reference, requires_grad);
        self.op(Opcode::Reduce);
    }

    /// The argument tuple of the rebuild function.
    fn rebuild_args(
        &mut self,
        view: &TensorView<'data>,
        layout: &TorchLayout,
        reference: &Reference,
        requires_grad: bool,
    ) {
        self.op(Opcode::Mark);
        self.persistent_id(reference);
        self.count(layout.offset);
        self.dims(&layout.shape);
        self.dims(&layout.strides);
        if layout.dtype.class() == DtypeClass::Quantized {
            // `_rebuild_qtensor(storage, offset, size, stride, qparams, requires_grad, hooks)`
            self.quantizer_params(view, layout);
            self.bool(requires_grad);
            self.empty_ordered_dict();
        } else {
            // `_rebuild_tensor_v2/3(storage, offset, size, stride, requires_grad, hooks,
            // [dtype,] [metadata])`
            self.bool(requires_grad);
            self.empty_ordered_dict();
            if reference.storage_type == StorageType::Untyped {
                self.global("torch", layout.dtype.name());
            }
            if view.is_neg() || view.is_conj() {
                // `torch._C._get_tensor_metadata`: the bits, not resolved; torch lists neg
                // first.
                let flags: Vec<&str> = [("neg", view.is_neg()), ("conj", view.is_conj())]
                    .into_iter()
                    .filter_map(|(name, on)| on.then_some(name))
                    .collect();
                self.op(Opcode::EmptyDict);
                if flags.len() > 1 {
                    self.op(Opcode::Mark);
                }
                for flag in &flags {
                    self.str(flag);
                    self.bool(true);
                }
                self.op(if flags.len() > 1 {
                    Opcode::SetItems
                } else {
                    Opcode::SetItem
                });
            }
        }
        self.op(Opcode::Tuple);
    }

    fn persistent_id(&mut self, reference: &Reference) {
        self.op(Opcode::Mark);
        self.str("storage");
        let (module, name) = reference.storage_type.global();
        self.global(module, name);
        self.str(&reference.key);
        self.str("cpu");
        match i64::try_from(reference.numel) {
            Ok(numel) => self.int(numel),
            Err(_) => self.problem("a storage of more than 2^63 elements"),
        }
        self.ops(&[Opcode::Tuple, Opcode::BinPersId]);
    }

    /// A tuple of dimensions or strides.
    fn dims(&mut self, dims: &[usize]) {
        self.tuple_start(dims.len());
        for &dim in dims {
            self.count(dim);
        }
        self.tuple_end(dims.len());
    }

    /// `(torch.per_tensor_affine, scale, zero_point)` or `(torch.per_channel_affine,
    /// scales, zero_points, axis)`, as `Tensor._reduce_ex_internal` writes them: torch
    /// writes `per_channel_affine_float_qparams` under the `per_channel_affine` tag too,
    /// and tells it apart on load by the zero points' dtype (float32 scales and zero
    /// points, rather than float64 scales and int64 zero points).
    fn quantizer_params(&mut self, view: &TensorView<'data>, layout: &TorchLayout) {
        match view.quantization() {
            Some(Quantization::PerTensor { scale, zero_point }) => {
                self.global("torch", "per_tensor_affine");
                self.float(*scale);
                self.int(*zero_point);
                self.op(Opcode::Tuple3);
            }
            Some(Quantization::PerChannel {
                scales,
                zero_points,
                axis,
                float_qparams,
            }) => {
                let channels = layout.shape.get(*axis).copied();
                if channels != Some(scales.len()) || channels != Some(zero_points.len()) {
                    self.problem(format!(
                        "a per-channel quantized tensor of shape {:?} with {} scales and {} zero \
                         points along axis {axis}: torch refuses to rebuild it",
                        layout.shape,
                        scales.len(),
                        zero_points.len()
                    ));
                    return;
                }
                let encoded = if *float_qparams {
                    f32_bytes(scales)
                        .zip(f32_bytes(zero_points))
                        .map(|(s, z)| ((s, Dtype::Float32), (z, Dtype::Float32)))
                } else {
                    let scales: Vec<u8> = scales.iter().flat_map(|s| s.to_le_bytes()).collect();
                    i64_bytes(zero_points).map(|z| ((scales, Dtype::Float64), (z, Dtype::Int64)))
                };
                let Some(((scales, scale_dtype), (zeros, zero_dtype))) = encoded else {
                    self.problem(
                        "quantization parameters that do not fit their dtypes (integer zero \
                         points, float32 scales for float qparams)",
                    );
                    return;
                };
                self.op(Opcode::Mark);
                self.global("torch", "per_channel_affine");
                self.owned_tensor(scales, scale_dtype);
                self.owned_tensor(zeros, zero_dtype);
                self.count(*axis);
                self.op(Opcode::Tuple);
            }
            None => self.problem(
                "a quantized tensor without quantization parameters: torch cannot rebuild it",
            ),
        }
    }

    /// A 1-d tensor of little-endian `bytes` of `dtype` with a storage of its own.
    fn owned_tensor(&mut self, bytes: Vec<u8>, dtype: Dtype) {
        let numel = bytes.len() / dtype.byte_size().unwrap_or(1).max(1);
        let reference = match self.registry.owned(bytes, dtype) {
            Ok(reference) => reference,
            Err(why) => {
                self.problem(why);
                return;
            }
        };
        self.global("torch._utils", "_rebuild_tensor_v2");
        self.op(Opcode::Mark);
        self.persistent_id(&reference);
        self.int(0);
        self.count(numel);
        self.op(Opcode::Tuple1);
        self.int(1);
        self.op(Opcode::Tuple1);
        self.bool(false);
        self.empty_ordered_dict();
        self.ops(&[Opcode::Tuple, Opcode::Reduce]);
    }
}

/// The rebuild function of a tensor: `_rebuild_qtensor` for quantized dtypes,
/// `_rebuild_tensor_v2` over a typed storage, `_rebuild_tensor_v3` over an untyped one.
fn rebuild_function(reference: &Reference, dtype: Dtype) -> &'static str {
    if dtype.class() == DtypeClass::Quantized {
        "_rebuild_qtensor"
    } else if reference.storage_type == StorageType::Untyped {
        "_rebuild_tensor_v3"
    } else {
        "_rebuild_tensor_v2"
    }
}

/// `values` as little-endian float32, when each is exactly a float32.
fn f32_bytes(values: &[f64]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(values.len() * 4);
    for &value in values {
        #[allow(clippy::cast_possible_truncation)] // checked to round-trip below
        let narrow = value as f32;
        if f64::from(narrow).to_bits() != value.to_bits() && !value.is_nan() {
            return None;
        }
        out.extend_from_slice(&narrow.to_le_bytes());
    }
    Some(out)
}

/// `values` as little-endian int64, when each is an integer in range.
fn i64_bytes(values: &[f64]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(values.len() * 8);
    for &value in values {
        if value.fract() != 0.0 || !(-9.2e18..=9.2e18).contains(&value) {
            return None;
        }
        #[allow(clippy::cast_possible_truncation)] // integral and in range
        let int = value as i64;
        out.extend_from_slice(&int.to_le_bytes());
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ByteOrder, Storage};
    use crate::torch::globals::GLOBALS;

    fn pickled(value: &Value<'_>) -> Vec<u8> {
        let mut registry = Registry::default();
        scan(value, &mut registry, 0);
        let pickled = pickle(value, &mut registry, None);
        assert_eq!(pickled.problems, []);
        pickled.bytes
    }

    fn problems(value: &Value<'_>) -> Vec<Problem> {
        let mut registry = Registry::default();
        scan(value, &mut registry, 0);
        pickle(value, &mut registry, None).problems
    }

    /// The pickle of `value`, between `PROTO 2` and `STOP`.
    fn body(value: &Value<'_>) -> Vec<u8> {
        let bytes = pickled(value);
        assert_eq!(&bytes[..2], b"\x80\x02");
        assert_eq!(bytes.last(), Some(&b'.'));
        bytes[2..bytes.len() - 1].to_vec()
    }

    fn s(text: &str) -> Value<'static> {
        Value::Str(text.to_owned())
    }

    #[test]
    fn plain_values_as_python_pickles_them() {
        // pickle.dumps(x, protocol=2) of each, without PROTO and STOP.
        let cases: Vec<(Value<'_>, &[u8])> = vec![
            (Value::None, b"N"),
            (Value::Bool(true), b"\x88"),
            (Value::Int(7), b"K\x07"),
            (Value::Int(300), b"M\x2c\x01"),
            (Value::Int(-1), b"J\xff\xff\xff\xff"),
            (Value::Int(1 << 40), b"\x8a\x06\x00\x00\x00\x00\x00\x01"),
            (Value::Int(i64::MIN), b"\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x80"),
            (Value::BigInt("1208925819614629174706176".into()), b"\x8a\x0b\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"),
            (Value::BigInt("-1267650600228229401496703205376".into()), b"\x8a\x0d\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xf0"),
            (Value::Float(1.5), b"G\x3f\xf8\x00\x00\x00\x00\x00\x00"),
            (s("é"), b"X\x02\x00\x00\x00\xc3\xa9"),
            (Value::Tuple(vec![]), b")"),
            (Value::Tuple(vec![Value::Int(1), Value::Int(2)]), b"K\x01K\x02\x86"),
            (
                Value::Tuple(vec![Value::Int(1), Value::Int(2), Value::Int(3), Value::Int(4)]),
                b"(K\x01K\x02K\x03K\x04t",
            ),
            (Value::List(vec![]), b"]"),
            (Value::List(vec![Value::Int(1)]), b"]K\x01a"),
            (Value::List(vec![s("a"), s("b")]), b"](X\x01\x00\x00\x00aX\x01\x00\x00\x00be"),
            (
                Value::Dict(Dict::new(vec![(s("k"), Value::None)])),
                b"}X\x01\x00\x00\x00kNs",
            ),
            (
                Value::Bytes(vec![0, 1, 0xff]),
                b"c_codecs\nencode\nq\x00X\x04\x00\x00\x00\x00\x01\xc3\xbfX\x06\x00\x00\x00latin1\x86R",
            ),
            (
                Value::Complex(1.0, 2.0),
                b"c__builtin__\ncomplex\nq\x00G\x3f\xf0\x00\x00\x00\x00\x00\x00G\x40\x00\x00\x00\x00\x00\x00\x00\x86R",
            ),
            (
                Value::Set(vec![Value::Int(1), Value::Int(2)]),
                b"c__builtin__\nset\nq\x00](K\x01K\x02e\x85R",
            ),
            (
                Value::ByteArray(vec![]),
                b"c__builtin__\nbytearray\nq\x00)R",
            ),
            (
                Value::Size(vec![2, 3]),
                b"ctorch\nSize\nq\x00K\x02K\x03\x86\x85R",
            ),
            (
                Value::Device("cuda:1".into()),
                b"ctorch\ndevice\nq\x00X\x04\x00\x00\x00cudaK\x01\x86R",
            ),
            (
                Value::Device("cpu".into()),
                b"ctorch\ndevice\nq\x00X\x03\x00\x00\x00cpu\x85R",
            ),
            (Value::Dtype(Dtype::BFloat16), b"ctorch\nbfloat16\nq\x00"),
            (
                Value::Named {
                    type_name: "torch.layout".into(),
                    name: "torch.strided".into(),
                },
                b"ctorch.serialization\n_get_layout\nq\x00X\x0d\x00\x00\x00torch.strided\x85R",
            ),
        ];
        for (value, want) in cases {
            assert_eq!(body(&value), want, "{value}");
        }
    }

    #[test]
    fn long_containers_are_batched_like_python() {
        let items: Vec<Value<'_>> = (0..1001).map(|_| Value::None).collect();
        let bytes = body(&Value::List(items));
        let mut want = vec![b']', b'('];
        want.extend(std::iter::repeat_n(b'N', 1000));
        want.extend_from_slice(b"eNa");
        assert_eq!(bytes, want);
    }

    #[test]
    fn ordered_dicts_keep_their_metadata() {
        let mut dict = Dict::ordered(vec![(s("a"), Value::Int(1)), (s("b"), Value::Int(2))]);
        dict.attributes.push((
            "_metadata".into(),
            Value::Dict(Dict::ordered(vec![(
                s(""),
                Value::Dict(Dict::new(vec![(s("version"), Value::Int(1))])),
            )])),
        ));
        let bytes = body(&Value::Dict(dict));
        let want: &[u8] = b"ccollections\nOrderedDict\nq\x00)R(X\x01\x00\x00\x00aK\x01X\x01\x00\x00\x00bK\x02u}X\x09\x00\x00\x00_metadatah\x00)RX\x00\x00\x00\x00}X\x07\x00\x00\x00versionK\x01sssb";
        assert_eq!(bytes, want);
    }

    #[test]
    fn a_state_dict_tensor_as_torch_writes_it() {
        // torch.save({'w': torch.zeros(2, 3)}): its data.pkl, less the memo puts Python's
        // pickler adds after every string and tuple.
        let data = [0u8; 24];
        let w = TensorView::contiguous(
            Dtype::Float32,
            vec![2, 3],
            Storage::new(&data, ByteOrder::Little),
        )
        .unwrap();
        let root = Value::Dict(Dict::new(vec![(s("w"), Value::Tensor(w))]));
        let want: &[u8] = b"}X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\nq\x00((X\x07\x00\x00\x00storagectorch\nFloatStorage\nq\x01X\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x06tQK\x00K\x02K\x03\x86K\x03K\x01\x86\x89ccollections\nOrderedDict\nq\x02)RtRs";
        assert_eq!(body(&root), want);
    }

    #[test]
    fn parameters_flags_and_attributes() {
        let data: Vec<u8> = [1.0f32, 2.0].iter().flat_map(|x| x.to_le_bytes()).collect();
        let storage = Storage::new(&data, ByteOrder::Little);
        let p = TensorView::contiguous(Dtype::Float32, vec![2], storage.clone())
            .unwrap()
            .with_parameter(true)
            .with_requires_grad(true);
        let bytes = pickled(&Value::Tensor(p.clone()));
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("_rebuild_parameter\n"), "{text}");
        // Inner data: requires_grad False; outer flag True, then the hooks: TUPLE3.
        assert!(bytes.windows(3).any(|w| w == b"tR\x88"), "{text}");
        assert!(bytes.ends_with(b")R\x87R."), "{text}");

        let with_state = p.with_attributes(vec![("tag".into(), s("lora"))]);
        let text = String::from_utf8_lossy(&pickled(&Value::Tensor(with_state))).into_owned();
        assert!(text.contains("_rebuild_parameter_with_state\n"), "{text}");
        assert!(text.contains("tagX\x04\x00\x00\x00lora"), "{text}");

        let plain = TensorView::contiguous(Dtype::Float32, vec![2], storage)
            .unwrap()
            .with_attributes(vec![("note".into(), Value::Int(1))]);
        let text = String::from_utf8_lossy(&pickled(&Value::Tensor(plain))).into_owned();
        assert!(
            text.contains("ctorch._tensor\n_rebuild_from_type_v2\n"),
            "{text}"
        );
        assert!(text.contains("ctorch\nTensor\n"), "{text}");
    }

    #[test]
    fn conj_and_neg_bits_stay_bits() {
        let data = [0u8; 16];
        let c = TensorView::contiguous(
            Dtype::Complex64,
            vec![2],
            Storage::new(&data, ByteOrder::Little),
        )
        .unwrap()
        .with_conj(true)
        .with_neg(true);
        let bytes = pickled(&Value::Tensor(c));
        let metadata: &[u8] = b"}(X\x03\x00\x00\x00neg\x88X\x04\x00\x00\x00conj\x88ut";
        assert!(bytes.windows(metadata.len()).any(|w| w == metadata));
    }

    #[test]
    fn new_dtypes_use_rebuild_tensor_v3() {
        let data = [0u8; 4];
        let t = TensorView::contiguous(
            Dtype::UInt16,
            vec![2],
            Storage::new(&data, ByteOrder::Little),
        )
        .unwrap();
        let bytes = pickled(&Value::Tensor(t));
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("_rebuild_tensor_v3\n"), "{text}");
        assert!(text.contains("ctorch.storage\nUntypedStorage\n"), "{text}");
        // numel counts bytes; the dtype follows the hooks.
        assert!(text.contains("K\u{4}tQ"), "{text}");
        assert!(text.contains(")Rctorch\nuint16\n"), "{text}");
    }

    #[test]
    fn safetensors_float4_becomes_pairs() {
        let data = [0x21u8, 0x43, 0x65, 0x87];
        let f4 = TensorView::contiguous(
            Dtype::Float4E2M1Fn,
            vec![2, 4],
            Storage::new(&data, ByteOrder::Little),
        )
        .unwrap();
        let bytes = pickled(&Value::Tensor(f4));
        // float4_e2m1fn_x2 of shape (2, 2), strides (2, 1).
        let layout: &[u8] = b"K\x00K\x02K\x02\x86K\x02K\x01\x86";
        assert!(bytes.windows(layout.len()).any(|w| w == layout));
        assert!(String::from_utf8_lossy(&bytes).contains("float4_e2m1fn_x2"));
        let odd = TensorView::contiguous(
            Dtype::Float4E2M1Fn,
            vec![2, 3],
            Storage::new(&data[..3], ByteOrder::Little),
        )
        .unwrap();
        assert!(problems(&Value::Tensor(odd))[0].what.contains("even"));
    }

    #[test]
    fn quantized_tensors() {
        let data = [1u8, 2, 3, 4];
        let q = TensorView::contiguous(
            Dtype::QInt8,
            vec![2, 2],
            Storage::new(&data, ByteOrder::Little),
        )
        .unwrap();
        let per_tensor = q.clone().with_quantization(Quantization::PerTensor {
            scale: 0.5,
            zero_point: -3,
        });
        let text = String::from_utf8_lossy(&pickled(&Value::Tensor(per_tensor))).into_owned();
        assert!(text.contains("_rebuild_qtensor\n"), "{text}");
        assert!(text.contains("ctorch\nQInt8Storage\n"), "{text}");
        assert!(text.contains("ctorch\nper_tensor_affine\n"), "{text}");

        let per_channel = q.clone().with_quantization(Quantization::PerChannel {
            scales: vec![0.1, 0.01],
            zero_points: vec![0.0, 2.0],
            axis: 0,
            float_qparams: false,
        });
        let mut registry = Registry::default();
        let value = Value::Tensor(per_channel);
        scan(&value, &mut registry, 0);
        let pickled = pickle(&value, &mut registry, None);
        assert_eq!(pickled.problems, []);
        let text = String::from_utf8_lossy(&pickled.bytes);
        assert!(text.contains("DoubleStorage"), "{text}");
        assert!(text.contains("LongStorage"), "{text}");
        let records = registry.into_records();
        assert_eq!(records.len(), 3);
        assert_eq!(records[1].len(), 16);

        let float = q.clone().with_quantization(Quantization::PerChannel {
            scales: vec![0.5, 0.25],
            zero_points: vec![0.5, 1.5],
            axis: 1,
            float_qparams: true,
        });
        let mut registry = Registry::default();
        let value = Value::Tensor(float);
        scan(&value, &mut registry, 0);
        assert_eq!(pickle(&value, &mut registry, None).problems, []);
        let types: Vec<StorageType> = registry
            .into_records()
            .iter()
            .map(|r| r.storage_type)
            .collect();
        assert_eq!(
            types,
            [
                StorageType::Typed(Dtype::QInt8),
                StorageType::Typed(Dtype::Float32),
                StorageType::Typed(Dtype::Float32)
            ]
        );

        let mismatched = q.clone().with_quantization(Quantization::PerChannel {
            scales: vec![0.5],
            zero_points: vec![0.0],
            axis: 0,
            float_qparams: false,
        });
        assert!(
            problems(&Value::Tensor(mismatched))[0]
                .what
                .contains("torch refuses")
        );
        assert!(
            problems(&Value::Tensor(q))[0]
                .what
                .contains("without quantization")
        );
    }

    #[test]
    fn what_weights_only_cannot_load_is_refused_by_name() {
        let root = Value::Dict(Dict::new(vec![
            (s("fine"), Value::Int(1)),
            (s("frozen"), Value::FrozenSet(vec![Value::Int(1)])),
            (
                s("nested"),
                Value::List(vec![Value::Slice(Box::new([
                    Value::None,
                    Value::Int(2),
                    Value::None,
                ]))]),
            ),
            (s("huge"), Value::BigInt(format!("1{}", "0".repeat(700)))),
            (s("dtype"), Value::Dtype(Dtype::Float6E2M3Fn)),
        ]));
        let found = problems(&root);
        let names: Vec<&str> = found.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["frozen", "nested.0", "huge", "dtype"]);
        assert!(found[0].what.contains("frozenset"));
        assert!(found[1].what.contains("slice"));
        assert!(found[2].what.contains("LONG4"));
    }

    #[test]
    fn every_global_is_in_the_weights_only_allowlist() {
        let mut registry = Registry::default();
        let mut pickler = Pickler {
            out: Vec::new(),
            memo: HashMap::new(),
            registry: &mut registry,
            problems: Vec::new(),
            path: String::new(),
            cast: None,
        };
        for dtype in Dtype::ALL {
            pickler.dtype(*dtype);
        }
        for q in GLOBALS.iter().filter(|g| g.meaning == Meaning::QScheme) {
            pickler.named_value("torch.qscheme", &format!("torch.{}", q.name));
        }
        assert_eq!(pickler.problems.len(), 3, "{:?}", pickler.problems);
        // A global torch does not allow is never written.
        pickler.global("posix", "system");
        assert_eq!(pickler.problems.len(), 4);
        assert!(pickler.problems[3].what.contains("a bug in ckpt"));
    }
}
