//! The pickle machine: runs decoded opcodes on a stack, building symbolic objects.
//!
//! It takes exactly what CPython's C unpickler (`_pickle.c`) takes, opcode by opcode: a
//! scanner built on it must never stop where a loader would read on. Where CPython's
//! outcome depends on a value only code could make (the result of a call, an imported
//! global, a persistent object), the machine reads on and records what was done to it.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use crate::decode::{Arg, Decoder, Framing, Instruction};
use crate::error::{Error, ErrorKind};
use crate::extension::{self, CodeError, Entry, Key, Registry, code_from_float, code_from_text};
use crate::limits::Limits;
use crate::object::{Extras, InstanceKind, Node, Object, ObjectId, Pickle};
use crate::opcode::{HIGHEST_PROTOCOL, Opcode};

/// Reads the pickle at the start of `data` (which starts at byte `base` of its file) up to
/// its `STOP`, without importing or calling anything.
///
/// Bytes after `STOP` are not read; [`Pickle::byte_len`] says where the pickle ended.
pub fn parse<'a>(data: &'a [u8], base: u64, limits: &Limits) -> Result<Pickle<'a>, Error> {
    let (pickle, error) = parse_partial(data, base, limits);
    match error {
        Some(error) => Err(error),
        None => Ok(pickle),
    }
}

/// Like [`parse`], but on an error also returns what was built before it, so that a
/// scanner sees every global a truncated or corrupted pickle reached before it broke.
pub fn parse_partial<'a>(
    data: &'a [u8],
    base: u64,
    limits: &Limits,
) -> (Pickle<'a>, Option<Error>) {
    parse_partial_framed(data, base, limits, Framing::Contiguous)
}

/// Like [`parse_partial`], reading the bytes as `framing` does: [`Framing::Stream`] is what
/// `torch.load` and `pickle.load` on an unbuffered stream see when an opcode crosses the
/// end of a frame (see [`Pickle::divergence`]).
pub fn parse_partial_framed<'a>(
    data: &'a [u8],
    base: u64,
    limits: &Limits,
    framing: Framing,
) -> (Pickle<'a>, Option<Error>) {
    parse_partial_inline(data, base, limits, framing, &mut |_, _, _| 0)
}

/// What a loader reads itself after a `BUILD`, outside the pickle's opcodes: called with
/// the objects built so far, the object `BUILD` gave a state to, and the bytes that follow;
/// returns how many of them the loader reads (joblib's unpickler reads an array's raw data,
/// or a whole nested pickle, right after the `BUILD` of a `NumpyArrayWrapper`).
pub type Inline<'h, 'a> = dyn FnMut(&Pickle<'a>, ObjectId, &'a [u8]) -> usize + 'h;

/// [`parse_partial_framed`] for a loader that reads data of its own between opcodes
/// ([`Inline`]): the machine passes over what `inline` says the loader reads.
pub fn parse_partial_inline<'a>(
    data: &'a [u8],
    base: u64,
    limits: &Limits,
    framing: Framing,
    inline: &mut Inline<'_, 'a>,
) -> (Pickle<'a>, Option<Error>) {
    let mut machine = Machine {
        decoder: Decoder::with_framing(data, base, limits.clone(), framing),
        limits: limits.clone(),
        nodes: Vec::new(),
        extras: HashMap::new(),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        protocol: None,
        protocol_now: 0,
        root: None,
        hashable: HashSet::new(),
        extensions: Registry::default(),
    };
    let error = machine.run(inline).err();
    let len = machine.decoder.position();
    let pickle = Pickle {
        nodes: machine.nodes,
        extras: machine.extras,
        root: machine.root,
        protocol: machine.protocol,
        len,
        stream_len: machine.decoder.stream_position(),
        divergence: machine.decoder.divergence(),
    };
    (pickle, error)
}

struct Machine<'a> {
    decoder: Decoder<'a>,
    limits: Limits,
    nodes: Vec<Node<'a>>,
    extras: HashMap<ObjectId, Extras>,
    stack: Vec<ObjectId>,
    marks: Vec<usize>,
    memo: HashMap<u64, ObjectId>,
    protocol: Option<u8>,
    /// The protocol of the last `PROTO` (CPython's `self->proto`, which its `find_class`
    /// maps Python 2 names by).
    protocol_now: u8,
    root: Option<ObjectId>,
    /// Tuples and frozensets already found hashable (they never change once built).
    hashable: HashSet<ObjectId>,
    /// copyreg's extension registry, as this pickle fills it.
    extensions: Registry,
}

/// Where an error happened: the instruction being run.
struct At {
    offset: u64,
    opcode: Opcode,
}

impl At {
    fn error(&self, kind: ErrorKind) -> Error {
        Error::new(kind, self.offset, Some(self.opcode))
    }

    fn wrong(&self, what: impl Into<String>) -> Error {
        self.error(ErrorKind::WrongType(what.into()))
    }
}

/// Whether only running code could tell what an object is: an imported global, the
/// result of a call, an instance, a persistent object. CPython's outcome on those depends
/// on what they turn out to be, so the machine reads on and records what is done to them.
fn is_opaque(object: &Object<'_>) -> bool {
    matches!(
        object,
        Object::Global { .. }
            | Object::Call { .. }
            | Object::Instance { .. }
            | Object::PersistentId(_)
            | Object::Extension(_)
    )
}

/// An integer value the way Python's `operator.index` sees it (`bool` is an `int`).
enum IntValue {
    Small(i64),
    Big,
    NotInt,
}

fn int_value(object: &Object<'_>) -> IntValue {
    match object {
        Object::Int(i) => IntValue::Small(*i),
        Object::Bool(b) => IntValue::Small(i64::from(*b)),
        Object::BigInt(_) => IntValue::Big,
        _ => IntValue::NotInt,
    }
}

impl<'a> Machine<'a> {
    fn run(&mut self, inline: &mut Inline<'_, 'a>) -> Result<(), Error> {
        while let Some(instruction) = self.decoder.next_instruction() {
            let instruction = instruction?;
            let at = At {
                offset: instruction.offset,
                opcode: instruction.opcode,
            };
            let build = instruction.opcode == Opcode::Build;
            if self.step(instruction, &at)? {
                return Ok(());
            }
            if build && let Some(&target) = self.stack.last() {
                let n = self.inline(inline, target);
                if n > 0 {
                    self.decoder.pass_over(n, at.offset, at.opcode)?;
                }
            }
        }
        Err(Error::new(ErrorKind::Truncated, 0, None))
    }

