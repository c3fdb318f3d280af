//! The legacy stream of `torch.save` (torch 0.4 to 1.5, and `_use_new_zipfile_serialization=False`).
//!
//! The file is pickles back to back, then raw storages (formats.md §2.1):
//! the magic number, the protocol version (1001), `sys_info`, the object pickle, the sorted
//! list of storage keys, then for each key in that order an int64 element count and the
//! storage's bytes, always little-endian.

use std::collections::{BTreeMap, HashMap};

use ckpt_pickle::{Object, Pickle};

use super::interpret::{self, Container, StorageId, StorageKind, Storages};
use super::{details, pickle_int, plain_only};
use crate::error::{Error, Result};
use crate::format::Format;
use crate::limits::Limits;
use crate::model::{ByteOrder, Checkpoint, Storage};

pub(crate) const MAGIC_NUMBER: &str = "119547037146038801333356";
pub(crate) const PROTOCOL_VERSION: i64 = 1001;

/// The pickles a legacy stream starts with, in the order torch's loader unpickles them.
pub(crate) const PICKLES: [&str; 5] = [
    "magic number",
    "protocol version",
    "sys_info",
    "object pickle",
    "storage keys",
];

/// One of the pickles of a legacy stream, parsed.
#[derive(Debug, Clone)]
pub(crate) struct StreamPickle<'data> {
    /// Which one ([`PICKLES`]).
    pub(crate) name: &'static str,
    /// Where it starts in `bytes`.
    pub(crate) start: usize,
    /// Its length to its `STOP`, or to the end of the bytes when it broke.
    pub(crate) len: usize,
    pub(crate) pickle: Pickle<'data>,
    /// What stopped it, when it broke.
    pub(crate) error: Option<ckpt_pickle::Error>,
}

/// The pickles of a legacy stream back to back from the start of `bytes` (byte `base` of
/// the file), as torch's loader unpickles them: at most five, the last one being the one
/// that broke when one did. The one parse of the stream's pickles that the reader, the
/// walk and `verify` share.
pub(crate) fn stream_pickles<'data>(
    bytes: &'data [u8],
    base: u64,
    limits: &Limits,
) -> Vec<StreamPickle<'data>> {
    let mut out = Vec::with_capacity(PICKLES.len());
    let mut start = 0usize;
    for name in PICKLES {
        let rest = bytes.get(start..).unwrap_or_default();
        if rest.is_empty() {
            break;
        }
        let (pickle, error) = ckpt_pickle::parse_partial(rest, base + start as u64, &limits.pickle);
        let len = if error.is_some() {
            rest.len()
        } else {
            pickle.byte_len()
        };
        let broken = error.is_some();
        out.push(StreamPickle {
            name,
            start,
            len,
            pickle,
            error,
        });
        start += len;
        if broken {
            break;
        }
    }
    out
}

/// The storages the object pickle of a stream declares, by key: their kind (and so the
/// size of an element) and their element count, as the first reference of a key decides.
pub(crate) fn declared_storages(main: &Pickle<'_>) -> Result<HashMap<String, (StorageKind, u64)>> {
    let mut kinds = HashMap::new();
    for (_, object) in main.objects() {
        if let Object::PersistentId(pid) = object
            && let Some(storage) = interpret::storage_id(main, *pid)?
        {
            kinds
                .entry(storage.key)
                .or_insert((storage.kind, storage.numel));
        }
    }
    Ok(kinds)
}

/// Where each storage of the stream lies.
struct LegacyStorages<'data> {
    bytes: &'data [u8],
    /// key -> (start, byte length, element size)
    ranges: HashMap<String, (usize, usize, u64)>,
}

