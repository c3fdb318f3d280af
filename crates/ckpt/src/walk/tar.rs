//! Tar archives as Python's `tarfile` reads them, and the pickles the tar checkpoints of
//! torch <= 0.3 hold.
//!
//! `torch.load` first tries a file as a tar (`tarfile.open(mode="r:")`, which accepts any
//! first block whose header checksum is right, with or without the `ustar` magic), and its
//! `legacy_load` then unpickles, with the full unpickler: the storage count, each storage
//! header and the list of views in `storages`, the tensor count and each tensor header in
//! `tensors`, and `pickle`. Every one of them is a part here; the raw records between them
//! are skipped by the sizes their headers give, as torch reads them.

use ckpt_pickle::Pickle;

use super::{Anomaly, AnomalyKind, Loader, Parsed, Part, Rest, Use, Walk};
use crate::error::{Error, Result};
use crate::input::Input;
use crate::limits::Limits;
use crate::torch::interpret::{self, StorageKind};

const BLOCK: usize = 512;
/// The most members read from an archive.
const MAX_MEMBERS: usize = 1 << 16;

/// `tarfile`'s `nti`: an octal number (NUL- or space-terminated), or GNU's base-256 form.
fn number(field: &[u8]) -> Option<u64> {
    match field.first() {
        Some(0o200) => field
            .get(1..)?
            .iter()
            .try_fold(0u64, |n, &b| n.checked_mul(256)?.checked_add(u64::from(b))),
        Some(0o377) => None, // negative
        _ => {
            let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
            let text = std::str::from_utf8(field.get(..end)?).ok()?.trim();
            if text.is_empty() {
                return Some(0);
            }
            u64::from_str_radix(text, 8).ok()
        }
    }
}

/// Whether `block` is a tar header `tarfile` accepts: its checksum (as unsigned or signed
/// bytes, the field counted as spaces) is the one it records.
fn valid_header(block: &[u8]) -> bool {
    if block.len() < BLOCK || block.iter().all(|&b| b == 0) {
        return false;
    }
    let Some(recorded) = block.get(148..156).and_then(number) else {
        return false;
    };
    let (mut unsigned, mut signed) = (256u64, 256i64);
    for (i, &b) in block.iter().take(BLOCK).enumerate() {
        if (148..156).contains(&i) {
            continue;
        }
        unsigned += u64::from(b);
        signed += i64::from(b.cast_signed());
    }
    recorded == unsigned || i64::try_from(recorded).is_ok_and(|r| r == signed)
}

/// Whether `bytes` start with a header `tarfile.open(mode="r:")` accepts (so `torch.load`
/// reads the file as a tar checkpoint).
pub(crate) fn is_tar(bytes: &[u8]) -> bool {
    bytes.get(..BLOCK).is_some_and(valid_header)
}

/// A member of a tar archive: where its header and its data are.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub(crate) name: String,
    pub(crate) header_start: usize,
    pub(crate) data_start: usize,
    pub(crate) size: usize,
}

