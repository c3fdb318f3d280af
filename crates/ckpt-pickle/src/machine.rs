//! The pickle machine: runs decoded opcodes on a stack, building symbolic objects.

use std::collections::HashMap;

use crate::decode::{Arg, Decoder, Instruction};
use crate::error::{Error, ErrorKind};
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
    let mut machine = Machine {
        decoder: Decoder::new(data, base, limits.clone()),
        limits: limits.clone(),
        nodes: Vec::new(),
        extras: HashMap::new(),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        protocol: None,
        root: None,
        hashable: std::collections::HashSet::new(),
    };
    let error = machine.run().err();
    let len = machine.decoder.position();
    let pickle = Pickle {
        nodes: machine.nodes,
        extras: machine.extras,
        root: machine.root,
        protocol: machine.protocol,
        len,
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
    root: Option<ObjectId>,
    /// Tuples and frozensets already found hashable (they never change once built).
    hashable: std::collections::HashSet<ObjectId>,
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
}

impl<'a> Machine<'a> {
    fn run(&mut self) -> Result<(), Error> {
        while let Some(instruction) = self.decoder.next_instruction() {
            let instruction = instruction?;
            let at = At {
                offset: instruction.offset,
                opcode: instruction.opcode,
            };
            if self.step(instruction, &at)? {
                return Ok(());
            }
        }
        Err(Error::new(ErrorKind::Truncated, 0, None))
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

    fn pop(&mut self, at: &At) -> Result<ObjectId, Error> {
        // Values below the topmost mark belong to an outer frame.
        if self
            .marks
            .last()
            .is_some_and(|&mark| mark >= self.stack.len())
        {
            return Err(at.error(ErrorKind::StackUnderflow));
        }
        self.stack
            .pop()
            .ok_or_else(|| at.error(ErrorKind::StackUnderflow))
    }

    fn top(&self, at: &At) -> Result<ObjectId, Error> {
        if self
            .marks
            .last()
            .is_some_and(|&mark| mark >= self.stack.len())
        {
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

    fn memo_put(&mut self, index: u64, at: &At) -> Result<(), Error> {
        let top = self.top(at)?;
        if self.memo.len() >= self.limits.max_memo && !self.memo.contains_key(&index) {
            return Err(Self::limit(at, "max_memo", self.limits.max_memo));
        }
        self.memo.insert(index, top);
        Ok(())
    }

    fn memo_get(&mut self, index: u64, at: &At) -> Result<(), Error> {
        let id = *self
            .memo
            .get(&index)
            .ok_or_else(|| at.error(ErrorKind::MissingMemo(index)))?;
        self.push(id, at)
    }

    fn append(&mut self, target: ObjectId, items: Vec<ObjectId>, at: &At) -> Result<(), Error> {
        match self.object_mut(target) {
            Some(Object::List(list)) => list.extend(items),
            // A global may be a list or dict at load time (a registry): appending to it
            // mutates it for every later user, which scanners must see.
            Some(Object::Instance { .. } | Object::Call { .. } | Object::Global { .. }) => {
                self.extras.entry(target).or_default().items.extend(items);
            }
            _ => {
                return Err(at.error(ErrorKind::WrongType(format!(
                    "{} appends to a {}, which cannot hold items",
                    at.opcode.name(),
                    kind_name(self.object(target))
                ))));
            }
        }
        Ok(())
    }

    fn set_items(
        &mut self,
        target: ObjectId,
        pairs: Vec<(ObjectId, ObjectId)>,
        at: &At,
    ) -> Result<(), Error> {
        if matches!(self.object(target), Object::List(_)) {
            // `list[index] = value`, as CPython does.
            for (key, value) in pairs {
                let index = match self.object(key) {
                    Object::Int(i) => *i,
                    Object::Bool(b) => i64::from(*b),
                    other => {
                        return Err(at.error(ErrorKind::WrongType(format!(
                            "list indices must be integers, not {}",
                            kind_name(other)
                        ))));
                    }
                };
                let Some(Object::List(list)) = self.object_mut(target) else {
                    return Err(at.error(ErrorKind::StackUnderflow));
                };
                let len = i64::try_from(list.len()).unwrap_or(i64::MAX);
                let slot = if index < 0 { index + len } else { index };
                match usize::try_from(slot)
                    .ok()
                    .and_then(|slot| list.get_mut(slot))
                {
                    Some(item) => *item = value,
                    None => {
                        return Err(at.error(ErrorKind::WrongType(
                            "list assignment index out of range".to_owned(),
                        )));
                    }
                }
            }
            return Ok(());
        }
        if matches!(self.object(target), Object::Dict(_)) {
            for &(key, _) in &pairs {
                self.check_hashable(key, at)?;
            }
        }
        match self.object_mut(target) {
            Some(Object::Dict(entries)) => entries.extend(pairs),
            Some(Object::Instance { .. } | Object::Call { .. } | Object::Global { .. }) => {
                self.extras.entry(target).or_default().entries.extend(pairs);
            }
            _ => {
                return Err(at.error(ErrorKind::WrongType(format!(
                    "{} sets items of a {}, which is not a mapping",
                    at.opcode.name(),
                    kind_name(self.object(target))
                ))));
            }
        }
        Ok(())
    }

    /// Whether an object is a plain value of a known Python type (not something a call
    /// would produce, whose type only running code could tell).
    fn is_plain(object: &Object<'_>) -> bool {
        !matches!(
            object,
            Object::Call { .. }
                | Object::Instance { .. }
                | Object::PersistentId(_)
                | Object::Extension(_)
        )
    }

    /// Refuses what CPython refuses as a dict key or set member: lists, dicts, sets,
    /// bytearrays, and tuples holding them.
    fn check_hashable(&mut self, id: ObjectId, at: &At) -> Result<(), Error> {
        // Each tuple is walked once per pickle: shared (memoised) tuples cannot make this
        // exponential, and a tuple used as a key many times costs one walk.
        let mut pending = vec![id];
        let mut seen = std::collections::HashSet::new();
        while let Some(id) = pending.pop() {
            if self.hashable.contains(&id) || !seen.insert(id) {
                continue;
            }
            match self.object(id) {
                Object::List(_) | Object::Dict(_) | Object::Set(_) | Object::ByteArray(_) => {
                    return Err(at.error(ErrorKind::WrongType(format!(
                        "{} uses an unhashable {} as a key or set member",
                        at.opcode.name(),
                        kind_name(self.object(id))
                    ))));
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

    /// `NEWOBJ` needs a class: a global, or something only code could make.
    fn check_class(&self, id: ObjectId, at: &At) -> Result<(), Error> {
        let object = self.object(id);
        if Self::is_plain(object) && !matches!(object, Object::Global { .. }) {
            return Err(at.error(ErrorKind::WrongType(format!(
                "{} needs a class, not a {}",
                at.opcode.name(),
                kind_name(object)
            ))));
        }
        Ok(())
    }

    /// `REDUCE`/`NEWOBJ` arguments must be a tuple (or something only code could make).
    fn check_tuple(&self, id: ObjectId, what: &str, at: &At) -> Result<(), Error> {
        let object = self.object(id);
        if Self::is_plain(object) && !matches!(object, Object::Tuple(_)) {
            return Err(at.error(ErrorKind::WrongType(format!(
                "{} {what} must be a tuple, not a {}",
                at.opcode.name(),
                kind_name(object)
            ))));
        }
        Ok(())
    }

    fn pairs(items: Vec<ObjectId>, at: &At) -> Result<Vec<(ObjectId, ObjectId)>, Error> {
        if !items.len().is_multiple_of(2) {
            return Err(at.error(ErrorKind::WrongType(format!(
                "{} has an odd number of keys and values ({})",
                at.opcode.name(),
                items.len()
            ))));
        }
        Ok(items
            .chunks_exact(2)
            .filter_map(|kv| match kv {
                [k, v] => Some((*k, *v)),
                _ => None,
            })
            .collect())
    }

    /// A Python 2 `str`: text when it is valid UTF-8 (as `torch.load` decodes it), else bytes.
    fn py2_str(bytes: std::borrow::Cow<'a, [u8]>) -> Object<'a> {
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

    fn memo_index(arg: &Arg<'_>, at: &At) -> Result<u64, Error> {
        u64::try_from(Self::int_arg(arg, at)?)
            .map_err(|_| at.error(ErrorKind::BadArgument("negative memo index".to_owned())))
    }

    /// Runs one instruction; returns true after `STOP`.
    fn step(&mut self, instruction: Instruction<'a>, at: &At) -> Result<bool, Error> {
        let Instruction { opcode, arg, .. } = instruction;
        match opcode {
            Opcode::Proto => {
                let version = Self::int_arg(&arg, at)?;
                let version = u8::try_from(version).unwrap_or(u8::MAX);
                if version > HIGHEST_PROTOCOL {
                    return Err(at.error(ErrorKind::UnsupportedProtocol(version)));
                }
                self.protocol.get_or_insert(version);
            }
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
                if self.marks.last().is_some_and(|&m| m >= self.stack.len())
                    || self.stack.is_empty()
                {
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
                self.top(at)?;
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
                match self.object(target) {
                    Object::Set(_) => {
                        for &item in &items {
                            self.check_hashable(item, at)?;
                        }
                        if let Some(Object::Set(set)) = self.object_mut(target) {
                            set.extend(items);
                        }
                    }
                    Object::Instance { .. } | Object::Call { .. } => {
                        self.extras.entry(target).or_default().items.extend(items);
                    }
                    other => {
                        return Err(at.error(ErrorKind::WrongType(format!(
                            "ADDITEMS adds to a {}, which has no add()",
                            kind_name(other)
                        ))));
                    }
                }
            }
            Opcode::SetItem => {
                let value = self.pop(at)?;
                let key = self.pop(at)?;
                let target = self.top(at)?;
                self.set_items(target, vec![(key, value)], at)?;
            }
            Opcode::SetItems => {
                let items = self.pop_mark(at)?;
                let pairs = Self::pairs(items, at)?;
                let target = self.top(at)?;
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
                let (Object::Str(module), Object::Str(name)) =
                    (self.object(module), self.object(name))
                else {
                    return Err(at.error(ErrorKind::WrongType(
                        "STACK_GLOBAL needs two strings (module and name)".to_owned(),
                    )));
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
                if Self::is_plain(object) && !matches!(object, Object::Dict(_)) {
                    return Err(at.error(ErrorKind::WrongType(format!(
                        "NEWOBJ_EX keyword arguments must be a dict, not a {}",
                        kind_name(object)
                    ))));
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
                let empty_state = match self.object(state) {
                    Object::None => true,
                    Object::Dict(entries) => entries.is_empty(),
                    _ => false,
                };
                let target_object = self.object(target);
                // CPython: a None (or empty) state does nothing; plain values have no
                // `__dict__` or `__setstate__` to take any other state.
                if Self::is_plain(target_object) && !matches!(target_object, Object::Global { .. })
                {
                    if !empty_state {
                        return Err(at.error(ErrorKind::WrongType(format!(
                            "BUILD sets the state of a {}, which has no attributes",
                            kind_name(target_object)
                        ))));
                    }
                } else {
                    // Objects of unknown classes may define `__setstate__`, which CPython
                    // calls even with None: every state is recorded.
                    self.extras.entry(target).or_default().states.push(state);
                }
            }
            Opcode::PersId => {
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
                // The copyreg extension registry is empty in a plain Python: CPython fails
                // ("unregistered extension code"). The object stays visible to
                // `parse_partial`.
                self.push_new(Object::Extension(code), at)?;
                return Err(at.error(ErrorKind::Unsupported(format!(
                    "{} names a global by copyreg extension code {code}, which no registry \
                     defines in a plain Python",
                    at.opcode.name()
                ))));
            }
            Opcode::Put | Opcode::BinPut | Opcode::LongBinPut => {
                let index = Self::memo_index(&arg, at)?;
                self.memo_put(index, at)?;
            }
            Opcode::Memoize => {
                let index = self.memo.len() as u64;
                self.memo_put(index, at)?;
            }
            Opcode::Get | Opcode::BinGet | Opcode::LongBinGet => {
                let index = Self::memo_index(&arg, at)?;
                self.memo_get(index, at)?;
            }
        }
        Ok(false)
    }
}

/// A short name for the kind of an object, for messages.
pub(crate) fn kind_name(object: &Object<'_>) -> &'static str {
    match object {
        Object::None => "None",
        Object::Bool(_) => "bool",
        Object::Int(_) | Object::BigInt(_) => "int",
        Object::Float(_) => "float",
        Object::Str(_) => "str",
        Object::Bytes(_) => "bytes",
        Object::ByteArray(_) => "bytearray",
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
    fn stops_at_stop() {
        let pickle = run(b"\x80\x02N.trailing garbage");
        assert_eq!(pickle.byte_len(), 4);
    }
}
