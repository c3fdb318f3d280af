//! Python values as `ast.literal_eval` builds them, with the parts of Python's object model
//! that numpy's dtype construction relies on: equality across `bool`/`int`/`float`/`complex`,
//! hashing (dict keys and set elements are deduplicated as Python does), `len()`, iteration,
//! indexing and unpacking.

use std::borrow::Cow;
use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash, Hasher};

use super::int::Int;

/// A Python `str`: its code points, encoded like UTF-8 but with lone surrogates allowed
/// (`'\ud800'` is a valid Python string and not valid UTF-8). Equality of the bytes is
/// equality of the code-point sequences.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub(crate) struct PyStr(Box<[u8]>);

impl PyStr {
    pub(crate) fn new(text: &str) -> PyStr {
        PyStr(text.as_bytes().into())
    }

    /// A string from bytes already in this type's encoding (as the literal parser makes them).
    pub(crate) fn from_encoded(bytes: Vec<u8>) -> PyStr {
        PyStr(bytes.into_boxed_slice())
    }

    pub(crate) fn from_code_points(points: impl IntoIterator<Item = u32>) -> PyStr {
        let mut out = Vec::new();
        for p in points {
            push_code_point(&mut out, p);
        }
        PyStr(out.into_boxed_slice())
    }

    /// The string as UTF-8, unless it holds a lone surrogate (Python's UTF-8 encoder raises).
    pub(crate) fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    pub(crate) fn code_points(&self) -> CodePoints<'_> {
        CodePoints(&self.0)
    }

    /// `len(self)`: code points.
    pub(crate) fn len(&self) -> usize {
        self.0.iter().filter(|&&b| b & 0xC0 != 0x80).count()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// For messages: the text, with `\u{fffd}` for lone surrogates.
    pub(crate) fn lossy(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }
}

/// Appends code point `p` (any value up to `0x10FFFF`, surrogates included) to `out`.
pub(crate) fn push_code_point(out: &mut Vec<u8>, p: u32) {
    let byte = |v: u32| u8::try_from(v & 0xFF).unwrap_or(0);
    if p < 0x80 {
        out.push(byte(p));
    } else if p < 0x800 {
        out.extend([byte(0xC0 | (p >> 6)), byte(0x80 | (p & 0x3F))]);
    } else if p < 0x10000 {
        out.extend([
            byte(0xE0 | (p >> 12)),
            byte(0x80 | ((p >> 6) & 0x3F)),
            byte(0x80 | (p & 0x3F)),
        ]);
    } else {
        out.extend([
            byte(0xF0 | (p >> 18)),
            byte(0x80 | ((p >> 12) & 0x3F)),
            byte(0x80 | ((p >> 6) & 0x3F)),
            byte(0x80 | (p & 0x3F)),
        ]);
    }
}

/// The code points of a [`PyStr`].
pub(crate) struct CodePoints<'a>(&'a [u8]);

impl Iterator for CodePoints<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        let (&first, rest) = self.0.split_first()?;
        let extra = match first {
            0..=0x7F => 0,
            0xC0..=0xDF => 1,
            0xE0..=0xEF => 2,
            _ => 3,
        };
        let mut p = u32::from(first) & (0x7F >> extra);
        let (tail, rest) = rest.split_at(extra.min(rest.len()));
        for &b in tail {
            p = (p << 6) | u32::from(b & 0x3F);
        }
        self.0 = rest;
        Some(p)
    }
}

/// A value `ast.literal_eval` can return.
#[derive(Clone, Debug)]
pub(crate) enum Value {
    None,
    Ellipsis,
    Bool(bool),
    Int(Int),
    Float(f64),
    Complex(f64, f64),
    Str(PyStr),
    Bytes(Box<[u8]>),
    Tuple(Box<[Value]>),
    List(Box<[Value]>),
    /// Elements in source order, duplicates removed (Python iterates a set in an order that
    /// depends on hashes; callers that depend on the order must say so).
    Set(Box<[Value]>),
    Dict(Box<Dict>),
}