impl<'data> Storages<'data> for LegacyStorages<'data> {
    fn storage(&mut self, id: &StorageId) -> Result<Storage<'data>> {
        let &(start, len, unit) = self.ranges.get(&id.key).ok_or_else(|| {
            Error::malformed(format!(
                "the pickle refers to storage `{}`, which the stream does not hold",
                id.key
            ))
        })?;
        let (from, to) = match id.view {
            // A view of a larger storage, in elements of its type.
            Some((offset, size)) => {
                let from = offset
                    .checked_mul(unit)
                    .and_then(|b| usize::try_from(b).ok());
                let to = offset
                    .checked_add(size)
                    .and_then(|e| e.checked_mul(unit))
                    .and_then(|b| usize::try_from(b).ok());
                match (from, to) {
                    (Some(from), Some(to)) if to <= len => (from, to),
                    _ => {
                        return Err(Error::malformed(format!(
                            "a view of storage `{}` reaches past its {len} bytes",
                            id.key
                        )));
                    }
                }
            }
            None => (0, len),
        };
        let bytes = self.bytes.get(start + from..start + to).ok_or_else(|| {
            Error::malformed("storage data lies outside the file").at_offset(start as u64)
        })?;
        Ok(Storage::new(bytes, ByteOrder::Little)
            .at_file_offset((start.saturating_add(from)) as u64))
    }
}

/// Reads a legacy `torch.save` stream.
pub fn read_legacy(bytes: &[u8]) -> Result<Checkpoint<'_>> {
    read_legacy_with(bytes, &Limits::default())
}

/// The 8-byte little-endian element count that opens a storage at `pos`, from `file` when
/// given; `None` when the bytes end first.
fn storage_count(bytes: &[u8], file: Option<&std::fs::File>, pos: usize) -> Option<u64> {
    let mut count = [0u8; 8];
    match file {
        Some(file) => {
            // Within the map's bytes only, as when reading them.
            pos.checked_add(8).filter(|&end| end <= bytes.len())?;
            crate::input::read_exact_at(file, &mut count, pos as u64).ok()?;
        }
        None => count = bytes.get(pos..pos.checked_add(8)?)?.try_into().ok()?,
    }
    Some(u64::from_le_bytes(count))
}

/// [`read_legacy`] within `limits`.
pub fn read_legacy_with<'data>(bytes: &'data [u8], limits: &Limits) -> Result<Checkpoint<'data>> {
    read_legacy_from(bytes, None, limits)
}