    /// Asks `inline` what the loader reads after the `BUILD` of `target`.
    fn inline(&mut self, inline: &mut Inline<'_, 'a>, target: ObjectId) -> usize {
        if !is_opaque(self.object(target)) {
            return 0;
        }
        let view = Pickle {
            nodes: std::mem::take(&mut self.nodes),
            extras: std::mem::take(&mut self.extras),
            root: None,
            protocol: self.protocol,
            len: self.decoder.position(),
            stream_len: self.decoder.position(),
            divergence: None,
        };
        let n = inline(&view, target, self.decoder.rest());
        self.nodes = view.nodes;
        self.extras = view.extras;
        n
    }

    fn limit(at: &At, limit: &'static str, max: usize) -> Error {
        at.error(ErrorKind::LimitExceeded {
            limit,
            max: max as u64,
        })
    }

    fn new_object(&mut self, object: Object<'a>, at: &At) -> Result<ObjectId, Error> {
        let max = self.limits.max_objects.min(u32::MAX as usize);
        if self.nodes.len() >= max {
            return Err(Self::limit(at, "max_objects", max));
        }
        let id = ObjectId(
            u32::try_from(self.nodes.len()).map_err(|_| Self::limit(at, "max_objects", max))?,
        );
        self.nodes.push(Node {
            object,
            offset: at.offset,
        });
        Ok(id)
    }

    fn push(&mut self, id: ObjectId, at: &At) -> Result<(), Error> {
        if self.stack.len() >= self.limits.max_stack {
            return Err(Self::limit(at, "max_stack", self.limits.max_stack));
        }
        self.stack.push(id);
        Ok(())
    }

    fn push_new(&mut self, object: Object<'a>, at: &At) -> Result<ObjectId, Error> {
        let id = self.new_object(object, at)?;
        self.push(id, at)?;
        Ok(id)
    }

    /// Whether the topmost mark leaves no value above it (values below it belong to an
    /// outer frame: CPython's `fence`).
    fn at_fence(&self) -> bool {
        self.marks
            .last()
            .is_some_and(|&mark| mark >= self.stack.len())
    }

    fn pop(&mut self, at: &At) -> Result<ObjectId, Error> {
        if self.at_fence() {
            return Err(at.error(ErrorKind::StackUnderflow));
        }
        self.stack
            .pop()
            .ok_or_else(|| at.error(ErrorKind::StackUnderflow))
    }

    fn top(&self, at: &At) -> Result<ObjectId, Error> {
        if self.at_fence() {
            return Err(at.error(ErrorKind::StackUnderflow));
        }
        self.stack
            .last()
            .copied()
            .ok_or_else(|| at.error(ErrorKind::StackUnderflow))
    }

    fn pop_mark(&mut self, at: &At) -> Result<Vec<ObjectId>, Error> {
        let mark = self
            .marks
            .pop()
            .ok_or_else(|| at.error(ErrorKind::NoMark))?;
        Ok(self.stack.split_off(mark.min(self.stack.len())))
    }

