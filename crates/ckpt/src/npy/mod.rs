//! `.npy` array headers, read as numpy 2.4 reads them, to decide whether
//! `numpy.load(..., allow_pickle=True)` would unpickle the array's data.
//!
//! numpy stores an array as a magic string, a version, a header and the data. The header is
//! the text of a Python dict, `{'descr': ..., 'fortran_order': ..., 'shape': ...}`, which numpy
//! evaluates with `ast.literal_eval`; `descr` becomes a dtype with
//! `numpy.lib.format.descr_to_dtype`. When that dtype holds an object anywhere
//! (`dtype.hasobject`), numpy reads the data with `pickle.load`: a pickle that can run code.
//! An object dtype has many spellings (`'O'`, `'|O'`, `'O8'`, `'object'`, `'\x4f'`, `'\x11'`,
//! `'T'`, `'f4,O'`, `('O', (2,))`, structures with an object field anywhere...), so this module
//! parses the header as numpy does (`literal`: CPython's literal grammar; `dtype`: numpy's dtype
//! construction) and decides from the built dtype, never from the text.
//!
//! ```
//! use ckpt::npy::{parse_header, refused_by_numpy};
//!
//! let mut file = b"\x93NUMPY\x01\x00".to_vec();
//! let header = b"{'descr': [('a', '<f4'), ('b', ('|' 'O', (2,)))], 'fortran_order': False, 'shape': (3,), }\n";
//! file.extend_from_slice(&u16::try_from(header.len()).unwrap().to_le_bytes());
//! file.extend_from_slice(header);
//! let parsed = parse_header(&file)?;
//! assert!(parsed.has_object); // numpy.load(allow_pickle=True) would unpickle the data
//! assert_eq!(parsed.data_offset, 10 + header.len() as u64);
//!
//! let error = parse_header(b"\x93NUMPY\x09\x00").unwrap_err();
//! assert!(refused_by_numpy(&error)); // numpy refuses version 9.0 too
//! # Ok::<(), ckpt::Error>(())
//! ```
//!
//! # What to assume on error
//!
//! [`parse_header`] fails in two ways, and a scanner must tell them apart
//! ([`refused_by_numpy`]):
//!
//! - [`ErrorKind::Malformed`]: numpy refuses this header too (it raises, or its process
//!   crashes) before it reads any data, so `numpy.load` never unpickles it. The file is damaged
//!   or crafted; there is no object array to scan through this header.
//! - any other kind ([`ErrorKind::Unsupported`], [`ErrorKind::LimitExceeded`]): ckpt could not
//!   decide what numpy does (a `\N{...}` character name outside ckpt's table, a set whose
//!   iteration order decides, a budget of [`Limits`] reached). **Assume numpy would unpickle
//!   the data**: scan it as a pickle, from [`data_offset`].
//!
//! ckpt never says an array is plain, or that numpy refuses it, when numpy would unpickle it.
//! Where it differs from numpy at all, it says "undecided" (above), or it reads a header that
//! numpy refuses: CPython's parser runs out of stack (`MemoryError`) on some legal nesting of
//! fewer than 200 brackets, which ckpt reads. The differential corpus in
//! `tests/fixtures/npy/` (made by numpy 2.4.6) checks all of this.
//!
//! The work is bounded by [`Limits`]: `header-len` for the header's bytes (numpy reads any
//! length when it may unpickle) and, at one per 64 of those bytes, for the values it holds
//! (each takes up to about a hundred bytes while the header is read: 1.5 million values and
//! some 150 MB at the default limit); `depth` for brackets; `int-len` for integers. Time
//! grows linearly with the header.

mod dtype;
mod filter;
mod int;
mod literal;
#[rustfmt::skip]
mod tables;
mod value;

pub(crate) use int::Int as PyInt;
pub(crate) use value::PyStr;
pub(crate) use value::{Dict as PyDict, Value as PyValue};

use crate::error::{Error, ErrorKind, Result};
use crate::limits::{self, Limits};

use literal::Text;
use value::Value;