/// [`read_legacy_with`], reading each storage's element count from `file` (the file `bytes`
/// map) at its offset rather than through the map: the counts are scattered through the
/// whole file, and each page touched through a map stays resident with its neighbours.
pub(crate) fn read_legacy_from<'data>(
    bytes: &'data [u8],
    file: Option<&std::fs::File>,
    limits: &Limits,
) -> Result<Checkpoint<'data>> {
    let pickles = stream_pickles(bytes, 0, limits);
    for part in &pickles {
        if let Some(error) = &part.error {
            return Err(super::pickle_error(error, part.name));
        }
    }
    let [magic, protocol, sys_info, main, keys_pickle] = &pickles[..] else {
        let end = pickles.last().map_or(0, |p| p.start + p.len);
        return Err(Error::malformed(format!(
            "the stream ends after {} of its 5 pickles",
            pickles.len()
        ))
        .with_member(PICKLES.get(pickles.len()).copied().unwrap_or_default())
        .at_offset(end as u64)
        .with_hint("the file is truncated; fetch it again"));
    };
    for header in [magic, protocol, sys_info, keys_pickle] {
        plain_only(&header.pickle, header.name)?;
    }
    let main_bytes = bytes
        .get(main.start..main.start + main.len)
        .unwrap_or_default();
    let (magic, sys_info, main) = (&magic.pickle, &sys_info.pickle, &main.pickle);
    if pickle_int(magic).as_deref() != Some(MAGIC_NUMBER) {
        return Err(
            Error::malformed("the file does not start with torch's magic number").at_offset(0),
        );
    }
    let version = protocol
        .pickle
        .root()
        .and_then(|r| protocol.pickle.as_int(r));
    if version != Some(PROTOCOL_VERSION) {
        return Err(Error::unsupported(format!(
            "legacy protocol version {}; torch reads only {PROTOCOL_VERSION}",
            version.map_or_else(|| "?".to_owned(), |v| v.to_string())
        ))
        .at_offset(protocol.start as u64));
    }
    let mut records = BTreeMap::new();
    records.insert("protocol_version".to_owned(), PROTOCOL_VERSION.to_string());
    if let Some(Object::Dict(entries)) = sys_info.root().map(|r| sys_info.get(r)) {
        for &(key, value) in entries {
            if let (Some(key), value) = (sys_info.as_str(key), sys_info.get(value)) {
                let text = match value {
                    Object::Bool(b) => (if *b { "True" } else { "False" }).to_owned(),
                    Object::Int(i) => i.to_string(),
                    Object::Dict(_) => continue,
                    other => format!("{other:?}"),
                };
                records.insert(key.to_owned(), text);
            }
        }
    }
    let mut pos = keys_pickle.start + keys_pickle.len;
    let keys_pickle = &keys_pickle.pickle;
    let keys: Vec<String> = keys_pickle
        .root()
        .and_then(|r| keys_pickle.as_seq(r))
        .ok_or_else(|| {
            Error::malformed("the storage key list is not a list").at_offset(pos as u64)
        })?
        .iter()
        .map(|&k| interpret::text(keys_pickle, k))
        .collect::<Option<_>>()
        .ok_or_else(|| Error::malformed("a storage key is not text").at_offset(pos as u64))?;

    // The element size of each storage comes from how the object pickle refers to it.
    let kinds = declared_storages(main)?;
    let mut ranges = HashMap::new();
    for key in &keys {
        let count = storage_count(bytes, file, pos).ok_or_else(|| {
            Error::malformed(format!("the stream ends before storage `{key}`"))
                .at_offset(pos as u64)
                .with_hint("the file is truncated; fetch it again")
        })?;
        let (unit, declared) = kinds.get(key).map(|(kind, numel)| (kind.unit_size(), *numel)).ok_or_else(|| {
            Error::malformed(format!(
                "the stream holds storage `{key}`, which the object pickle never refers to (torch.load fails on it)"
            ))
            .at_offset(pos as u64)
        })?;
        if declared != count {
            return Err(Error::malformed(format!(
                "storage `{key}` holds {count} elements but the pickle declares {declared}"
            ))
            .at_offset(pos as u64));
        }
        let len = count
            .checked_mul(unit)
            .and_then(|l| usize::try_from(l).ok())
            .filter(|&l| {
                pos.checked_add(8)
                    .and_then(|start| start.checked_add(l))
                    .is_some_and(|end| end <= bytes.len())
            })
            .ok_or_else(|| {
                Error::malformed(format!(
                    "storage `{key}` declares {count} elements of {unit} bytes, past the end of the file"
                ))
                .at_offset(pos as u64)
                .with_hint("the file is truncated; fetch it again")
            })?;
        ranges.insert(key.clone(), (pos + 8, len, unit));
        pos += 8 + len;
    }
    if pos != bytes.len() {
        return Err(Error::malformed(format!(
            "{} bytes follow the last storage; torch never writes them, and they can hide data \
             from tools that stop earlier",
            bytes.len() - pos
        ))
        .at_offset(pos as u64));
    }
    let mut storages = LegacyStorages { bytes, ranges };
    let interpreted = interpret::interpret(main, &mut storages, Container::Legacy, limits)
        .map_err(|e| e.with_member("object pickle"))?;
    let mut details = details(main, main_bytes, true);
    details.records = records;
    details.from_modules = interpreted.from_modules;
    details.root_is_module = interpreted.root_is_module;
    Ok(
        Checkpoint::new(Format::TorchLegacy, BTreeMap::new(), interpreted.root)
            .with_details(details),
    )
}
