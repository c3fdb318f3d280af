//! Giving meaning to a symbolic pickle, by the table of globals ([`super::globals`]).
//!
//! The pickle VM ([`ckpt_pickle`]) turns bytes into a graph of symbolic objects without
//! running anything. This module walks that graph from the root and turns what it knows
//! into the format-neutral model: torch's tensor rebuild functions, storages, dtypes,
//! `torch.Size`, `torch.device`, `OrderedDict` (with its `_metadata`), builtins sets,
//! complex numbers and bytes, numpy arrays and scalars, and whole `nn.Module` objects
//! (reduced to the `state_dict()` they would give). Any other global that would have to be
//! called or instantiated ends the walk with an [`ErrorKind::Refused`] error that names it:
//! loading such a file runs code, and ckpt never does.
//!
//! Here: the walk (depth, cycles, budgets, dotted names) and the dispatch of each call,
//! instance and bare global on its [`Meaning`]. What each kind of thing becomes is in a
//! module of its own: `tensors` (storages, rebuild functions, parameters, quantized
//! tensors), `numpy` (arrays and scalars), `modules` (`nn.Module` objects as state dicts),
//! `script` (TorchScript objects, their declarations, `torch.jit._pickle`), `values`
//! (containers and small values). `check` refuses, before the walk, what it would not
//! reach.

mod check;
mod modules;
mod numpy;
mod objects;
mod script;
mod tensors;
mod values;

use std::cell::RefCell;
use std::collections::HashMap;

use ckpt_pickle::{Object, ObjectId, Pickle};

use crate::error::{Error, ErrorKind, Result};
use crate::limits::{self, Limits};
use crate::model::{Dict, Value};
use crate::torch::globals::{self, Meaning};
use modules::State;
use values::last_wins;

pub(crate) use crate::torch::globals::StorageKind;
pub(crate) use script::ScriptDecls;
pub(crate) use tensors::{StorageId, Storages, storage_id, storage_kind};

/// The most values a walk may produce, beyond the pickle's own object count: following
/// shared references could otherwise expand a small pickle exponentially.
const MIN_BUDGET: usize = 1 << 20;
/// The fewest bytes of strings the walk may copy, whatever the pickle's size (beyond it,
/// 16 bytes per byte of pickle).
const MIN_BYTES_BUDGET: usize = 64 << 20;

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
    check::check_every_object(pickle, container)?;
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
        Value::Object(object) => object.fields().iter().map(|(_, v)| count_tensors(v)).sum(),
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

/// `(module, name)` in Python 3 spelling.
fn python3<'x>(module: &'x str, name: &'x str) -> (&'x str, &'x str) {
    ckpt_pickle::python3_name(module, name)
}

