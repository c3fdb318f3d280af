//! The safetensors rules: those of the reference reader (`SafeTensors::read_metadata` and
//! `Metadata::validate`, formats.md §7.2), each checked for every entry rather than up to
//! the first failure, plus duplicate keys and transformers' `format` metadata.
//!
//! The header is parsed with the reader's own pieces (`safetensors::header`); only the
//! loop differs: a bad entry is reported and skipped, and the layout of the data buffer
//! (holes, overlaps, truncation, trailing bytes) is checked over every entry whose offsets
//! could be read.

use std::collections::HashSet;

use serde::Deserializer as _;
use serde_json::value::RawValue;

use super::{Problem, Rule};
use super::{
    ST_DTYPE, ST_DUPLICATE_KEY, ST_FORMAT, ST_HEADER_JSON, ST_HEADER_LENGTH, ST_HEADER_UTF8,
    ST_OFFSETS, ST_SIZE, ST_TRAILING, ST_TRUNCATED,
};
use crate::model::shape::{self, SizeError};
use crate::safetensors::header::{
    EntryFields, METADATA_KEY, Metadata, TopLevel, json_error, position_in,
};
use crate::safetensors::{DTYPES, LENGTH_LEN, MAX_HEADER_LEN, dtype_from_str};

/// The `format` values transformers' `load_state_dict` accepts.
const KNOWN_FORMATS: [&str; 4] = ["pt", "tf", "flax", "mlx"];

/// Where an entry says its bytes are, in the file.
struct Span {
    name: String,
    start: u64,
    end: u64,
}

/// Checks the safetensors file `bytes`, adding every problem to `out`.
pub(super) fn check(bytes: &[u8], out: &mut Vec<Problem>) {
    let file_len = bytes.len() as u64;
    let truncated = "the file is truncated; fetch it again";
    let Some((length, rest)) = bytes.split_first_chunk::<LENGTH_LEN>() else {
        out.push(
            Problem::new(
                &ST_HEADER_LENGTH,
                format!("the file is {file_len} bytes long; the 8-byte header length is missing"),
            )
            .offset(0)
            .hint(truncated),
        );
        return;
    };
    let header_len = u64::from_le_bytes(*length);
    if header_len > MAX_HEADER_LEN {
        out.push(
            Problem::new(
                &ST_HEADER_LENGTH,
                format!(
                    "the header claims {header_len} bytes, over the limit of {MAX_HEADER_LEN} \
                     that safetensors readers accept"
                ),
            )
            .offset(0),
        );
        return;
    }
    let Some(header_bytes) = usize::try_from(header_len)
        .ok()
        .and_then(|len| rest.get(..len))
    else {
        out.push(
            Problem::new(
                &ST_HEADER_LENGTH,
                format!(
                    "the header claims {header_len} bytes but only {} follow the length field",
                    rest.len()
                ),
            )
            .offset(0)
            .hint(truncated),
        );
        return;
    };
    let text = match std::str::from_utf8(header_bytes) {
        Ok(text) => text,
        Err(e) => {
            out.push(
                Problem::new(
                    &ST_HEADER_UTF8,
                    format!("the header is not valid UTF-8: {e}"),
                )
                .offset(LENGTH_LEN as u64 + e.valid_up_to() as u64),
            );
            return;
        }
    };
    let base = LENGTH_LEN as u64;
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let top: Vec<(String, &RawValue)> = match deserializer
        .deserialize_map(TopLevel)
        .and_then(|top| deserializer.end().map(|()| top))
    {
        Ok(top) => top,
        Err(e) => {
            let error = json_error(text, base, 0, "the header is not a JSON object", &e);
            out.push(Problem::from_error(&ST_HEADER_JSON, &error));
            return;
        }
    };
    let data_start = base + header_len;
    let mut seen = HashSet::with_capacity(top.len());
    let mut spans = Vec::with_capacity(top.len());
    // An entry whose offsets cannot be read leaves a gap that is not a hole of the file.
    let mut complete = true;
    for (name, value) in top {
        let start = position_in(text, value.get());
        let position = base + start as u64;
        if !seen.insert(name.clone()) {
            out.push(
                Problem::new(
                    &ST_DUPLICATE_KEY,
                    format!(
                        "the header has the key `{name}` twice; readers disagree on which copy \
                         wins (the reference keeps the last)"
                    ),
                )
                .offset(position),
            );
            continue;
        }
        if name == METADATA_KEY {
            check_metadata(text, base, start, value, out);
            continue;
        }
        let fields: EntryFields = match serde_json::from_str(value.get()) {
            Ok(fields) => fields,
            Err(e) => {
                let error = json_error(
                    text,
                    base,
                    start,
                    "the entry must be {\"dtype\": string, \"shape\": [int...], \"data_offsets\": [begin, end]}",
                    &e,
                );
                out.push(Problem::from_error(&ST_HEADER_JSON, &error).tensor(name));
                complete = false;
                continue;
            }
        };
        let problem = |rule: &'static Rule, message: String| {
            Problem::new(rule, message)
                .tensor(name.clone())
                .offset(position)
        };
        let (begin, end) = (fields.data_offsets.0, fields.data_offsets.1);
        match dtype_from_str(&fields.dtype) {
            None => out.push(problem(
                &ST_DTYPE,
                format!(
                    "unknown dtype `{}` (safetensors dtypes are {}; names are case-sensitive)",
                    fields.dtype,
                    DTYPES.map(|(name, _)| name).join(", ")
                ),
            )),
            Some(dtype) => {
                let needed = fields
                    .shape
                    .iter()
                    .map(|&d| usize::try_from(d).map_err(|_| SizeError::Overflow))
                    .collect::<Result<Vec<usize>, _>>()
                    .and_then(|shape| shape::numel(&shape))
                    .and_then(|numel| shape::packed_len(dtype, numel));
                let shape = &fields.shape;
                match needed {
                    Err(SizeError::Overflow) => out.push(problem(
                        &ST_SIZE,
                        format!(
                            "{dtype} {shape:?} is too large to be real (its size overflows 64 bits)"
                        ),
                    )),
                    Err(SizeError::NotWholeBytes { bits }) => out.push(problem(
                        &ST_SIZE,
                        format!("{dtype} {shape:?} takes {bits} bits, not a whole number of bytes"),
                    )),
                    Ok(needed) if end >= begin && end - begin != needed as u64 => {
                        out.push(problem(
                            &ST_SIZE,
                            format!(
                                "{dtype} {shape:?} takes {needed} bytes but data_offsets \
                                 [{begin}, {end}] span {} bytes",
                                end - begin
                            ),
                        ));
                    }
                    Ok(_) => {}
                }
            }
        }
        if end < begin {
            out.push(problem(
                &ST_OFFSETS,
                format!("data_offsets [{begin}, {end}] end before they begin"),
            ));
            complete = false;
            continue;
        }
        match (data_start.checked_add(begin), data_start.checked_add(end)) {
            (Some(start), Some(end)) => spans.push(Span { name, start, end }),
            _ => {
                out.push(problem(
                    &ST_OFFSETS,
                    format!("data_offsets [{begin}, {end}] overflow"),
                ));
                complete = false;
            }
        }
    }
    check_layout(&mut spans, data_start, file_len, complete, out);
}

