//! Giving meaning to a symbolic pickle, by allowlist.
//!
//! The pickle VM ([`ckpt_pickle`]) turns bytes into a graph of symbolic objects without
//! running anything. This module walks that graph from the root and turns what it knows
//! into the format-neutral model: torch's tensor rebuild functions, storages, dtypes,
//! `torch.Size`, `torch.device`, `OrderedDict` (with its `_metadata`), builtins sets,
//! complex numbers and bytes, numpy arrays and scalars, and whole `nn.Module` objects
//! (reduced to the `state_dict()` they would give). Any other global that would have to be
//! called or instantiated ends the walk with an [`ErrorKind::Refused`] error that names it:
//! loading such a file runs code, and ckpt never does.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use ckpt_pickle::{InstanceKind, Object, ObjectId, Pickle};

use crate::error::{Error, ErrorKind, Result};
use crate::limits::{self, Limits};
use crate::model::{ByteOrder, Dict, Dtype, Quantization, Storage, TensorView, Value};

pub(crate) use super::globals::StorageKind;
use super::globals::{self, Meaning, Rebuild};

/// The most values a walk may produce, beyond the pickle's own object count: following
/// shared references could otherwise expand a small pickle exponentially.
const MIN_BUDGET: usize = 1 << 20;
/// The fewest bytes of strings the walk may copy, whatever the pickle's size (beyond it,
/// 16 bytes per byte of pickle).
const MIN_BYTES_BUDGET: usize = 64 << 20;

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

/// What TorchScript's code declares of each class: which attributes are parameters and
/// which are buffers (`__parameters__ = [...]`, `__buffers__ = [...]`), by qualified class
/// name (`__torch__.torch.nn.modules.linear.Linear`). Only these are in `state_dict()`.
pub(crate) type ScriptDecls = HashMap<String, (Vec<String>, Vec<String>)>;

/// Which container a pickle comes from: it decides which persistent ids name classes and
/// whether `__torch__` classes are TorchScript objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Container {
    /// A `torch.save` zip archive: persistent ids are storages only.
    Zip,
    /// A TorchScript archive: `__torch__.*` instances are script modules.
    TorchScript,
    /// A legacy stream: `("module", class, file, source)` persistent ids name classes.
    Legacy,
    /// The tar format: `(class, file, source)` persistent ids name classes.
    Tar,
    /// A plain pickle.
    Pickle,
}

/// The outcome of a walk.
pub(crate) struct Interpreted<'data> {
    pub(crate) root: Value<'data>,
    /// Whether some of the tree came from whole `nn.Module`s (or TorchScript objects).
    pub(crate) from_modules: bool,
    /// Whether the root itself was a module.
    pub(crate) root_is_module: bool,
}

/// Walks `pickle` from its root.
pub(crate) fn interpret<'data>(
    pickle: &Pickle<'_>,
    storages: &mut dyn Storages<'data>,
    container: Container,
    limits: &Limits,
) -> Result<Interpreted<'data>> {
    interpret_with(pickle, storages, container, &ScriptDecls::new(), limits)
}

/// Walks `pickle` from its root, knowing TorchScript's class declarations.
pub(crate) fn interpret_with<'data>(
    pickle: &Pickle<'_>,
    storages: &mut dyn Storages<'data>,
    container: Container,
    script: &ScriptDecls,
    limits: &Limits,
) -> Result<Interpreted<'data>> {
    let root = pickle
        .root()
        .ok_or_else(|| Error::malformed("the pickle has no result"))?;
    let mut walker = Walker {
        pickle,
        storages,
        limits,
        budget: MIN_BUDGET.max(pickle.len_objects().saturating_mul(4)),
        on_path: vec![false; pickle.len_objects()],
        from_modules: false,
        script,
        container,
        bytes_budget: MIN_BYTES_BUDGET.max(pickle.byte_len().saturating_mul(16)),
        path_len: 0,
        bigints: HashMap::new(),
        states: RefCell::new(HashMap::new()),
        modules: RefCell::new(HashMap::new()),
    };
    check_every_object(pickle, container)?;
    let root_is_module = walker.module_class(root).is_some();
    let value = walker.value(root, 0)?;
    let tensors = count_tensors(&value);
    if tensors > limits.tensors {
        return Err(limits::exceeded(
            "tensors",
            limits.tensors as u64,
            format_args!("the checkpoint holds {tensors} tensors"),
        ));
    }
    Ok(Interpreted {
        root: value,
        from_modules: walker.from_modules,
        root_is_module,
    })
}

/// Runs `f` with at least 64 KiB of stack left, moving to a fresh 1 MiB segment on the
/// heap when the thread's stack runs low (see `stacker`).
pub(crate) fn grow<R>(f: impl FnOnce() -> R) -> R {
    stacker::maybe_grow(64 << 10, 1 << 20, f)
}

/// The tensors in a tree (each use of a shared one counts).
fn count_tensors(value: &Value<'_>) -> usize {
    match value {
        Value::Tensor(_) => 1,
        Value::List(items) | Value::Tuple(items) | Value::Set(items) | Value::FrozenSet(items) => {
            items.iter().map(count_tensors).sum()
        }
        Value::Dict(dict) => {
            dict.entries
                .iter()
                .map(|(k, v)| count_tensors(k) + count_tensors(v))
                .sum::<usize>()
                + dict
                    .attributes
                    .iter()
                    .map(|(_, v)| count_tensors(v))
                    .sum::<usize>()
        }
        _ => 0,
    }
}