impl<'data> Walker<'_, '_, '_, 'data> {
    fn error(&self, id: ObjectId, message: impl Into<String>) -> Error {
        Error::malformed(message).at_offset(self.pickle.offset(id))
    }

    fn refuse(&self, id: ObjectId, what: &str, module: &str, name: &str) -> Error {
        refused(what, module, name).at_offset(self.pickle.offset(id))
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
                "the pickle refers to the same strings, bytes or large integers so many times \
                 that reading it would copy far more bytes than the file holds",
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
        // `parent.segment`: the dot only after a parent.
        let dot = usize::from(self.path_len > 0);
        self.path_len = self.path_len.saturating_add(segment_len + dot);
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
        if self.on_path.get(id.index()) == Some(&true)
            && let Some(class) = self.inert_class(id)
        {
            // An object that refers back to one that holds it (a config node's `_parent`):
            // named, not followed.
            return Ok(Value::Backref(class));
        }
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
                self.global_value(module, name)
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

    /// A bare global used as a value (not called): dtypes, qschemes; any other global is
    /// kept as its name (a class or function the pickle refers to, never imported).
    fn global_value(&self, module: &str, name: &str) -> Value<'data> {
        match globals::interpreted_meaning(module, name) {
            Some(Meaning::Dtype(dtype)) => Value::Dtype(dtype),
            Some(Meaning::QScheme) => Value::Named {
                type_name: "torch.qscheme".to_owned(),
                name: format!("{module}.{name}"),
            },
            _ => Value::Global(format!("{module}.{name}")),
        }
    }

    /// The class of `id` when the walk keeps it as an inert [`Object`](crate::model::Object):
    /// a call or instance of a global the interpreter gives no meaning to.
    fn inert_class(&self, id: ObjectId) -> Option<String> {
        let (module, name) = match self.pickle.get(id) {
            Object::Call { callable, .. } => self.global_of(*callable)?,
            Object::Instance { class, .. } if self.module_class(id).is_none() => {
                self.class_of(*class)?
            }
            _ => return None,
        };
        globals::interpreted_meaning(&module, &name)
            .is_none()
            .then(|| format!("{module}.{name}"))
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
            return Err(computed("calls a computed object").at_offset(self.pickle.offset(id)));
        };
        let args = self.args(args_id)?;
        let Some(meaning) = globals::interpreted_meaning(&module, &name) else {
            return self.unknown_call(id, &module, &name, &args, depth);
        };
        match meaning {
            Meaning::OrderedDict => self.ordered_dict(id, &args, depth),
            Meaning::Counter => self.counter(id, &args, depth),
            Meaning::Size => self.size(id, &args),
            Meaning::Device => self.device(id, &args),
            Meaning::Layout => self.layout(id, &args),
            Meaning::Set | Meaning::FrozenSet => self.set(id, meaning, &name, &args, depth),
            Meaning::Complex => self.complex(id, &args),
            Meaning::ByteArray => self.bytearray(id, &args, depth),
            Meaning::Slice => self.slice(id, &args, depth),
            Meaning::Encode => self.encode(id, &args),
            Meaning::Rebuild(how) => self.rebuild(id, how, &name, &args, depth),
            Meaning::RebuildFromType => self.rebuild_from_type(id, &args, depth),
            Meaning::NumpyArray => self.numpy_array(id, depth).map(Value::Tensor),
            Meaning::NumpyScalar => self.numpy_scalar(id, &args, depth).map(Value::Tensor),
            Meaning::ScriptBuilder => self.script_builder(id, &name, &args, depth),
            Meaning::Dtype(_)
            | Meaning::QScheme
            | Meaning::Storage(_)
            | Meaning::Tensor
            | Meaning::Parameter
            | Meaning::NumpyDtype
            | Meaning::Marker => Err(self.refuse(id, "calls", &module, &name)),
            // Left to other readers (`interpreted_meaning` does not give them): called in a
            // torch pickle, they are objects of their class like any other.
            Meaning::Unread | Meaning::DcpRecord => {
                self.unknown_call(id, &module, &name, &args, depth)
            }
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
            return Err(computed("instantiates a computed class").at_offset(self.pickle.offset(id)));
        };
        match globals::interpreted_meaning(&module, &name) {
            Some(Meaning::Parameter) => self.parameter(id, args, depth),
            Some(Meaning::OrderedDict) => self.ordered_dict(id, &[], depth),
            _ if self.module_class(id).is_some() => self.module_value(id, depth),
            None => {
                let args = self.args(args)?;
                let kwargs = match self.pickle.get(id) {
                    Object::Instance { kwargs, .. } => *kwargs,
                    _ => None,
                };
                self.object(id, format!("{module}.{name}"), &args, kwargs, depth)
            }
            Some(_) => Err(self.refuse(id, "instantiates", &module, &name)),
        }
    }

    /// A call of a global the table gives no meaning to, kept as an inert object:
    /// `copyreg._reconstructor(cls, base, state)` (how protocols 0 and 1 pickle an
    /// instance) as an instance of `cls`, any other call as an object of the callable.
    fn unknown_call(
        &mut self,
        id: ObjectId,
        module: &str,
        name: &str,
        args: &[ObjectId],
        depth: usize,
    ) -> Result<Value<'data>> {
        if (module, name) == ("copyreg", "_reconstructor")
            && let [class, _base, state] = args
            && let Some((class_module, class_name)) = self.global_of(*class)
        {
            let args: &[ObjectId] = match self.pickle.get(*state) {
                Object::None => &[],
                _ => std::slice::from_ref(state),
            };
            return self.object(
                id,
                format!("{class_module}.{class_name}"),
                args,
                None,
                depth,
            );
        }
        self.object(id, format!("{module}.{name}"), args, None, depth)
    }

    /// A module's `state_dict()`, entered as a value of its own (depth, cycles, budget).
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

    /// A module's `state_dict()`, as an `nn.Module` or a TorchScript object gives it, its
    /// tensors named under `prefix`.
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
        if module.starts_with("__torch__") {
            self.script_state_dict(id, &state, prefix, depth, out)
        } else {
            self.nn_module_state_dict(&state, prefix, depth, out)
        }
    }
}

/// The pickle `what`s (calls, instantiates, imports...) the global `module.name`, which
/// ckpt does not know as data.
fn refused(what: &str, module: &str, name: &str) -> Error {
    Error::new(
        ErrorKind::Refused,
        format!(
            "the pickle {what} `{module}.{name}`, which ckpt does not know as data: loading this \
             file in Python runs code"
        ),
    )
    .with_hint(
        "ckpt reads tensors and plain values only; if you trust the file's source, load it in \
         Python with weights_only=False and save its state_dict()",
    )
}

