//! The result of reading a pickle: a graph of symbolic objects in an arena.
//!
//! Nothing here was imported or called. A `GLOBAL` is just a [`Object::Global`] name; a
//! `REDUCE` is a [`Object::Call`] that records the callable and its arguments; `NEWOBJ`
//! and friends are [`Object::Instance`]s; `BUILD` appends a state to its target. Objects
//! refer to each other by [`ObjectId`], so a memoised object that is used a thousand times
//! exists once, and containers mutated after they were memoised (the way pickle works)
//! are seen mutated by every reference.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

/// The index of an object in a [`Pickle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId(pub(crate) u32);

impl ObjectId {
    /// The index as a number (objects are numbered in creation order).
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// How an [`Object::Instance`] was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum InstanceKind {
    /// `NEWOBJ`: `cls.__new__(cls, *args)`.
    NewObj,
    /// `NEWOBJ_EX`: `cls.__new__(cls, *args, **kwargs)`.
    NewObjEx,
    /// `OBJ`: `cls(*args)` (protocol 1).
    Obj,
    /// `INST`: `module.name(*args)` (protocol 0).
    Inst,
}

/// A symbolic Python object.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Object<'a> {
    /// `None`.
    None,
    /// `True` or `False`.
    Bool(bool),
    /// An integer that fits in 64 bits.
    Int(i64),
    /// A larger integer, as little-endian two's complement bytes.
    BigInt(Box<[u8]>),
    /// A float.
    Float(f64),
    /// A text string. Python 2 `str` values decode here when they are valid UTF-8, as
    /// `torch.load` decodes them.
    Str(Arc<str>),
    /// A byte string (also Python 2 `str` values that are not UTF-8).
    Bytes(Cow<'a, [u8]>),
    /// A `bytearray` (`BYTEARRAY8`; `APPEND`/`SETITEM` onto it change it, as in Python).
    ByteArray(Cow<'a, [u8]>),
    /// A read-only `memoryview` of a bytearray (the object given): what `READONLY_BUFFER`
    /// makes of one.
    MemoryView(ObjectId),
    /// A tuple.
    Tuple(Vec<ObjectId>),
    /// A list.
    List(Vec<ObjectId>),
    /// A dict, in insertion order (keys may repeat: pickle does not forbid it; the last
    /// one wins, as in Python).
    Dict(Vec<(ObjectId, ObjectId)>),
    /// A set, in pickle order.
    Set(Vec<ObjectId>),
    /// A frozenset, in pickle order.
    FrozenSet(Vec<ObjectId>),
    /// A name to import: `module.name` (never imported).
    Global {
        /// The module path (`torch._utils`), as written (Python 2 names unmapped).
        module: Arc<str>,
        /// The name in the module (may be dotted: `Foo.bar`).
        name: Arc<str>,
    },
    /// `callable(*args)` from `REDUCE` (never called).
    Call {
        /// What would be called.
        callable: ObjectId,
        /// The argument tuple.
        args: ObjectId,
    },
    /// An instance of a class (never constructed).
    Instance {
        /// The class.
        class: ObjectId,
        /// The positional arguments (a tuple).
        args: ObjectId,
        /// The keyword arguments of `NEWOBJ_EX`.
        kwargs: Option<ObjectId>,
        /// The opcode that made it.
        kind: InstanceKind,
    },
    /// `persistent_load(pid)`: how torch refers to tensor storages.
    PersistentId(ObjectId),
    /// `EXT1`/`EXT2`/`EXT4` of a code that no `copyreg.add_extension` call of the pickle
    /// registered (a code it did register is an [`Object::Global`]). Reading stops there,
    /// as in CPython; [`crate::parse_partial`] keeps the object.
    Extension(i64),
}

/// What `BUILD`, `APPEND(S)`, `SETITEM(S)` and `ADDITEMS` did to objects that are not
/// plain lists, dicts or sets (instances, calls, and dicts given attributes by `BUILD`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Extras {
    /// States given by `BUILD`, in order.
    pub states: Vec<ObjectId>,
    /// Items appended (`APPEND(S)`, `ADDITEMS`).
    pub items: Vec<ObjectId>,
    /// Entries set (`SETITEM(S)`).
    pub entries: Vec<(ObjectId, ObjectId)>,
}

#[derive(Debug, Clone)]
pub(crate) struct Node<'a> {
    pub(crate) object: Object<'a>,
    pub(crate) offset: u64,
}