/// A Python `dict`: keys unique, in insertion order, each with the last value given for it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Dict {
    entries: Vec<Entry>,
    index: Index,
}

/// One key of a [`Dict`] and its value; `offset` is where the value starts in the text.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub(crate) key: Value,
    pub(crate) value: Value,
    pub(crate) offset: usize,
}

/// Values are unhashable: a list, dict or set as a dict key or set element (or inside a
/// tuple that is one). Python raises `TypeError`.
#[derive(Debug)]
pub(crate) struct Unhashable;

/// A hash index over values, consistent with [`py_eq`] (equal values hash alike), seeded per
/// process so that crafted collisions cannot make deduplication quadratic.
#[derive(Clone, Debug, Default)]
struct Index {
    state: RandomState,
    /// The last position added with each hash...
    last: HashMap<u64, usize>,
    /// ...and, by position, the previous one with the same hash (`usize::MAX`: none).
    previous: Vec<usize>,
}

impl Index {
    /// The position among `items` of a value equal to `v`, or `v`'s hash for [`Index::add`].
    fn find<'a, T: 'a>(
        &self,
        items: &'a [T],
        v: &Value,
        get: impl Fn(&'a T) -> &'a Value,
    ) -> Result<(Option<usize>, u64), Unhashable> {
        let mut hasher = self.state.build_hasher();
        hash_value(v, &mut hasher)?;
        let hash = hasher.finish();
        let mut at = self.last.get(&hash).copied();
        while let Some(i) = at {
            if items.get(i).is_some_and(|item| py_eq(get(item), v)) {
                return Ok((Some(i), hash));
            }
            at = self.previous.get(i).copied().filter(|&p| p != usize::MAX);
        }
        Ok((None, hash))
    }

    /// Records that the value at `position` (the next one) has `hash`.
    fn add(&mut self, hash: u64, position: usize) {
        let previous = self.last.insert(hash, position).unwrap_or(usize::MAX);
        self.previous.push(previous);
    }
}

impl Dict {
    /// Inserts as Python's dict display does: a key equal to an earlier one keeps the earlier
    /// key object and takes the new value.
    pub(crate) fn insert(
        &mut self,
        key: Value,
        value: Value,
        offset: usize,
    ) -> Result<(), Unhashable> {
        let (found, hash) = self.index.find(&self.entries, &key, |e| &e.key)?;
        match found.and_then(|i| self.entries.get_mut(i)) {
            Some(entry) => {
                entry.value = value;
                entry.offset = offset;
            }
            None => {
                self.index.add(hash, self.entries.len());
                self.entries.push(Entry { key, value, offset });
            }
        }
        Ok(())
    }

    /// `self[key]`: `Err` if `key` is unhashable, `Ok(None)` if absent (`KeyError`).
    pub(crate) fn get(&self, key: &Value) -> Result<Option<&Entry>, Unhashable> {
        let (found, _) = self.index.find(&self.entries, key, |e| &e.key)?;
        Ok(found.and_then(|i| self.entries.get(i)))
    }

    /// `self[name]` for a string key.
    pub(crate) fn get_str(&self, name: &str) -> Option<&Entry> {
        self.get(&Value::Str(PyStr::new(name))).ok().flatten()
    }

