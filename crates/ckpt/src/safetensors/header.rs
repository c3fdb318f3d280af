//! Step 1 of reading: parse the JSON header into raw entries, in file order.
//!
//! Nothing is validated here beyond JSON syntax and field types; the checks live in
//! [`super::read`]. The parser is stricter than the reference in one way only: a key that
//! appears twice (a tensor name, `__metadata__`, or a metadata key) is an error, where
//! serde's maps silently keep the last one. The safetensors spec forbids duplicates, and two
//! readers that pick different copies are a classic way to hide data from a scanner.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer as _};
use serde_json::value::RawValue;

use crate::error::{Error, Result};

/// The name of the reserved header key holding string metadata.
pub(crate) const METADATA_KEY: &str = "__metadata__";

/// A tensor entry as written in the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawEntry {
    /// The tensor's name (the JSON key).
    pub(crate) name: String,
    /// The dtype string (`"F32"`), not yet checked.
    pub(crate) dtype: String,
    /// The shape, not yet checked.
    pub(crate) shape: Vec<u64>,
    /// `[begin, end)` relative to the start of the data buffer, not yet checked.
    pub(crate) data_offsets: (u64, u64),
    /// Where the entry's JSON value starts, in bytes from the start of the file.
    pub(crate) position: u64,
}

/// The header, parsed but not validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RawHeader {
    /// `__metadata__`, when present and not `null`, in file order.
    pub(crate) metadata: Option<Vec<(String, String)>>,
    /// Tensor entries, in file order.
    pub(crate) entries: Vec<RawEntry>,
}

/// The fields of a tensor entry. Unknown fields are ignored, as in the reference reader.
#[derive(Deserialize)]
pub(crate) struct EntryFields {
    pub(crate) dtype: String,
    pub(crate) shape: Vec<u64>,
    pub(crate) data_offsets: Offsets,
}

/// `[begin, end]`, with a clear message when the array has another length.
pub(crate) struct Offsets(pub(crate) u64, pub(crate) u64);

impl<'de> Deserialize<'de> for Offsets {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Vec::<u64>::deserialize(deserializer)?.as_slice() {
            &[begin, end] => Ok(Offsets(begin, end)),
            other => Err(de::Error::custom(format_args!(
                "data_offsets must be [begin, end], not {} values",
                other.len()
            ))),
        }
    }
}

/// Parses `header`, the JSON text that starts at byte `base` of the file. Errors and entry
/// positions carry byte offsets from the start of the file.
pub(crate) fn parse(header: &str, base: u64) -> Result<RawHeader> {
    let mut deserializer = serde_json::Deserializer::from_str(header);
    let top: Vec<(String, &RawValue)> = deserializer
        .deserialize_map(TopLevel)
        .and_then(|top| deserializer.end().map(|()| top))
        .map_err(|e| json_error(header, base, 0, "the header is not valid JSON", &e))?;
    let mut names = HashSet::with_capacity(top.len());
    let mut raw = RawHeader::default();
    for (name, value) in top {
        let start = position_in(header, value.get());
        let position = base + start as u64;
        if !names.insert(name.clone()) {
            return Err(Error::malformed(format!(
                "the header has the key `{name}` twice (the spec forbids duplicates; \
                 readers disagree on which copy wins)"
            ))
            .at_offset(position));
        }
        if name == METADATA_KEY {
            let metadata: Option<Metadata> = serde_json::from_str(value.get()).map_err(|e| {
                json_error(
                    header,
                    base,
                    start,
                    "`__metadata__` must map strings to strings",
                    &e,
                )
            })?;
            raw.metadata = metadata.map(|m| m.0);
        } else {
            let fields: EntryFields = serde_json::from_str(value.get()).map_err(|e| {
                json_error(
                    header,
                    base,
                    start,
                    "the entry must be {\"dtype\": string, \"shape\": [int...], \"data_offsets\": [begin, end]}",
                    &e,
                )
                .with_tensor(name.clone())
            })?;
            raw.entries.push(RawEntry {
                name,
                dtype: fields.dtype,
                shape: fields.shape,
                data_offsets: (fields.data_offsets.0, fields.data_offsets.1),
                position,
            });
        }
    }
    Ok(raw)
}

/// Where `inner` (a sub-slice of `outer`) starts in `outer`.
pub(crate) fn position_in(outer: &str, inner: &str) -> usize {
    (inner.as_ptr() as usize).saturating_sub(outer.as_ptr() as usize)
}

/// A JSON error met while parsing the text at `start` of `header` (which starts at byte
/// `base` of the file), as a ckpt error at the byte where serde_json stopped.
pub(crate) fn json_error(
    header: &str,
    base: u64,
    start: usize,
    what: &str,
    error: &serde_json::Error,
) -> Error {
    let text = header.get(start..).unwrap_or_default();
    let offset = base + (start + byte_of_line_column(text, error.line(), error.column())) as u64;
    // serde_json's messages end with " at line L column C"; the byte offset replaces them.
    let text = error.to_string();
    let detail = match text.rfind(" at line ") {
        Some(cut) => text.get(..cut).unwrap_or(&text),
        None => &text,
    };
    Error::malformed(format!("{what}: {detail}")).at_offset(offset)
}