/// A read pickle: the objects it builds and the one it returns. Byte strings borrow the
/// input (`'a`), so large `bytes` payloads (numpy arrays) are not copied.
#[derive(Debug, Clone)]
pub struct Pickle<'a> {
    pub(crate) nodes: Vec<Node<'a>>,
    pub(crate) extras: HashMap<ObjectId, Extras>,
    pub(crate) root: Option<ObjectId>,
    pub(crate) protocol: Option<u8>,
    pub(crate) len: usize,
    pub(crate) stream_len: usize,
    pub(crate) divergence: Option<u64>,
}

const NO_EXTRAS: &Extras = &Extras {
    states: Vec::new(),
    items: Vec::new(),
    entries: Vec::new(),
};

impl<'a> Pickle<'a> {
    /// The object `STOP` returned; `None` for a pickle read only in part
    /// ([`crate::parse_partial`]).
    pub fn root(&self) -> Option<ObjectId> {
        self.root
    }

    /// The object with this id.
    ///
    /// Ids come from this pickle, so the lookup cannot fail; an id from another pickle
    /// may give `Object::None`.
    pub fn get(&self, id: ObjectId) -> &Object<'a> {
        self.nodes
            .get(id.index())
            .map_or(&Object::None, |n| &n.object)
    }

    /// Where the object was created (the byte offset of its opcode).
    pub fn offset(&self, id: ObjectId) -> u64 {
        self.nodes.get(id.index()).map_or(0, |n| n.offset)
    }

    /// What `BUILD` and friends did to the object.
    pub fn extras(&self, id: ObjectId) -> &Extras {
        self.extras.get(&id).unwrap_or(NO_EXTRAS)
    }

    /// Every object, in creation order.
    pub fn objects(&self) -> impl Iterator<Item = (ObjectId, &Object<'a>)> {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, node)| (ObjectId(u32::try_from(i).unwrap_or(u32::MAX)), &node.object))
    }

    /// The number of objects.
    pub fn len_objects(&self) -> usize {
        self.nodes.len()
    }

    /// The protocol announced by `PROTO`, if any.
    pub fn protocol(&self) -> Option<u8> {
        self.protocol
    }

    /// How many bytes the pickle took, `STOP` included (or up to the error, when partial).
    pub fn byte_len(&self) -> usize {
        self.len
    }

    /// Where a loader reading an unbuffered stream stands after `STOP` (see
    /// [`Framing::Stream`](crate::Framing::Stream)): past [`Pickle::byte_len`] when `STOP`
    /// lies inside a frame that goes on after it. A loader calling `pickle.load` again on the
    /// same stream starts the next pickle there; one reading a file it can peek into starts
    /// it right after `STOP`.
    pub fn stream_len(&self) -> usize {
        self.stream_len
    }

    /// The offset of the first opcode whose argument crosses the end of a `FRAME`, if any:
    /// from there the two ways CPython reads a pickle ([`Framing`](crate::Framing)) read
    /// different bytes, so a loader may see other opcodes and globals than this reading
    /// (parse it again with [`crate::parse_partial_framed`]; [`crate::static_globals`]
    /// reports the globals of both). No pickler writes such a pickle.
    pub fn divergence(&self) -> Option<u64> {
        self.divergence
    }

    /// The bytes of a `Bytes` or `ByteArray` object, borrowed from the input when possible.
    pub fn as_bytes(&self, id: ObjectId) -> Option<&Cow<'a, [u8]>> {
        match self.get(id) {
            Object::Bytes(b) | Object::ByteArray(b) => Some(b),
            _ => None,
        }
    }

    /// The text of a `Str` object.
    pub fn as_str(&self, id: ObjectId) -> Option<&str> {
        match self.get(id) {
            Object::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer value of an `Int` or `Bool` object.
    pub fn as_int(&self, id: ObjectId) -> Option<i64> {
        match self.get(id) {
            Object::Int(i) => Some(*i),
            Object::Bool(b) => Some(i64::from(*b)),
            _ => None,
        }
    }

    /// The items of a `Tuple` or `List` object.
    pub fn as_seq(&self, id: ObjectId) -> Option<&[ObjectId]> {
        match self.get(id) {
            Object::Tuple(items) | Object::List(items) => Some(items),
            _ => None,
        }
    }

    /// `(module, name)` of a `Global` object.
    pub fn as_global(&self, id: ObjectId) -> Option<(&str, &str)> {
        match self.get(id) {
            Object::Global { module, name } => Some((module, name)),
            _ => None,
        }
    }
}