    pub(crate) fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

/// Builds a set as Python's set display does: the first of equal elements is kept.
pub(crate) fn make_set(items: Vec<Value>) -> Result<Value, Unhashable> {
    let mut index = Index::default();
    let mut kept: Vec<Value> = Vec::with_capacity(items.len());
    for item in items {
        let (found, hash) = index.find(&kept, &item, |v| v)?;
        if found.is_none() {
            index.add(hash, kept.len());
            kept.push(item);
        }
    }
    Ok(Value::Set(kept.into_boxed_slice()))
}

/// A number in the form that decides equality: exact integers (from `bool`, `int`, integral
/// `float`s and such `complex`es) compare as integers, other reals as floats.
enum Num {
    Int(Int),
    Real(f64),
    Complex(f64, f64),
}

fn number(v: &Value) -> Option<Num> {
    let real = |x: f64| {
        if x.is_finite() && x.fract() == 0.0 {
            Num::Int(Int::from_integral_f64(x))
        } else {
            Num::Real(x)
        }
    };
    Some(match v {
        Value::Bool(b) => Num::Int(Int::Small(i64::from(*b))),
        Value::Int(i) => Num::Int(i.clone()),
        Value::Float(x) => real(*x),
        Value::Complex(re, im) if *im == 0.0 => real(*re),
        // -0.0 == 0.0: hash the real part of 0 one way.
        Value::Complex(re, im) => Num::Complex(if *re == 0.0 { 0.0 } else { *re }, *im),
        _ => return None,
    })
}

fn hash_value(v: &Value, h: &mut impl Hasher) -> Result<(), Unhashable> {
    if let Some(n) = number(v) {
        match n {
            Num::Int(i) => {
                0u8.hash(h);
                i.hash(h);
            }
            Num::Real(x) => {
                1u8.hash(h);
                x.to_bits().hash(h);
            }
            Num::Complex(re, im) => {
                2u8.hash(h);
                re.to_bits().hash(h);
                im.to_bits().hash(h);
            }
        }
        return Ok(());
    }
    match v {
        Value::None => 3u8.hash(h),
        Value::Ellipsis => 4u8.hash(h),
        Value::Str(s) => {
            5u8.hash(h);
            s.hash(h);
        }
        Value::Bytes(b) => {
            6u8.hash(h);
            b.hash(h);
        }
        Value::Tuple(items) => {
            7u8.hash(h);
            items.len().hash(h);
            for item in items.iter() {
                hash_value(item, h)?;
            }
        }
        Value::List(_) | Value::Set(_) | Value::Dict(_) => return Err(Unhashable),
        Value::Bool(_) | Value::Int(_) | Value::Float(_) | Value::Complex(..) => {}
    }
    Ok(())
}

/// Python's `a == b`, for the comparisons numpy's code makes: at least one side hashable
/// (a dict key). Lists, dicts and sets equal nothing here.
pub(crate) fn py_eq(a: &Value, b: &Value) -> bool {
    match (number(a), number(b)) {
        (Some(Num::Int(x)), Some(Num::Int(y))) => return x == y,
        (Some(Num::Real(x)), Some(Num::Real(y))) => return x == y,
        (Some(Num::Complex(a, b)), Some(Num::Complex(c, d))) => return a == c && b == d,
        (Some(_), Some(_)) => return false,
        (Some(_), None) | (None, Some(_)) => return false,
        (None, None) => {}
    }
    match (a, b) {
        (Value::None, Value::None) | (Value::Ellipsis, Value::Ellipsis) => true,
        (Value::Str(x), Value::Str(y)) => x == y,
        (Value::Bytes(x), Value::Bytes(y)) => x == y,
        (Value::Tuple(x), Value::Tuple(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(p, q)| py_eq(p, q))
        }
        _ => false,
    }
}

impl Value {
    pub(crate) fn str(text: &str) -> Value {
        Value::Str(PyStr::new(text))
    }

    /// Python's type name, for messages.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Value::None => "NoneType",
            Value::Ellipsis => "ellipsis",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Complex(..) => "complex",
            Value::Str(_) => "str",
            Value::Bytes(_) => "bytes",
            Value::Tuple(_) => "tuple",
            Value::List(_) => "list",
            Value::Set(_) => "set",
            Value::Dict(_) => "dict",
        }
    }