/// The byte offset of a 1-based (line, column) position, as serde_json reports them.
fn byte_of_line_column(text: &str, line: usize, column: usize) -> usize {
    let line_start = if line <= 1 {
        0
    } else {
        text.match_indices('\n')
            .nth(line - 2)
            .map_or(text.len(), |(i, _)| i + 1)
    };
    (line_start + column.saturating_sub(1)).min(text.len())
}

/// The top-level object: its keys, and each value kept as raw JSON text.
pub(crate) struct TopLevel;

impl<'de> Visitor<'de> for TopLevel {
    type Value = Vec<(String, &'de RawValue)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            let value: &'de RawValue = map.next_value()?;
            entries.push((key, value));
        }
        Ok(entries)
    }
}

/// `__metadata__`: a string-to-string map, in file order, without duplicate keys.
pub(crate) struct Metadata(pub(crate) Vec<(String, String)>);

impl<'de> Deserialize<'de> for Metadata {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MetadataVisitor;

        impl<'de> Visitor<'de> for MetadataVisitor {
            type Value = Metadata;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of strings")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Metadata, A::Error> {
                let mut seen = HashSet::new();
                let mut entries = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, String>()? {
                    if !seen.insert(key.clone()) {
                        return Err(de::Error::custom(format_args!(
                            "duplicate metadata key `{key}`"
                        )));
                    }
                    entries.push((key, value));
                }
                Ok(Metadata(entries))
            }
        }

        deserializer.deserialize_map(MetadataVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_entries_and_metadata_in_file_order() {
        let header = r#"{"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]},"__metadata__":{"z":"1","a":"2"},"a":{"dtype":"I8","shape":[],"data_offsets":[0,1],"extra":true}}"#;
        let raw = parse(header, 8).unwrap();
        assert_eq!(
            raw.metadata,
            Some(vec![("z".into(), "1".into()), ("a".into(), "2".into())])
        );
        let names: Vec<_> = raw.entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["b", "a"]);
        assert_eq!(raw.entries[0].data_offsets, (8, 16));
        assert_eq!(raw.entries[0].position, 8 + 5);
        let second = usize::try_from(raw.entries[1].position).unwrap() - 8;
        assert_eq!(&header[second..][..1], "{");
    }

    #[test]
    fn null_metadata_and_whitespace_are_accepted() {
        let raw = parse(" \t\n{\"__metadata__\":null}\r ", 0).unwrap();
        assert_eq!(raw, RawHeader::default());
    }

    #[test]
    fn duplicates_are_refused() {
        let dup_tensor = r#"{"a":{"dtype":"I8","shape":[],"data_offsets":[0,1]},"a":{"dtype":"I8","shape":[],"data_offsets":[0,1]}}"#;
        let error = parse(dup_tensor, 0).unwrap_err();
        assert!(error.message().contains("`a` twice"), "{error}");
        assert_eq!(error.location().offset, Some(56));
        let dup_meta = r#"{"__metadata__":{"k":"1","k":"2"}}"#;
        let error = parse(dup_meta, 0).unwrap_err();
        assert!(
            error.message().contains("duplicate metadata key `k`"),
            "{error}"
        );
    }

    #[test]
    fn errors_point_at_the_byte() {
        let error = parse(
            "{\"a\": {\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 0]}}",
            8,
        )
        .unwrap_err();
        assert_eq!(error.location().tensor.as_deref(), Some("a"));
        assert!(error.message().contains("invalid value"), "{error}");
        let offset = error.location().offset.unwrap();
        assert!((40..=44).contains(&offset), "{offset}");

        let error = parse("{\"a\": \n  [}", 0).unwrap_err();
        assert!(
            error.message().starts_with("the header is not valid JSON"),
            "{error}"
        );
        assert_eq!(error.location().offset, Some(10));

        assert!(
            parse("[]", 0)
                .unwrap_err()
                .message()
                .contains("a JSON object")
        );
        assert!(parse("{} x", 0).unwrap_err().message().contains("trailing"));
        assert!(parse(r#"{"__metadata__":{"k":1}}"#, 0).is_err());
        let three = parse(
            r#"{"a":{"dtype":"I8","shape":[],"data_offsets":[0,1,1]}}"#,
            0,
        );
        assert!(
            three
                .unwrap_err()
                .message()
                .contains("[begin, end], not 3 values")
        );
    }

    #[test]
    fn line_column_to_byte() {
        assert_eq!(byte_of_line_column("abc", 1, 1), 0);
        assert_eq!(byte_of_line_column("ab\ncd\nef", 3, 2), 7);
        assert_eq!(byte_of_line_column("ab", 9, 9), 2);
    }
}