/// The magic string every `.npy` file starts with.
pub const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// A `.npy` header as numpy reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Header {
    /// The format version: `(1, 0)`, `(2, 0)` or `(3, 0)`.
    pub version: (u8, u8),
    /// Where the header text starts in the file (10 for version 1.0, 12 for the others).
    pub header_offset: u64,
    /// Where the array's data starts: its pickle when [`Header::has_object`] holds.
    pub data_offset: u64,
    /// numpy's `dtype.hasobject`: `numpy.load(..., allow_pickle=True)` reads the data with
    /// `pickle.load`.
    pub has_object: bool,
    /// numpy's `dtype.itemsize`.
    pub itemsize: u64,
    /// numpy's `dtype.str` when the dtype is one scalar type (`'<f4'`, `'|b1'`,
    /// `'<M8[ns]'`); `None` for structures, subarrays and `StringDType`.
    pub typestr: Option<String>,
    /// Whether the data is in Fortran (column-major) order.
    pub fortran_order: bool,
    /// The shape as written. numpy reads the header with any integers in `[-2^63, 2^64)`; it
    /// fails later on negative dimensions of plain arrays, but unpickles object arrays
    /// whatever their shape.
    pub shape: Vec<i128>,
}

impl Header {
    /// Elements of a plain array: `None` for negative dimensions or a product beyond `u64`
    /// (numpy fails on both when it reads the data).
    pub fn element_count(&self) -> Option<u64> {
        self.shape
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(u64::try_from(d).ok()?))
    }

    /// Bytes of a plain array's data.
    pub fn data_len(&self) -> Option<u64> {
        self.element_count()?.checked_mul(self.itemsize)
    }
}

/// Whether `error`, from [`parse_header`], means that numpy refuses the header too (and so
/// never unpickles the data). `false` means ckpt could not decide: assume the data is a
/// pickle.
pub fn refused_by_numpy(error: &Error) -> bool {
    error.kind() == ErrorKind::Malformed
}

/// Where the data of the `.npy` array that starts `bytes` begins, from its framing alone
/// (magic, a version numpy reads, and the header length), whatever the header says: for a
/// header [`parse_header`] could not decide, this is where to scan the data as a pickle.
/// `None` when the framing itself is broken (numpy refuses the file).
pub fn data_offset(bytes: &[u8]) -> Option<u64> {
    if bytes.get(..6)? != MAGIC {
        return None;
    }
    let len_size = match (bytes.get(6)?, bytes.get(7)?) {
        (1, 0) => 2,
        (2 | 3, 0) => 4,
        _ => return None,
    };
    let len = bytes
        .get(8..8 + len_size)?
        .iter()
        .rev()
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    u64::try_from(8 + len_size).ok()?.checked_add(len)
}

/// Reads the header of the `.npy` array that starts `bytes`, within the default [`Limits`].
/// See the [module](self) for what an error means.
pub fn parse_header(bytes: &[u8]) -> Result<Header> {
    parse_header_with(bytes, &Limits::default())
}

