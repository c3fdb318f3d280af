//! numpy's dtype construction from the `descr` of a `.npy` header: what
//! `numpy.lib.format.descr_to_dtype(descr)` builds in numpy 2.4, as far as deciding
//! `dtype.hasobject` exactly, and the item size.
//!
//! The code follows numpy's own, function by function (`numpy/_core/src/multiarray/
//! descriptor.c`: `_convert_from_any`, `_convert_from_str`, `_convert_from_tuple`,
//! `_try_convert_from_inherit_tuple`, `_convert_from_array_descr`, `_convert_from_list`,
//! `_convert_from_dict`; `numpy/_core/_internal.py`: `_commastring`, `_usefields`,
//! `_makenames_list`; `numpy/_core/src/multiarray/datetime.c` for `M8[...]`), on the Python
//! values `ast.literal_eval` gives. `hasobject` is numpy's flag (`NPY_ITEM_HASOBJECT`), carried
//! as numpy carries it: set by the object and `StringDType` types, inherited by structures and
//! subarrays, and replaced in `(base, new)` unions as numpy replaces it. It is never guessed
//! from text.
//!
//! Errors: [`Fail::Refused`] where numpy raises, [`Fail::Crash`] where numpy's process dies
//! (a zero divisor in a datetime unit), [`Fail::Undecided`] where ckpt cannot tell (a set
//! whose iteration order decides, an `int()` of non-ASCII digits, a size that overflows C's
//! `int` in numpy's arithmetic).

use std::borrow::Cow;
use std::collections::HashSet;
use std::rc::Rc;

use super::Fail;
use super::int::Int;
use super::literal::{self, Text};
use super::tables::{ONE_CHAR, PY_SPACE, TYPE_NAMES};
use super::value::{Dict, PyStr, Value, py_eq};

const INT_MAX: i64 = i32::MAX as i64;
/// numpy's `NPY_MAXDIMS`.
const MAX_DIMS: usize = 64;

/// A dtype's type, as numpy's kind characters name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Bool,
    Int,
    UInt,
    Float,
    Complex,
    Object,
    Bytes,
    Unicode,
    Void,
    Datetime,
    Timedelta,
    /// numpy 2's variable-width strings (`'T'`): a new-style dtype that holds Python objects
    /// (`hasobject` is true) and is never a field of a list-form structure.
    StringDType,
}

impl Kind {
    fn char(self) -> char {
        match self {
            Kind::Bool => 'b',
            Kind::Int => 'i',
            Kind::UInt => 'u',
            Kind::Float => 'f',
            Kind::Complex => 'c',
            Kind::Object => 'O',
            Kind::Bytes => 'S',
            Kind::Unicode => 'U',
            Kind::Void => 'V',
            Kind::Datetime => 'M',
            Kind::Timedelta => 'm',
            Kind::StringDType => 'T',
        }
    }
}

/// A builtin dtype as numpy's tables describe it (see `tables.rs`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Builtin {
    pub(crate) kind: Kind,
    pub(crate) elsize: u32,
    pub(crate) align: u8,
    /// numpy's `byteorder`: `=` native, `|` not applicable, `>` big-endian.
    pub(crate) order: u8,
}

/// What numpy keeps as a dtype's `metadata`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Meta {
    None,
    Dict,
    /// Any other object (numpy stores what it is given).
    Other,
}

/// A datetime unit (numpy's `NPY_DATETIMEUNIT`, whose numbers the divisor table uses).
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Unit {
    Y = 0,
    M = 1,
    W = 2,
    D = 4,
    h = 5,
    m = 6,
    s = 7,
    ms = 8,
    us = 9,
    ns = 10,
    ps = 11,
    fs = 12,
    as_ = 13,
    Generic = 14,
}

const UNITS: [(Unit, &str); 14] = [
    (Unit::Y, "Y"),
    (Unit::M, "M"),
    (Unit::W, "W"),
    (Unit::D, "D"),
    (Unit::h, "h"),
    (Unit::m, "m"),
    (Unit::s, "s"),
    (Unit::ms, "ms"),
    (Unit::us, "us"),
    (Unit::ns, "ns"),
    (Unit::ps, "ps"),
    (Unit::fs, "fs"),
    (Unit::as_, "as"),
    (Unit::Generic, "generic"),
];

fn unit_from_number(n: i32) -> Option<Unit> {
    UNITS.iter().map(|&(u, _)| u).find(|&u| u as i32 == n)
}

/// A dtype as numpy builds it: the parts that decide `hasobject`, sizes and what the next
/// construction step does with it.
#[derive(Clone, Debug)]
pub(crate) struct Descr {
    pub(crate) kind: Kind,
    /// numpy's `elsize` (`itemsize`).
    pub(crate) elsize: i64,
    pub(crate) alignment: i64,
    /// numpy's `NPY_ITEM_REFCOUNT`/`NPY_ITEM_HASOBJECT` flag: `dtype.hasobject`.
    pub(crate) refs: bool,
    pub(crate) order: u8,
    /// The field dtypes, in order (`names is not None`).
    pub(crate) fields: Option<Rc<[Descr]>>,
    /// Whether this is a subarray dtype (`(base, shape)`).
    pub(crate) subarray: bool,
    pub(crate) metadata: Meta,
    /// Datetime unit and multiplier.
    time: Option<(Unit, i32)>,
    /// numpy stored the keys of a `names` dict as the names, so looking a field up by its
    /// name fails (numpy raises `SystemError` where it does).
    names_broken: bool,
}

impl Descr {
    fn builtin(b: Builtin) -> Descr {
        Descr {
            kind: b.kind,
            elsize: i64::from(b.elsize),
            alignment: i64::from(b.align),
            refs: matches!(b.kind, Kind::Object | Kind::StringDType),
            order: b.order,
            fields: None,
            subarray: false,
            metadata: Meta::None,
            time: matches!(b.kind, Kind::Datetime | Kind::Timedelta).then_some((Unit::Generic, 1)),
            names_broken: false,
        }
    }

    fn simple(kind: Kind, elsize: i64, alignment: i64, order: u8) -> Descr {
        Descr::builtin(Builtin {
            kind,
            elsize: 0,
            align: 1,
            order,
        })
        .with_size(elsize, alignment)
    }

    fn with_size(mut self, elsize: i64, alignment: i64) -> Descr {
        self.elsize = elsize;
        self.alignment = alignment;
        self
    }

    fn float64() -> Descr {
        Descr::simple(Kind::Float, 8, 8, b'=')
    }

    /// `PyDataType_ISUNSIZED`: size 0 and no fields (`'S'`, `'U'`, `'V'`, `('O', (0,))`...).
    fn is_unsized(&self) -> bool {
        self.elsize == 0 && self.fields.is_none()
    }

    fn is_legacy(&self) -> bool {
        self.kind != Kind::StringDType
    }

    /// A structure of `fields` (numpy's `PyArray_DescrNewFromType(NPY_VOID)` with fields).
    fn structure(fields: Vec<Descr>, elsize: i64, alignment: i64, refs: bool) -> Descr {
        Descr {
            kind: Kind::Void,
            elsize,
            alignment,
            refs,
            order: b'|',
            fields: Some(fields.into()),
            subarray: false,
            metadata: Meta::None,
            time: None,
            names_broken: false,
        }
    }

    /// numpy's `dtype.str` for a dtype without fields or subarray (`'<f4'`, `'|O'`,
    /// `'<M8[ns]'`); `None` for the others and for `StringDType`.
    pub(crate) fn typestr(&self) -> Option<String> {
        if self.fields.is_some() || self.subarray || self.kind == Kind::StringDType {
            return None;
        }
        let order = match self.order {
            b'>' => '>',
            b'|' => '|',
            _ => '<',
        };
        let kind = self.kind.char();
        Some(match self.kind {
            Kind::Object => format!("{order}O"),
            Kind::Unicode => format!("{order}U{}", self.elsize / 4),
            Kind::Datetime | Kind::Timedelta => {
                let unit = match self.time {
                    Some((Unit::Generic, _)) | None => String::new(),
                    Some((unit, num)) => {
                        let name = UNITS
                            .iter()
                            .find(|(u, _)| *u == unit)
                            .map_or("?", |(_, n)| n);
                        if num == 1 {
                            format!("[{name}]")
                        } else {
                            format!("[{num}{name}]")
                        }
                    }
                };
                format!("{order}{kind}8{unit}")
            }
            _ => format!("{order}{kind}{}", self.elsize),
        })
    }
}

/// The work budget of one construction (every conversion step counts one).
pub(crate) struct Cx {
    steps: usize,
    max_steps: usize,
    literal: literal::Options,
}