    fn object(&self, id: ObjectId) -> &Object<'a> {
        self.nodes
            .get(id.index())
            .map_or(&Object::None, |n| &n.object)
    }

    fn object_mut(&mut self, id: ObjectId) -> Option<&mut Object<'a>> {
        self.nodes.get_mut(id.index()).map(|n| &mut n.object)
    }

    fn kind(&self, id: ObjectId) -> &'static str {
        kind_name(self.object(id))
    }

    fn memo_put(&mut self, index: u64, at: &At) -> Result<(), Error> {
        let top = self.top(at)?;
        if self.memo.len() >= self.limits.max_memo && !self.memo.contains_key(&index) {
            return Err(Self::limit(at, "max_memo", self.limits.max_memo));
        }
        self.memo.insert(index, top);
        Ok(())
    }

    fn memo_get(&mut self, index: i64, at: &At) -> Result<(), Error> {
        let id = u64::try_from(index)
            .ok()
            .and_then(|index| self.memo.get(&index))
            .copied()
            .ok_or_else(|| at.error(ErrorKind::MissingMemo(index)))?;
        self.push(id, at)
    }

    /// Records what an opcode did to an opaque object.
    fn extras(&mut self, target: ObjectId) -> &mut Extras {
        self.extras.entry(target).or_default()
    }

    /// `APPEND`/`APPENDS`: `list.extend`, else the target's own `extend` (or `append`):
    /// a bytearray takes ints 0 to 255.
    fn append(&mut self, target: ObjectId, items: Vec<ObjectId>, at: &At) -> Result<(), Error> {
        // CPython returns before looking at the target when there is nothing to add.
        if items.is_empty() {
            return Ok(());
        }
        match self.object(target) {
            Object::List(_) => {
                if let Some(Object::List(list)) = self.object_mut(target) {
                    list.extend(items);
                }
            }
            Object::ByteArray(_) => {
                let mut bytes = Vec::with_capacity(items.len());
                let mut opaque = false;
                for &item in &items {
                    match int_value(self.object(item)) {
                        IntValue::Small(value) => {
                            bytes.push(u8::try_from(value).map_err(|_| {
                                at.wrong(format!(
                                    "{} of {value} onto a bytearray: byte must be in range(0, 256)",
                                    at.opcode.name()
                                ))
                            })?)
                        }
                        IntValue::Big => {
                            return Err(at.wrong(format!(
                                "{} of a big int onto a bytearray: byte must be in range(0, 256)",
                                at.opcode.name()
                            )));
                        }
                        IntValue::NotInt if is_opaque(self.object(item)) => opaque = true,
                        IntValue::NotInt => {
                            return Err(at.wrong(format!(
                                "{} onto a bytearray: '{}' object cannot be interpreted as an \
                                 integer",
                                at.opcode.name(),
                                self.kind(item)
                            )));
                        }
                    }
                }
                if opaque {
                    // Bytes that only code could tell: what was appended is recorded.
                    self.extras(target).items.extend(items);
                } else if let Some(Object::ByteArray(array)) = self.object_mut(target) {
                    array.to_mut().extend_from_slice(&bytes);
                }
            }
            // A global may be a list or a registry at load time: appending to it mutates it
            // for every later user, which scanners must see.
            object if is_opaque(object) => self.extras(target).items.extend(items),
            _ => {
                return Err(at.wrong(format!(
                    "{} onto a {}, which has no extend() or append()",
                    at.opcode.name(),
                    self.kind(target)
                )));
            }
        }
        Ok(())
    }

    /// `SETITEM`/`SETITEMS`: `target[key] = value` for each pair, in order.
    fn set_items(
        &mut self,
        target: ObjectId,
        pairs: Vec<(ObjectId, ObjectId)>,
        at: &At,
    ) -> Result<(), Error> {
        if pairs.is_empty() {
            return Ok(());
        }
        match self.object(target) {
            Object::Dict(_) => {
                for &(key, _) in &pairs {
                    self.check_hashable(key, at)?;
                }
                if let Some(Object::Dict(entries)) = self.object_mut(target) {
                    entries.extend(pairs);
                }
            }
            Object::List(_) | Object::ByteArray(_) => {
                for (key, value) in pairs {
                    self.set_index(target, key, value, at)?;
                }
            }
            object if is_opaque(object) => self.extras(target).entries.extend(pairs),
            Object::MemoryView(_) => {
                return Err(at.wrong(format!(
                    "{} onto a read-only memoryview: cannot modify read-only memory",
                    at.opcode.name()
                )));
            }
            _ => {
                return Err(at.wrong(format!(
                    "{} onto a {}, which does not support item assignment",
                    at.opcode.name(),
                    self.kind(target)
                )));
            }
        }
        Ok(())
    }

    /// `list[index] = value` or `bytearray[index] = value`.
    fn set_index(
        &mut self,
        target: ObjectId,
        key: ObjectId,
        value: ObjectId,
        at: &At,
    ) -> Result<(), Error> {
        let kind = self.kind(target);
        let index = match int_value(self.object(key)) {
            IntValue::Small(index) => index,
            IntValue::Big => {
                return Err(at.wrong(format!(
                    "{kind} index out of range (cannot fit 'int' into an index-sized integer)"
                )));
            }
            // A slice or an object with __index__, which only code could make.
            IntValue::NotInt if is_opaque(self.object(key)) => {
                self.extras(target).entries.push((key, value));
                return Ok(());
            }
            IntValue::NotInt => {
                return Err(at.wrong(format!(
                    "{kind} indices must be integers or slices, not {}",
                    self.kind(key)
                )));
            }
        };
        let byte = match self.object(target) {
            Object::ByteArray(_) => match int_value(self.object(value)) {
                IntValue::Small(v) => Some(u8::try_from(v).map_err(|_| {
                    at.wrong(format!(
                        "bytearray item of {v}: byte must be in range(0, 256)"
                    ))
                })?),
                IntValue::Big => {
                    return Err(at.wrong("bytearray item: byte must be in range(0, 256)"));
                }
                IntValue::NotInt if is_opaque(self.object(value)) => {
                    self.extras(target).entries.push((key, value));
                    return Ok(());
                }
                IntValue::NotInt => {
                    return Err(at.wrong(format!(
                        "bytearray item: '{}' object cannot be interpreted as an integer",
                        self.kind(value)
                    )));
                }
            },
            _ => None,
        };
        let out_of_range = || at.wrong(format!("{kind} assignment index out of range"));
        match self.object_mut(target) {
            Some(Object::List(list)) => {
                let slot = wrap_index(index, list.len()).ok_or_else(out_of_range)?;
                let item = list.get_mut(slot).ok_or_else(out_of_range)?;
                *item = value;
            }
            Some(Object::ByteArray(array)) => {
                let slot = wrap_index(index, array.len()).ok_or_else(out_of_range)?;
                let item = array.to_mut().get_mut(slot).ok_or_else(out_of_range)?;
                *item = byte.unwrap_or_default();
            }
            _ => return Err(at.error(ErrorKind::StackUnderflow)),
        }
        Ok(())
    }

    /// `ADDITEMS`: `set.update`, else the target's own `add`.
    fn add_items(&mut self, target: ObjectId, items: Vec<ObjectId>, at: &At) -> Result<(), Error> {
        if items.is_empty() {
            return Ok(());
        }
        match self.object(target) {
            Object::Set(_) => {
                for &item in &items {
                    self.check_hashable(item, at)?;
                }
                if let Some(Object::Set(set)) = self.object_mut(target) {
                    set.extend(items);
                }
            }
            object if is_opaque(object) => self.extras(target).items.extend(items),
            _ => {
                return Err(at.wrong(format!(
                    "ADDITEMS onto a {}, which has no add()",
                    self.kind(target)
                )));
            }
        }
        Ok(())
    }

    /// `BUILD` onto a value of a known type: those have no `__setstate__`, no `__dict__`
    /// and no settable attributes, so CPython's default `__setstate__` takes only a state
    /// of `None` or `(None, {})`. A state only code could make may be one of those.
    fn build_plain(&self, target: ObjectId, state: ObjectId, at: &At) -> Result<(), Error> {
        let kind = self.kind(target);
        let (state, slots) = match self.object(state) {
            Object::Tuple(items) => match items[..] {
                [state, slots] => (state, Some(slots)),
                _ => (state, None),
            },
            _ => (state, None),
        };
        match self.object(state) {
            Object::None => {}
            object if is_opaque(object) => {}
            Object::Dict(_) => {
                return Err(at.wrong(format!(
                    "BUILD with a dict state onto a {kind}: '{kind}' object has no attribute \
                     '__dict__'"
                )));
            }
            _ => return Err(at.wrong(format!("BUILD onto a {kind}: state is not a dictionary"))),
        }
        match slots.map(|slots| self.object(slots)) {
            None => {}
            Some(Object::Dict(entries)) if entries.is_empty() => {}
            Some(object) if is_opaque(object) => {}
            Some(Object::Dict(_)) => {
                return Err(at.wrong(format!(
                    "BUILD with slot state onto a {kind}: '{kind}' object has no attributes to \
                     set"
                )));
            }
            Some(_) => {
                return Err(at.wrong(format!(
                    "BUILD onto a {kind}: slot state is not a dictionary"
                )));
            }
        }
        Ok(())
    }

    /// Refuses what CPython refuses as a dict key or set member: lists, dicts, sets,
    /// bytearrays (and read-only views of them), and tuples holding them.
    fn check_hashable(&mut self, id: ObjectId, at: &At) -> Result<(), Error> {
        // Each tuple is walked once per pickle: shared (memoised) tuples cannot make this
        // exponential, and a tuple used as a key many times costs one walk.
        let mut pending = vec![id];
        let mut seen = HashSet::new();
        while let Some(id) = pending.pop() {
            if self.hashable.contains(&id) || !seen.insert(id) {
                continue;
            }
            match self.object(id) {
                Object::List(_)
                | Object::Dict(_)
                | Object::Set(_)
                | Object::ByteArray(_)
                | Object::MemoryView(_) => {
                    return Err(at.wrong(format!(
                        "{} uses an unhashable {} as a key or set member",
                        at.opcode.name(),
                        self.kind(id)
                    )));
                }
                Object::Tuple(items) | Object::FrozenSet(items) => {
                    pending.extend(items.iter().copied())
                }
                _ => {}
            }
        }
        for id in seen {
            if matches!(self.object(id), Object::Tuple(_) | Object::FrozenSet(_)) {
                self.hashable.insert(id);
            }
        }
        Ok(())
    }

    /// `REDUCE` and `OBJ` call their callable: values of a known type are not callable.
    fn check_callable(&self, id: ObjectId, at: &At) -> Result<(), Error> {
        if !is_opaque(self.object(id)) {
            return Err(at.wrong(format!(
                "{} calls a {}: '{}' object is not callable",
                at.opcode.name(),
                self.kind(id),
                self.kind(id)
            )));
        }
        Ok(())
    }

    /// `NEWOBJ` needs a class: a global, or something only code could make.
    fn check_class(&self, id: ObjectId, at: &At) -> Result<(), Error> {
        if !is_opaque(self.object(id)) {
            return Err(at.wrong(format!(
                "{} class argument must be a type, not {}",
                at.opcode.name(),
                self.kind(id)
            )));
        }
        Ok(())
    }

    /// `REDUCE`/`NEWOBJ` arguments must be a tuple (or something only code could make).
    fn check_tuple(&self, id: ObjectId, what: &str, at: &At) -> Result<(), Error> {
        let object = self.object(id);
        if !is_opaque(object) && !matches!(object, Object::Tuple(_)) {
            return Err(at.wrong(format!(
                "{} {what} must be a tuple, not a {}",
                at.opcode.name(),
                kind_name(object)
            )));
        }
        Ok(())
    }

    fn pairs(items: Vec<ObjectId>, at: &At) -> Result<Vec<(ObjectId, ObjectId)>, Error> {
        if !items.len().is_multiple_of(2) {
            return Err(at.wrong(format!(
                "{} has an odd number of keys and values ({})",
                at.opcode.name(),
                items.len()
            )));
        }
        Ok(items
            .chunks_exact(2)
            .filter_map(|kv| match kv {
                [k, v] => Some((*k, *v)),
                _ => None,
            })
            .collect())
    }

    /// A call of `callable` with `args` (`REDUCE`, `OBJ`, `INST`): when the callable is
    /// `copyreg.add_extension`, the registration it makes.
    fn on_call(&mut self, callable: ObjectId, args: &[ObjectId], at: &At) -> Result<(), Error> {
        let Object::Global { module, name } = self.object(callable) else {
            return Ok(());
        };
        if !extension::is_add_extension(module, name, self.protocol_now) {
            return Ok(());
        }
        let [module, name, code] = *args else {
            return Err(at.wrong(format!(
                "copyreg.add_extension() takes 3 arguments ({} given)",
                args.len()
            )));
        };
        // `code = int(code)` first; a code only code could make registers nothing the
        // machine can name (a later EXT of it stops here, as unregistered).
        let Some(code) = self.python_int(code, at)? else {
            return Ok(());
        };
        let key = match (self.object(module), self.object(name)) {
            (Object::Str(module), Object::Str(name)) => Key::Named(module.clone(), name.clone()),
            _ => {
                // The key must be hashable; anything else registers an entry EXT refuses.
                self.check_hashable(module, at)?;
                self.check_hashable(name, at)?;
                Key::Opaque
            }
        };
        self.extensions
            .add(key, code)
            .map_err(|what| at.wrong(format!("copyreg.add_extension: {what}")))
    }

    /// Python's `int(x)` for `add_extension`'s code: `Ok(None)` when only code could
    /// tell, an error where Python raises.
    fn python_int(&self, id: ObjectId, at: &At) -> Result<Option<i64>, Error> {
        let text: &[u8] = match self.object(id) {
            Object::Int(i) => return Ok(Some(*i)),
            Object::Bool(b) => return Ok(Some(i64::from(*b))),
            Object::BigInt(_) => return Err(self.code_error(CodeError::OutOfRange, at)),
            Object::Float(x) => {
                return code_from_float(*x)
                    .map(Some)
                    .map_err(|e| self.code_error(e, at));
            }
            // Non-ASCII text may hold Unicode digits Python reads: only code could tell.
            Object::Str(text) if !text.is_ascii() => return Ok(None),
            Object::Str(text) => text.as_bytes(),
            Object::Bytes(bytes) | Object::ByteArray(bytes) => bytes,
            Object::MemoryView(array) => match self.object(*array) {
                Object::ByteArray(bytes) => bytes,
                _ => return Ok(None),
            },
            object if is_opaque(object) => return Ok(None),
            object => {
                return Err(at.wrong(format!(
                    "copyreg.add_extension: int() argument must be a string, a bytes-like \
                     object or a real number, not '{}'",
                    kind_name(object)
                )));
            }
        };
        code_from_text(text, self.limits.max_int_digits)
            .map(Some)
            .map_err(|e| self.code_error(e, at))
    }

    fn code_error(&self, error: CodeError, at: &At) -> Error {
        match error {
            CodeError::OutOfRange => at.wrong("copyreg.add_extension: code out of range"),
            CodeError::NotANumber(what) => at.wrong(format!("copyreg.add_extension: {what}")),
            CodeError::TooManyDigits => {
                Self::limit(at, "max_int_digits", self.limits.max_int_digits)
            }
        }
    }

    /// A Python 2 `str`: text when it is valid UTF-8 (as `torch.load` decodes it), else bytes.
    fn py2_str(bytes: Cow<'a, [u8]>) -> Object<'a> {
        match std::str::from_utf8(&bytes) {
            Ok(text) => Object::Str(text.into()),
            Err(_) => Object::Bytes(bytes),
        }
    }

    fn int_arg(arg: &Arg<'_>, at: &At) -> Result<i64, Error> {
        match arg {
            Arg::Int(i) => Ok(*i),
            _ => Err(at.error(ErrorKind::BadArgument(
                "expected an integer argument".to_owned(),
            ))),
        }
    }

    /// Runs one instruction; returns true after `STOP`.
    fn step(&mut self, instruction: Instruction<'a>, at: &At) -> Result<bool, Error> {
        let Instruction { opcode, arg, .. } = instruction;
        match opcode {
            Opcode::Proto => {
                // Any protocol up to 5, anywhere in the stream (CPython only checks the
                // number); the first one is the pickle's.
                let version = Self::int_arg(&arg, at)?;
                let version = u8::try_from(version).unwrap_or(u8::MAX);
                if version > HIGHEST_PROTOCOL {
                    return Err(at.error(ErrorKind::UnsupportedProtocol(version)));
                }
                self.protocol.get_or_insert(version);
                self.protocol_now = version;
            }
            // The decoder checked that the frame's bytes are there; that is all CPython does.
            Opcode::Frame => {}
            Opcode::Stop => {
                let root = self.pop(at)?;
                self.root = Some(root);
                return Ok(true);
            }
            Opcode::Mark => {
                if self.marks.len() >= self.limits.max_marks {
                    return Err(Self::limit(at, "max_marks", self.limits.max_marks));
                }
                self.marks.push(self.stack.len());
            }
            Opcode::Pop => {
                // A mark with nothing above it is what POP discards.
                if self.at_fence() || self.stack.is_empty() {
                    self.pop_mark(at)?;
                } else {
                    self.pop(at)?;
                }
            }
            Opcode::PopMark => {
                self.pop_mark(at)?;
            }
            Opcode::Dup => {
                let top = self.top(at)?;
                self.push(top, at)?;
            }
            Opcode::None => {
                self.push_new(Object::None, at)?;
            }
            Opcode::NewTrue => {
                self.push_new(Object::Bool(true), at)?;
            }
            Opcode::NewFalse => {
                self.push_new(Object::Bool(false), at)?;
            }
            Opcode::Int
            | Opcode::BinInt
            | Opcode::BinInt1
            | Opcode::BinInt2
            | Opcode::Long
            | Opcode::Long1
            | Opcode::Long4 => {
                let object = match arg {
                    Arg::Int(i) => Object::Int(i),
                    Arg::Bool(b) => Object::Bool(b),
                    Arg::BigInt(bytes) => Object::BigInt(bytes.into_owned().into_boxed_slice()),
                    _ => {
                        return Err(
                            at.error(ErrorKind::BadArgument("expected an integer".to_owned()))
                        );
                    }
                };
                self.push_new(object, at)?;
            }
            Opcode::Float | Opcode::BinFloat => {
                let Arg::Float(x) = arg else {
                    return Err(at.error(ErrorKind::BadArgument("expected a float".to_owned())));
                };
                self.push_new(Object::Float(x), at)?;
            }
            Opcode::String | Opcode::BinString | Opcode::ShortBinString => {
                let Arg::Bytes(bytes) = arg else {
                    return Err(at.error(ErrorKind::BadArgument("expected a string".to_owned())));
                };
                self.push_new(Self::py2_str(bytes), at)?;
            }
            Opcode::Unicode
            | Opcode::BinUnicode
            | Opcode::ShortBinUnicode
            | Opcode::BinUnicode8 => {
                let Arg::Str(text) = arg else {
                    return Err(at.error(ErrorKind::BadArgument("expected text".to_owned())));
                };
                self.push_new(Object::Str(text.into()), at)?;
            }
            Opcode::BinBytes | Opcode::ShortBinBytes | Opcode::BinBytes8 | Opcode::ByteArray8 => {
                let Arg::Bytes(bytes) = arg else {
                    return Err(at.error(ErrorKind::BadArgument("expected bytes".to_owned())));
                };
                let object = if opcode == Opcode::ByteArray8 {
                    Object::ByteArray(bytes)
                } else {
                    Object::Bytes(bytes)
                };
                self.push_new(object, at)?;
            }
            Opcode::NextBuffer => {
                return Err(at.error(ErrorKind::Unsupported(
                    "NEXT_BUFFER needs out-of-band buffers, which a file cannot carry".to_owned(),
                )));
            }
            Opcode::ReadonlyBuffer => {
                // `memoryview(top)`, made read-only: bytes (and views) are already
                // read-only and stay; a bytearray becomes a read-only view of itself.
                let top = self.top(at)?;
                match self.object(top) {
                    Object::ByteArray(_) => {
                        let view = self.new_object(Object::MemoryView(top), at)?;
                        if let Some(slot) = self.stack.last_mut() {
                            *slot = view;
                        }
                    }
                    Object::Bytes(_) | Object::MemoryView(_) => {}
                    object if is_opaque(object) => {}
                    object => {
                        return Err(at.wrong(format!(
                            "READONLY_BUFFER of a {}: memoryview: a bytes-like object is required",
                            kind_name(object)
                        )));
                    }
                }
            }
            Opcode::EmptyTuple => {
                self.push_new(Object::Tuple(Vec::new()), at)?;
            }
            Opcode::EmptyList => {
                self.push_new(Object::List(Vec::new()), at)?;
            }
            Opcode::EmptyDict => {
                self.push_new(Object::Dict(Vec::new()), at)?;
            }
            Opcode::EmptySet => {
                self.push_new(Object::Set(Vec::new()), at)?;
            }
            Opcode::Tuple => {
                let items = self.pop_mark(at)?;
                self.push_new(Object::Tuple(items), at)?;
            }
            Opcode::Tuple1 | Opcode::Tuple2 | Opcode::Tuple3 => {
                let n = match opcode {
                    Opcode::Tuple1 => 1,
                    Opcode::Tuple2 => 2,
                    _ => 3,
                };
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.pop(at)?);
                }
                items.reverse();
                self.push_new(Object::Tuple(items), at)?;
            }
            Opcode::List => {
                let items = self.pop_mark(at)?;
                self.push_new(Object::List(items), at)?;
            }
            Opcode::Dict => {
                let items = self.pop_mark(at)?;
                let pairs = Self::pairs(items, at)?;
                for &(key, _) in &pairs {
                    self.check_hashable(key, at)?;
                }
                self.push_new(Object::Dict(pairs), at)?;
            }
            Opcode::FrozenSet => {
                let items = self.pop_mark(at)?;
                for &item in &items {
                    self.check_hashable(item, at)?;
                }
                self.push_new(Object::FrozenSet(items), at)?;
            }
            Opcode::Append => {
                let value = self.pop(at)?;
                let target = self.top(at)?;
                self.append(target, vec![value], at)?;
            }
            Opcode::Appends => {
                let items = self.pop_mark(at)?;
                let target = self.top(at)?;
                self.append(target, items, at)?;
            }
            Opcode::AddItems => {
                let items = self.pop_mark(at)?;
                let target = self.top(at)?;
                self.add_items(target, items, at)?;
            }
            Opcode::SetItem => {
                let value = self.pop(at)?;
                let key = self.pop(at)?;
                let target = self.top(at)?;
                self.set_items(target, vec![(key, value)], at)?;
            }
            Opcode::SetItems => {
                let items = self.pop_mark(at)?;
                let target = self.top(at)?;
                if items.is_empty() {
                    return Ok(false);
                }
                let pairs = Self::pairs(items, at)?;
                self.set_items(target, pairs, at)?;
            }
            Opcode::Global => {
                let Arg::Global { module, name } = arg else {
                    return Err(at.error(ErrorKind::BadArgument(
                        "expected a module and a name".to_owned(),
                    )));
                };
                self.push_new(
                    Object::Global {
                        module: module.into(),
                        name: name.into(),
                    },
                    at,
                )?;
            }
            Opcode::StackGlobal => {
                let name = self.pop(at)?;
                let module = self.pop(at)?;
                // Exactly `str` (PyUnicode_CheckExact). Values only code could make might
                // be strings too, but then the global cannot be named here: the machine
                // stops, and `static_globals` reads on past it.
                let (Object::Str(module), Object::Str(name)) =
                    (self.object(module), self.object(name))
                else {
                    return Err(at.wrong("STACK_GLOBAL needs two strings (module and name)"));
                };
                let global = Object::Global {
                    module: module.clone(),
                    name: name.clone(),
                };
                self.push_new(global, at)?;
            }
            Opcode::Reduce => {
                let args = self.pop(at)?;
                let callable = self.pop(at)?;
                self.check_tuple(args, "arguments", at)?;
                self.check_callable(callable, at)?;
                if let Object::Tuple(items) = self.object(args) {
                    let items = items.clone();
                    self.on_call(callable, &items, at)?;
                }
                self.push_new(Object::Call { callable, args }, at)?;
            }
            Opcode::NewObj => {
                let args = self.pop(at)?;
                let class = self.pop(at)?;
                self.check_class(class, at)?;
                self.check_tuple(args, "arguments", at)?;
                self.push_new(
                    Object::Instance {
                        class,
                        args,
                        kwargs: None,
                        kind: InstanceKind::NewObj,
                    },
                    at,
                )?;
            }
            Opcode::NewObjEx => {
                let kwargs = self.pop(at)?;
                let args = self.pop(at)?;
                let class = self.pop(at)?;
                self.check_class(class, at)?;
                self.check_tuple(args, "arguments", at)?;
                let object = self.object(kwargs);
                if !is_opaque(object) && !matches!(object, Object::Dict(_)) {
                    return Err(at.wrong(format!(
                        "NEWOBJ_EX keyword arguments must be a dict, not a {}",
                        kind_name(object)
                    )));
                }
                self.push_new(
                    Object::Instance {
                        class,
                        args,
                        kwargs: Some(kwargs),
                        kind: InstanceKind::NewObjEx,
                    },
                    at,
                )?;
            }
            Opcode::Obj => {
                let mut items = self.pop_mark(at)?;
                if items.is_empty() {
                    return Err(at.error(ErrorKind::StackUnderflow));
                }
                let class = items.remove(0);
                // CPython's `instantiate`: `cls(*args)`, or `cls.__new__(cls)` for a class
                // without arguments; either way a value of a known type fails.
                self.check_callable(class, at)?;
                self.on_call(class, &items, at)?;
                let args = self.new_object(Object::Tuple(items), at)?;
                self.push_new(
                    Object::Instance {
                        class,
                        args,
                        kwargs: None,
                        kind: InstanceKind::Obj,
                    },
                    at,
                )?;
            }
            Opcode::Inst => {
                let Arg::Global { module, name } = arg else {
                    return Err(at.error(ErrorKind::BadArgument(
                        "expected a module and a name".to_owned(),
                    )));
                };
                let items = self.pop_mark(at)?;
                let class = self.new_object(
                    Object::Global {
                        module: module.into(),
                        name: name.into(),
                    },
                    at,
                )?;
                self.on_call(class, &items, at)?;
                let args = self.new_object(Object::Tuple(items), at)?;
                self.push_new(
                    Object::Instance {
                        class,
                        args,
                        kwargs: None,
                        kind: InstanceKind::Inst,
                    },
                    at,
                )?;
            }
            Opcode::Build => {
                let state = self.pop(at)?;
                let target = self.top(at)?;
                if is_opaque(self.object(target)) {
                    // Objects of unknown classes may define `__setstate__`, which CPython
                    // calls even with None: every state is recorded.
                    self.extras(target).states.push(state);
                } else {
                    self.build_plain(target, state, at)?;
                }
            }
            Opcode::PersId => {
                // Without a persistent_load CPython refuses; torch gives one, so the id is
                // kept for what the loader would make of it.
                let Arg::Str(text) = arg else {
                    return Err(at.error(ErrorKind::BadArgument(
                        "expected a persistent id".to_owned(),
                    )));
                };
                let pid = self.new_object(Object::Str(text.into()), at)?;
                self.push_new(Object::PersistentId(pid), at)?;
            }
            Opcode::BinPersId => {
                let pid = self.pop(at)?;
                self.push_new(Object::PersistentId(pid), at)?;
            }
            Opcode::Ext1 | Opcode::Ext2 | Opcode::Ext4 => {
                let code = Self::int_arg(&arg, at)?;
                if code <= 0 {
                    return Err(at.error(ErrorKind::BadArgument(format!(
                        "EXT specifies code {code} (codes start at 1)"
                    ))));
                }
                match self.extensions.get(code) {
                    Some(Entry::Named(module, name)) => {
                        let global = Object::Global {
                            module: module.clone(),
                            name: name.clone(),
                        };
                        self.push_new(global, at)?;
                    }
                    entry => {
                        // The object stays visible to `parse_partial`.
                        let opaque = entry.is_some();
                        self.push_new(Object::Extension(code), at)?;
                        if opaque {
                            return Err(at.wrong(format!(
                                "{} of code {code}, which the pickle registered for something \
                                 other than two strings",
                                at.opcode.name()
                            )));
                        }
                        return Err(at.error(ErrorKind::Unsupported(format!(
                            "unregistered extension code {code}: {} names a global by a copyreg \
                             extension code that no copyreg.add_extension call of the pickle \
                             registered before it",
                            at.opcode.name()
                        ))));
                    }
                }
            }
            Opcode::Put | Opcode::BinPut | Opcode::LongBinPut => {
                let index = Self::int_arg(&arg, at)?;
                let index = u64::try_from(index).map_err(|_| {
                    at.error(ErrorKind::BadArgument(format!(
                        "negative PUT argument {index}"
                    )))
                })?;
                self.memo_put(index, at)?;
            }
            Opcode::Memoize => {
                // The next index is the number of memo entries (CPython's memo_len).
                let index = self.memo.len() as u64;
                self.memo_put(index, at)?;
            }
            Opcode::Get | Opcode::BinGet | Opcode::LongBinGet => {
                let index = Self::int_arg(&arg, at)?;
                self.memo_get(index, at)?;
            }
        }
        Ok(false)
    }
}

