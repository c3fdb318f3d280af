//! joblib's pickles: `joblib.dump` writes each numpy array inline, right after the `BUILD` of
//! a `joblib.numpy_pickle.NumpyArrayWrapper`. joblib's unpickler
//! (`NumpyUnpickler.load_build`, joblib 1.x) then reads from the stream itself, between two
//! opcodes: for an object array, a whole nested pickle (`pickle.load(file_handle)`); for any
//! other array, a padding-length byte and that many bytes of padding when the wrapper asks
//! for alignment (`numpy_array_alignment_bytes`), then `count * itemsize` raw bytes. A
//! reader that does not know this parses array bytes as opcodes and loses its way; ckpt
//! passes over them as joblib does ([`inline`], for [`ckpt_pickle::parse_partial_inline`]),
//! and the nested pickles of object arrays are parts of their own.
//!
//! The dtype decides, as numpy's: it is rebuilt from its pickle (`numpy.dtype(typestr,
//! align, copy)` and the state `BUILD` gives it, whose flags numpy takes as they are, so an
//! `f8` whose flags say "holds objects" is read as an object array) and judged by
//! [`crate::npy::dtype_of`].

use ckpt_pickle::{Object, ObjectId, Pickle};

use crate::limits::Limits;
use crate::npy::{PyDict, PyInt, PyStr, PyValue};

/// Modules whose `NumpyArrayWrapper` joblib's unpickler reads inline data after.
const WRAPPERS: &[&str] = &[
    "joblib.numpy_pickle",
    "sklearn.externals.joblib.numpy_pickle",
];

/// What joblib's unpickler reads after the `BUILD` of an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Inline {
    /// Nothing: the object is no array wrapper.
    Nothing,
    /// This many raw bytes (padding and the array's data).
    Raw(usize),
    /// A whole pickle (an object array's).
    Pickle,
}

/// Whether `module.name` is joblib's array wrapper.
pub(crate) fn is_wrapper(module: &str, name: &str) -> bool {
    name == "NumpyArrayWrapper" && WRAPPERS.contains(&module)
}

/// What joblib reads after the `BUILD` of `target`, whose bytes follow as `rest`; `Err`
/// with why when the wrapper's state cannot be read as joblib would (a shape or dtype that
/// only running code could make).
pub(crate) fn inline(
    pickle: &Pickle<'_>,
    target: ObjectId,
    rest: &[u8],
    limits: &Limits,
) -> Result<Inline, String> {
    let class = match pickle.get(target) {
        Object::Instance { class, .. } => *class,
        Object::Call { callable, .. } => *callable,
        _ => return Ok(Inline::Nothing),
    };
    match pickle.as_global(class) {
        Some((module, name)) if is_wrapper(module, name) => {}
        _ => return Ok(Inline::Nothing),
    }
    let state = pickle
        .extras(target)
        .states
        .last()
        .copied()
        .ok_or("the array wrapper has no state")?;
    let field = |key: &str| -> Option<ObjectId> {
        match pickle.get(state) {
            Object::Dict(entries) => entries
                .iter()
                .rev()
                .find(|(k, _)| pickle.as_str(*k) == Some(key))
                .map(|&(_, v)| v),
            _ => None,
        }
    };
    let shape = field("shape").ok_or("the array wrapper has no shape")?;
    let count = pickle
        .as_seq(shape)
        .ok_or("the array's shape is not a tuple")?
        .iter()
        .try_fold(1u64, |count, &dim| {
            let dim = u64::try_from(pickle.as_int(dim)?).ok()?;
            count.checked_mul(dim)
        })
        .ok_or("the array's shape is not a tuple of sizes")?;
    let dtype = field("dtype").ok_or("the array wrapper has no dtype")?;
    let (itemsize, objects) = dtype_of(pickle, dtype, limits, 0)?;
    if objects {
        return Ok(Inline::Pickle);
    }
    let mut len = count
        .checked_mul(itemsize)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or("the array's size overflows")?;
    // joblib >= 1.2: a byte of padding length, then the padding, when the wrapper asks for
    // alignment.
    let aligned = field("numpy_array_alignment_bytes")
        .is_some_and(|id| !matches!(pickle.get(id), Object::None));
    if aligned {
        let padding = rest
            .first()
            .copied()
            .ok_or("the stream ends before the array")?;
        len = len
            .checked_add(1 + usize::from(padding))
            .ok_or("the array's size overflows")?;
    }
    Ok(Inline::Raw(len))
}

/// The element size of the pickled dtype `id`, and whether numpy takes it as holding
/// objects.
fn dtype_of(
    pickle: &Pickle<'_>,
    id: ObjectId,
    limits: &Limits,
    depth: usize,
) -> Result<(u64, bool), String> {
    let (descr, flags) = descr(pickle, id, depth)?;
    let (size, objects) =
        crate::npy::dtype_of(&descr, limits).map_err(|e| e.message().to_owned())?;
    // numpy's `__setstate__` (version 3 and up) takes the flags as given: bit 0 is
    // NPY_ITEM_HASOBJECT.
    Ok((size, objects || flags & 1 != 0))
}