/// `__metadata__`: strings to strings, each key once; `format` one transformers reads.
fn check_metadata(text: &str, base: u64, start: usize, value: &RawValue, out: &mut Vec<Problem>) {
    match serde_json::from_str::<Option<Metadata>>(value.get()) {
        Ok(metadata) => {
            let format = metadata
                .iter()
                .flat_map(|m| m.0.iter())
                .find(|(k, _)| k == "format");
            if let Some((_, format)) = format
                && !KNOWN_FORMATS.contains(&format.as_str())
            {
                out.push(
                    Problem::new(
                        &ST_FORMAT,
                        format!(
                            "`__metadata__.format` is `{format}`; transformers refuses files whose \
                             format is not one of {}",
                            KNOWN_FORMATS.join(", ")
                        ),
                    )
                    .offset(base + start as u64)
                    .hint("safetensors files saved from PyTorch say \"pt\""),
                );
            }
        }
        Err(e) => {
            let duplicate = e.to_string().contains("duplicate metadata key");
            let error = json_error(
                text,
                base,
                start,
                "`__metadata__` must map strings to strings",
                &e,
            );
            let rule = if duplicate {
                &ST_DUPLICATE_KEY
            } else {
                &ST_HEADER_JSON
            };
            out.push(Problem::from_error(rule, &error).member(METADATA_KEY));
        }
    }
}