struct Walker<'p, 'a, 's, 'data> {
    script: &'p ScriptDecls,
    limits: &'p Limits,
    container: Container,
    pickle: &'p Pickle<'a>,
    storages: &'s mut dyn Storages<'data>,
    /// Values the walk may still produce (shared references are walked once per use).
    budget: usize,
    /// Bytes of text and byte strings the walk may still copy.
    bytes_budget: usize,
    /// The length of the dotted name of the value being walked.
    path_len: usize,
    on_path: Vec<bool>,
    from_modules: bool,
    /// Big integers already converted to decimal (the conversion is quadratic).
    bigints: HashMap<ObjectId, String>,
    /// Merged `BUILD` states, by object (modules shared many times are merged once).
    states: RefCell<HashMap<ObjectId, Option<State>>>,
    /// Which objects are modules, by object.
    modules: RefCell<HashMap<ObjectId, Option<(String, String)>>>,
}

/// A module's merged `BUILD` state: `(key, value)` pairs, last key wins.
type State = Rc<[(ObjectId, ObjectId)]>;

/// `(module, name)` in Python 3 spelling.
fn python3<'x>(module: &'x str, name: &'x str) -> (&'x str, &'x str) {
    ckpt_pickle::python3_name(module, name)
}

impl<'data> Walker<'_, '_, '_, 'data> {
    fn error(&self, id: ObjectId, message: impl Into<String>) -> Error {
        Error::malformed(message).at_offset(self.pickle.offset(id))
    }

    fn refuse(&self, id: ObjectId, what: &str, module: &str, name: &str) -> Error {
        Error::new(
            ErrorKind::Refused,
            format!(
                "the pickle {what} `{module}.{name}`, which ckpt does not know as data: \
                 loading this file in Python runs code"
            ),
        )
        .at_offset(self.pickle.offset(id))
        .with_hint(
            "ckpt reads tensors and plain values only; if you trust the file's source, \
             load it in Python with weights_only=False and save its state_dict()",
        )
    }

    /// Enters `id`: checks depth, cycles and the budget.
    fn enter(&mut self, id: ObjectId, depth: usize) -> Result<()> {
        if depth > self.limits.depth {
            return Err(limits::exceeded(
                "depth",
                self.limits.depth as u64,
                format_args!("the pickle nests values {depth} levels deep"),
            )
            .at_offset(self.pickle.offset(id)));
        }
        if self.budget == 0 {
            return Err(Error::limit(
                "the pickle refers to shared values so many times that reading it would \
                 produce millions of values",
            )
            .at_offset(self.pickle.offset(id)));
        }
        self.budget -= 1;
        match self.on_path.get_mut(id.index()) {
            Some(true) => Err(self.error(
                id,
                "the pickle holds a value that contains itself; checkpoint data never does",
            )),
            Some(flag) => {
                *flag = true;
                Ok(())
            }
            None => Err(self.error(id, "reference to an object the pickle does not have")),
        }
    }

    fn leave(&mut self, id: ObjectId) {
        if let Some(flag) = self.on_path.get_mut(id.index()) {
            *flag = false;
        }
    }

    /// Counts `len` bytes of copied text against the budget.
    fn charge(&mut self, id: ObjectId, len: usize) -> Result<()> {
        self.bytes_budget = self.bytes_budget.checked_sub(len).ok_or_else(|| {
            Error::limit(
                "the pickle refers to its strings so many times that reading it would copy \
                 far more bytes than the file holds",
            )
            .at_offset(self.pickle.offset(id))
        })?;
        Ok(())
    }

    /// Walks `child` as the value named `segment` under the current path.
    fn named_value(
        &mut self,
        segment_len: usize,
        child: ObjectId,
        depth: usize,
    ) -> Result<Value<'data>> {
        let saved = self.path_len;
        self.path_len = self.path_len.saturating_add(segment_len + 1);
        if self.path_len > self.limits.name_len {
            return Err(limits::exceeded(
                "name-len",
                self.limits.name_len as u64,
                format_args!(
                    "a value's dotted name would be {} bytes long",
                    self.path_len
                ),
            )
            .at_offset(self.pickle.offset(child)));
        }
        let value = self.value(child, depth + 1);
        self.path_len = saved;
        value
    }

    fn value(&mut self, id: ObjectId, depth: usize) -> Result<Value<'data>> {
        self.enter(id, depth)?;
        // Each level of nesting takes a few KiB of stack (more in debug builds): on a
        // small thread stack, deep but allowed nesting grows the stack on the heap rather
        // than overflowing it.
        let result = grow(|| self.value_inner(id, depth));
        self.leave(id);
        result
    }

    fn values(&mut self, ids: &[ObjectId], depth: usize) -> Result<Vec<Value<'data>>> {
        ids.iter().map(|&id| self.value(id, depth + 1)).collect()
    }

    /// The items of a list or tuple, named by their index.
    fn indexed(&mut self, ids: &[ObjectId], depth: usize) -> Result<Vec<Value<'data>>> {
        ids.iter()
            .enumerate()
            .map(|(i, &id)| {
                self.named_value(i.checked_ilog10().unwrap_or(0) as usize + 1, id, depth)
            })
            .collect()
    }

    fn value_inner(&mut self, id: ObjectId, depth: usize) -> Result<Value<'data>> {
        let pickle = self.pickle;
        Ok(match pickle.get(id) {
            Object::None => Value::None,
            Object::Bool(b) => Value::Bool(*b),
            Object::Int(i) => Value::Int(*i),
            Object::BigInt(bytes) => {
                let decimal = match self.bigints.get(&id) {
                    Some(decimal) => decimal.clone(),
                    None => {
                        let decimal = ckpt_pickle::bigint_to_decimal(bytes, self.limits.int_len)
                            .ok_or_else(|| {
                                limits::exceeded(
                                    "int-len",
                                    self.limits.int_len as u64,
                                    format_args!("an integer takes {} bytes", bytes.len()),
                                )
                                .at_offset(pickle.offset(id))
                            })?;
                        self.bigints.insert(id, decimal.clone());
                        decimal
                    }
                };
                self.charge(id, decimal.len())?;
                Value::BigInt(decimal)
            }
            Object::Float(x) => Value::Float(*x),
            Object::Str(s) => {
                self.charge(id, s.len())?;
                Value::Str(s.to_string())
            }
            Object::Bytes(b) => {
                self.charge(id, b.len())?;
                Value::Bytes(b.to_vec())
            }
            Object::ByteArray(b) => {
                self.charge(id, b.len())?;
                Value::ByteArray(b.to_vec())
            }
            Object::Tuple(items) => Value::Tuple(self.indexed(items, depth)?),
            Object::List(items) => Value::List(self.indexed(items, depth)?),
            Object::Set(items) => Value::Set(self.values(items, depth)?),
            Object::FrozenSet(items) => Value::FrozenSet(self.values(items, depth)?),
            Object::Dict(entries) => {
                let entries = self.entries(entries, depth)?;
                Value::Dict(Dict::new(last_wins(entries)))
            }
            Object::Global { module, name } => {
                let (module, name) = python3(module, name);
                let extras = pickle.extras(id);
                if !extras.states.is_empty()
                    || !extras.items.is_empty()
                    || !extras.entries.is_empty()
                {
                    return Err(Error::new(
                        ErrorKind::Refused,
                        format!(
                            "the pickle writes into the global `{module}.{name}` itself \
                             (BUILD, SETITEM or APPEND on it), which rewires it for its later users"
                        ),
                    )
                    .at_offset(pickle.offset(id)));
                }
                self.global_value(id, module, name)?
            }
            Object::Call { callable, args } => self.call(id, *callable, *args, depth)?,
            Object::Instance { class, args, .. } => self.instance(id, *class, *args, depth)?,
            Object::PersistentId(pid) => self.persistent_value(*pid)?,
            Object::Extension(code) => {
                return Err(Error::new(
                    ErrorKind::Refused,
                    format!(
                        "the pickle uses copyreg extension code {code}, which names a global \
                         through a registry of the Python that loads it"
                    ),
                )
                .at_offset(pickle.offset(id)));
            }
            _ => return Err(self.error(id, "the pickle holds an object ckpt does not know")),
        })
    }

    fn entries(
        &mut self,
        entries: &[(ObjectId, ObjectId)],
        depth: usize,
    ) -> Result<Vec<(Value<'data>, Value<'data>)>> {
        entries
            .iter()
            .map(|&(k, v)| {
                let key = self.value(k, depth + 1)?;
                let segment = key.name_segment().len();
                Ok((key, self.named_value(segment, v, depth)?))
            })
            .collect()
    }

    /// A bare global used as a value (not called): dtypes, qschemes.
    fn global_value(&self, id: ObjectId, module: &str, name: &str) -> Result<Value<'data>> {
        match globals::meaning(module, name) {
            Some(Meaning::Dtype(dtype)) => Ok(Value::Dtype(dtype)),
            Some(Meaning::QScheme) => Ok(Value::Named {
                type_name: "torch.qscheme".to_owned(),
                name: format!("{module}.{name}"),
            }),
            _ => Err(self.refuse(id, "refers to", module, name)),
        }
    }

    fn global_of(&self, id: ObjectId) -> Option<(String, String)> {
        global_of(self.pickle, id)
    }

    /// What the table of globals says `id` is, when it is a global ckpt knows.
    fn meaning_of(&self, id: ObjectId) -> Option<Meaning> {
        meaning_of(self.pickle, id)
    }

    fn class_of(&self, id: ObjectId) -> Option<(String, String)> {
        class_of(self.pickle, id, self.container)
    }

    fn text(&self, id: ObjectId) -> Option<String> {
        text(self.pickle, id)
    }

    fn int(&self, id: ObjectId, what: &str) -> Result<i64> {
        match self.pickle.get(id) {
            Object::Int(i) => Ok(*i),
            Object::Bool(b) => Ok(i64::from(*b)),
            _ => Err(self.error(id, format!("{what} is not an integer"))),
        }
    }

    fn unsigned(&self, id: ObjectId, what: &str) -> Result<usize> {
        let value = self.int(id, what)?;
        usize::try_from(value).map_err(|_| self.error(id, format!("{what} is negative ({value})")))
    }

    /// A tuple of non-negative integers, or a `torch.Size` of one.
    fn dims(&self, id: ObjectId, what: &str) -> Result<Vec<usize>> {
        let items = match self.pickle.get(id) {
            Object::Tuple(items) | Object::List(items) => items.clone(),
            Object::Call { callable, args }
                if self.meaning_of(*callable) == Some(Meaning::Size) =>
            {
                match self.pickle.as_seq(*args) {
                    Some([inner]) => {
                        self.pickle
                            .as_seq(*inner)
                            .map(<[_]>::to_vec)
                            .ok_or_else(|| {
                                self.error(id, format!("{what} is a malformed torch.Size"))
                            })?
                    }
                    _ => return Err(self.error(id, format!("{what} is a malformed torch.Size"))),
                }
            }
            _ => return Err(self.error(id, format!("{what} is not a tuple of integers"))),
        };
        items
            .iter()
            .map(|&item| self.unsigned(item, what))
            .collect()
    }

    fn args(&self, args: ObjectId) -> Result<Vec<ObjectId>> {
        match self.pickle.get(args) {
            Object::Tuple(items) => Ok(items.clone()),
            _ => Err(self.error(args, "call arguments are not a tuple")),
        }
    }

    fn call(
        &mut self,
        id: ObjectId,
        callable: ObjectId,
        args_id: ObjectId,
        depth: usize,
    ) -> Result<Value<'data>> {
        let Some((module, name)) = self.global_of(callable) else {
            return Err(Error::new(
                ErrorKind::Refused,
                "the pickle calls a computed object (not a named global): loading it runs code",
            )
            .at_offset(self.pickle.offset(id)));
        };
        let args = self.args(args_id)?;
        let Some(meaning) = globals::meaning(&module, &name) else {
            return Err(self.refuse(id, "calls", &module, &name));
        };
        match meaning {
            Meaning::OrderedDict => self.ordered_dict(id, &args, depth),
            Meaning::Counter => {
                let mut entries = match args.as_slice() {
                    [] => Vec::new(),
                    [mapping] => match self.value(*mapping, depth + 1)? {
                        Value::Dict(dict) => dict.entries,
                        _ => return Err(self.error(id, "Counter of something that is not a dict")),
                    },
                    _ => return Err(self.error(id, "Counter takes one mapping")),
                };
                entries.extend(self.entries(&self.pickle.extras(id).entries.clone(), depth)?);
                Ok(Value::Dict(Dict::new(last_wins(entries))))
            }
            Meaning::Rebuild(how) => self.rebuild(id, how, &name, &args, depth),
            Meaning::RebuildFromType => match args.as_slice() {
                [func, new_type, inner_args, state] => {
                    let parameter = match self.meaning_of(*new_type) {
                        Some(Meaning::Tensor) => false,
                        Some(Meaning::Parameter) => true,
                        _ => {
                            let (m, n) = self.global_of(*new_type).unwrap_or_default();
                            return Err(self.refuse(
                                id,
                                "rebuilds a tensor as the subclass",
                                &m,
                                &n,
                            ));
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
            },
            Meaning::Size => match args.as_slice() {
                [dims] => Ok(Value::Size(
                    self.dims(*dims, "torch.Size")?
                        .into_iter()
                        .map(|d| i64::try_from(d).unwrap_or(i64::MAX))
                        .collect(),
                )),
                _ => Err(self.error(id, "torch.Size takes one tuple")),
            },
            Meaning::Device => {
                let kind = args
                    .first()
                    .and_then(|&a| self.text(a))
                    .ok_or_else(|| self.error(id, "torch.device needs a device type"))?;
                Ok(Value::Device(match args.get(1) {
                    Some(&index) if !matches!(self.pickle.get(index), Object::None) => {
                        format!("{kind}:{}", self.int(index, "device index")?)
                    }
                    _ => kind,
                }))
            }
            Meaning::Layout => {
                let name = match args.as_slice() {
                    [name] => self.text(*name),
                    _ => None,
                }
                .ok_or_else(|| self.error(id, "_get_layout takes the layout's name"))?;
                Ok(Value::Named {
                    type_name: "torch.layout".to_owned(),
                    name,
                })
            }
            Meaning::Set | Meaning::FrozenSet => {
                let items = match args.as_slice() {
                    [] => Vec::new(),
                    [items] => match self.value(*items, depth + 1)? {
                        Value::List(items)
                        | Value::Tuple(items)
                        | Value::Set(items)
                        | Value::FrozenSet(items) => items,
                        _ => {
                            return Err(self.error(
                                id,
                                format!("{name}() of something that is not a sequence"),
                            ));
                        }
                    },
                    _ => return Err(self.error(id, format!("{name}() takes one sequence"))),
                };
                Ok(if meaning == Meaning::Set {
                    Value::Set(items)
                } else {
                    Value::FrozenSet(items)
                })
            }
            Meaning::Complex => {
                let part = |w: &Self, i: usize| -> Result<f64> {
                    match args.get(i).map(|&a| w.pickle.get(a)) {
                        None => Ok(0.0),
                        Some(Object::Float(x)) => Ok(*x),
                        #[allow(clippy::cast_precision_loss)] // Python's complex(int) does the same
                        Some(Object::Int(i)) => Ok(*i as f64),
                        Some(_) => Err(w.error(id, "complex() of something that is not a number")),
                    }
                };
                Ok(Value::Complex(part(self, 0)?, part(self, 1)?))
            }
            Meaning::ByteArray => {
                match args.as_slice() {
                    [] => Ok(Value::ByteArray(Vec::new())),
                    [data, rest @ ..] => {
                        let encoding = rest
                            .first()
                            .and_then(|&e| self.text(e))
                            .map(|e| e.to_ascii_lowercase().replace('_', "-"));
                        match (self.value(*data, depth + 1)?, encoding.as_deref()) {
                            (Value::Bytes(bytes) | Value::ByteArray(bytes), None) => {
                                Ok(Value::ByteArray(bytes))
                            }
                            (Value::Str(text), Some("latin1" | "latin-1" | "iso-8859-1")) => {
                                Ok(Value::ByteArray(latin1(&text).ok_or_else(|| {
                                    self.error(id, "bytearray() of text that is not Latin-1")
                                })?))
                            }
                            (Value::Str(text), Some("utf-8" | "utf8")) => {
                                Ok(Value::ByteArray(text.into_bytes()))
                            }
                            _ => Err(self
                                .error(id, "bytearray() of something ckpt does not read as bytes")),
                        }
                    }
                }
            }
            Meaning::Slice => {
                let mut parts = self.values(&args, depth)?;
                parts.resize(3, Value::None);
                let [a, b, c]: [Value<'data>; 3] = parts
                    .try_into()
                    .map_err(|_| self.error(id, "slice() takes up to 3 arguments"))?;
                Ok(Value::Slice(Box::new([a, b, c])))
            }
            Meaning::Encode => match args.as_slice() {
                [text, encoding] => {
                    let text = self.text(*text).ok_or_else(|| {
                        self.error(id, "_codecs.encode of something that is not text")
                    })?;
                    let encoding = self
                        .text(*encoding)
                        .unwrap_or_default()
                        .to_ascii_lowercase()
                        .replace('_', "-");
                    let bytes = match encoding.as_str() {
                        "latin1" | "latin-1" | "iso-8859-1" => latin1(&text),
                        "utf-8" | "utf8" => Some(text.into_bytes()),
                        "ascii" if text.is_ascii() => Some(text.into_bytes()),
                        _ => None,
                    };
                    bytes.map(Value::Bytes).ok_or_else(|| {
                        self.error(
                            id,
                            format!(
                                "_codecs.encode with encoding `{encoding}` ckpt does not handle"
                            ),
                        )
                    })
                }
                _ => Err(self.error(id, "_codecs.encode takes text and an encoding")),
            },
            Meaning::NumpyArray => self.numpy_array(id, depth).map(Value::Tensor),
            Meaning::NumpyScalar => self.numpy_scalar(id, &args, depth).map(Value::Tensor),
            Meaning::ScriptBuilder => match args.first() {
                Some(&inner) => self.value(inner, depth + 1),
                None => Err(self.error(id, format!("{name} takes an argument"))),
            },
            Meaning::Dtype(_)
            | Meaning::QScheme
            | Meaning::Storage(_)
            | Meaning::Tensor
            | Meaning::Parameter
            | Meaning::NumpyDtype
            | Meaning::Marker
            | Meaning::Unread
            | Meaning::DcpRecord => Err(self.refuse(id, "calls", &module, &name)),
        }
    }

    /// `OrderedDict(...)` with the entries set later and attributes from `BUILD`.
    fn ordered_dict(
        &mut self,
        id: ObjectId,
        args: &[ObjectId],
        depth: usize,
    ) -> Result<Value<'data>> {
        let mut entries = match args {
            [] => Vec::new(),
            // Python 2 era: OrderedDict([[k, v], ...]).
            [items] => {
                let pairs = self
                    .pickle
                    .as_seq(*items)
                    .map(<[_]>::to_vec)
                    .unwrap_or_default();
                let mut entries = Vec::with_capacity(pairs.len());
                for pair in pairs {
                    match self.pickle.as_seq(pair) {
                        Some(&[k, v]) => {
                            entries.push((self.value(k, depth + 1)?, self.value(v, depth + 1)?))
                        }
                        _ => {
                            return Err(
                                self.error(pair, "OrderedDict item is not a (key, value) pair")
                            );
                        }
                    }
                }
                entries
            }
            _ => return Err(self.error(id, "OrderedDict takes at most one argument")),
        };
        let extras = self.pickle.extras(id).clone();
        entries.extend(self.entries(&extras.entries, depth)?);
        let mut dict = Dict::ordered(last_wins(entries));
        for state in extras.states {
            // `BUILD` of a dict state onto an OrderedDict sets attributes (`_metadata`).
            if let Value::Dict(attrs) = self.value(state, depth + 1)? {
                for (key, value) in attrs.entries {
                    dict.attributes.push((key.name_segment(), value));
                }
            }
        }
        Ok(Value::Dict(dict))
    }

    fn persistent_value(&mut self, pid: ObjectId) -> Result<Value<'data>> {
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
    fn rebuild(
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

    /// `cls.__new__(cls, *args)` and friends.
    fn instance(
        &mut self,
        id: ObjectId,
        class: ObjectId,
        args: ObjectId,
        depth: usize,
    ) -> Result<Value<'data>> {
        let Some((module, name)) = self.class_of(class) else {
            return Err(Error::new(
                ErrorKind::Refused,
                "the pickle instantiates a computed class (not a named global): loading it runs code",
            )
            .at_offset(self.pickle.offset(id)));
        };
        match globals::meaning(&module, &name) {
            Some(Meaning::Parameter) => {
                let args = self.args(args)?;
                // `Parameter(data, requires_grad=True)`.
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
            Some(Meaning::OrderedDict) => self.ordered_dict(id, &[], depth),
            _ if self.module_class(id).is_some() => {
                self.from_modules = true;
                let mut entries = Vec::new();
                // `id` is already entered by `value`.
                self.module_state_dict_inner(id, "", depth, &mut entries)?;
                Ok(Value::Dict(Dict::ordered(last_wins(entries))))
            }
            _ => Err(self.refuse(id, "instantiates", &module, &name)),
        }
    }

    /// The `BUILD` states of an object, merged as Python's `__dict__.update` does (a later
    /// value for a key wins, in the key's first place), when they are dicts.
    fn state_entries(&self, id: ObjectId) -> Option<State> {
        if let Some(cached) = self.states.borrow().get(&id) {
            return cached.clone();
        }
        let merged = self.merge_states(id);
        self.states.borrow_mut().insert(id, merged.clone());
        merged
    }

    fn merge_states(&self, id: ObjectId) -> Option<State> {
        let states = &self.pickle.extras(id).states;
        if states.is_empty() {
            return None;
        }
        let mut entries = Vec::new();
        for &state in states {
            entries.extend(self.dict_entries(state)?);
        }
        let merged = keep_last(entries, |&key| self.pickle.as_str(key));
        Some(merged.into())
    }

    /// The entries of a dict-like object: a dict, or an `OrderedDict(...)` call.
    fn dict_entries(&self, id: ObjectId) -> Option<Vec<(ObjectId, ObjectId)>> {
        match self.pickle.get(id) {
            Object::Dict(entries) => Some(entries.clone()),
            Object::Call { callable, .. }
                if self.meaning_of(*callable) == Some(Meaning::OrderedDict) =>
            {
                Some(self.pickle.extras(id).entries.clone())
            }
            _ => None,
        }
    }

    /// If `id` is an instance of an `nn.Module` (its state has `_parameters`, `_buffers`
    /// and `_modules`) or of a TorchScript class (`__torch__.*`), its class name.
    ///
    /// Only objects that pickle rebuilds without calling their class are modules here:
    /// `NEWOBJ` (or `NEWOBJ_EX`) with no arguments, then `BUILD`, which is how
    /// `nn.Module` pickles. `INST`, `OBJ` and `NEWOBJ` with arguments call code.
    fn module_class(&self, id: ObjectId) -> Option<(String, String)> {
        if let Some(cached) = self.modules.borrow().get(&id) {
            return cached.clone();
        }
        let class = self.find_module_class(id);
        self.modules.borrow_mut().insert(id, class.clone());
        class
    }

    fn find_module_class(&self, id: ObjectId) -> Option<(String, String)> {
        if !bare_instance(self.pickle, id) {
            return None;
        }
        let Object::Instance { class, .. } = self.pickle.get(id) else {
            return None;
        };
        let (module, name) = self.class_of(*class)?;
        if self.container == Container::TorchScript && module.starts_with("__torch__") {
            return Some((module, name));
        }
        let entries = self.state_entries(id)?;
        let has = |key: &str| {
            entries
                .iter()
                .any(|&(k, _)| self.pickle.as_str(k) == Some(key))
        };
        (has("_parameters") && has("_buffers") && has("_modules")).then_some((module, name))
    }

    /// `module.state_dict()` without running it: parameters, then persistent buffers, then
    /// submodules depth first, skipping `None`s (formats.md §3.2). TorchScript objects keep
    /// every tensor attribute, then recurse into their submodule attributes.
    fn module_state_dict(
        &mut self,
        id: ObjectId,
        prefix: &str,
        depth: usize,
        out: &mut Vec<(Value<'data>, Value<'data>)>,
    ) -> Result<()> {
        self.enter(id, depth)?;
        let result = self.module_state_dict_inner(id, prefix, depth, out);
        self.leave(id);
        result
    }

    fn module_state_dict_inner(
        &mut self,
        id: ObjectId,
        prefix: &str,
        depth: usize,
        out: &mut Vec<(Value<'data>, Value<'data>)>,
    ) -> Result<()> {
        let Some((module, _)) = self.module_class(id) else {
            return Err(self.error(id, "not a module"));
        };
        let state = self.state_entries(id).unwrap_or_default();
        // A module shared many times is walked once per use: charge its attributes.
        self.budget = self.budget.checked_sub(state.len()).ok_or_else(|| {
            Error::limit("the pickle refers to its modules so many times that reading it would take millions of steps")
                .at_offset(self.pickle.offset(id))
        })?;
        if prefix.len() > self.limits.name_len {
            return Err(limits::exceeded(
                "name-len",
                self.limits.name_len as u64,
                format_args!("a tensor name would be {} bytes long", prefix.len()),
            )
            .at_offset(self.pickle.offset(id)));
        }
        let field = |w: &Self, key: &str| {
            state
                .iter()
                .find(|&&(k, _)| w.pickle.as_str(k) == Some(key))
                .map(|&(_, v)| v)
        };
        if module.starts_with("__torch__") {
            return self.script_state_dict(id, &state, prefix, depth, out);
        }
        let non_persistent: Vec<String> = match field(self, "_non_persistent_buffers_set") {
            Some(set) => match self.value(set, depth + 1)? {
                Value::Set(items) | Value::List(items) | Value::FrozenSet(items) => items
                    .into_iter()
                    .filter_map(|v| match v {
                        Value::Str(s) => Some(s),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            },
            None => Vec::new(),
        };
        for (key, skip) in [("_parameters", &Vec::new()), ("_buffers", &non_persistent)] {
            let Some(container) = field(self, key) else {
                continue;
            };
            let entries = self
                .dict_entries(container)
                .ok_or_else(|| self.error(container, format!("module {key} is not a dict")))?;
            for (name, value) in entries {
                let name = self
                    .text(name)
                    .ok_or_else(|| self.error(name, "parameter name is not text"))?;
                if skip.contains(&name) || matches!(self.pickle.get(value), Object::None) {
                    continue;
                }
                let Value::Tensor(tensor) = self.value(value, depth + 1)? else {
                    return Err(self.error(
                        value,
                        format!("module {key} entry `{name}` is not a tensor"),
                    ));
                };
                // `state_dict()` detaches: plain tensors, no gradients, no attributes.
                out.push((
                    Value::Str(format!("{prefix}{name}")),
                    Value::Tensor(tensor.detached()),
                ));
            }
        }
        if let Some(container) = field(self, "_modules") {
            let entries = self
                .dict_entries(container)
                .ok_or_else(|| self.error(container, "module _modules is not a dict"))?;
            for (name, child) in entries {
                let name = self
                    .text(name)
                    .ok_or_else(|| self.error(name, "submodule name is not text"))?;
                if matches!(self.pickle.get(child), Object::None) {
                    continue;
                }
                self.module_state_dict(child, &format!("{prefix}{name}."), depth + 1, out)?;
            }
        }
        Ok(())
    }

    /// A TorchScript object's `state_dict()`: its parameters, then its buffers (as its
    /// class declares them), then its submodules, each in attribute order. Without a
    /// declaration for the class, every tensor attribute counts.
    fn script_state_dict(
        &mut self,
        id: ObjectId,
        state: &[(ObjectId, ObjectId)],
        prefix: &str,
        depth: usize,
        out: &mut Vec<(Value<'data>, Value<'data>)>,
    ) -> Result<()> {
        let class = match self.pickle.get(id) {
            Object::Instance { class, .. } => {
                self.class_of(*class).map(|(m, n)| format!("{m}.{n}"))
            }
            _ => None,
        };
        let decl = class.as_ref().and_then(|c| self.script.get(c)).cloned();
        let attributes: Vec<(String, ObjectId)> = state
            .iter()
            .filter_map(|&(k, v)| self.pickle.as_str(k).map(|k| (k.to_owned(), v)))
            .collect();
        let tensors: Vec<&(String, ObjectId)> = match &decl {
            Some((parameters, buffers)) => attributes
                .iter()
                .filter(|(name, _)| parameters.contains(name))
                .chain(attributes.iter().filter(|(name, _)| buffers.contains(name)))
                .collect(),
            None => attributes
                .iter()
                .filter(|(_, v)| self.is_tensor_object(*v))
                .collect(),
        };
        for (name, value) in tensors {
            if matches!(self.pickle.get(*value), Object::None) {
                continue;
            }
            let Value::Tensor(tensor) = self.value(*value, depth + 1)? else {
                return Err(self.error(
                    *value,
                    format!("TorchScript attribute `{name}` is not a tensor"),
                ));
            };
            out.push((
                Value::Str(format!("{prefix}{name}")),
                Value::Tensor(tensor.detached()),
            ));
        }
        for (name, value) in &attributes {
            if self.module_class(*value).is_some() {
                self.module_state_dict(*value, &format!("{prefix}{name}."), depth + 1, out)?;
            }
        }
        Ok(())
    }

    /// Whether an object is a tensor rebuild (so a TorchScript attribute is a tensor).
    fn is_tensor_object(&self, id: ObjectId) -> bool {
        match self.pickle.get(id) {
            Object::Call { callable, .. } => matches!(
                self.meaning_of(*callable),
                Some(Meaning::Rebuild(_) | Meaning::RebuildFromType)
            ),
            _ => false,
        }
    }

    /// `numpy.core.multiarray._reconstruct(ndarray, (0,), b'b')` with a `BUILD` state
    /// `(version, shape, dtype, is_fortran, data)`.
    fn numpy_array(&mut self, id: ObjectId, depth: usize) -> Result<TensorView<'data>> {
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
    fn numpy_scalar(
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

/// Whether the interpreter accepts a pickle that names the global `module.name`.
fn interpreted(module: &str, name: &str) -> bool {
    globals::lookup(module, name).is_some_and(globals::Global::interpreted)
}

/// What the table of globals says the object `id` is, when it is a global ckpt knows.
fn meaning_of(pickle: &Pickle<'_>, id: ObjectId) -> Option<Meaning> {
    match pickle.get(id) {
        Object::Global { module, name } => {
            let (module, name) = python3(module, name);
            globals::meaning(module, name)
        }
        _ => None,
    }
}

/// The `(module, name)` of a global object (Python 3 spelling), or `None`.
pub(crate) fn global_of(pickle: &Pickle<'_>, id: ObjectId) -> Option<(String, String)> {
    match pickle.get(id) {
        Object::Global { module, name } => {
            let (module, name) = python3(module, name);
            Some((module.to_owned(), name.to_owned()))
        }
        _ => None,
    }
}

/// The class an instance is made of: a global, or, in the containers that write them,
/// a class named through a persistent id one level deep (legacy whole-module saves:
/// `("module", class, file, source)`; the tar format: `(class, file, source)`).
pub(crate) fn class_of(
    pickle: &Pickle<'_>,
    id: ObjectId,
    container: Container,
) -> Option<(String, String)> {
    match pickle.get(id) {
        Object::Global { .. } => global_of(pickle, id),
        Object::PersistentId(pid) => {
            let class = match (container, pickle.as_seq(*pid)?) {
                (Container::Legacy, [tag, class, ..])
                    if text(pickle, *tag).as_deref() == Some("module") =>
                {
                    *class
                }
                (Container::Tar, [class, ..]) => *class,
                _ => return None,
            };
            global_of(pickle, class)
        }
        _ => None,
    }
}

/// Whether `id` is an instance rebuilt without calling its class: `NEWOBJ` with an empty
/// argument tuple, or `NEWOBJ_EX` with no arguments at all.
fn bare_instance(pickle: &Pickle<'_>, id: ObjectId) -> bool {
    let Object::Instance {
        args, kwargs, kind, ..
    } = pickle.get(id)
    else {
        return false;
    };
    let empty = |id: ObjectId| match pickle.get(id) {
        Object::Tuple(items) => items.is_empty(),
        Object::Dict(entries) => entries.is_empty(),
        Object::None => true,
        _ => false,
    };
    matches!(kind, InstanceKind::NewObj | InstanceKind::NewObjEx)
        && empty(*args)
        && kwargs.is_none_or(empty)
}

/// Refuses any object of the pickle, reached by the walk or not, that loading it in Python
/// would call or import beyond known data: the walk only visits what it needs, but Python
/// runs every opcode.
fn check_every_object(pickle: &Pickle<'_>, container: Container) -> Result<()> {
    let refuse = |id: ObjectId, what: &str, global: &str| {
        Err(Error::new(
            ErrorKind::Refused,
            format!(
                "the pickle {what} `{global}`, which ckpt does not know as data: loading this \
                 file in Python runs code"
            ),
        )
        .at_offset(pickle.offset(id))
        .with_hint(
            "ckpt reads tensors and plain values only; if you trust the file's source, \
             load it in Python with weights_only=False and save its state_dict()",
        ))
    };
    // Classes rebuilt without a call (modules, plain objects) may be any global.
    let mut classes = std::collections::HashSet::new();
    for (id, object) in pickle.objects() {
        if let Object::Instance { class, .. } = object
            && bare_instance(pickle, id)
        {
            classes.insert(*class);
            if let Object::PersistentId(pid) = pickle.get(*class) {
                classes.extend(pickle.as_seq(*pid).unwrap_or_default().iter().copied());
            }
        }
    }
    // Calls and instantiations first (the most telling report), then bare imports.
    for (id, object) in pickle.objects() {
        match object {
            Object::Call { callable, .. } => match global_of(pickle, *callable) {
                Some((module, name)) if interpreted(&module, &name) => {}
                Some((module, name)) => return refuse(id, "calls", &format!("{module}.{name}")),
                None => {
                    return Err(Error::new(
                        ErrorKind::Refused,
                        "the pickle calls a computed object (not a named global): loading it runs code",
                    )
                    .at_offset(pickle.offset(id)));
                }
            },
            Object::Instance { class, .. } if !bare_instance(pickle, id) => {
                match class_of(pickle, *class, container) {
                    Some((module, name)) if interpreted(&module, &name) => {}
                    Some((module, name)) => {
                        return refuse(id, "instantiates", &format!("{module}.{name}"));
                    }
                    None => {
                        return Err(Error::new(
                            ErrorKind::Refused,
                            "the pickle instantiates a computed class: loading it runs code",
                        )
                        .at_offset(pickle.offset(id)));
                    }
                }
            }
            _ => {}
        }
    }
    for (id, object) in pickle.objects() {
        if let Object::Global { module, name } = object {
            let (module, name) = python3(module, name);
            if !interpreted(module, name) && !classes.contains(&id) {
                return refuse(id, "imports", &format!("{module}.{name}"));
            }
        }
    }
    Ok(())
}

/// Keeps the last value of each key, in the key's first place, as a Python dict does.
/// Keys are compared by value for plain keys (text, numbers, bytes, tuples of those).
fn last_wins<'data>(
    entries: Vec<(Value<'data>, Value<'data>)>,
) -> Vec<(Value<'data>, Value<'data>)> {
    fn identity(key: &Value<'_>) -> Option<String> {
        Some(match key {
            Value::Str(s) => format!("s{s}"),
            Value::Int(i) => format!("n{i}"),
            Value::Bool(b) => format!("n{}", i64::from(*b)),
            Value::BigInt(digits) => format!("n{digits}"),
            #[allow(clippy::cast_possible_truncation)] // only when exactly integral
            Value::Float(x) if x.fract() == 0.0 && x.abs() < 9e15 => format!("n{}", *x as i64),
            Value::Float(x) => format!("f{}", x.to_bits()),
            Value::None => "None".to_owned(),
            Value::Bytes(b) => format!("b{b:?}"),
            Value::Tuple(items) => {
                let parts: Option<Vec<String>> = items.iter().map(identity).collect();
                format!("t({})", parts?.join(","))
            }
            _ => return None,
        })
    }
    keep_last(entries, identity)
}

/// Keeps the last value of each key, in the key's first place. Keys without an identity
/// (unhashable or unknown to ckpt) are all kept.
fn keep_last<K, V, I: std::hash::Hash + Eq>(
    entries: Vec<(K, V)>,
    mut identity: impl FnMut(&K) -> Option<I>,
) -> Vec<(K, V)> {
    let mut index: HashMap<I, usize> = HashMap::new();
    let mut out: Vec<(K, V)> = Vec::with_capacity(entries.len());
    for (key, value) in entries {
        match identity(&key) {
            Some(id) => match index.get(&id) {
                Some(&slot) => {
                    if let Some(entry) = out.get_mut(slot) {
                        entry.1 = value;
                    }
                }
                None => {
                    index.insert(id, out.len());
                    out.push((key, value));
                }
            },
            None => out.push((key, value)),
        }
    }
    out
}

/// Text of a `Str`, or of UTF-8 `Bytes` (Python 2 pickles).
pub(crate) fn text(pickle: &Pickle<'_>, id: ObjectId) -> Option<String> {
    match pickle.get(id) {
        Object::Str(s) => Some(s.to_string()),
        Object::Bytes(b) => std::str::from_utf8(b).ok().map(str::to_owned),
        _ => None,
    }
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

/// Latin-1 encoding of text whose characters are all below U+0100.
fn latin1(text: &str) -> Option<Vec<u8>> {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).ok())
        .collect()
}

/// The dtype of a storage class (`torch.FloatStorage`, `torch.cuda.HalfStorage`,
/// `torch.storage.UntypedStorage`).
pub(crate) fn storage_kind(module: &str, name: &str) -> Option<StorageKind> {
    match globals::meaning(module, name)? {
        Meaning::Storage(kind) => Some(kind),
        _ => None,
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