impl Cx {
    pub(crate) fn new(max_steps: usize, literal: literal::Options) -> Cx {
        Cx {
            steps: 0,
            max_steps,
            literal,
        }
    }

    fn step(&mut self) -> R<()> {
        self.steps += 1;
        if self.steps > self.max_steps {
            return Err(Fail::Undecided {
                at: None,
                message: format!("building the dtype took more than {} steps", self.max_steps),
                limit: None,
            });
        }
        Ok(())
    }
}

type R<T> = Result<T, Fail>;

fn error(message: impl Into<String>) -> Fail {
    Fail::Refused {
        at: None,
        message: message.into(),
    }
}

fn undecided(message: impl Into<String>) -> Fail {
    Fail::Undecided {
        at: None,
        message: message.into(),
        limit: None,
    }
}

/// `numpy.lib.format.descr_to_dtype(descr)`.
pub(crate) fn descr_to_dtype(descr: &Value, cx: &mut Cx) -> R<Descr> {
    cx.step()?;
    stacker::maybe_grow(64 << 10, 1 << 20, || match descr {
        Value::Str(s) => convert_str(s, false, cx),
        Value::Tuple(items) => {
            let first = items
                .first()
                .ok_or_else(|| error("descr is an empty tuple"))?;
            let base = descr_to_dtype(first, cx)?;
            let shape = items
                .get(1)
                .ok_or_else(|| error("descr is a tuple of one item"))?;
            convert_tuple(base, shape, cx)
        }
        _ => {
            let fields = descr.py_iter().ok_or_else(|| {
                error(format!(
                    "descr: '{}' object is not iterable",
                    descr.type_name()
                ))
            })?;
            let mut names = Vec::new();
            let mut formats = Vec::new();
            let mut titles = Vec::new();
            let mut offsets = Vec::new();
            let mut offset: i64 = 0;
            for field in &fields {
                let field: &Value = field;
                let n = field.py_len().ok_or_else(|| {
                    error(format!(
                        "a field is a '{}', which has no len()",
                        field.type_name()
                    ))
                })?;
                let parts = unpack(field, if n == 2 { 2 } else { 3 })?;
                let (name, format): (&Value, Descr) = match parts.as_slice() {
                    [name, format] => (name, descr_to_dtype(format, cx)?),
                    [name, format, shape] => {
                        let base = descr_to_dtype(format, cx)?;
                        (name, convert_tuple(base, shape, cx)?)
                    }
                    _ => return Err(error("a field does not unpack")),
                };
                let padding = py_eq(name, &Value::str(""))
                    && format.kind == Kind::Void
                    && format.fields.is_none();
                let size = format.elsize;
                if !padding {
                    let (title, name) = match name {
                        Value::Tuple(pair) => match &**pair {
                            [title, name] => (title.clone(), name.clone()),
                            _ => {
                                return Err(error(
                                    "a field name tuple does not unpack to (title, name)",
                                ));
                            }
                        },
                        name => (Value::None, name.clone()),
                    };
                    names.push(Item::Lit(Cow::Owned(name)));
                    titles.push(Item::Lit(Cow::Owned(title)));
                    formats.push(Item::Descr(format));
                    offsets.push(Item::Int(Int::Small(offset)));
                }
                offset = offset
                    .checked_add(size)
                    .ok_or_else(|| undecided("the fields' sizes overflow"))?;
            }
            dict_form(
                DictForm {
                    names: Seq::Items(names),
                    formats: Seq::Items(formats),
                    offsets: Some(Seq::Items(offsets)),
                    titles: Some(Seq::Items(titles)),
                    aligned: None,
                    itemsize: Some(Item::Int(Int::Small(offset))),
                    metadata: None,
                },
                false,
                cx,
            )
        }
    })
}

/// Python's `a, b = v` / `a, b, c = v`.
fn unpack(v: &Value, want: usize) -> R<Vec<Cow<'_, Value>>> {
    let items = v
        .py_iter()
        .ok_or_else(|| error(format!("cannot unpack a '{}'", v.type_name())))?;
    if items.len() != want {
        return Err(error(format!(
            "a field unpacks to {} values, not {want}",
            items.len()
        )));
    }
    if matches!(v, Value::Set(_)) && want > 1 {
        return Err(undecided(
            "a field is a set: Python unpacks it in an order that depends on string hashing",
        ));
    }
    Ok(items)
}

/// `_convert_from_any(obj, align)`: `numpy.dtype(obj)`.
/// `numpy.dtype(v)`: the constructor's own reading of a value (a string, a tuple, a list of
/// fields, a dict in either form), as pickled dtypes are rebuilt.
pub(crate) fn numpy_dtype(v: &Value, cx: &mut Cx) -> R<Descr> {
    convert_any(v, false, cx)
}

fn convert_any(v: &Value, align: bool, cx: &mut Cx) -> R<Descr> {
    cx.step()?;
    stacker::maybe_grow(64 << 10, 1 << 20, || match v {
        Value::None => Ok(Descr::float64()),
        Value::Str(s) => convert_str(s, align, cx),
        Value::Bytes(b) => match std::str::from_utf8(b) {
            Ok(text) => convert_str(&PyStr::new(text), align, cx),
            Err(_) => Err(error("data type not understood (bytes that are not UTF-8)")),
        },
        Value::Tuple(items) => match &**items {
            [first, second] => {
                let base = convert_any(first, align, cx)?;
                convert_tuple(base, second, cx)
            }
            _ => Err(error(format!(
                "Tuple must have size 2, but has size {}",
                items.len()
            ))),
        },
        Value::List(items) => convert_array_descr(items, align, cx),
        Value::Dict(d) => convert_dict(d, align, cx),
        other => Err(error(format!(
            "Cannot interpret '{}' as a data type",
            other.describe()
        ))),
    })
}

/// `_convert_from_tuple`: `(base, x)` where `base` is already a dtype.
fn convert_tuple(base: Descr, val: &Value, cx: &mut Cx) -> R<Descr> {
    if let Some(union) = try_inherit(&base, val, cx)? {
        return Ok(union);
    }
    if base.is_unsized() {
        // (flexible type, itemsize)
        let size = match (py_int_as_int(val), base.kind) {
            (Some(s), Kind::Unicode) if s > INT_MAX / 4 => -1,
            (Some(s), Kind::Unicode) => s * 4,
            (Some(s), _) => s,
            (None, _) => -1,
        };
        if size < 0 {
            return Err(error("invalid itemsize in generic type tuple"));
        }
        return Ok(Descr {
            elsize: size,
            ..base
        });
    }
    if base.metadata != Meta::None && matches!(val, Value::Dict(_)) {
        // (type with metadata, metadata dict to merge)
        return match base.metadata {
            Meta::Dict => Ok(base),
            _ => Err(error(
                "bad argument to internal function (merging metadata)",
            )),
        };
    }
    // (fixed type, shape)
    let shape = intp_converter(val).ok_or_else(|| error("invalid shape in fixed-type tuple."))?;
    if shape.is_empty() && matches!(val, Value::Tuple(_)) {
        return Ok(base);
    }
    if shape.iter().any(|&d| d < 0) {
        return Err(error(
            "invalid shape in fixed-type tuple: dimension smaller then zero.",
        ));
    }
    if shape.iter().any(|&d| d > INT_MAX) {
        return Err(error(
            "invalid shape in fixed-type tuple: dimension does not fit into a C int.",
        ));
    }
    let nbytes = shape
        .iter()
        .try_fold(1i64, |acc, &d| acc.checked_mul(d))
        .filter(|&items| items <= INT_MAX)
        .and_then(|items| base.elsize.checked_mul(items))
        .filter(|&n| n <= INT_MAX)
        .ok_or_else(|| {
            error("invalid shape in fixed-type tuple: dtype size in bytes must fit into a C int.")
        })?;
    Ok(Descr {
        kind: Kind::Void,
        elsize: nbytes,
        alignment: base.alignment,
        refs: base.refs,
        order: b'|',
        fields: None,
        subarray: true,
        metadata: Meta::None,
        time: None,
        names_broken: false,
    })
}