/// The pickled dtype `id` as the `descr` numpy builds the same dtype from, and its flags.
fn descr(pickle: &Pickle<'_>, id: ObjectId, depth: usize) -> Result<(PyValue, i64), String> {
    if depth > 32 {
        return Err("the dtype nests too deep".to_owned());
    }
    let Object::Call { callable, args } = pickle.get(id) else {
        return Err("the dtype is not a numpy.dtype(...) call".to_owned());
    };
    match pickle.as_global(*callable) {
        Some((module, "dtype")) if module == "numpy" || module.starts_with("numpy.") => {}
        _ => return Err("the dtype is not a numpy.dtype(...) call".to_owned()),
    }
    let typestr = pickle
        .as_seq(*args)
        .and_then(|a| a.first())
        .and_then(|&t| pickle.as_str(t))
        .ok_or("the dtype's type is not a string")?;
    let Some(&state) = pickle.extras(id).states.last() else {
        return Ok((PyValue::str(typestr), 0));
    };
    let items = pickle
        .as_seq(state)
        .ok_or("the dtype's state is not a tuple")?;
    let item = |i: usize| items.get(i).copied();
    let endian = item(1).and_then(|e| pickle.as_str(e)).unwrap_or("|");
    let flags = item(7).and_then(|f| pickle.as_int(f)).unwrap_or(0);
    let int = |i: i64| PyValue::Int(PyInt::Small(i));
    // Structured: the fields by name, at their offsets, in an element of `elsize` bytes.
    let names = item(3).filter(|&n| !matches!(pickle.get(n), Object::None));
    let base = if let Some(names) = names {
        let names = pickle
            .as_seq(names)
            .ok_or("the dtype's names are not a tuple")?;
        let fields = item(4).ok_or("the dtype has names but no fields")?;
        let Object::Dict(entries) = pickle.get(fields) else {
            return Err("the dtype's fields are not a dict".to_owned());
        };
        let (mut formats, mut offsets, mut titles, mut keys) = (vec![], vec![], vec![], vec![]);
        for &name in names {
            let text = pickle.as_str(name).ok_or("a field name is not a string")?;
            let &(_, value) = entries
                .iter()
                .rev()
                .find(|(k, _)| pickle.as_str(*k) == Some(text))
                .ok_or("a field has no entry")?;
            let parts = pickle.as_seq(value).ok_or("a field is not a tuple")?;
            let (&field_dtype, rest) = parts.split_first().ok_or("a field is empty")?;
            formats.push(descr(pickle, field_dtype, depth + 1)?.0);
            let offset = rest
                .first()
                .and_then(|&o| pickle.as_int(o))
                .ok_or("a field's offset is not a number")?;
            offsets.push(int(offset));
            titles.push(match rest.get(1) {
                Some(&t) => pickle.as_str(t).map_or(PyValue::None, PyValue::str),
                None => PyValue::None,
            });
            keys.push(PyValue::str(text));
        }
        let elsize = item(5)
            .and_then(|e| pickle.as_int(e))
            .ok_or("the dtype has no size")?;
        let mut dict = PyDict::default();
        let entries = [
            ("names", PyValue::List(keys.into())),
            ("formats", PyValue::List(formats.into())),
            ("offsets", PyValue::List(offsets.into())),
            ("titles", PyValue::List(titles.into())),
            ("itemsize", int(elsize)),
        ];
        for (key, value) in entries {
            dict.insert(PyValue::str(key), value, 0)
                .map_err(|_| "the dtype's fields are unhashable")?;
        }
        PyValue::Dict(Box::new(dict))
    } else {
        let order = match endian {
            ">" => ">",
            "<" | "=" => "<",
            _ => "|",
        };
        PyValue::Str(PyStr::new(&format!("{order}{typestr}")))
    };
    // A subarray: the base dtype and its shape.
    let subarray = item(2).filter(|&s| !matches!(pickle.get(s), Object::None));
    let value = match subarray {
        Some(sub) => {
            let parts = pickle
                .as_seq(sub)
                .ok_or("the dtype's subarray is not a tuple")?;
            let (&inner, shape) = parts.split_first().ok_or("the subarray is empty")?;
            let inner = descr(pickle, inner, depth + 1)?.0;
            let shape = shape
                .first()
                .and_then(|&s| pickle.as_seq(s))
                .ok_or("the subarray's shape is not a tuple")?
                .iter()
                .map(|&d| pickle.as_int(d).map(int))
                .collect::<Option<Vec<_>>>()
                .ok_or("the subarray's shape is not numbers")?;
            PyValue::Tuple(vec![inner, PyValue::Tuple(shape.into())].into())
        }
        None => base,
    };
    Ok((value, flags))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The joblib files `generate_joblib.py` wrote: every array wrapper's inline data is
    /// passed over exactly, so the pickle reads to its end.
    #[test]
    fn real_joblib_files_read_to_their_end() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/ok/joblib/arrays.joblib");
        let data = std::fs::read(path).unwrap();
        let limits = Limits::default();
        let mut errors = Vec::new();
        let mut hook = |view: &Pickle<'_>, target: ObjectId, rest: &[u8]| -> usize {
            match inline(view, target, rest, &limits) {
                Ok(Inline::Raw(n)) => n,
                Ok(Inline::Pickle) => ckpt_pickle::parse(rest, 0, &limits.pickle)
                    .map(|p| p.byte_len())
                    .unwrap_or(0),
                Ok(Inline::Nothing) => 0,
                Err(e) => {
                    errors.push(e);
                    0
                }
            }
        };
        let (pickle, error) = ckpt_pickle::parse_partial_inline(
            &data,
            0,
            &limits.pickle,
            ckpt_pickle::Framing::Contiguous,
            &mut hook,
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert!(error.is_none(), "{error:?}");
        assert_eq!(pickle.byte_len(), data.len());
    }
}