/// A Python index into a sequence of `len` items (negative counts from the end).
fn wrap_index(index: i64, len: usize) -> Option<usize> {
    let len = i64::try_from(len).ok()?;
    let slot = if index < 0 {
        index.checked_add(len)?
    } else {
        index
    };
    usize::try_from(slot).ok()
}

/// A short name for the kind of an object, for messages (Python's type names).
pub(crate) fn kind_name(object: &Object<'_>) -> &'static str {
    match object {
        Object::None => "NoneType",
        Object::Bool(_) => "bool",
        Object::Int(_) | Object::BigInt(_) => "int",
        Object::Float(_) => "float",
        Object::Str(_) => "str",
        Object::Bytes(_) => "bytes",
        Object::ByteArray(_) => "bytearray",
        Object::MemoryView(_) => "memoryview",
        Object::Tuple(_) => "tuple",
        Object::List(_) => "list",
        Object::Dict(_) => "dict",
        Object::Set(_) => "set",
        Object::FrozenSet(_) => "frozenset",
        Object::Global { .. } => "global",
        Object::Call { .. } => "call result",
        Object::Instance { .. } => "instance",
        Object::PersistentId(_) => "persistent id",
        Object::Extension(_) => "extension object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(bytes: &[u8]) -> Pickle<'_> {
        parse(bytes, 0, &Limits::default()).unwrap()
    }

    fn fail(bytes: &[u8]) -> Error {
        parse(bytes, 0, &Limits::default()).unwrap_err()
    }

    #[test]
    fn a_torch_style_state_dict() {
        // pickle.dumps(OrderedDict([("a", 1), ("b", [1.5, None])]), protocol=2)
        let bytes = b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01(X\x01\x00\x00\x00aq\x02K\x01X\x01\x00\x00\x00bq\x03]q\x04(G?\xf8\x00\x00\x00\x00\x00\x00Neu.";
        let pickle = run(bytes);
        let root = pickle.root().unwrap();
        let Object::Call { callable, args } = pickle.get(root) else {
            panic!()
        };
        assert_eq!(
            pickle.as_global(*callable),
            Some(("collections", "OrderedDict"))
        );
        assert_eq!(pickle.as_seq(*args), Some(&[][..]));
        let entries = &pickle.extras(root).entries;
        assert_eq!(entries.len(), 2);
        assert_eq!(pickle.as_str(entries[0].0), Some("a"));
        assert_eq!(pickle.as_int(entries[0].1), Some(1));
        let list = pickle.as_seq(entries[1].1).unwrap();
        assert_eq!(pickle.get(list[0]), &Object::Float(1.5));
        assert_eq!(pickle.get(list[1]), &Object::None);
        assert_eq!(pickle.byte_len(), bytes.len());
    }

    #[test]
    fn memo_entries_are_shared_not_copied() {
        // l = []; d = {"x": l, "y": l}; l.append(1) is seen through both keys.
        let bytes = b"\x80\x02}q\x00(X\x01\x00\x00\x00x]q\x01X\x01\x00\x00\x00yh\x01uh\x01K\x01a0.";
        let pickle = run(bytes);
        let Object::Dict(entries) = pickle.get(pickle.root().unwrap()) else {
            panic!()
        };
        assert_eq!(entries[0].1, entries[1].1);
        assert_eq!(pickle.as_seq(entries[0].1).map(<[_]>::len), Some(1));
    }

    #[test]
    fn exponential_sharing_stays_linear() {
        // a = []; repeat 60 times: a = [a, a]. Python memory: linear. Ours too.
        let mut bytes = b"\x80\x02]q\x00".to_vec();
        for i in 0..60u8 {
            bytes.extend_from_slice(&[b'h', i, b'h', i, 0x86, b'q', i + 1]);
        }
        bytes.push(b'.');
        let pickle = run(&bytes);
        assert!(pickle.len_objects() < 200);
    }

    #[test]
    fn hashability_checks_stay_linear_on_shared_tuples() {
        // t = (); 63 times t = (t, t); {t: None}: 2^63 paths, one walk.
        let mut bytes = b"\x80\x02)q\x00".to_vec();
        for i in 0..63u8 {
            bytes.extend_from_slice(&[b'h', i, b'h', i, 0x86, b'q', i + 1]);
        }
        bytes.extend_from_slice(b"}h\x3fNs.");
        let started = std::time::Instant::now();
        run(&bytes);
        assert!(started.elapsed().as_secs() < 5);
    }

    #[test]
    fn stack_global_shares_its_strings() {
        // A memoised 1 MB name used by 1000 STACK_GLOBALs is not copied 1000 times.
        let mut bytes = b"\x80\x04\x8c\x01m\x94\x8d".to_vec();
        bytes.extend_from_slice(&(1u64 << 20).to_le_bytes());
        bytes.extend(std::iter::repeat_n(b'n', 1 << 20));
        bytes.push(0x94);
        for _ in 0..1000 {
            bytes.extend_from_slice(b"h\x00h\x01\x93\x30");
        }
        bytes.extend_from_slice(b"N.");
        let pickle = run(&bytes);
        let Some(Object::Global { name, .. }) = pickle
            .objects()
            .map(|(_, o)| o)
            .find(|o| matches!(o, Object::Global { .. }))
        else {
            panic!("no global");
        };
        assert_eq!(name.len(), 1 << 20);
    }

    #[test]
    fn stack_global_inst_obj_and_build() {
        // STACK_GLOBAL "os" "system"; "echo" TUPLE1; REDUCE: symbolic, never called.
        let bytes = b"\x80\x04\x8c\x02os\x8c\x06system\x93\x8c\x04echo\x85R.";
        let pickle = run(bytes);
        let Object::Call { callable, .. } = pickle.get(pickle.root().unwrap()) else {
            panic!()
        };
        assert_eq!(pickle.as_global(*callable), Some(("os", "system")));

        let inst = run(b"(S'x'\nimymod\nMyClass\n}b.");
        let root = pickle_root_instance(&inst);
        assert_eq!(root.1, InstanceKind::Inst);
        assert_eq!(inst.extras(inst.root().unwrap()).states.len(), 1);

        let obj = run(b"(cmymod\nK\nK\x01o.");
        assert_eq!(pickle_root_instance(&obj).1, InstanceKind::Obj);
    }

    fn pickle_root_instance(pickle: &Pickle<'_>) -> (ObjectId, InstanceKind) {
        match pickle.get(pickle.root().unwrap()) {
            Object::Instance { class, kind, .. } => (*class, *kind),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn protocol_zero_containers() {
        let pickle = run(b"(lp0\nI1\naI2\na(dp1\nS'k'\np2\nF2.5\nsa.");
        let items = pickle.as_seq(pickle.root().unwrap()).unwrap();
        assert_eq!(items.len(), 3);
        let Object::Dict(entries) = pickle.get(items[2]) else {
            panic!()
        };
        assert_eq!(pickle.as_str(entries[0].0), Some("k"));
        assert_eq!(pickle.get(entries[0].1), &Object::Float(2.5));
    }

    #[test]
    fn structural_errors() {
        assert_eq!(fail(b"\x80\x02a.").kind(), &ErrorKind::StackUnderflow);
        assert_eq!(fail(b"\x80\x02t.").kind(), &ErrorKind::NoMark);
        assert_eq!(fail(b"\x80\x02h\x05.").kind(), &ErrorKind::MissingMemo(5));
        assert_eq!(
            fail(b"\x80\x06N.").kind(),
            &ErrorKind::UnsupportedProtocol(6)
        );
        assert!(matches!(
            fail(b"\x80\x02K\x01K\x02a.").kind(),
            ErrorKind::WrongType(_)
        ));
        assert!(matches!(
            fail(b"\x80\x02(K\x01d.").kind(),
            ErrorKind::WrongType(_)
        ));
        assert!(matches!(
            fail(b"\x80\x05\x97.").kind(),
            ErrorKind::Unsupported(_)
        ));
        assert_eq!(fail(b"\x80\x02N").kind(), &ErrorKind::Truncated);
        assert_eq!(fail(b"\x80\x02N(\x85.").kind(), &ErrorKind::StackUnderflow);
        assert!(parse(b"\x80\x02(N\x85.", 0, &Limits::default()).is_ok());
        // Values under a mark are not visible to an opcode above it.
        assert_eq!(fail(b"\x80\x02](a.").kind(), &ErrorKind::StackUnderflow);
    }

    #[test]
    fn deep_nesting_is_iterative() {
        let mut bytes = b"\x80\x02".to_vec();
        bytes.extend(std::iter::repeat_n(b'(', 200_000));
        bytes.extend(std::iter::repeat_n(b'l', 200_000));
        bytes.push(b'.');
        let pickle = run(&bytes);
        assert_eq!(pickle.len_objects(), 200_000);
        let limits = Limits {
            max_marks: 1000,
            ..Limits::default()
        };
        let error = parse(&bytes, 0, &limits).unwrap_err();
        assert!(matches!(
            error.kind(),
            ErrorKind::LimitExceeded {
                limit: "max_marks",
                ..
            }
        ));
    }

    #[test]
    fn partial_results_keep_what_was_built() {
        let (pickle, error) = parse_partial(
            b"\x80\x02cos\nsystem\nX\x03\x00\x00\x00ls",
            10,
            &Limits::default(),
        );
        assert!(error.is_some());
        assert_eq!(error.unwrap().offset(), 23);
        assert!(pickle.root().is_none());
        assert!(
            pickle
                .objects()
                .any(|(_, o)| matches!(o, Object::Global { module, .. } if &**module == "os"))
        );
    }

    #[test]
    fn the_pickle_fills_its_own_extension_registry() {
        // copyreg.add_extension("os", "system", 5); EXT1 5 is os.system.
        let pickle = run(b"\x80\x02ccopyreg\nadd_extension\nX\x02\x00\x00\x00osX\x06\x00\x00\x00systemK\x05\x87R0\x82\x05.");
        assert_eq!(
            pickle.as_global(pickle.root().unwrap()),
            Some(("os", "system"))
        );
        // Before the registration, the code is unregistered: the object stays visible.
        let (partial, error) = parse_partial(b"\x80\x02\x82\x05.", 0, &Limits::default());
        assert!(
            matches!(error.unwrap().kind(), ErrorKind::Unsupported(m) if m.contains("unregistered extension code 5"))
        );
        assert!(partial.objects().any(|(_, o)| o == &Object::Extension(5)));
        // A code only code could make registers nothing and fails nothing.
        let pickle = run(b"\x80\x02ccopyreg\nadd_extension\nX\x02\x00\x00\x00osX\x06\x00\x00\x00systemcm\nf\n)R\x87R.");
        assert!(matches!(
            pickle.get(pickle.root().unwrap()),
            Object::Call { .. }
        ));
        // Names only code could make register an entry EXT cannot name.
        let error = fail(
            b"\x80\x02ccopyreg\nadd_extension\ncm\nf\n)RX\x01\x00\x00\x00nK\x05\x87R0\x82\x05.",
        );
        assert!(matches!(error.kind(), ErrorKind::WrongType(_)), "{error}");
        // An unhashable name fails at the registration, as in copyreg.
        let error = fail(b"\x80\x02ccopyreg\nadd_extension\n]X\x01\x00\x00\x00nK\x05\x87R.");
        assert!(error.message().contains("unhashable"), "{error}");
    }

    #[test]
    fn values_only_code_could_make_are_taken_anywhere() {
        // SETITEM with a computed key on a list and a bytearray, APPEND of a computed item
        // onto a bytearray, BUILD of a computed state onto an int, REDUCE with a global as
        // its argument tuple: CPython's outcome depends on the values, so the machine reads on.
        let pickle = run(b"\x80\x05(]cm\nk\n)RK\x01s\x96\x01\x00\x00\x00\x00\x00\x00\x00acm\nk\n)RK\x01scm\nv\n)RaK\x01cm\ns\n)Rbcm\nf\ncm\nargs\nRl.");
        let items = pickle.as_seq(pickle.root().unwrap()).unwrap();
        assert_eq!(pickle.extras(items[0]).entries.len(), 1);
        assert_eq!(pickle.as_bytes(items[1]).unwrap().as_ref(), b"a");
        assert_eq!(pickle.extras(items[1]).entries.len(), 1);
        assert_eq!(pickle.extras(items[1]).items.len(), 1);
        assert_eq!(pickle.as_int(items[2]), Some(1));
        assert!(matches!(pickle.get(items[3]), Object::Call { .. }));
    }

    #[test]
    fn bytearrays_grow_and_change_like_pythons() {
        let pickle =
            run(b"\x80\x05\x96\x02\x00\x00\x00\x00\x00\x00\x00ab(K\x01\x88eJ\xfe\xff\xff\xffKzs.");
        assert_eq!(
            pickle.as_bytes(pickle.root().unwrap()).unwrap().as_ref(),
            b"abz\x01"
        );
        assert!(
            fail(b"\x80\x05\x96\x00\x00\x00\x00\x00\x00\x00\x00J\xff\xff\xff\xffa.")
                .message()
                .contains("range(0, 256)")
        );
        assert!(
            fail(b"\x80\x05\x96\x00\x00\x00\x00\x00\x00\x00\x00K\x00K\x00s.")
                .message()
                .contains("out of range")
        );
        // A read-only view refuses both.
        assert!(
            fail(b"\x80\x05\x96\x00\x00\x00\x00\x00\x00\x00\x00\x98K\x00a.")
                .message()
                .contains("memoryview")
        );
    }

    #[test]
    fn negative_memo_indices() {
        assert_eq!(
            fail(b"Np-1\n.").kind(),
            &ErrorKind::BadArgument("negative PUT argument -1".to_owned())
        );
        assert_eq!(fail(b"Np0\ng-1\n.").kind(), &ErrorKind::MissingMemo(-1));
        // PUT -0 is slot 0.
        assert!(parse(b"Np-0\ng0\n\x86.", 0, &Limits::default()).is_ok());
    }

    #[test]
    fn stops_at_stop() {
        let pickle = run(b"\x80\x02N.trailing garbage");
        assert_eq!(pickle.byte_len(), 4);
    }
}