    /// `len(self)`, or `None` where Python raises `TypeError`.
    pub(crate) fn py_len(&self) -> Option<usize> {
        Some(match self {
            Value::Str(s) => s.len(),
            Value::Bytes(b) => b.len(),
            Value::Tuple(items) | Value::List(items) | Value::Set(items) => items.len(),
            Value::Dict(d) => d.len(),
            _ => return None,
        })
    }

    /// `iter(self)`, or `None` where Python raises `TypeError`; items of containers are
    /// borrowed. A set iterates in source order here, which is one of the orders Python may
    /// use.
    pub(crate) fn py_iter(&self) -> Option<Vec<Cow<'_, Value>>> {
        Some(match self {
            Value::Str(s) => s
                .code_points()
                .map(|p| Cow::Owned(Value::Str(PyStr::from_code_points([p]))))
                .collect(),
            Value::Bytes(b) => b
                .iter()
                .map(|&x| Cow::Owned(Value::Int(Int::Small(i64::from(x)))))
                .collect(),
            Value::Tuple(items) | Value::List(items) | Value::Set(items) => {
                items.iter().map(Cow::Borrowed).collect()
            }
            Value::Dict(d) => d.entries().iter().map(|e| Cow::Borrowed(&e.key)).collect(),
            _ => return None,
        })
    }

    /// `self[i]` for an int `i`, or `None` where Python raises (`IndexError`, `KeyError`,
    /// `TypeError`). Indexing a str walks it: index long strings through [`Value::py_iter`].
    pub(crate) fn py_index(&self, i: usize) -> Option<Cow<'_, Value>> {
        match self {
            Value::Str(s) => s
                .code_points()
                .nth(i)
                .map(|p| Cow::Owned(Value::Str(PyStr::from_code_points([p])))),
            Value::Bytes(b) => b
                .get(i)
                .map(|&x| Cow::Owned(Value::Int(Int::Small(i64::from(x))))),
            Value::Tuple(items) | Value::List(items) => items.get(i).map(Cow::Borrowed),
            Value::Dict(d) => {
                let key = Value::Int(Int::Small(i64::try_from(i).ok()?));
                d.get(&key).ok().flatten().map(|e| Cow::Borrowed(&e.value))
            }
            _ => None,
        }
    }

    /// A short Python-like rendering, for messages.
    pub(crate) fn describe(&self) -> String {
        let mut out = String::new();
        describe(self, &mut out, 0);
        out
    }
}

fn describe(v: &Value, out: &mut String, depth: usize) {
    use std::fmt::Write;
    if out.len() > 60 || depth > 4 {
        out.push_str("...");
        return;
    }
    let seq = |out: &mut String, items: &[Value], open: &str, close: &str| {
        out.push_str(open);
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            describe(item, out, depth + 1);
            if out.len() > 60 {
                out.push_str(", ...");
                break;
            }
        }
        if items.len() == 1 && open == "(" {
            out.push(',');
        }
        out.push_str(close);
    };
    match v {
        Value::None => out.push_str("None"),
        Value::Ellipsis => out.push_str("Ellipsis"),
        Value::Bool(b) => out.push_str(if *b { "True" } else { "False" }),
        Value::Int(Int::Small(i)) => {
            let _ = write!(out, "{i}");
        }
        Value::Int(Int::Big(_)) => out.push_str("<int beyond 64 bits>"),
        Value::Float(x) => {
            let _ = write!(out, "{x:?}");
        }
        Value::Complex(re, im) => {
            let _ = write!(out, "({re:?}+{im:?}j)");
        }
        Value::Str(s) => quote(out, &s.lossy()),
        Value::Bytes(b) => {
            out.push('b');
            quote(out, &String::from_utf8_lossy(b));
        }
        Value::Tuple(items) => seq(out, items, "(", ")"),
        Value::List(items) => seq(out, items, "[", "]"),
        Value::Set(items) => seq(out, items, "{", "}"),
        Value::Dict(d) => {
            out.push('{');
            for (i, e) in d.entries().iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                describe(&e.key, out, depth + 1);
                out.push_str(": ");
                describe(&e.value, out, depth + 1);
                if out.len() > 60 {
                    out.push_str(", ...");
                    break;
                }
            }
            out.push('}');
        }
    }
}

