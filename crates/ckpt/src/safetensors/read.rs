//! Steps 2 and 3 of reading: validate the raw header against the file, then interpret it
//! as tensor views over the data buffer.
//!
//! The rules are those of the reference reader (`SafeTensors::read_metadata` and
//! `Metadata::validate` in `huggingface/safetensors`), so that a file ckpt accepts is a file
//! the reference accepts, plus the ban on duplicate keys (see [`super::header`]). Each
//! failure names the tensor and the byte offset in the file.

use std::collections::BTreeMap;

use super::header::{self, RawEntry};
use super::{LENGTH_LEN, MAX_HEADER_LEN, dtype_from_str};
use crate::error::{Error, Result};
use crate::format::Format;
use crate::limits::{self, Limits};
use crate::model::shape::{self, SizeError};
use crate::model::{ByteOrder, Checkpoint, Dict, Dtype, Storage, TensorView, Value};

/// A validated safetensors header: what `inspect` needs, read without touching tensor data.
#[derive(Debug, Clone)]
pub struct Header {
    header_len: u64,
    metadata: BTreeMap<String, String>,
    entries: Vec<Entry>,
}

/// One validated tensor entry of a [`Header`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The tensor's name.
    pub name: String,
    /// Its dtype.
    pub dtype: Dtype,
    /// Its shape as the header gives it (for `F4`, a count of 4-bit values).
    pub shape: Vec<usize>,
    /// Where its bytes lie in the file, `start..end`.
    pub file_range: (u64, u64),
}

impl Header {
    /// The length of the JSON header in bytes (the number in the first 8 bytes).
    pub fn header_len(&self) -> u64 {
        self.header_len
    }

    /// Where the data buffer starts in the file.
    pub fn data_start(&self) -> u64 {
        LENGTH_LEN as u64 + self.header_len
    }

    /// `__metadata__`.
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// The tensor entries, in the order of the header.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }
}

/// Reads and validates the header of the safetensors file `bytes`.
///
/// This looks at the first `8 + N` bytes only (N being the header length) and at the length
/// of `bytes`; tensor data is never touched, so with a memory map it costs O(header)
/// whatever the file's size.
pub fn read_header(bytes: &[u8]) -> Result<Header> {
    read_header_with(bytes, &Limits::default())
}

/// [`read_header`] within `limits` (`header-len`, `tensors`).
pub fn read_header_with(bytes: &[u8], limits: &Limits) -> Result<Header> {
    let file_len = bytes.len() as u64;
    let Some((length, rest)) = bytes.split_first_chunk::<LENGTH_LEN>() else {
        return Err(Error::malformed(format!(
            "the file is {file_len} bytes long, too short for a safetensors file \
             (the 8-byte header length is missing)"
        ))
        .with_hint("the file is truncated; fetch it again"));
    };
    let header_len = u64::from_le_bytes(*length);
    if header_len > limits.header_len {
        let error = limits::exceeded(
            "header-len",
            limits.header_len,
            format_args!("the header claims {header_len} bytes"),
        )
        .at_offset(0);
        // Past the format's own limit, the file is more likely damaged than real.
        return Err(if header_len > MAX_HEADER_LEN {
            error.with_hint(format!(
                "the file is corrupted or not a safetensors file: readers refuse headers \
                 over {MAX_HEADER_LEN} bytes, and ckpt reads one only if its `header-len` \
                 limit is raised"
            ))
        } else {
            error
        });
    }
    let available = rest.len() as u64;
    let header_bytes = usize::try_from(header_len)
        .ok()
        .and_then(|len| rest.get(..len))
        .ok_or_else(|| {
            Error::malformed(format!(
                "the header claims {header_len} bytes but only {available} bytes follow \
                 the length field"
            ))
            .at_offset(0)
            .with_hint("the file is truncated; fetch it again")
        })?;
    let text = std::str::from_utf8(header_bytes).map_err(|e| {
        Error::malformed(format!("the header is not valid UTF-8: {e}"))
            .at_offset(LENGTH_LEN as u64 + e.valid_up_to() as u64)
    })?;
    let raw = header::parse(text, LENGTH_LEN as u64)?;
    if raw.entries.len() > limits.tensors {
        return Err(limits::exceeded(
            "tensors",
            limits.tensors as u64,
            format_args!("the header lists {} tensors", raw.entries.len()),
        ));
    }
    let data_start = LENGTH_LEN as u64 + header_len;
    let entries = validate(&raw.entries, data_start, file_len)?;
    Ok(Header {
        header_len,
        metadata: raw.metadata.unwrap_or_default().into_iter().collect(),
        entries,
    })
}