/// The data buffer must be covered exactly: sorted by offsets, each tensor starts where
/// the previous one ends, the first at the start of the buffer, the last at the end of the
/// file. When some entry's offsets could not be read (`complete` is false), holes and
/// trailing bytes are not reported: that entry may be what fills them.
fn check_layout(
    spans: &mut [Span],
    data_start: u64,
    file_len: u64,
    complete: bool,
    out: &mut Vec<Problem>,
) {
    spans.sort_by_key(|span| (span.start, span.end));
    let mut cursor = data_start;
    let mut previous: Option<&str> = None;
    for span in spans.iter() {
        if span.start > cursor && complete {
            let after = match previous {
                Some(p) => format!("after tensor `{p}`, which ends at byte {cursor}"),
                None => format!("at the start of the data, which begins at byte {data_start}"),
            };
            out.push(
                Problem::new(
                    &ST_OFFSETS,
                    format!(
                        "the data starts at byte {} and leaves a hole of {} bytes {after}; \
                         safetensors data must be contiguous",
                        span.start,
                        span.start - cursor
                    ),
                )
                .tensor(span.name.clone())
                .offset(span.start),
            );
        } else if span.start < cursor {
            out.push(
                Problem::new(
                    &ST_OFFSETS,
                    format!(
                        "the data starts at byte {} and overlaps tensor `{}`, which ends at byte \
                         {cursor}",
                        span.start,
                        previous.unwrap_or_default()
                    ),
                )
                .tensor(span.name.clone())
                .offset(span.start),
            );
        }
        if span.end >= cursor {
            cursor = span.end;
            previous = Some(&span.name);
        }
    }
    if cursor > file_len {
        out.push(
            Problem::new(
                &ST_TRUNCATED,
                format!(
                    "the header describes data up to byte {cursor} but the file ends at byte \
                     {file_len} ({} bytes missing)",
                    cursor - file_len
                ),
            )
            .offset(file_len)
            .hint("the file is truncated; fetch it again"),
        );
    } else if cursor < file_len && complete {
        out.push(
            Problem::new(
                &ST_TRAILING,
                format!(
                    "{} bytes follow the last tensor, from byte {cursor} to the end (they can \
                     hide a second file)",
                    file_len - cursor
                ),
            )
            .offset(cursor),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(header: &str, data: usize) -> Vec<u8> {
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.resize(bytes.len() + data, 0);
        bytes
    }

    fn rules(bytes: &[u8]) -> Vec<&'static str> {
        let mut out = Vec::new();
        check(bytes, &mut out);
        out.iter().map(|p| p.rule().id).collect()
    }

    #[test]
    fn a_good_file_has_no_problem() {
        let header = r#"{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F16","shape":[3],"data_offsets":[8,14]}}"#;
        assert!(rules(&file(header, 14)).is_empty());
        assert!(rules(&file("{}", 0)).is_empty());
        let zero = r#"{"z":{"dtype":"F32","shape":[2,0],"data_offsets":[0,0]}}"#;
        assert!(rules(&file(zero, 0)).is_empty());
    }

    #[test]
    fn every_bad_entry_is_reported_not_only_the_first() {
        let header = r#"{"a":{"dtype":"f32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"I32","shape":[2,2],"data_offsets":[8,12]},"c":{"dtype":"I8","shape":"x","data_offsets":[12,13]},"d":{"dtype":"U8","shape":[1],"data_offsets":[20,19]}}"#;
        assert_eq!(
            rules(&file(header, 12)),
            ["st.dtype", "st.size", "st.header-json", "st.offsets"]
        );
    }

    #[test]
    fn layout_problems_each_name_their_tensor() {
        let hole = r#"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"b":{"dtype":"U8","shape":[1],"data_offsets":[2,3]}}"#;
        let mut out = Vec::new();
        check(&file(hole, 3), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].rule().id, "st.offsets");
        assert_eq!(out[0].location().tensor.as_deref(), Some("b"));
        assert!(out[0].message().contains("hole of 1 bytes"), "{}", out[0]);

        let attack: String = format!(
            "{{{}}}",
            (0..10)
                .map(|i| format!(r#""t{i}":{{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#))
                .collect::<Vec<_>>()
                .join(",")
        );
        assert_eq!(rules(&file(&attack, 16)), vec!["st.offsets"; 9]);
        let one = r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}"#;
        assert_eq!(rules(&file(one, 2)), ["st.truncated"]);
        assert_eq!(rules(&file(one, 6)), ["st.trailing"]);
    }

    #[test]
    fn header_level_problems_stop_the_check() {
        assert_eq!(rules(b"\x01\x00"), ["st.header-length"]);
        assert_eq!(rules(&file("{", 0)), ["st.header-json"]);
        let mut huge = file("{}", 0);
        huge[..8].copy_from_slice(&(MAX_HEADER_LEN + 1).to_le_bytes());
        assert_eq!(rules(&huge), ["st.header-length"]);
        let mut long = file("{}", 0);
        long[..8].copy_from_slice(&60u64.to_le_bytes());
        assert_eq!(rules(&long), ["st.header-length"]);
        let mut not_utf8 = file("{\"a\":1}", 0);
        not_utf8[9] = 0xff;
        assert_eq!(rules(&not_utf8), ["st.header-utf8"]);
    }

    #[test]
    fn duplicates_and_metadata() {
        let dup = r#"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}"#;
        assert_eq!(rules(&file(dup, 1)), ["st.duplicate-key"]);
        assert_eq!(
            rules(&file(r#"{"__metadata__":{"k":"1","k":"2"}}"#, 0)),
            ["st.duplicate-key"]
        );
        assert_eq!(
            rules(&file(r#"{"__metadata__":{"k":1}}"#, 0)),
            ["st.header-json"]
        );
        assert_eq!(
            rules(&file(r#"{"__metadata__":{"format":"np"}}"#, 0)),
            ["st.format-metadata"]
        );
        let overflow =
            r#"{"a":{"dtype":"F32","shape":[2,9223372036854775807],"data_offsets":[0,0]}}"#;
        assert_eq!(rules(&file(overflow, 0)), ["st.size"]);
        let f4 = r#"{"a":{"dtype":"F4","shape":[1,3],"data_offsets":[0,1]}}"#;
        assert_eq!(rules(&file(f4, 1)), ["st.size"]);
    }
}