/// The pickle `what`s (calls a computed object...) something that is not a named global.
fn computed(what: &str) -> Error {
    Error::new(
        ErrorKind::Refused,
        format!("the pickle {what} (not a named global): loading it runs code"),
    )
}

/// What the table of globals says the object `id` is, when it is a global ckpt knows.
fn meaning_of(pickle: &Pickle<'_>, id: ObjectId) -> Option<Meaning> {
    match pickle.get(id) {
        Object::Global { module, name } => {
            let (module, name) = python3(module, name);
            globals::interpreted_meaning(module, name)
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

/// Text of a `Str`, or of UTF-8 `Bytes` (Python 2 pickles).
pub(crate) fn text(pickle: &Pickle<'_>, id: ObjectId) -> Option<String> {
    match pickle.get(id) {
        Object::Str(s) => Some(s.to_string()),
        Object::Bytes(b) => std::str::from_utf8(b).ok().map(str::to_owned),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Storage;
    use crate::torch::globals::{GLOBALS, Global, Rebuild};

    /// Storages that refuse every request, saying what was asked: the tests only need to
    /// know that the walk got there.
    struct Asked;

    impl<'data> Storages<'data> for Asked {
        fn storage(&mut self, id: &StorageId) -> Result<Storage<'data>> {
            Err(Error::malformed(format!(
                "asked for a storage of {:?}",
                id.kind
            )))
        }
    }

    /// Reads a protocol 2 pickle of `body` as a plain pickle.
    fn read(body: &[u8]) -> Result<Value<'static>> {
        let bytes = [b"\x80\x02".as_slice(), body, b"."].concat();
        let limits = Limits::default();
        let pickle = ckpt_pickle::parse(&bytes, 0, &limits.pickle).expect("a pickle");
        interpret(&pickle, &mut Asked, Container::Pickle, &limits).map(|i| i.root)
    }

    fn global(g: &Global) -> Vec<u8> {
        format!("c{}\n{}\n", g.module, g.name).into_bytes()
    }

    fn unicode(s: &str) -> Vec<u8> {
        let mut out = vec![b'X'];
        out.extend_from_slice(&u32::try_from(s.len()).unwrap().to_le_bytes());
        out.extend_from_slice(s.as_bytes());
        out
    }

    /// Pickles that use the global as the interpreter reads a global of its meaning: called
    /// (with one argument, `None`), as a value, instantiated, named in a storage's persistent
    /// id, or as the argument another call expects. The match has no wildcard: a new
    /// meaning must say how the interpreter uses it.
    fn uses(g: &Global) -> Vec<Vec<u8>> {
        let called = [global(g), b"(NtR".to_vec()].concat();
        let value = global(g);
        let instance = [global(g), b")\x81".to_vec()].concat();
        // `_rebuild_from_type_v2(_rebuild_device_tensor_from_cpu_tensor, <g>, (None,), {})`.
        let new_type = [
            b"ctorch._tensor\n_rebuild_from_type_v2\n(ctorch._utils\n".to_vec(),
            b"_rebuild_device_tensor_from_cpu_tensor\n".to_vec(),
            global(g),
            b"(Nt}tR".to_vec(),
        ]
        .concat();
        match g.meaning {
            Meaning::OrderedDict => vec![called, instance],
            Meaning::Counter
            | Meaning::Set
            | Meaning::FrozenSet
            | Meaning::Complex
            | Meaning::ByteArray
            | Meaning::Slice
            | Meaning::Encode
            | Meaning::Size
            | Meaning::Device
            | Meaning::Layout
            | Meaning::Rebuild(_)
            | Meaning::RebuildFromType
            | Meaning::NumpyArray
            | Meaning::NumpyScalar
            | Meaning::ScriptBuilder => vec![called],
            Meaning::Dtype(_) | Meaning::QScheme => vec![value],
            Meaning::Storage(_) => {
                let pid = [
                    b"(".to_vec(),
                    unicode("storage"),
                    global(g),
                    unicode("0"),
                    unicode("cpu"),
                    b"K\x04tQ".to_vec(),
                ];
                vec![pid.concat()]
            }
            Meaning::Tensor => vec![new_type],
            Meaning::Parameter => vec![instance, new_type],
            // `numpy.core.multiarray.scalar(<g>('f4'), '\0\0\0\0')`.
            Meaning::NumpyDtype => vec![
                [
                    b"cnumpy.core.multiarray\nscalar\n(".to_vec(),
                    global(g),
                    b"(".to_vec(),
                    unicode("f4"),
                    b"tR".to_vec(),
                    unicode("\0\0\0\0"),
                    b"tR".to_vec(),
                ]
                .concat(),
            ],
            Meaning::Marker | Meaning::Unread | Meaning::DcpRecord => Vec::new(),
        }
    }

    /// A number for each meaning (and each rebuild function, each kind of storage), below
    /// [`MEANINGS`]; no wildcard, so a new meaning needs one.
    fn index(meaning: Meaning) -> usize {
        match meaning {
            Meaning::OrderedDict => 0,
            Meaning::Counter => 1,
            Meaning::Set => 2,
            Meaning::FrozenSet => 3,
            Meaning::Complex => 4,
            Meaning::ByteArray => 5,
            Meaning::Slice => 6,
            Meaning::Encode => 7,
            Meaning::Size => 8,
            Meaning::Device => 9,
            Meaning::Layout => 10,
            Meaning::Dtype(_) => 11,
            Meaning::QScheme => 12,
            Meaning::Storage(StorageKind::Typed(_)) => 13,
            Meaning::Storage(StorageKind::Untyped) => 14,
            Meaning::Rebuild(how) => match how {
                Rebuild::Tensor => 15,
                Rebuild::TensorV2 => 16,
                Rebuild::TensorV3 => 17,
                Rebuild::Parameter => 18,
                Rebuild::ParameterWithState => 19,
                Rebuild::QTensor => 20,
                Rebuild::FromData => 21,
                Rebuild::Meta => 22,
                Rebuild::Sparse => 23,
                Rebuild::Unsupported => 24,
            },
            Meaning::RebuildFromType => 25,
            Meaning::Tensor => 26,
            Meaning::Parameter => 27,
            Meaning::NumpyArray => 28,
            Meaning::NumpyScalar => 29,
            Meaning::NumpyDtype => 30,
            Meaning::ScriptBuilder => 31,
            Meaning::Marker => 32,
            Meaning::Unread => 33,
            Meaning::DcpRecord => 34,
        }
    }

    const MEANINGS: usize = 35;

    #[test]
    fn the_interpreter_reads_every_global_of_the_table_and_no_other() {
        // A global the interpreter does not read is an inert object when called, its name
        // as a value.
        let inert = |module: &str, name: &str| {
            let called = read(format!("c{module}\n{name}\n(NtR").as_bytes());
            assert!(
                matches!(&called, Ok(Value::Object(o)) if o.class == format!("{module}.{name}")),
                "{module}.{name}: {called:?}"
            );
            let named = read(format!("c{module}\n{name}\n").as_bytes());
            assert!(
                matches!(&named, Ok(Value::Global(g)) if *g == format!("{module}.{name}")),
                "{module}.{name}: {named:?}"
            );
        };
        for g in GLOBALS {
            let imported = read(&[global(g), b"0N".to_vec()].concat());
            assert!(matches!(imported, Ok(Value::None)), "{g:?}: {imported:?}");
            if !g.interpreted() {
                inert(g.module, g.name);
                continue;
            }
            for pickle in uses(g) {
                // The walk reaches the code for the meaning: a value, or an error about
                // the arguments, never "not known as data".
                let read = read(&pickle);
                assert!(
                    !matches!(&read, Err(e) if e.kind() == ErrorKind::Refused),
                    "{g:?}: {read:?}"
                );
                match (g.meaning, read) {
                    (Meaning::Dtype(dtype), Ok(Value::Dtype(read))) => assert_eq!(read, dtype),
                    (Meaning::QScheme, Ok(Value::Named { name, .. })) => {
                        assert_eq!(name, format!("torch.{}", g.name));
                    }
                    (Meaning::Storage(kind), Err(e)) => {
                        assert!(e.message().contains(&format!("{kind:?}")), "{g:?}: {e}");
                    }
                    (Meaning::Dtype(_) | Meaning::QScheme | Meaning::Storage(_), other) => {
                        panic!("{g:?}: {other:?}")
                    }
                    _ => {}
                }
            }
        }
        // The interpreter knows no name the table does not have.
        for (module, name) in [
            ("torch._utils", "_rebuild_tensor_v4"),
            ("torch.storage", "TypedStorage2"),
            ("numpy", "dtypes"),
            ("collections", "defaultdict"),
        ] {
            inert(module, name);
        }
    }

    #[test]
    fn every_meaning_has_a_global() {
        let mut seen = [false; MEANINGS];
        for g in GLOBALS {
            let i = index(g.meaning);
            assert!(i < MEANINGS, "{g:?}: count it in MEANINGS");
            seen[i] = true;
        }
        let missing: Vec<usize> = (0..MEANINGS).filter(|&i| !seen[i]).collect();
        assert!(missing.is_empty(), "meanings without a global: {missing:?}");
    }
}