fn validate(raw: &[RawEntry], data_start: u64, file_len: u64) -> Result<Vec<Entry>> {
    let entry_error = |entry: &RawEntry, message: String| {
        Error::malformed(message)
            .with_tensor(entry.name.clone())
            .at_offset(entry.position)
    };
    let mut entries = Vec::with_capacity(raw.len());
    for entry in raw {
        let dtype = dtype_from_str(&entry.dtype).ok_or_else(|| {
            entry_error(
                entry,
                format!(
                    "unknown dtype `{}` (safetensors dtypes are {})",
                    entry.dtype,
                    super::DTYPES.map(|(name, _)| name).join(", ")
                ),
            )
        })?;
        let shape: Vec<usize> = entry
            .shape
            .iter()
            .map(|&dim| usize::try_from(dim))
            .collect::<Result<_, _>>()
            .map_err(|_| {
                entry_error(
                    entry,
                    format!("shape {:?} does not fit in memory", entry.shape),
                )
            })?;
        let (begin, end) = entry.data_offsets;
        if end < begin {
            return Err(entry_error(
                entry,
                format!("data_offsets [{begin}, {end}] end before they begin"),
            ));
        }
        let needed = shape::numel(&shape)
            .and_then(|numel| shape::packed_len(dtype, numel))
            .map_err(|e| match e {
                SizeError::Overflow => entry_error(
                    entry,
                    format!("shape {shape:?} is too large to be real (its size overflows 64 bits)"),
                ),
                SizeError::NotWholeBytes { bits } => entry_error(
                    entry,
                    format!("{dtype} {shape:?} takes {bits} bits, not a whole number of bytes"),
                ),
            })?;
        if end - begin != needed as u64 {
            return Err(entry_error(
                entry,
                format!(
                    "{dtype} {shape:?} takes {needed} bytes but data_offsets [{begin}, {end}] \
                     span {} bytes",
                    end - begin
                ),
            ));
        }
        let file_range = data_start
            .checked_add(begin)
            .zip(data_start.checked_add(end))
            .ok_or_else(|| entry_error(entry, format!("data_offsets [{begin}, {end}] overflow")))?;
        entries.push(Entry {
            name: entry.name.clone(),
            dtype,
            shape,
            file_range,
        });
    }
    // The data buffer must be covered exactly: sorted by offsets, each tensor starts where
    // the previous one ends, with no hole and no overlap, and the last one ends the file.
    let mut order: Vec<usize> = (0..entries.len()).collect();
    order.sort_by_key(|&i| entries.get(i).map(|e| e.file_range));
    let mut cursor = data_start;
    let mut previous: Option<&Entry> = None;
    for entry in order.iter().filter_map(|&i| entries.get(i)) {
        let (start, _) = entry.file_range;
        if start != cursor {
            let relation = match previous {
                Some(p) if start < cursor => {
                    format!("overlaps tensor `{}`, which ends at byte {cursor}", p.name)
                }
                Some(p) => format!(
                    "leaves a hole of {} bytes after tensor `{}`, which ends at byte {cursor}",
                    start - cursor,
                    p.name
                ),
                None => format!(
                    "leaves a hole of {} bytes at the start of the data, which begins at byte {data_start}",
                    start - cursor
                ),
            };
            return Err(Error::malformed(format!(
                "the data starts at byte {start} and {relation}; safetensors data must be contiguous"
            ))
            .with_tensor(entry.name.clone())
            .at_offset(start));
        }
        cursor = entry.file_range.1;
        previous = Some(entry);
    }
    match cursor.cmp(&file_len) {
        std::cmp::Ordering::Equal => Ok(entries),
        std::cmp::Ordering::Greater => Err(Error::malformed(format!(
            "the header describes data up to byte {cursor} but the file ends at byte {file_len} \
             ({} bytes missing)",
            cursor - file_len
        ))
        .at_offset(file_len)
        .with_hint("the file is truncated; fetch it again")),
        std::cmp::Ordering::Less => Err(Error::malformed(format!(
            "{} unexpected bytes follow the last tensor, from byte {cursor} to the end \
             (safetensors forbids trailing data, which can hide a second file)",
            file_len - cursor
        ))
        .at_offset(cursor)),
    }
}

/// Reads the safetensors file `bytes` into a [`Checkpoint`] whose tensors borrow from
/// `bytes` (zero copy). The root is a dict of tensor names to tensors, in header order.
pub fn read(bytes: &[u8]) -> Result<Checkpoint<'_>> {
    read_with(bytes, &Limits::default())
}

/// [`read`] within `limits` (`header-len`, `tensors`).
pub fn read_with<'data>(bytes: &'data [u8], limits: &Limits) -> Result<Checkpoint<'data>> {
    let header = read_header_with(bytes, limits)?;
    let mut root = Vec::with_capacity(header.entries.len());
    for entry in header.entries {
        let (start, end) = entry.file_range;
        let data = usize::try_from(start)
            .ok()
            .zip(usize::try_from(end).ok())
            .and_then(|(start, end)| bytes.get(start..end))
            .ok_or_else(|| {
                Error::malformed("tensor data lies outside the file").at_offset(start)
            })?;
        let storage = Storage::new(data, ByteOrder::Little).at_file_offset(start);
        let view = TensorView::contiguous(entry.dtype, entry.shape, storage)
            .map_err(|e| e.with_tensor(entry.name.clone()).at_offset(start))?;
        root.push((Value::Str(entry.name), Value::Tensor(view)));
    }
    Ok(Checkpoint::new(
        Format::Safetensors,
        header.metadata,
        Value::Dict(Dict::new(root)),
    ))
}