/// [`parse_header`] within `limits`: `header-len` bounds the header's bytes (numpy itself has
/// no bound when `allow_pickle=True`), `depth` its nesting, `int-len` its integers.
pub fn parse_header_with(bytes: &[u8], limits: &Limits) -> Result<Header> {
    let refuse = |at: u64, message: String| refusal(message).at_offset(at);
    let magic = bytes
        .get(..8)
        .ok_or_else(|| refuse(0, "the file ends inside the magic string".into()))?;
    if magic.get(..6) != Some(&MAGIC[..]) {
        return Err(refuse(0, "the magic string is not correct".into()));
    }
    let version = (
        magic.get(6).copied().unwrap_or(0),
        magic.get(7).copied().unwrap_or(0),
    );
    let (len_size, utf8) = match version {
        (1, 0) => (2, false),
        (2, 0) => (4, false),
        (3, 0) => (4, true),
        (major, minor) => {
            return Err(refuse(
                6,
                format!("format version {major}.{minor}; numpy reads only 1.0, 2.0 and 3.0"),
            ));
        }
    };
    let start = 8 + len_size;
    let len_bytes = bytes
        .get(8..start)
        .ok_or_else(|| refuse(8, "the file ends inside the header length".into()))?;
    let len = len_bytes
        .iter()
        .rev()
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    let end = u64::try_from(start).unwrap_or(u64::MAX).saturating_add(len);
    let header = usize::try_from(end)
        .ok()
        .and_then(|end| bytes.get(start..end))
        .ok_or_else(|| {
            refuse(
                8,
                format!(
                    "the header is {len} bytes but the file has {} after the header length",
                    bytes.len().saturating_sub(start)
                ),
            )
        })?;
    let header_offset = u64::try_from(start).unwrap_or(u64::MAX);
    if len > limits.header_len {
        return Err(limits::exceeded(
            "header-len",
            limits.header_len,
            format!("a .npy header of {len} bytes"),
        )
        .at_offset(8)
        .with_hint(
            "ckpt did not read it, so it cannot tell whether numpy would unpickle the data: \
             treat it as an object array, or raise the limit if you trust the file",
        ));
    }
    let text = if utf8 {
        Text::Utf8(std::str::from_utf8(header).map_err(|e| {
            refuse(
                header_offset + u64::try_from(e.valid_up_to()).unwrap_or(0),
                "a version 3.0 header that is not UTF-8".into(),
            )
        })?)
    } else {
        Text::Latin1(header)
    };
    let options = literal::Options {
        max_depth: limits.depth,
        max_int_bytes: limits.int_len,
        // Memory follows the values held (up to ~100 bytes each while reading), so they are
        // bounded too: one per 64 bytes of `header-len` (1.5 million by default; real headers
        // hold hundreds).
        max_values: (
            usize::try_from(limits.header_len / 64)
                .unwrap_or(usize::MAX)
                .max(1 << 12),
            "header-len",
            limits.header_len,
        ),
    };
    let at = |fail: Fail| fail.into_error(header_offset);
    let value = match literal::literal_eval(text, &options) {
        Ok(value) => value,
        // numpy tries again after `_filter_header` (meant for Python 2's `3L`) when the
        // first try raised SyntaxError. A retry after ValueError or TypeError gives the same
        // answer, so any refusal is retried.
        Err(first @ Fail::Refused { .. }) if !utf8 => {
            let Some(filtered) = filter::filter_header(header) else {
                return Err(at(first));
            };
            literal::literal_eval(Text::Latin1(&filtered), &options)
                .map_err(|second| match second {
                    Fail::Refused { .. } => first,
                    other => other,
                })
                .map_err(at)?
        }
        Err(other) => return Err(at(other)),
    };
    let Value::Dict(dict) = &value else {
        return Err(refuse(
            header_offset,
            format!("the header is not a dict but a {}", value.type_name()),
        ));
    };
    let expected = ["descr", "fortran_order", "shape"];
    let entry = |key: &str| dict.get_str(key);
    if dict.len() != expected.len() || expected.iter().any(|k| entry(k).is_none()) {
        let keys: Vec<String> = dict.entries().iter().map(|e| e.key.describe()).collect();
        return Err(refuse(
            header_offset,
            format!(
                "the header's keys are {}, not exactly 'descr', 'fortran_order' and 'shape'",
                keys.join(", ")
            ),
        ));
    }
    let (Some(descr), Some(fortran), Some(shape)) =
        (entry("descr"), entry("fortran_order"), entry("shape"))
    else {
        return Err(refuse(header_offset, "the header lacks a key".into()));
    };
    let value_at = |offset: usize| header_offset + u64::try_from(offset).unwrap_or(0);
    let dims = match &shape.value {
        Value::Tuple(items)
            if items
                .iter()
                .all(|d| matches!(d, Value::Int(_) | Value::Bool(_))) =>
        {
            items
        }
        _ => {
            return Err(refuse(
                value_at(shape.offset),
                format!("shape is not valid: {}", shape.value.describe()),
            ));
        }
    };
    let Value::Bool(fortran_order) = fortran.value else {
        return Err(refuse(
            value_at(fortran.offset),
            format!(
                "fortran_order is not a valid bool: {}",
                fortran.value.describe()
            ),
        ));
    };
    let mut cx = dtype::Cx::new(
        header.len().saturating_mul(8).saturating_add(10_000),
        options,
    );
    let built = dtype::descr_to_dtype(&descr.value, &mut cx).map_err(|fail| {
        fail.prefixed(&format!("descr {}", descr.value.describe()))
            .into_error(value_at(descr.offset))
    })?;
    // numpy.load then computes the element count: numpy.multiply.reduce(shape, dtype=int64).
    let shape = dims
        .iter()
        .map(|d| match d {
            Value::Bool(b) => Some(i128::from(*b)),
            Value::Int(i) => i.to_i128(),
            _ => None,
        })
        .collect::<Option<Vec<i128>>>()
        .ok_or_else(|| {
            refuse(
                value_at(shape.offset),
                "a dimension of the shape does not fit 64 bits (numpy.load cannot count the elements)"
                    .into(),
            )
        })?;
    Ok(Header {
        version,
        header_offset,
        data_offset: end,
        has_object: built.refs,
        itemsize: u64::try_from(built.elsize).unwrap_or(0),
        typestr: built.typestr(),
        fortran_order,
        shape,
    })
}