/// `_try_convert_from_inherit_tuple`: `(base, new)` where `new` is itself a dtype; `None`
/// where numpy returns `NotImplemented` (and tries the other meanings of the tuple).
fn try_inherit(base: &Descr, val: &Value, cx: &mut Cx) -> R<Option<Descr>> {
    if let Value::Tuple(items) = val
        && items
            .iter()
            .all(|i| matches!(i, Value::Int(_) | Value::Bool(_)))
    {
        return Ok(None);
    }
    let conv = match convert_any(val, false, cx) {
        Ok(conv) => conv,
        // numpy clears the error and tries the tuple's other meanings.
        Err(Fail::Refused { .. }) => return Ok(None),
        Err(other) => return Err(other),
    };
    if !base.is_legacy() || !conv.is_legacy() {
        return Ok(None);
    }
    let mut new = base.clone();
    if new.is_unsized() {
        new.elsize = conv.elsize;
    } else if new.elsize != conv.elsize {
        return Err(error("mismatch in size of old and new data-descriptor"));
    } else if (new.refs || conv.refs) && !union_allows_objects(&new, &conv) {
        return Err(error(
            "dtypes of the form (old_dtype, new_dtype) containing the object dtype are not supported",
        ));
    }
    if conv.fields.is_some() {
        new.fields.clone_from(&conv.fields);
        new.names_broken = conv.names_broken;
    }
    if conv.metadata != Meta::None {
        new.metadata = conv.metadata;
    }
    if new.kind == Kind::Void {
        new.refs = conv.refs;
    }
    Ok(Some(new))
}

/// `_validate_union_object_dtype`: only `('O', [(name, 'O')])` may hold objects.
fn union_allows_objects(new: &Descr, conv: &Descr) -> bool {
    !conv.names_broken
        && new.fields.is_none()
        && new.kind == Kind::Object
        && conv
            .fields
            .as_ref()
            .is_some_and(|f| f.len() == 1 && f.first().is_some_and(|d| d.kind == Kind::Object))
}

/// `PyArray_IntpConverter`: a shape from an int or a sequence of ints.
fn intp_converter(val: &Value) -> Option<Vec<i64>> {
    let dim = |v: &Value| match v {
        Value::Int(i) => i.to_i64(),
        _ => None,
    };
    match val {
        Value::Int(i) => Some(vec![i.to_i64()?]),
        Value::Str(_) | Value::Bytes(_) | Value::Tuple(_) | Value::List(_) => {
            let items = val.py_iter()?;
            if items.len() > MAX_DIMS {
                return None;
            }
            items.iter().map(|v| dim(v)).collect()
        }
        _ => None,
    }
}

/// `PyArray_PyIntAsInt`: an int (not a bool) that fits C's `int`.
fn py_int_as_int(val: &Value) -> Option<i64> {
    match val {
        Value::Int(i) => i
            .to_i64()
            .filter(|v| (i64::from(i32::MIN)..=INT_MAX).contains(v)),
        _ => None,
    }
}

fn item_as_int(item: &Item) -> Option<i64> {
    match item {
        Item::Lit(v) => py_int_as_int(v),
        Item::Int(i) => py_int_as_int(&Value::Int(i.clone())),
        Item::Descr(_) => None,
    }
}

fn next_aligned(offset: i64, alignment: i64) -> i64 {
    if alignment <= 1 {
        return offset;
    }
    (offset + alignment - 1) / alignment * alignment
}

/// `_convert_from_array_descr`: a list of `(name, format[, shape])` tuples.
fn convert_array_descr(items: &[Value], align: bool, cx: &mut Cx) -> R<Descr> {
    let mut seen: HashSet<PyStr> = HashSet::new();
    let mut fields = Vec::with_capacity(items.len());
    let mut refs = false;
    let mut total: i64 = 0;
    let mut max_align: i64 = 1;
    for (i, item) in items.iter().enumerate() {
        let parts = match item {
            Value::Tuple(parts) if parts.len() >= 2 => parts,
            _ => return Err(error("Field elements must be 2- or 3-tuples")),
        };
        let (title, name) = match parts.first() {
            Some(Value::Str(name)) => (None, name.clone()),
            Some(Value::Tuple(pair)) => match &**pair {
                [title, Value::Str(name)] => (Some(title), name.clone()),
                [_, _] => return Err(error("Field name must be a str")),
                _ => return Err(error("a field's (title, name) must have two elements")),
            },
            _ => {
                return Err(error(
                    "First element of field tuple is neither a tuple nor str",
                ));
            }
        };
        let name = if name.is_empty() {
            match title {
                None => PyStr::new(&format!("f{i}")),
                Some(Value::Str(t)) if !t.is_empty() => t.clone(),
                Some(_) => return Err(error("Field titles must be non-empty strings")),
            }
        } else {
            name
        };
        let conv = match &**parts {
            [_, format] => convert_any(format, align, cx)?,
            [_, format, shape] => {
                let base = convert_any(format, align, cx)?;
                convert_tuple(base, shape, cx)?
            }
            _ => {
                return Err(error(
                    "Field elements must be tuples with at most 3 elements",
                ));
            }
        };
        if conv.kind == Kind::StringDType {
            return Err(error(
                "StringDType is not currently supported for structured dtype fields.",
            ));
        }
        let title_str = match title {
            Some(Value::Str(t)) => Some(t.clone()),
            _ => None,
        };
        if seen.contains(&name) || title_str.as_ref().is_some_and(|t| seen.contains(t)) {
            return Err(error(format!(
                "field {:?} occurs more than once",
                name.lossy()
            )));
        }
        refs |= conv.refs;
        if align {
            total = next_aligned(total, conv.alignment);
            max_align = max_align.max(conv.alignment);
        }
        seen.insert(name);
        if let Some(t) = title_str {
            if seen.contains(&t) {
                return Err(error("title already used as a name or title."));
            }
            seen.insert(t);
        }
        total = total
            .checked_add(conv.elsize)
            .filter(|&t| t <= INT_MAX)
            .ok_or_else(|| undecided("the fields' sizes overflow C's int in numpy"))?;
        fields.push(conv);
    }
    if max_align > 1 {
        total = next_aligned(total, max_align);
    }
    Ok(Descr::structure(
        fields,
        total,
        if align { max_align } else { 1 },
        refs,
    ))
}

/// An item of a comma-separated type string (`_commastring`): a type, or `(type, repeats)`.
enum CommaItem {
    Type(String),
    Repeated(String, Value),
}

fn convert_comma_item(item: &CommaItem, align: bool, cx: &mut Cx) -> R<Descr> {
    match item {
        CommaItem::Type(t) => convert_str(&PyStr::new(t), align, cx),
        CommaItem::Repeated(t, repeats) => {
            let base = convert_str(&PyStr::new(t), align, cx)?;
            convert_tuple(base, repeats, cx)
        }
    }
}

/// `_convert_from_list`: the list `_commastring` returns.
fn convert_list(items: &[CommaItem], align: bool, cx: &mut Cx) -> R<Descr> {
    let mut n = items.len();
    if let Some(CommaItem::Type(last)) = items.last()
        && last.is_empty()
    {
        n -= 1;
    }
    if n == 0 {
        return Err(error("Expected at least one field name"));
    }
    let mut fields = Vec::with_capacity(n);
    let mut refs = false;
    let mut total: i64 = 0;
    let mut max_align: i64 = 1;
    for item in items.iter().take(n) {
        let conv = convert_comma_item(item, align, cx)?;
        refs |= conv.refs;
        if align {
            total = next_aligned(total, conv.alignment);
            max_align = max_align.max(conv.alignment);
        }
        total = total
            .checked_add(conv.elsize)
            .filter(|&t| t <= INT_MAX)
            .ok_or_else(|| undecided("the fields' sizes overflow C's int in numpy"))?;
        fields.push(conv);
    }
    if max_align > 1 {
        total = next_aligned(total, max_align);
    }
    Ok(Descr::structure(
        fields,
        total,
        if align { max_align } else { 1 },
        refs,
    ))
}

fn is_order(c: u8) -> bool {
    matches!(c, b'<' | b'>' | b'|' | b'=')
}

/// `_check_for_commastring`.
fn is_commastring(s: &[u8]) -> bool {
    let at = |i: usize| s.get(i).copied().unwrap_or(0);
    if at(0).is_ascii_digit() || (s.len() > 1 && is_order(at(0)) && at(1).is_ascii_digit()) {
        return true;
    }
    if (s.len() > 1 && at(0) == b'(' && at(1) == b')')
        || (s.len() > 3 && is_order(at(0)) && at(1) == b'(' && at(2) == b')')
    {
        return true;
    }
    let mut depth: i64 = 0;
    for &c in s {
        match c {
            b',' if depth == 0 => return true,
            b'[' => depth += 1,
            b']' => depth -= 1,
            _ => {}
        }
    }
    false
}

fn py_space(c: char) -> bool {
    PY_SPACE.contains(&c)
}