/// `text` in single quotes as Python prints it, control characters escaped.
fn quote(out: &mut String, text: &str) {
    out.push('\'');
    for c in text.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.extend(c.escape_debug()),
            c => out.push(c),
        }
    }
    out.push('\'');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_described_as_python_prints_them() {
        let v = Value::Tuple(vec![Value::str("a'b\n"), Value::Bytes(b"O".to_vec().into())].into());
        assert_eq!(v.describe(), "('a\\'b\\n', b'O')");
    }

    fn int(i: i64) -> Value {
        Value::Int(Int::Small(i))
    }

    #[test]
    fn numbers_compare_and_hash_across_types() {
        // {1: 1, True: 2, 1.0: 3, (1+0j): 4} is {1: 4}.
        let mut d = Dict::default();
        for (k, v) in [
            (int(1), 1),
            (Value::Bool(true), 2),
            (Value::Float(1.0), 3),
            (Value::Complex(1.0, 0.0), 4),
        ] {
            d.insert(k, int(v), 0).unwrap();
        }
        assert_eq!(d.len(), 1);
        assert!(matches!(d.entries()[0].key, Value::Int(Int::Small(1))));
        assert!(matches!(d.entries()[0].value, Value::Int(Int::Small(4))));
        assert!(py_eq(&Value::Float(-0.0), &int(0)));
        assert!(py_eq(&Value::Complex(-0.0, 2.0), &Value::Complex(0.0, 2.0)));
        assert!(!py_eq(&Value::Float(0.5), &int(0)));
        assert!(!py_eq(
            &Value::str("a"),
            &Value::Bytes(b"a".to_vec().into())
        ));
        let big = Value::Int(Int::from_integral_f64(2f64.powi(80)));
        assert!(py_eq(&big, &Value::Float(2f64.powi(80))));
        assert!(py_eq(
            &Value::Tuple(vec![int(1), Value::str("a")].into()),
            &Value::Tuple(vec![Value::Float(1.0), Value::str("a")].into())
        ));
    }

    #[test]
    fn sets_keep_the_first_and_refuse_unhashable_elements() {
        let set = make_set(vec![int(2), Value::Float(2.0), int(3)]).unwrap();
        let Value::Set(items) = set else { panic!() };
        assert_eq!(items.len(), 2);
        assert!(matches!(items[0], Value::Int(Int::Small(2))));
        assert!(make_set(vec![Value::List(Box::new([]))]).is_err());
        let nested = Value::Tuple(vec![int(1), Value::List(Box::new([]))].into());
        assert!(make_set(vec![nested]).is_err());
    }

    #[test]
    fn strings_keep_lone_surrogates() {
        let s = PyStr::from_code_points([0x61, 0xD800, 0x1F600]);
        assert_eq!(s.len(), 3);
        assert_eq!(s.as_str(), None);
        assert_eq!(s.code_points().collect::<Vec<_>>(), [0x61, 0xD800, 0x1F600]);
        assert_eq!(PyStr::new("é").as_str(), Some("é"));
        let v = Value::Str(PyStr::new("ab"));
        assert_eq!(v.py_len(), Some(2));
        assert!(matches!(v.py_index(1).as_deref(), Some(Value::Str(c)) if c.as_str() == Some("b")));
    }

    #[test]
    fn dict_indexing_by_position_looks_keys_up() {
        let mut d = Dict::default();
        d.insert(Value::Bool(false), Value::str("x"), 0).unwrap();
        let v = Value::Dict(Box::new(d));
        assert!(matches!(v.py_index(0).as_deref(), Some(Value::Str(_))));
        assert!(v.py_index(1).is_none());
    }
}