/// The members of the tar archive in `bytes`, as `tarfile` lists them (GNU long names and
/// PAX `path` records applied); the archive ends at a zero block, at the end of the file
/// or at a block that is not a header.
pub(crate) fn members(bytes: &[u8]) -> Result<Vec<Member>> {
    let mut members = Vec::new();
    let mut pos = 0usize;
    let mut long_name: Option<String> = None;
    while let Some(header) = bytes.get(pos..pos + BLOCK) {
        if header.iter().all(|&b| b == 0) || members.len() >= MAX_MEMBERS {
            break;
        }
        if !valid_header(header) {
            if pos == 0 {
                return Err(Error::malformed("the tar header's checksum is wrong").at_offset(0));
            }
            break;
        }
        let text = |range: std::ops::Range<usize>| {
            let raw = header.get(range).unwrap_or_default();
            let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
            String::from_utf8_lossy(raw.get(..end).unwrap_or_default()).into_owned()
        };
        let size = header
            .get(124..136)
            .and_then(number)
            .and_then(|size| usize::try_from(size).ok())
            .ok_or_else(|| {
                Error::malformed(format!(
                    "tar header has a bad size `{}`",
                    text(124..136).trim()
                ))
                .at_offset(pos as u64)
            })?;
        let kind = header.get(156).copied().unwrap_or(b'0');
        let data = pos + BLOCK;
        let has_data = !matches!(kind, b'1' | b'2' | b'3' | b'4' | b'5' | b'6');
        let end = data
            .checked_add(if has_data { size } else { 0 })
            .filter(|&end| end <= bytes.len())
            .ok_or_else(|| {
                Error::malformed(format!(
                    "tar member of {size} bytes runs past the end of the file"
                ))
                .at_offset(pos as u64)
                .with_hint("the file is truncated; fetch it again")
            })?;
        let mut name = text(0..100);
        if header.get(257..263) == Some(b"ustar\x00") {
            let prefix = text(345..500);
            if !prefix.is_empty() {
                name = format!("{prefix}/{name}");
            }
        }
        match kind {
            // PAX extended header: a `path=` record renames the next member.
            b'x' => {
                let records =
                    String::from_utf8_lossy(bytes.get(data..end).unwrap_or_default()).into_owned();
                long_name = records
                    .lines()
                    .find_map(|line| line.split_once(" path=").map(|(_, path)| path.to_owned()));
            }
            // Global PAX header, GNU long link name: nothing to name.
            b'g' | b'K' => {}
            // GNU long name.
            b'L' => {
                let raw = bytes.get(data..end).unwrap_or_default();
                let raw = raw.split(|&b| b == 0).next().unwrap_or_default();
                long_name = Some(String::from_utf8_lossy(raw).into_owned());
            }
            _ => members.push(Member {
                name: long_name.take().unwrap_or(name),
                header_start: pos,
                data_start: data,
                size: if has_data { size } else { 0 },
            }),
        }
        pos = end.div_ceil(BLOCK) * BLOCK;
    }
    Ok(members)
}

/// The member `tarfile.getmember(name)` returns: the last one of that name.
pub(crate) fn member<'m>(members: &'m [Member], name: &str) -> Option<&'m Member> {
    members.iter().rev().find(|m| m.name == name)
}