/// `_commastring(astr)`: the items of `format_re` matches separated by `sep_re`.
fn commastring(astr: &str, cx: &mut Cx) -> R<(Vec<CommaItem>, bool)> {
    let chars: Vec<char> = astr.chars().collect();
    let at = |i: usize| chars.get(i).copied();
    let mut start = 0;
    let mut result = Vec::new();
    let mut islist = false;
    while start < chars.len() {
        // format_re, greedy (Python's match finds this first):
        // ([<>|=]?)( *[(]?[ ,0-9]*[)]? *)([<>|=]?)([A-Za-z0-9.?]*(?:\[[a-zA-Z0-9,.]+\])?)
        let mut p = start;
        let order_char = |c: Option<char>| c.filter(|c| "<>|=".contains(*c));
        let order1 = order_char(at(p));
        p += usize::from(order1.is_some());
        let repeats_start = p;
        while at(p) == Some(' ') {
            p += 1;
        }
        if at(p) == Some('(') {
            p += 1;
        }
        while at(p).is_some_and(|c| c == ' ' || c == ',' || c.is_ascii_digit()) {
            p += 1;
        }
        if at(p) == Some(')') {
            p += 1;
        }
        while at(p) == Some(' ') {
            p += 1;
        }
        let repeats: String = chars
            .get(repeats_start..p)
            .unwrap_or_default()
            .iter()
            .collect();
        let order2 = order_char(at(p));
        p += usize::from(order2.is_some());
        let dtype_start = p;
        while at(p).is_some_and(|c| c.is_ascii_alphanumeric() || c == '.' || c == '?') {
            p += 1;
        }
        if at(p) == Some('[') {
            let mut q = p + 1;
            while at(q).is_some_and(|c| c.is_ascii_alphanumeric() || c == ',' || c == '.') {
                q += 1;
            }
            if q > p + 1 && at(q) == Some(']') {
                p = q + 1;
            }
        }
        let dtype: String = chars
            .get(dtype_start..p)
            .unwrap_or_default()
            .iter()
            .collect();
        start = p;
        if start < chars.len() {
            let rest = chars.get(start..).unwrap_or_default();
            if rest.iter().all(|&c| py_space(c)) {
                start = chars.len();
            } else {
                // sep_re: \s*,\s*
                let mut q = start;
                while at(q).is_some_and(py_space) {
                    q += 1;
                }
                if at(q) != Some(',') {
                    return Err(error(format!(
                        "format number {} of {astr:?} is not recognized",
                        result.len() + 1
                    )));
                }
                q += 1;
                while at(q).is_some_and(py_space) {
                    q += 1;
                }
                start = q;
                islist = true;
            }
        }
        let native = |c: char| if c == '=' { '<' } else { c };
        let order = match (order1, order2) {
            (o, None) | (None, o) => o,
            (Some(a), Some(b)) => {
                if native(a) != native(b) {
                    return Err(error(format!(
                        "inconsistent byte-order specification {} and {}",
                        native(a),
                        native(b)
                    )));
                }
                Some(native(a))
            }
        };
        let order = order.filter(|&c| c == '>');
        let dtype = format!("{}{dtype}", order.map(String::from).unwrap_or_default());
        if repeats.is_empty() {
            result.push(CommaItem::Type(dtype));
        } else {
            // Repeats are digits, commas, spaces and at most one pair of parentheses: an int or
            // a flat tuple, with at least as many items as commas. Beyond 64 items numpy
            // refuses the shape, so a longer one need not be parsed.
            if repeats.matches(',').count() > MAX_DIMS {
                return Err(error(format!(
                    "repeats of {astr:?}: more than {MAX_DIMS} dimensions"
                )));
            }
            let value =
                literal::literal_eval(Text::Utf8(&repeats), &cx.literal).map_err(|f| match f {
                    Fail::Refused { message, .. } => {
                        error(format!("repeats {repeats:?} of {astr:?}: {message}"))
                    }
                    other => other,
                })?;
            result.push(CommaItem::Repeated(dtype, value));
        }
    }
    Ok((result, islist))
}