fn refusal(message: String) -> Error {
    Error::malformed(format!("numpy refuses this .npy header: {message}")).with_hint(
        "numpy.load fails on this header too, before it reads the data (it never unpickles \
         it); the file is damaged or crafted",
    )
}

/// Why a header could not be read, inside this module.
#[derive(Debug)]
pub(crate) enum Fail {
    /// numpy raises on this header (`at`: byte offset in the header text, when known).
    Refused { at: Option<usize>, message: String },
    /// numpy's process dies on this header.
    Crash { message: String },
    /// ckpt cannot tell what numpy does; `limit` is the [`Limits`] entry that stopped it.
    Undecided {
        at: Option<usize>,
        message: String,
        limit: Option<(&'static str, u64)>,
    },
}

impl Fail {
    /// The same failure, its message after `context: `.
    fn prefixed(self, context: &str) -> Fail {
        match self {
            Fail::Refused { at, message } => Fail::Refused {
                at,
                message: format!("{context}: {message}"),
            },
            Fail::Crash { message } => Fail::Crash {
                message: format!("{context}: {message}"),
            },
            Fail::Undecided { at, message, limit } => Fail::Undecided {
                at,
                message: format!("{context}: {message}"),
                limit,
            },
        }
    }

    /// The crate's error, with the offset in the file (`base` plus the offset in the text,
    /// or `base` where the text offset is unknown).
    fn into_error(self, base: u64) -> Error {
        let place = |at: Option<usize>| base + at.and_then(|a| u64::try_from(a).ok()).unwrap_or(0);
        match self {
            Fail::Refused { at, message } => refusal(message).at_offset(place(at)),
            Fail::Crash { message } => Error::malformed(format!(
                "numpy crashes on this .npy header: {message}"
            ))
            .with_hint("numpy's process dies before it reads the data (it never unpickles it)")
            .at_offset(base),
            Fail::Undecided {
                at,
                message,
                limit: Some((name, value)),
            } => limits::exceeded(name, value, format!("a .npy header with {message}"))
                .at_offset(place(at)),
            Fail::Undecided {
                at,
                message,
                limit: None,
            } => Error::unsupported(format!(
                "ckpt cannot tell how numpy reads this .npy header: {message}"
            ))
            .with_hint(
                "treat the array as an object array: numpy.load(allow_pickle=True) may unpickle its data",
            )
            .at_offset(place(at)),
        }
    }
}

/// What `numpy.dtype(descr)` builds: the size of an element and whether it holds objects. For dtypes met outside a
/// `.npy` header (the arrays joblib pickles with their dtype).
pub(crate) fn dtype_of(descr: &PyValue, limits: &Limits) -> Result<(u64, bool)> {
    let options = literal::Options {
        max_depth: limits.depth,
        max_int_bytes: limits.int_len,
        max_values: (1 << 16, "header-len", limits.header_len),
    };
    let mut cx = dtype::Cx::new(1 << 16, options);
    let built = dtype::numpy_dtype(descr, &mut cx).map_err(|fail| {
        fail.prefixed(&format!("dtype {}", descr.describe()))
            .into_error(0)
    })?;
    let size = u64::try_from(built.elsize)
        .map_err(|_| Error::malformed(format!("dtype {} has a negative size", descr.describe())))?;
    Ok((size, built.refs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(version: u8, header: &[u8]) -> Vec<u8> {
        let mut file = MAGIC.to_vec();
        file.extend([version, 0]);
        if version == 1 {
            file.extend(u16::try_from(header.len()).unwrap().to_le_bytes());
        } else {
            file.extend(u32::try_from(header.len()).unwrap().to_le_bytes());
        }
        file.extend_from_slice(header);
        file
    }

    fn header(descr: &str) -> Vec<u8> {
        format!("{{'descr': {descr}, 'fortran_order': False, 'shape': (2, 3), }}\n").into_bytes()
    }

    fn object(descr: &str) -> bool {
        parse_header(&npy(1, &header(descr)))
            .unwrap_or_else(|e| panic!("{descr}: {e}"))
            .has_object
    }

    #[test]
    fn plain_header_as_numpy_writes_it() {
        let h = parse_header(&npy(1, &header("'<f4'"))).unwrap();
        assert_eq!(h.version, (1, 0));
        assert_eq!(h.header_offset, 10);
        assert_eq!(
            h.data_offset,
            10 + u64::try_from(header("'<f4'").len()).unwrap()
        );
        assert!(!h.has_object);
        assert_eq!((h.itemsize, h.typestr.as_deref()), (4, Some("<f4")));
        assert_eq!(h.shape, [2, 3]);
        assert_eq!((h.element_count(), h.data_len()), (Some(6), Some(24)));
        assert!(!h.fortran_order);
    }

    #[test]
    fn every_spelling_of_an_object_is_one() {
        for descr in [
            "'O'",
            "'|O'",
            "u'O'",
            "'|' 'O'",
            "('O')",
            "'\\x4f'",
            "'\\117'",
            "'\\N{LATIN CAPITAL LETTER O}'",
            "'object'",
            "'O8'",
            "'f4,O'",
            "('O', (2,))",
            "[('a', '<f4'), ('b', [('c', '|O')])]",
            "[(('title', 'name'), 'O')]",
            "'T'",
            "'\\x11'",
            "[('a', 'O', (2,))]",
        ] {
            assert!(object(descr), "{descr}");
        }
        assert!(!object("'<f8'"));
        assert!(!object("[('', 'O', (2,))]")); // numpy drops it as padding
    }

    #[test]
    fn versions_and_encodings() {
        let h = parse_header(&npy(2, &header("'<f4'"))).unwrap();
        assert_eq!((h.version, h.header_offset), ((2, 0), 12));
        let h = parse_header(&npy(3, &header("[('é', 'O')]"))).unwrap();
        assert!(h.has_object);
        // Latin-1 for 1.0 and 2.0: any byte is a character.
        assert!(parse_header(&npy(1, &header("[('\u{e9}', 'O')]"))).is_ok());
        assert!(
            parse_header(&npy(
                2,
                b"{'descr': '\xe9', 'fortran_order': False, 'shape': ()}"
            ))
            .is_err()
        );
        // UTF-8 for 3.0.
        let bad = parse_header(&npy(
            3,
            b"{'descr': '\xe9', 'fortran_order': False, 'shape': ()}",
        ))
        .unwrap_err();
        assert!(refused_by_numpy(&bad));
        assert_eq!(bad.location().offset, Some(12 + 11));
        // Python 2 headers: L suffixes are dropped for 1.0 and 2.0 only.
        let py2 = b"{'descr': '|O', 'fortran_order': False, 'shape': (3L, 4L), }";
        assert!(parse_header(&npy(1, py2)).unwrap().has_object);
        assert!(refused_by_numpy(&parse_header(&npy(3, py2)).unwrap_err()));
        // The retry also reads a first line indented with a form feed, as numpy does.
        let ff = b"\x0c {'descr': '|O', 'fortran_order': False, 'shape': ()}";
        assert!(parse_header(&npy(2, ff)).unwrap().has_object);
        assert!(refused_by_numpy(&parse_header(&npy(3, ff)).unwrap_err()));
    }

    #[test]
    fn framing_errors_are_numpys() {
        for (bytes, at) in [
            (&b"\x93NUMP"[..], 0),
            (b"\x93NUMPX\x01\x00\x00\x00", 0),
            (b"\x93NUMPY\x01\x01\x00\x00", 6),
            (b"\x93NUMPY\x04\x00\x00\x00", 6),
            (b"\x93NUMPY\x01\x00\x05", 8),
            (b"\x93NUMPY\x01\x00\x05\x00{}", 8),
        ] {
            let e = parse_header(bytes).unwrap_err();
            assert!(refused_by_numpy(&e), "{bytes:?}: {e}");
            assert_eq!(e.location().offset, Some(at), "{bytes:?}: {e}");
        }
    }

    #[test]
    fn header_checks_are_numpys() {
        for text in [
            "[]",
            "{'descr': '<f4', 'fortran_order': False}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (), 'x': 1}",
            "{'descr': '<f4', 'fortran_order': 0, 'shape': ()}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': [1]}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1.0,)}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2**3,)}",
            "{b'descr': '<f4', 'fortran_order': False, 'shape': ()}",
            "{'descr': 'Q3', 'fortran_order': False, 'shape': ()}",
            "{'descr': 'O', 'fortran_order': False, 'shape': (0x10000000000000000,)}",
        ] {
            let e = parse_header(&npy(1, text.as_bytes())).unwrap_err();
            assert!(refused_by_numpy(&e), "{text}: {e}");
        }
        // What numpy accepts: bools and any 64-bit ints as dimensions, the last value of a
        // repeated key.
        let h = parse_header(&npy(
            1,
            b"{'descr': 'O', 'descr': '<f8', 'fortran_order': True, 'shape': (True, -1, 0xffffffffffffffff)}",
        ))
        .unwrap();
        assert!(!h.has_object && h.fortran_order);
        assert_eq!(h.shape, [1, -1, i128::from(u64::MAX)]);
        assert_eq!(h.element_count(), None);
        let h = parse_header(&npy(
            1,
            b"{'shape': (-5,), 'fortran_order': False, 'descr': '|O'}",
        ))
        .unwrap();
        assert!(h.has_object);
    }

    #[test]
    fn undecided_is_not_a_refusal() {
        let e = parse_header(&npy(1, &header("'\\N{SNOWMAN}'"))).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert!(!refused_by_numpy(&e));
        assert!(e.message().contains("SNOWMAN"), "{e}");
        let e = parse_header(&npy(1, &header("[{'a', 'O'}]"))).unwrap_err();
        assert!(!refused_by_numpy(&e), "{e}");
        let limits = Limits {
            header_len: 10,
            ..Limits::default()
        };
        let e = parse_header_with(&npy(1, &header("'O'")), &limits).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::LimitExceeded);
        assert!(e.message().contains("header-len"), "{e}");
        let limits = Limits {
            depth: 3,
            ..Limits::default()
        };
        let e = parse_header_with(&npy(1, &header("[[[('a', 'O')]]]")), &limits).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::LimitExceeded);
        assert!(e.message().contains("depth"), "{e}");
    }

    #[test]
    fn errors_say_where() {
        let text = b"{'descr': 'Q3', 'fortran_order': False, 'shape': ()}";
        let e = parse_header(&npy(1, text)).unwrap_err();
        assert_eq!(e.location().offset, Some(10 + 10), "{e}");
        assert!(
            e.message().contains("'Q3'") || e.message().contains("Q3"),
            "{e}"
        );
        let e = parse_header(&npy(
            1,
            b"{'descr': 'O', 'fortran_order': False, 'shape': (1,) + }",
        ))
        .unwrap_err();
        assert!(refused_by_numpy(&e));
        assert!(e.location().offset.is_some_and(|o| o > 10 + 40), "{e}");
    }

    #[test]
    fn data_offset_needs_only_the_framing() {
        let file = npy(
            2,
            b"{'descr': '\\N{SNOWMAN}', 'fortran_order': False, 'shape': ()}",
        );
        assert!(parse_header(&file).is_err());
        assert_eq!(data_offset(&file), Some(u64::try_from(file.len()).unwrap()));
        assert_eq!(data_offset(b"\x93NUMPY\x01\x00\x05\x00"), Some(15));
        assert_eq!(data_offset(b"\x93NUMPY\x01\x01\x05\x00"), None);
        assert_eq!(data_offset(b"\x93NUMPY\x02\x00\x05\x00"), None);
        assert_eq!(data_offset(b"PK\x03\x04"), None);
    }

    #[test]
    fn crashes_are_refusals() {
        let e = parse_header(&npy(1, &header("'M8[s/0]'"))).unwrap_err();
        assert!(refused_by_numpy(&e));
        assert!(e.message().contains("crashes"), "{e}");
    }
}