/// Walks a tar file: every pickle torch's `legacy_load` unpickles, and every other member.
pub(super) fn walk_tar<'data>(input: Input<'data>, limits: &Limits, walk: &mut Walk<'data>) {
    let list = match members(input.bytes()) {
        Ok(list) => list,
        Err(error) => {
            walk.errors.push(error);
            return;
        }
    };
    for m in &list {
        let used = member(&list, &m.name).is_some_and(|last| last.header_start == m.header_start);
        let data = input
            .slice(m.data_start as u64, m.size as u64)
            .unwrap_or_default();
        let at = input.base() + m.data_start as u64;
        match m.name.as_str() {
            "storages" | "tensors" if used => {
                let records = if m.name == "storages" {
                    Records::Storages
                } else {
                    Records::Tensors
                };
                walk_records(data, at, &m.name, records, limits, walk);
            }
            "pickle" if used => walk.part(Part::stored(
                "pickle",
                at,
                data,
                Use::Pickle {
                    loader: Loader::Torch,
                    rest: Rest::Nothing,
                },
            )),
            _ => {
                walk.rest(&m.name, at, data);
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Records {
    Storages,
    Tensors,
}

/// The `storages` or `tensors` member: a count, then per record a header pickle and raw
/// bytes whose size the header (or the bytes) give; `storages` ends with a pickled list of
/// views.
fn walk_records<'data>(
    data: &'data [u8],
    at: u64,
    member: &str,
    records: Records,
    limits: &Limits,
    walk: &mut Walk<'data>,
) {
    let mut pos = 0usize;
    let pickle = |pos: &mut usize, name: String, walk: &mut Walk<'data>| -> Option<Pickle<'data>> {
        let rest = data.get(*pos..).unwrap_or_default();
        let (pickle, error) = ckpt_pickle::parse_partial(rest, at + *pos as u64, &limits.pickle);
        let len = if error.is_some() {
            rest.len()
        } else {
            pickle.byte_len()
        };
        let ok = error.is_none();
        walk.part(
            Part::stored(
                name,
                at + *pos as u64,
                rest.get(..len).unwrap_or(rest),
                Use::Pickle {
                    loader: Loader::Torch,
                    rest: Rest::Data,
                },
            )
            .with_parsed(Parsed {
                pickle: pickle.clone(),
                error,
            }),
        );
        *pos += len;
        ok.then_some(pickle)
    };
    let unaccounted = |pos: usize, walk: &mut Walk<'data>| {
        walk.anomaly(
            Anomaly::new(
                AnomalyKind::Unaccounted,
                format!(
                    "the records of `{member}` cannot be followed past here (a header that is \
                     not plain values, or a size past the member), so its rest is not \
                     accounted for"
                ),
            )
            .member(member.to_owned())
            .at(at + pos as u64),
        );
        walk.part(Part::stored(
            format!("{member} (the rest)"),
            at + pos as u64,
            data.get(pos..).unwrap_or_default(),
            Use::Probe,
        ));
    };
    let Some(count) = pickle(&mut pos, format!("{member}: the count"), walk) else {
        return;
    };
    let Some(count) = count
        .root()
        .and_then(|r| count.as_int(r))
        .and_then(|n| usize::try_from(n).ok())
    else {
        return unaccounted(pos, walk);
    };
    let kind = match records {
        Records::Storages => "storage",
        Records::Tensors => "tensor",
    };
    // Each record takes at least a few bytes: more than the member holds cannot be read.
    for index in 0..count.min(data.len()) {
        let Some(header) = pickle(&mut pos, format!("{member}: {kind} header {index}"), walk)
        else {
            return;
        };
        let skip = match records {
            Records::Storages => storage_len(&header, data, pos),
            Records::Tensors => tensor_len(data, pos),
        };
        match skip
            .and_then(|n| pos.checked_add(n))
            .filter(|&end| end <= data.len())
        {
            Some(end) => pos = end,
            None => return unaccounted(pos, walk),
        }
    }
    if records == Records::Storages
        && pickle(&mut pos, format!("{member}: the views"), walk).is_none()
    {
        return;
    }
    if pos < data.len() {
        walk.anomaly(
            Anomaly::new(
                AnomalyKind::Trailing,
                format!(
                    "{} bytes follow the last record of `{member}`; torch never reads them",
                    data.len() - pos
                ),
            )
            .member(member.to_owned())
            .at(at + pos as u64),
        );
        walk.part(Part::stored(
            format!("{member} (after the records)"),
            at + pos as u64,
            data.get(pos..).unwrap_or_default(),
            Use::Probe,
        ));
    }
}

/// The raw bytes after a storage header `(key, location, storage_type)`: an 8-byte element
/// count and the elements.
fn storage_len(header: &Pickle<'_>, data: &[u8], pos: usize) -> Option<usize> {
    let items = header.as_seq(header.root()?)?;
    let &[_, _, storage_type] = items else {
        return None;
    };
    let (module, name) = interpret::global_of(header, storage_type)?;
    let Some(StorageKind::Typed(dtype)) = interpret::storage_kind(&module, &name) else {
        return None;
    };
    let unit = dtype.byte_size()?;
    let count = u64::from_le_bytes(data.get(pos..pos.checked_add(8)?)?.try_into().ok()?);
    usize::try_from(count)
        .ok()?
        .checked_mul(unit)?
        .checked_add(8)
}

/// The raw bytes after a tensor header: a 4-byte rank, 4 bytes of padding, the sizes and
/// strides (8 bytes each per dimension) and an 8-byte storage offset.
fn tensor_len(data: &[u8], pos: usize) -> Option<usize> {
    let rank = i32::from_le_bytes(data.get(pos..pos.checked_add(4)?)?.try_into().ok()?);
    let rank = usize::try_from(rank).ok()?;
    rank.checked_mul(16)?.checked_add(16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_decide_what_a_tar_is() {
        let mut block = vec![0u8; 512];
        block[..8].copy_from_slice(b"sys_info");
        block[124..135].copy_from_slice(b"00000000000");
        block[148..156].copy_from_slice(b"        ");
        let sum: u32 = block.iter().map(|&b| u32::from(b)).sum();
        let field = format!("{sum:06o}\0 ");
        block[148..156].copy_from_slice(field.as_bytes());
        assert!(is_tar(&block));
        block[0] = b'S';
        assert!(!is_tar(&block));
        assert!(!is_tar(&[0u8; 512]));
        assert!(!is_tar(b"short"));
    }
}