/// C's `strtol(s, &end, 10)`: the value (saturated), the index where it stopped (0 when no
/// digits), and whether it overflowed (`ERANGE`).
fn strtol(s: &[u8]) -> (i64, usize, bool) {
    let mut p = 0;
    while s
        .get(p)
        .is_some_and(|&c| matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'))
    {
        p += 1;
    }
    let negative = s.get(p) == Some(&b'-');
    if matches!(s.get(p), Some(b'+' | b'-')) {
        p += 1;
    }
    let digits_start = p;
    let mut value: i64 = 0;
    let mut overflow = false;
    while let Some(d) = s.get(p).filter(|c| c.is_ascii_digit()) {
        let d = i64::from(d - b'0');
        value = match value.checked_mul(10).and_then(|v| {
            if negative {
                v.checked_sub(d)
            } else {
                v.checked_add(d)
            }
        }) {
            Some(v) => v,
            None => {
                overflow = true;
                if negative { i64::MIN } else { i64::MAX }
            }
        };
        p += 1;
    }
    if p == digits_start {
        return (0, 0, false);
    }
    (value, p, overflow)
}

/// `_convert_from_str`.
fn convert_str(s: &PyStr, align: bool, cx: &mut Cx) -> R<Descr> {
    cx.step()?;
    let Some(text) = s.as_str() else {
        return Err(error(
            "a type string with a lone surrogate cannot be encoded",
        ));
    };
    let bytes = text.as_bytes();
    let not_understood = || error(format!("data type {text:?} not understood"));
    if bytes.is_empty() {
        return Err(not_understood());
    }
    if is_commastring(bytes) {
        let (items, islist) = commastring(text, cx)?;
        if islist {
            return convert_list(&items, align, cx);
        }
        return match items.first() {
            Some(item @ CommaItem::Repeated(..)) => convert_comma_item(item, align, cx),
            _ => Err(error(
                "_commastring should return a tuple with len == 2, or a list with len >= 1",
            )),
        };
    }
    let (prefix, endian, rest) = match bytes.split_first() {
        Some((&c, rest)) if matches!(c, b'<' | b'>' | b'=') => (c, c, rest),
        Some((&b'|', rest)) => (b'|', b'=', rest),
        _ => (0, b'=', bytes),
    };
    if rest.is_empty() {
        return Err(not_understood());
    }
    if is_datetime(rest) {
        let mut d = parse_datetime(rest, text)?;
        if endian == b'>' {
            d.order = b'>';
        }
        return Ok(d);
    }
    if let [c] = rest {
        return ONE_CHAR
            .iter()
            .find(|(p, code, _)| *p == prefix && code == c)
            .map(|&(_, _, b)| Descr::builtin(b))
            .ok_or_else(not_understood);
    }
    let (result, consumed, overflow) = strtol(rest.get(1..).unwrap_or_default());
    let type_end = 1 + consumed; // where strtol stopped, counted from `rest`
    let at_end = rest.get(type_end).is_none_or(|&c| c == 0);
    let parsed = !overflow && at_end;
    if !(0..=INT_MAX).contains(&result) {
        return Err(not_understood());
    }
    let mut found: Option<Descr> = None;
    if parsed && type_end == rest.len() {
        let kind = rest.first().copied().unwrap_or(0);
        found = match kind {
            b'S' | b'a' => Some(Descr::simple(Kind::Bytes, result, 1, b'|')),
            b'U' => {
                if result > INT_MAX / 4 {
                    return Err(not_understood());
                }
                Some(Descr::simple(Kind::Unicode, result * 4, 4, b'='))
            }
            b'V' => Some(Descr::simple(Kind::Void, result, 1, b'|')),
            _ if result == 0 => None,
            _ => typestr_convert(kind, result).map(Descr::builtin),
        };
    } else if parsed {
        return Err(not_understood());
    }
    let Some(mut d) = found else {
        // Names (`float32`, `object`...), looked up with the byte-order character included.
        return TYPE_NAMES
            .iter()
            .find(|(name, _)| *name == text)
            .map(|&(_, b)| Descr::builtin(b))
            .ok_or_else(not_understood);
    };
    let endian = if endian == b'<' { b'=' } else { endian };
    if endian != b'=' && d.order != b'|' && d.order != endian {
        d.order = endian;
    }
    Ok(d)
}

/// `PyArray_TypestrConvert`: a kind character and a size (`f4`, `O8`).
fn typestr_convert(kind: u8, size: i64) -> Option<Builtin> {
    let b = |kind, elsize: u32, align: u8, order| {
        Some(Builtin {
            kind,
            elsize,
            align,
            order,
        })
    };
    let one = if size == 1 { b'|' } else { b'=' };
    match (kind, size) {
        (b'b', 1) => b(Kind::Bool, 1, 1, b'|'),
        (b'i', 1 | 2 | 4 | 8) => b(
            Kind::Int,
            u32::try_from(size).ok()?,
            u8::try_from(size).ok()?,
            one,
        ),
        (b'u', 1 | 2 | 4 | 8) => b(
            Kind::UInt,
            u32::try_from(size).ok()?,
            u8::try_from(size).ok()?,
            one,
        ),
        (b'f', 2 | 4 | 8 | 16) => b(
            Kind::Float,
            u32::try_from(size).ok()?,
            u8::try_from(size).ok()?,
            b'=',
        ),
        (b'c', 8 | 16 | 32) => b(
            Kind::Complex,
            u32::try_from(size).ok()?,
            u8::try_from(size / 2).ok()?,
            b'=',
        ),
        (b'O', 4 | 8) => b(Kind::Object, 8, 8, b'|'),
        // Reached by spellings that are not datetime strings to numpy (`'M+8'`, `'m 8'`).
        (b'M', 8) => b(Kind::Datetime, 8, 8, b'='),
        (b'm', 8) => b(Kind::Timedelta, 8, 8, b'='),
        _ => None,
    }
}

fn is_datetime(t: &[u8]) -> bool {
    (t.len() >= 2 && t.get(1) == Some(&b'8') && matches!(t.first(), Some(b'M' | b'm')))
        || t.starts_with(b"datetime64")
        || t.starts_with(b"timedelta64")
}

/// `parse_dtype_from_datetime_typestr`.
fn parse_datetime(t: &[u8], text: &str) -> R<Descr> {
    let bad = || error(format!("Invalid datetime metadata string in {text:?}"));
    let (kind, meta) = if let Some(rest) = t.strip_prefix(b"m8") {
        (Kind::Timedelta, rest)
    } else if let Some(rest) = t.strip_prefix(b"M8") {
        (Kind::Datetime, rest)
    } else if let Some(rest) = t.strip_prefix(b"timedelta64") {
        (Kind::Timedelta, rest)
    } else if let Some(rest) = t.strip_prefix(b"datetime64") {
        (Kind::Datetime, rest)
    } else {
        return Err(bad());
    };
    let (unit, num) = if meta.is_empty() {
        (Unit::Generic, 1)
    } else {
        if meta.len() < 3 || meta.first() != Some(&b'[') {
            return Err(bad());
        }
        let close = meta
            .iter()
            .skip(1)
            .position(|&c| c == b']')
            .map(|i| i + 1)
            .filter(|&i| i > 1)
            .ok_or_else(bad)?;
        if close + 1 != meta.len() {
            return Err(bad());
        }
        parse_extended_unit(meta.get(1..close).unwrap_or_default(), text)?
    };
    let mut d = Descr::simple(kind, 8, 8, b'=');
    d.time = Some((unit, num));
    Ok(d)
}

/// `parse_datetime_extended_unit_from_string`: `[num]unit[/den]`.
fn parse_extended_unit(s: &[u8], text: &str) -> R<(Unit, i32)> {
    let bad = || error(format!("Invalid datetime metadata string in {text:?}"));
    let (value, consumed, overflow) = strtol(s);
    let mut num: i32 = 1;
    if consumed > 0 {
        if overflow || !(0..=INT_MAX).contains(&value) {
            return Err(bad());
        }
        num = i32::try_from(value).map_err(|_| bad())?;
    }
    let rest = s.get(consumed..).unwrap_or_default();
    let unit_len = rest.iter().position(|&c| c == b'/').unwrap_or(rest.len());
    if unit_len == 0 {
        return Err(bad());
    }
    let unit = match rest.get(..unit_len).unwrap_or_default() {
        b"Y" => Unit::Y,
        b"M" => Unit::M,
        b"W" => Unit::W,
        b"D" => Unit::D,
        b"h" => Unit::h,
        b"m" => Unit::m,
        b"s" => Unit::s,
        b"ms" => Unit::ms,
        b"us" | b"\xce\xbcs" => Unit::us,
        b"ns" => Unit::ns,
        b"ps" => Unit::ps,
        b"fs" => Unit::fs,
        b"as" => Unit::as_,
        b"generic" => Unit::Generic,
        _ => return Err(bad()),
    };
    let Some(den_text) = rest.get(unit_len + 1..) else {
        return Ok((unit, num));
    };
    let (den, used, _) = strtol(den_text);
    if used == 0 || used != den_text.len() {
        return Err(bad());
    }
    // numpy casts strtol's long to int (keeping the low 32 bits).
    let low = den.rem_euclid(1 << 32);
    let den = i32::try_from(if low >= 1 << 31 { low - (1 << 32) } else { low }).unwrap_or(0);
    if den == 1 {
        return Ok((unit, num));
    }
    divisor_to_multiple(unit, num, den, text)
}

/// `convert_datetime_divisor_to_multiple`, with its table.
fn divisor_to_multiple(base: Unit, num: i32, den: i32, text: &str) -> R<(Unit, i32)> {
    use Unit::{D, M, W, Y, h, m, ms, s};
    if base == Unit::Generic {
        return Err(error("Can't use 'den' divisor with generic units"));
    }
    let (totry, units, count): ([i32; 4], [i32; 4], usize) = match base {
        Y => ([12, 52, 365, 0], [M as i32, W as i32, D as i32, 0], 3),
        M => ([4, 30, 720, 0], [W as i32, D as i32, h as i32, 0], 3),
        // numpy tries four entries for weeks, the fourth of which is a zero.
        W => ([7, 168, 10080, 0], [D as i32, h as i32, m as i32, 0], 4),
        D => ([24, 1440, 86400, 0], [h as i32, m as i32, s as i32, 0], 3),
        h => ([60, 3600, 0, 0], [m as i32, s as i32, 0, 0], 2),
        m => ([60, 60000, 0, 0], [s as i32, ms as i32, 0, 0], 2),
        other => {
            let b = other as i32;
            let count = match other {
                Unit::fs => 1,
                Unit::as_ => 0,
                _ => 2,
            };
            ([1000, 1_000_000, 0, 0], [b + 1, b + 2, 0, 0], count)
        }
    };
    for i in 0..count {
        let t = totry.get(i).copied().unwrap_or(0);
        if den == 0 {
            return Err(Fail::Crash {
                message: format!(
                    "numpy divides by zero on the datetime unit divisor in {text:?} (SIGFPE)"
                ),
            });
        }
        let (q, r) = (t.wrapping_div(den), t.wrapping_rem(den));
        if r == 0 {
            let unit = units
                .get(i)
                .copied()
                .and_then(unit_from_number)
                .unwrap_or(Y);
            return Ok((unit, num.wrapping_mul(q)));
        }
    }
    Err(error(format!(
        "divisor ({den}) is not a multiple of a lower-unit in datetime metadata {text:?}"
    )))
}

/// Where a dict-form dtype's sequences come from: a literal, or values numpy's Python code
/// built (already-converted dtypes, computed offsets).
enum Seq<'a> {
    Lit(&'a Value),
    Items(Vec<Item<'a>>),
}

#[derive(Clone)]
enum Item<'a> {
    Lit(Cow<'a, Value>),
    Descr(Descr),
    Int(Int),
}

impl<'a> Seq<'a> {
    /// A literal as a sequence; a str is split once (indexing it walks it).
    fn of(v: &'a Value) -> Seq<'a> {
        match v {
            Value::Str(_) => Seq::Items(
                v.py_iter()
                    .unwrap_or_default()
                    .into_iter()
                    .map(Item::Lit)
                    .collect(),
            ),
            _ => Seq::Lit(v),
        }
    }

    fn len(&self) -> Option<usize> {
        match self {
            Seq::Lit(v) => v.py_len(),
            Seq::Items(items) => Some(items.len()),
        }
    }

    /// `self[i]`, or `None` where Python raises.
    fn get(&self, i: usize) -> Option<Item<'a>> {
        match self {
            Seq::Lit(v) => v.py_index(i).map(Item::Lit),
            Seq::Items(items) => items.get(i).cloned(),
        }
    }
}

/// The arguments of `_convert_from_dict` for the `{'names': ..., 'formats': ...}` form.
struct DictForm<'a> {
    names: Seq<'a>,
    formats: Seq<'a>,
    offsets: Option<Seq<'a>>,
    titles: Option<Seq<'a>>,
    aligned: Option<&'a Value>,
    itemsize: Option<Item<'a>>,
    metadata: Option<&'a Value>,
}

/// `_convert_from_dict`.
fn convert_dict(d: &Dict, align: bool, cx: &mut Cx) -> R<Descr> {
    let (Some(names), Some(formats)) = (d.get_str("names"), d.get_str("formats")) else {
        return usefields(d, align, cx);
    };
    dict_form(
        DictForm {
            names: Seq::of(&names.value),
            formats: Seq::of(&formats.value),
            offsets: d.get_str("offsets").map(|e| Seq::of(&e.value)),
            titles: d.get_str("titles").map(|e| Seq::of(&e.value)),
            aligned: d.get_str("aligned").map(|e| &e.value),
            itemsize: d
                .get_str("itemsize")
                .map(|e| Item::Lit(Cow::Borrowed(&e.value))),
            metadata: d.get_str("metadata").map(|e| &e.value),
        },
        align,
        cx,
    )
}

/// The loop of `_convert_from_dict` once `names` and `formats` are known.
fn dict_form(form: DictForm<'_>, align: bool, cx: &mut Cx) -> R<Descr> {
    let n = form
        .names
        .len()
        .ok_or_else(|| error("'names' of a dtype dict has no len()"))?;
    let too_short = |s: &Option<Seq<'_>>| s.as_ref().is_some_and(|s| s.len().is_none_or(|l| n > l));
    if form.formats.len().is_none_or(|l| n > l)
        || too_short(&form.offsets)
        || too_short(&form.titles)
    {
        return Err(error(
            "'names', 'formats', 'offsets', and 'titles' dict entries must have the same length",
        ));
    }
    let mut align = align;
    match form.aligned {
        None | Some(Value::Bool(false)) => {}
        Some(Value::Bool(true)) => align = true,
        Some(_) => {
            return Err(error(
                "NumPy dtype descriptor includes 'aligned' entry, but its value is neither True nor False",
            ));
        }
    }
    let mut seen: HashSet<PyStr> = HashSet::new();
    let mut fields = Vec::with_capacity(n);
    let mut spans: Vec<(i64, i64, bool)> = Vec::with_capacity(n); // offset, size, holds objects
    let mut refs = false;
    let mut total: i64 = 0;
    let mut max_align: i64 = 1;
    let mut out_of_order = false;
    let mut wrapped = false;
    for i in 0..n {
        let title = form
            .titles
            .as_ref()
            .and_then(|t| t.get(i))
            .filter(|t| !matches!(t, Item::Lit(v) if matches!(**v, Value::None)));
        let format = form
            .formats
            .get(i)
            .ok_or_else(|| error(format!("'formats' has no item {i}")))?;
        let descr = match format {
            Item::Lit(v) => convert_any(&v, align, cx)?,
            Item::Descr(d) => d,
            Item::Int(i) => convert_any(&Value::Int(i), align, cx)?,
        };
        if align {
            max_align = max_align.max(descr.alignment);
        }
        let offset;
        if let Some(offsets) = &form.offsets {
            let item = offsets
                .get(i)
                .ok_or_else(|| error(format!("'offsets' has no item {i}")))?;
            offset = item_as_int(&item)
                .ok_or_else(|| error("an offset is not an integer that fits C's int"))?;
            if offset < 0 {
                return Err(error(format!("offset {offset} cannot be negative")));
            }
            if offset < total {
                out_of_order = true;
            }
            if align && offset % descr.alignment.max(1) != 0 {
                return Err(error(format!(
                    "offset {offset} for NumPy dtype with fields is not divisible by the field alignment {}",
                    descr.alignment
                )));
            } else if offset + descr.elsize > total {
                total = offset + descr.elsize;
            }
        } else {
            if align {
                total = next_aligned(total, descr.alignment);
            }
            offset = total;
            total += descr.elsize;
        }
        wrapped |= total > INT_MAX;
        let name = match form.names.get(i) {
            Some(Item::Lit(v)) => match v.as_ref() {
                Value::Str(name) => name.clone(),
                _ => return Err(error("field names must be strings")),
            },
            Some(_) => return Err(error("field names must be strings")),
            None => return Err(error(format!("'names' has no item {i}"))),
        };
        if seen.contains(&name) {
            return Err(error(format!(
                "name {:?} already used as a name or title",
                name.lossy()
            )));
        }
        seen.insert(name);
        if let Some(Item::Lit(v)) = &title
            && let Value::Str(t) = v.as_ref()
        {
            if seen.contains(t) {
                return Err(error("title already used as a name or title."));
            }
            seen.insert(t.clone());
        }
        refs |= descr.refs;
        spans.push((offset, descr.elsize, descr.refs));
        fields.push(descr);
    }
    if max_align > 1 {
        total = next_aligned(total, max_align);
    }
    let alignment = if align { max_align } else { 1 };
    let itemsize = match &form.itemsize {
        None => None,
        Some(item) => Some(
            item_as_int(item)
                .ok_or_else(|| error("'itemsize' is not an integer that fits C's int"))?,
        ),
    };
    if wrapped {
        return Err(undecided(
            "the fields' offsets and sizes overflow C's int in numpy's arithmetic",
        ));
    }
    // numpy keeps tuple(names) as the names: for a dict, its keys, not the names it used.
    let names_broken = n > 0 && matches!(form.names, Seq::Lit(Value::Dict(_)));
    if out_of_order && refs {
        if names_broken {
            return Err(error(
                "bad argument to internal function (checking fields named by a dict)",
            ));
        }
        if objects_overlap(&spans) {
            return Err(error(
                "Cannot create a NumPy dtype with overlapping object fields",
            ));
        }
    }
    let mut descr = Descr::structure(fields, total, alignment, refs);
    descr.names_broken = names_broken;
    if let Some(itemsize) = itemsize {
        if itemsize < descr.elsize {
            return Err(error(format!(
                "NumPy dtype descriptor requires {} bytes, cannot override to smaller itemsize of {itemsize}",
                descr.elsize
            )));
        }
        if align && alignment > 0 && itemsize % alignment != 0 {
            return Err(error(format!(
                "NumPy dtype descriptor requires alignment of {alignment} bytes, which is not divisible into the specified itemsize {itemsize}"
            )));
        }
        descr.elsize = itemsize;
    }
    if let Some(metadata) = form.metadata {
        descr.metadata = if matches!(metadata, Value::Dict(_)) {
            Meta::Dict
        } else {
            Meta::Other
        };
    }
    Ok(descr)
}

/// `_validate_object_field_overlap`: whether a field holding objects overlaps another field
/// (`a` overlaps `b` when `a.offset < b.offset + b.size` and `b.offset < a.offset + a.size`).
/// Sorted by offset with the two largest ends seen so far, rather than numpy's pairwise loop.
fn objects_overlap(spans: &[(i64, i64, bool)]) -> bool {
    let mut order: Vec<usize> = (0..spans.len()).collect();
    order.sort_by_key(|&i| spans.get(i).map_or(0, |s| s.0));
    let starts: Vec<i64> = order
        .iter()
        .map(|&i| spans.get(i).map_or(0, |s| s.0))
        .collect();
    // best[k]: the two largest ends (with their field) among the first k+1 fields by offset.
    let mut best: Vec<[(i64, usize); 2]> = Vec::with_capacity(order.len());
    let mut top = [(i64::MIN, usize::MAX); 2];
    for &i in &order {
        let end = spans.get(i).map_or(0, |s| s.0 + s.1);
        if end > top[0].0 {
            top = [(end, i), top[0]];
        } else if end > top[1].0 {
            top[1] = (end, i);
        }
        best.push(top);
    }
    spans
        .iter()
        .enumerate()
        .any(|(i, &(offset, size, objects))| {
            if !objects {
                return false;
            }
            // Fields starting before this one's end...
            let k = starts.partition_point(|&s| s < offset + size);
            let Some(pair) = k.checked_sub(1).and_then(|k| best.get(k)) else {
                return false;
            };
            // ...one of which (not this one) ends after its start.
            pair.iter()
                .find(|(_, j)| *j != i)
                .is_some_and(|&(end, _)| end > offset)
        })
}

/// `_usefields(adict, align)`: a dict of `name: (format, offset[, title])`.
fn usefields(d: &Dict, align: bool, cx: &mut Cx) -> R<Descr> {
    let listed = d
        .get(&Value::Int(Int::Small(-1)))
        .ok()
        .flatten()
        .map(|e| &e.value)
        .filter(|v| !matches!(v, Value::None));
    let Some(names) = listed else {
        // _makenames_list
        let mut fields = Vec::new();
        for entry in d.entries() {
            let obj = &entry.value;
            let n = obj.py_len().ok_or_else(|| {
                error(format!("object of type '{}' has no len()", obj.type_name()))
            })?;
            let Value::Tuple(parts) = obj else {
                return Err(error("entry not a 2- or 3- tuple"));
            };
            if !(n == 2 || n == 3) {
                return Err(error("entry not a 2- or 3- tuple"));
            }
            if n > 2 && parts.get(2).is_some_and(|t| py_eq(t, &entry.key)) {
                continue;
            }
            let num = py_int(parts.get(1).unwrap_or(&Value::None))?;
            if num.is_negative() {
                return Err(error("invalid offset."));
            }
            let format = convert_any(parts.first().unwrap_or(&Value::None), align, cx)?;
            let title = match parts.get(2) {
                Some(t) if n > 2 => Cow::Borrowed(t),
                _ => Cow::Owned(Value::None),
            };
            fields.push((&entry.key, format, num, title));
        }
        fields.sort_by(|a, b| a.2.cmp_int(&b.2));
        let mut names = Vec::new();
        let mut formats = Vec::new();
        let mut offsets = Vec::new();
        let mut titles = Vec::new();
        for (name, format, num, title) in fields {
            names.push(Item::Lit(Cow::Borrowed(name)));
            formats.push(Item::Descr(format));
            offsets.push(Item::Int(num));
            titles.push(Item::Lit(title));
        }
        return dict_form(
            DictForm {
                names: Seq::Items(names),
                formats: Seq::Items(formats),
                offsets: Some(Seq::Items(offsets)),
                titles: Some(Seq::Items(titles)),
                aligned: None,
                itemsize: None,
                metadata: None,
            },
            align,
            cx,
        );
    };
    let listed = names
        .py_iter()
        .ok_or_else(|| error(format!("'{}' object is not iterable", names.type_name())))?;
    let mut formats = Vec::new();
    let mut offsets = Vec::new();
    let mut titles = Vec::new();
    for name in &listed {
        let res = match d.get(name) {
            Ok(Some(entry)) => &entry.value,
            Ok(None) => return Err(error(format!("KeyError: {}", name.describe()))),
            Err(_) => return Err(error("unhashable type")),
        };
        let item = |i: usize| {
            res.py_index(i)
                .map(Item::Lit)
                .ok_or_else(|| error(format!("cannot index {}", res.describe())))
        };
        formats.push(item(0)?);
        offsets.push(item(1)?);
        let len = res
            .py_len()
            .ok_or_else(|| error(format!("object of type '{}' has no len()", res.type_name())))?;
        titles.push(if len > 2 {
            item(2)?
        } else {
            Item::Lit(Cow::Owned(Value::None))
        });
    }
    dict_form(
        DictForm {
            names: Seq::of(names),
            formats: Seq::Items(formats),
            offsets: Some(Seq::Items(offsets)),
            titles: Some(Seq::Items(titles)),
            aligned: None,
            itemsize: None,
            metadata: None,
        },
        align,
        cx,
    )
}

/// Python's `int(x)`.
fn py_int(v: &Value) -> R<Int> {
    match v {
        Value::Int(i) => Ok(i.clone()),
        Value::Bool(b) => Ok(Int::Small(i64::from(*b))),
        Value::Float(x) if x.is_finite() => Ok(Int::from_f64_trunc(*x)),
        Value::Float(_) => Err(error("cannot convert float infinity to integer")),
        Value::Str(s) => {
            let points: Vec<char> = s.code_points().filter_map(char::from_u32).collect();
            if points.len() != s.len() {
                return Err(error("invalid literal for int()"));
            }
            // Non-ASCII spaces become spaces; ASCII whitespace is stripped.
            let mapped: Vec<char> = points
                .iter()
                .map(|&c| if !c.is_ascii() && py_space(c) { ' ' } else { c })
                .collect();
            if mapped.iter().any(|c| !c.is_ascii()) {
                return Err(undecided(
                    "int() of a string with non-ASCII characters (Python reads Unicode digits)",
                ));
            }
            let ascii: String = mapped.into_iter().collect();
            parse_int_text(ascii.as_bytes())
        }
        Value::Bytes(b) => parse_int_text(b),
        other => Err(error(format!(
            "int() argument must be a string, a bytes-like object or a real number, not '{}'",
            other.type_name()
        ))),
    }
}

/// `int(text)` in base 10 after numpy's Python has stripped ASCII whitespace.
fn parse_int_text(text: &[u8]) -> R<Int> {
    let bad = || error("invalid literal for int() with base 10");
    let space = |c: &u8| matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r');
    let start = text.iter().position(|c| !space(c)).ok_or_else(bad)?;
    let end = text
        .iter()
        .rposition(|c| !space(c))
        .map_or(start, |e| e + 1);
    let body = text.get(start..end).unwrap_or_default();
    let (negative, digits) = match body.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, body),
    };
    let mut clean = Vec::with_capacity(digits.len());
    for (i, &c) in digits.iter().enumerate() {
        if c.is_ascii_digit() {
            clean.push(c);
        } else if c == b'_'
            && i > 0
            && digits.get(i - 1).is_some_and(u8::is_ascii_digit)
            && digits.get(i + 1).is_some_and(u8::is_ascii_digit)
        {
        } else {
            return Err(bad());
        }
    }
    if clean.is_empty() {
        return Err(bad());
    }
    if clean.len() > literal::MAX_STR_DIGITS {
        return Err(error(
            "Exceeds the limit (4300 digits) for integer string conversion",
        ));
    }
    let value = Int::from_digits(&clean, 10);
    Ok(if negative { value.neg() } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cx() -> Cx {
        Cx::new(
            1 << 20,
            literal::Options {
                max_depth: 256,
                max_int_bytes: 4096,
                max_values: (1 << 20, "header-len", 1 << 26),
            },
        )
    }

    /// `descr_to_dtype(eval(text))` as `object`, `plain <itemsize>`, `error`, `crash` or
    /// `undecided`.
    fn verdict(text: &str) -> String {
        let value = literal::literal_eval(
            Text::Utf8(text),
            &literal::Options {
                max_depth: 256,
                max_int_bytes: 4096,
                max_values: (1 << 20, "header-len", 1 << 26),
            },
        )
        .unwrap_or_else(|e| panic!("{text}: {e:?}"));
        match descr_to_dtype(&value, &mut cx()) {
            Ok(d) if d.refs => "object".into(),
            Ok(d) => format!("plain {}", d.elsize),
            Err(Fail::Refused { .. }) => "error".into(),
            Err(Fail::Crash { .. }) => "crash".into(),
            Err(Fail::Undecided { .. }) => "undecided".into(),
        }
    }

    #[test]
    fn object_spellings() {
        for text in [
            "'O'",
            "'|O'",
            "'<O'",
            "'>O'",
            "'=O'",
            "'O8'",
            "'O4'",
            "'O 8'",
            "'O+8'",
            "'O\\t+8'",
            "'O08'",
            "'object'",
            "'object_'",
            "'\\x4f'",
            "'\\x11'",
            "'T'",
            "'<T'",
            "'>T'",
            "'O,'",
            "'O , f4'",
            "'i4,(2,3)O'",
            "'(2,)O'",
            "'1O'",
            "'0O'",
            "'<()O'",
            "('O', (2,))",
            "('O', 1)",
            "('O', 0)",
            "('O', ())",
            "('O', (2,), 'x')",
            "[('a', 'O')]",
            "[('a', '<f4'), ('b', [('c', '|O')])]",
            "[(('title', 'name'), 'O')]",
            "[('a', 'O', (2, 3))]",
            "[('', 'O')]",
            "['aO']",
            "[{'a': 1, 'O': 2}]",
            "{('a', 'O'): 1}",
            "{('b', '<f4'), ('a', 'O')}",
            "('O', [('a', 'O')])",
            "('V', [('a', 'O')])",
            "('V0', [('a', 'O')])",
            "('O', {'a': ('O', 0)})",
            "('O', {'a': ('O', '0')})",
            "('O', {'names': ['a'], 'formats': ['O']})",
            "(('O', (0,)), 5)",
            "[('a', 'T')]",
            "'T,i4'",
            "('T', 2)",
            "[('a', ('O', (2,)))]",
            "[((None, 'a'), 'O')]",
            "[((b'x', 'a'), 'O')]",
            "[(('', 'a'), 'O')]",
        ] {
            assert_eq!(verdict(text), "object", "{text}");
        }
    }

    #[test]
    fn plain_and_refused_spellings() {
        for (text, want) in [
            ("'<f4'", "plain 4"),
            ("'\\x00'", "plain 1"),
            ("'\\x17'", "plain 2"),
            ("'\\n'", "plain 8"),
            ("'S-0'", "plain 0"),
            ("'a5'", "plain 5"),
            ("'U3'", "plain 12"),
            ("'M8[ns]'", "plain 8"),
            ("'m8[s/2]'", "plain 8"),
            ("'M8[Y/3]'", "plain 8"),
            ("'M8[W/13]'", "plain 8"),
            ("'datetime64[25s]'", "plain 8"),
            ("'M8[μs]'", "plain 8"),
            ("'float32'", "plain 4"),
            ("'int'", "plain 8"),
            ("'str'", "plain 0"),
            ("'c'", "plain 1"),
            ("'g'", "plain 16"),
            ("'f16'", "plain 16"),
            ("'c32'", "plain 32"),
            ("'b1'", "plain 1"),
            ("('S', 'O')", "plain 8"),
            ("('V0', '<f8')", "plain 8"),
            ("('V8', None)", "plain 8"),
            ("(('O', (0,)), '<f8')", "plain 8"),
            ("('<f4', b'\\x02\\x03')", "plain 24"),
            ("('<f4', '')", "plain 4"),
            ("('<i8', {'a': ('<f8', 0)})", "plain 8"),
            ("[('', 'O', (2,))]", "plain 16"),
            ("[('', ('O', (2,)))]", "plain 16"),
            ("[('', '|V4'), ('', 'O', 1)]", "plain 12"),
            ("['ab', 'cd']", "plain 9"),
            ("['Oa']", "plain 0"),
            ("'f4,'", "plain 4"),
            ("'f4, '", "plain 4"),
            ("'(2)f4,i4'", "plain 12"),
            ("'2 f4,i4'", "plain 12"),
            ("[]", "plain 0"),
            ("set()", "plain 0"),
            ("('V0', {'a': ('O', 0, 'a')})", "plain 0"),
            (
                "('V8', {'names': ['a', 'b'], 'formats': ['i1', '<f4'], 'aligned': True})",
                "plain 8",
            ),
            (
                "('V2', {'names': 'ab', 'formats': ['i1', 'i1']})",
                "plain 2",
            ),
            (
                "('V2', {'names': ('a', 'b'), 'formats': {0: 'i1', True: 'i1'}})",
                "plain 2",
            ),
            ("[((1, 'a'), '<f4'), ((1, 'b'), '<f4')]", "plain 8"),
            ("'S2147483647'", "plain 2147483647"),
            (&format!("'({})i1,'", "1,".repeat(64)), "plain 1"),
            (&format!("'({})i1,'", "1,".repeat(65)), "error"),
            ("'M+8'", "plain 8"),
            ("'>m 8'", "plain 8"),
            ("'m08'", "plain 8"),
            // Refused: numpy raises.
            ("'\\x18'", "error"),
            ("'O-0'", "error"),
            ("'O0'", "error"),
            ("'Ob'", "error"),
            ("'O\\x00'", "error"),
            ("' O'", "error"),
            ("'O '", "error"),
            ("'<>f4'", "error"),
            ("'>|O'", "error"),
            ("'O[ns]'", "error"),
            ("',O'", "error"),
            ("'f4,,'", "error"),
            ("'  f4,i4'", "error"),
            ("'(2,)(3,)O'", "error"),
            ("'(2)f4'", "error"),
            ("'(0)O'", "error"),
            ("'i0'", "error"),
            ("'u'", "error"),
            ("'int0'", "error"),
            ("'<float32'", "error"),
            ("'M8[]'", "error"),
            ("'M8[5 s]'", "error"),
            ("'M8[s/3]'", "error"),
            ("'M8[as/2]'", "error"),
            ("'M8[2147483648s]'", "error"),
            ("'M8[us]/'", "error"),
            ("'M8x'", "error"),
            ("'S2147483648'", "error"),
            ("'U536870912'", "error"),
            ("('O',)", "error"),
            ("()", "error"),
            ("None", "error"),
            ("b'O'", "error"),
            ("1", "error"),
            ("['O']", "error"),
            ("[('a',)]", "error"),
            ("[('a', 'O', (2,), 1)]", "error"),
            ("[('a', 'O', 2.0)]", "error"),
            ("[('a', 'O', True)]", "error"),
            ("[('a', 'O', -1)]", "error"),
            ("[('a', 'O', (2147483648,))]", "error"),
            ("[('a', '<f4', (1073741824,))]", "error"),
            ("[('a', 'S', (2147483647,))]", "error"),
            ("('O', 2147483648)", "error"),
            ("('O', 9223372036854775808)", "error"),
            ("('<f4', {2, 3})", "error"),
            ("('<f4', (True,))", "error"),
            ("('<f4', None)", "error"),
            ("('<f4', [])", "error"),
            ("('V8', [('a', 'O')])", "error"),
            ("('<i8', 'O')", "error"),
            ("('O', 'O')", "error"),
            ("('O', [('a', 'O'), ('b', 'O')])", "error"),
            ("('O', [('a', '<i8')])", "error"),
            ("('O', {'a': ('O', 0, 'a')})", "error"),
            ("[(b'a', 'O')]", "error"),
            ("[('a', b'O')]", "error"),
            ("[('a', '<f4'), ('a', '<f4')]", "error"),
            ("[('a', '<f4'), (('a', 'b'), '<f4')]", "error"),
            ("[(('n', 'n'), 'O')]", "error"),
            ("[(('x', 'a'), '<f4'), (('x', 'b'), '<f4')]", "error"),
            (
                "('V16', {'names': ['a', 'b'], 'formats': ['O', '<f8'], 'offsets': [4, 0]})",
                "error",
            ),
            // numpy builds this one (with the dict's keys as names, which breaks its repr).
            (
                "('V2', {'names': {0: 'a', 1: 'b'}, 'formats': ['i1', 'i1']})",
                "plain 2",
            ),
            ("('O', {'names': {0: 'a'}, 'formats': ['O']})", "error"),
            ("('V', {'names': {0: 'a'}, 'formats': ['O']})", "object"),
            (
                "(('O', {'names': ['a'], 'formats': ['O'], 'metadata': 5}), {'x': 1})",
                "error",
            ),
            ("'M8[s/0]'", "crash"),
            ("('V8', {'a': ('M8[s/0]', 0)})", "crash"),
            // Undecided: a set unpacked as a field.
            ("[{'a', 'O'}]", "undecided"),
        ] {
            assert_eq!(verdict(text), want, "{text}");
        }
        assert_eq!(
            verdict("(('O', {'names': ['a'], 'formats': ['O'], 'metadata': {}}), {'x': 1})"),
            "object"
        );
    }

    #[test]
    fn typestrs_are_numpys() {
        let typestr = |text: &str| {
            let v = literal::literal_eval(Text::Utf8(text), &cx().literal).unwrap();
            descr_to_dtype(&v, &mut cx()).unwrap().typestr()
        };
        assert_eq!(typestr("'<f4'").as_deref(), Some("<f4"));
        assert_eq!(typestr("'>i8'").as_deref(), Some(">i8"));
        assert_eq!(typestr("'>b1'").as_deref(), Some("|b1"));
        assert_eq!(typestr("'U3'").as_deref(), Some("<U3"));
        assert_eq!(typestr("'S5'").as_deref(), Some("|S5"));
        assert_eq!(typestr("'O'").as_deref(), Some("|O"));
        assert_eq!(typestr("'M8[s/2]'").as_deref(), Some("<M8[500ms]"));
        assert_eq!(typestr("'>m8'").as_deref(), Some(">m8"));
        assert_eq!(typestr("'M8[25s]'").as_deref(), Some("<M8[25s]"));
        assert_eq!(typestr("'float'").as_deref(), Some("<f8"));
        assert_eq!(typestr("[('a', '<f4')]"), None);
        assert_eq!(typestr("('<f4', (2,))"), None);
    }

    #[test]
    fn overlap_check() {
        assert!(objects_overlap(&[
            (8, 8, true),
            (0, 8, true),
            (4, 8, false)
        ]));
        assert!(!objects_overlap(&[(8, 8, true), (0, 8, true)]));
        assert!(objects_overlap(&[(0, 8, true), (4, 0, false)]));
        assert!(!objects_overlap(&[
            (0, 8, true),
            (8, 0, false),
            (0, 0, false)
        ]));
        assert!(objects_overlap(&[(2, 0, true), (0, 8, false)]));
    }

    #[test]
    fn python_int_of_text() {
        let int = |text: &str| py_int(&Value::str(text));
        assert_eq!(int(" +1_2 ").unwrap(), Int::Small(12));
        assert_eq!(int("012").unwrap(), Int::Small(12));
        assert_eq!(int("-0").unwrap(), Int::Small(0));
        assert_eq!(int("\u{2003}7").unwrap(), Int::Small(7));
        for bad in ["_1", "1_", "1__2", "1.0", "", "\x1c1"] {
            assert!(matches!(int(bad), Err(Fail::Refused { .. })), "{bad:?}");
        }
        assert!(matches!(int("١"), Err(Fail::Undecided { .. })));
        assert_eq!(py_int(&Value::Float(-2.9)).unwrap(), Int::Small(-2));
        assert!(py_int(&Value::Complex(1.0, 1.0)).is_err());
    }
}
