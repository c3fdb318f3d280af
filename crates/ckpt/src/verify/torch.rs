//! PyTorch's rules: the zip container and its records, the legacy stream, and tar archives
//! and plain pickles through their readers.
//!
//! The zip checks walk the central directory with the same zip reader as
//! `torch::archive`, then read every local header, data descriptor and member from the raw
//! bytes; the record checks go through `torch::archive::Archive` once the container is
//! sound enough for it to open. The pickle is parsed by the safe VM, never run; storage
//! references are read with the interpreter's own `storage_id`. Only when nothing is wrong
//! is the file read whole, so that what the reader still refuses is reported too.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;

use ckpt_pickle::{Object, ObjectId, Pickle};

use super::{
    LEGACY_HEADER, LEGACY_PICKLE, LEGACY_STORAGE_MISSING, LEGACY_STORAGE_SIZE,
    LEGACY_STORAGE_UNUSED, LEGACY_TRAILING, Problem, Rule, Severity, TORCH_BYTEORDER, TORCH_PICKLE,
    TORCH_READ, TORCH_STORAGE_MISSING, TORCH_STORAGE_REF, TORCH_STORAGE_SIZE, TORCH_STORAGE_UNUSED,
    TORCH_VERSION, TORCH_VIEW_BOUNDS, ZIP_BOUNDS, ZIP_COMPRESSION, ZIP_CRC, ZIP_DESCRIPTOR,
    ZIP_DIRECTORY, ZIP_DUPLICATE, ZIP_ENCRYPTED, ZIP_HIDDEN, ZIP_LAYOUT, ZIP_LOCAL_HEADER,
    ZIP_OVERLAP, ZIP_UNACCOUNTED,
};
use crate::error::{ErrorKind, Result};
use crate::input::Input;
use crate::limits::Limits;
use crate::model::{Checkpoint, Dtype};
use crate::torch::archive::Archive;
use crate::torch::globals::{self, Meaning, Rebuild};
use crate::torch::interpret::{self, StorageId, StorageKind};
use crate::torch::legacy::{self, MAGIC_NUMBER, PROTOCOL_VERSION};
use crate::torch::{SUPPORTED_ZIP_VERSIONS, pickle_error, pickle_int, plain_only};
use crate::walk::AnomalyKind;
use crate::walk::zip::{BZIP2, DEFLATED, LZMA, Member, STORED, Zip, method_name};

/// Bytes inflated at a time when checking the CRC of a deflated member.
const INFLATE_CHUNK: usize = 64 << 10;
/// The largest deflated member whose CRC is checked: deflate expands up to about 1032
/// times, so without a bound a small crafted file could keep verify busy for minutes.
const MAX_CRC_INFLATE: u64 = 1 << 30;

fn le64(bytes: &[u8], at: usize) -> Option<u64> {
    bytes
        .get(at..at.checked_add(8)?)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
}

fn has_errors(out: &[Problem]) -> bool {
    out.iter().any(|p| p.severity() == Severity::Error)
}

/// Checks a torch zip (or TorchScript) archive.
pub(super) fn check_zip(bytes: &[u8], limits: &Limits, out: &mut Vec<Problem>) {
    let start = out.len();
    let zip = match Zip::open(Input::new(bytes)) {
        Ok(zip) => zip,
        Err(e) => {
            out.push(Problem::from_error(&ZIP_DIRECTORY, &e));
            return;
        }
    };
    check_container(&zip, out);
    let archive = match Archive::new(zip, limits.inflated_len) {
        Ok(archive) => archive,
        Err(e) => {
            // What the container checks found is what keeps the archive closed.
            if !has_errors(out.get(start..).unwrap_or_default()) {
                out.push(Problem::from_error(&ZIP_DIRECTORY, &e));
            }
            return;
        }
    };
    check_records(&archive, limits, out);
    if out.len() == start {
        check_read(bytes, &TORCH_READ, crate::torch::read_zip_with, limits, out);
    }
}

/// The rule an anomaly of the zip container breaks.
fn container_rule(kind: AnomalyKind) -> Option<&'static Rule> {
    Some(match kind {
        AnomalyKind::ZipEntry => &ZIP_DIRECTORY,
        AnomalyKind::ZipDuplicate => &ZIP_DUPLICATE,
        AnomalyKind::ZipLocalHeader => &ZIP_LOCAL_HEADER,
        AnomalyKind::ZipBounds => &ZIP_BOUNDS,
        AnomalyKind::ZipOverlap => &ZIP_OVERLAP,
        AnomalyKind::ZipEncrypted => &ZIP_ENCRYPTED,
        AnomalyKind::ZipCompression => &ZIP_COMPRESSION,
        AnomalyKind::ZipDescriptor => &ZIP_DESCRIPTOR,
        AnomalyKind::ZipHidden => &ZIP_HIDDEN,
        AnomalyKind::ZipGap | AnomalyKind::ZipPrefix | AnomalyKind::ZipTrailing => &ZIP_UNACCOUNTED,
        _ => return None,
    })
}

/// The container: the zip's anomalies (local headers, descriptors, bounds, overlaps,
/// hidden members, bytes nobody reads), torch's rules on members (one folder, stored or
/// deflated, tensor records stored), and every member's CRC.
fn check_container(zip: &Zip<'_>, out: &mut Vec<Problem>) {
    for anomaly in &zip.anomalies {
        let Some(rule) = container_rule(anomaly.kind) else {
            continue;
        };
        let mut problem = Problem::new(rule, anomaly.message.clone());
        if let Some(member) = &anomaly.member {
            problem = problem.member(member.clone());
        }
        if let Some(offset) = anomaly.offset {
            problem = problem.offset(offset);
        }
        if anomaly.kind == AnomalyKind::ZipBounds {
            problem = problem.hint("the file is truncated; fetch it again");
        }
        out.push(problem);
    }
    let mut folder: Option<&str> = None;
    for member in &zip.members {
        let at = |rule: &'static Rule, message: String| {
            Problem::new(rule, message)
                .member(member.name.clone())
                .offset(member.header_start)
        };
        match member.name.split_once('/') {
            None => out.push(at(
                &ZIP_LAYOUT,
                "the member is not inside a folder; torch.load refuses archives whose records \
                 are not all under one folder"
                    .to_owned(),
            )),
            Some((first, _)) => match folder {
                None => folder = Some(first),
                Some(f) if f == first => {}
                Some(f) => out.push(at(
                    &ZIP_LAYOUT,
                    format!(
                        "the member is outside the archive's folder `{f}/`; torch.load refuses it"
                    ),
                )),
            },
        }
        let (Some(data_start), true) = (member.data_start, member.in_bounds) else {
            continue;
        };
        let inner = member.name.split_once('/').map_or("", |(_, r)| r);
        match member.method {
            STORED => {
                if member.compressed_size != member.size {
                    out.push(at(
                        &ZIP_LOCAL_HEADER,
                        format!(
                            "the member is stored uncompressed but the central directory \
                             declares {} bytes stored and {} in all",
                            member.compressed_size, member.size
                        ),
                    ));
                    continue;
                }
            }
            DEFLATED => {
                if inner.starts_with("data/") {
                    out.push(
                        at(
                            &ZIP_COMPRESSION,
                            "a tensor record is deflated: torch.load reads it, but \
                             torch.load(mmap=True) returns garbage for it"
                                .to_owned(),
                        )
                        .warning()
                        .hint("rewrite the archive without compression (zip -0), or save it again"),
                    );
                }
            }
            other => {
                if matches!(other, BZIP2 | LZMA) {
                    out.push(at(
                        &ZIP_COMPRESSION,
                        format!(
                            "the member uses {}; torch reads only stored and deflated members",
                            method_name(other)
                        ),
                    ));
                }
                continue;
            }
        }
        check_crc(zip, member, data_start, out);
    }
}

/// The CRC-32 of the member's (inflated) bytes must be the central directory's. An
/// archive saved with `torch.serialization.set_crc32_options(False)` records 0 for every
/// member: such CRCs are not checked.
fn check_crc(zip: &Zip<'_>, member: &Member, data_start: u64, out: &mut Vec<Problem>) {
    if member.crc32 == 0 && member.size > 0 {
        return;
    }
    let Ok(data) = zip.stored(member) else {
        return;
    };
    if member.method != STORED && member.size > MAX_CRC_INFLATE {
        out.push(
            Problem::new(
                &ZIP_COMPRESSION,
                format!(
                    "the member would inflate to {} bytes; its CRC-32 is not checked (ckpt \
                     inflates at most {MAX_CRC_INFLATE} bytes of a member)",
                    member.size
                ),
            )
            .warning()
            .member(member.name.clone())
            .offset(data_start),
        );
        return;
    }
    let actual = match member.method {
        STORED => Ok(crc32fast::hash(data)),
        _ => inflated_crc(data, member.size),
    };
    let problem = match actual {
        Ok(crc) if crc == member.crc32 => return,
        Ok(crc) => Problem::new(
            &ZIP_CRC,
            format!(
                "the member's bytes have CRC-32 {crc:08x}, not the {:08x} the archive records: \
                 they changed after the file was written (torch.load does not check and would \
                 load them)",
                member.crc32
            ),
        )
        .hint("the file is corrupted; fetch it again"),
        Err(e) => Problem::new(
            &ZIP_CRC,
            format!("the member cannot be inflated to check its CRC-32: {e}"),
        ),
    };
    out.push(problem.member(member.name.clone()).offset(data_start));
}

/// The CRC-32 of deflated `data`, which must inflate to exactly `size` bytes; read in
/// chunks, never more than `size + 1` bytes.
fn inflated_crc(data: &[u8], size: u64) -> std::io::Result<u32> {
    let mut reader = flate2::read::DeflateDecoder::new(data).take(size.saturating_add(1));
    let mut hasher = crc32fast::Hasher::new();
    let mut buffer = vec![0u8; INFLATE_CHUNK];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(buffer.get(..n).unwrap_or_default());
        total += n as u64;
    }
    if total != size {
        return Err(std::io::Error::other(format!(
            "it inflates to {total} bytes, not the {size} its entry declares"
        )));
    }
    Ok(hasher.finalize())
}

/// torch's records: `version`, `byteorder`, `data.pkl`, and every storage the pickle names.
fn check_records(archive: &Archive<'_>, limits: &Limits, out: &mut Vec<Problem>) {
    let prefix = archive.prefix().to_owned();
    let member = |name: &str| format!("{prefix}/{name}");
    let text = |name: &str| archive.text(name).ok().flatten();
    match text(".data/version").or_else(|| text("version")) {
        None => out.push(
            Problem::new(
                &TORCH_VERSION,
                "the archive has no `version` record; torch.load refuses it",
            )
            .member(member("version")),
        ),
        Some(version) => match version.parse::<u64>() {
            Ok(n) if SUPPORTED_ZIP_VERSIONS.contains(&n) => {}
            Ok(n) => out.push(
                Problem::new(
                    &TORCH_VERSION,
                    format!("the format version is {n}; torch reads versions 1 to 10"),
                )
                .member(member("version")),
            ),
            Err(_) => out.push(
                Problem::new(
                    &TORCH_VERSION,
                    format!(
                        "the `version` record is `{}`, not a number",
                        version.escape_debug()
                    ),
                )
                .member(member("version")),
            ),
        },
    }
    if let Ok(Some(order)) = archive.raw_text("byteorder")
        && order != "little"
        && order != "big"
    {
        out.push(
            Problem::new(
                &TORCH_BYTEORDER,
                format!(
                    "the `byteorder` record is `{}`, not `little` or `big` (torch.load fails)",
                    order.escape_debug()
                ),
            )
            .member(member("byteorder")),
        );
    }
    let pickle_member = member("data.pkl");
    let Some(record) = archive.get("data.pkl") else {
        out.push(
            Problem::new(&TORCH_PICKLE, "the archive has no `data.pkl` record")
                .member(pickle_member),
        );
        return;
    };
    let data = match archive.read(record) {
        Ok(data) => data,
        Err(e) => {
            out.push(Problem::from_error(&TORCH_PICKLE, &e).member(pickle_member));
            return;
        }
    };
    let base = if record.compressed { 0 } else { record.start };
    let pickle = match ckpt_pickle::parse(&data, base, &limits.pickle) {
        Ok(pickle) => pickle,
        Err(e) => {
            out.push(Problem::from_error(
                &TORCH_PICKLE,
                &pickle_error(&e, &pickle_member),
            ));
            return;
        }
    };
    let extra = data.len().saturating_sub(pickle.byte_len());
    if extra > 0 {
        out.push(
            Problem::new(
                &TORCH_PICKLE,
                format!(
                    "{extra} bytes follow the pickle's STOP; torch ignores them, and they can \
                     hide a second payload from tools that read only the first"
                ),
            )
            .warning()
            .member(pickle_member.clone())
            .offset(base + pickle.byte_len() as u64),
        );
    }
    let declared = storage_refs(&pickle, &pickle_member, &TORCH_STORAGE_REF, true, out);
    let mut sizes = HashMap::new();
    for (key, (id, at)) in &declared {
        let name = format!("data/{key}");
        let problem = |rule: &'static Rule, message: String| {
            Problem::new(rule, message)
                .member(pickle_member.clone())
                .offset(*at)
        };
        let Some(record) = archive.get(&name) else {
            out.push(problem(
                &TORCH_STORAGE_MISSING,
                format!(
                    "the pickle refers to storage `{key}` but the archive has no record `{}`",
                    member(&name)
                ),
            ));
            continue;
        };
        let expected = id.numel.checked_mul(id.kind.unit_size());
        sizes.insert(key.clone(), expected);
        if expected != Some(record.len) {
            out.push(
                Problem::new(
                    &TORCH_STORAGE_SIZE,
                    format!(
                        "the record holds {} bytes but the pickle declares {} elements of {} \
                         bytes (torch.load fails: record size does not match expected size)",
                        record.len,
                        id.numel,
                        id.kind.unit_size()
                    ),
                )
                .member(record.name.clone())
                .offset(record.start),
            );
        }
    }
    let referenced: HashSet<String> = declared.keys().map(|k| format!("data/{k}")).collect();
    for name in archive.record_names() {
        if name.starts_with("data/")
            && !referenced.contains(name)
            && let Some(record) = archive.get(name)
        {
            out.push(
                Problem::new(
                    &TORCH_STORAGE_UNUSED,
                    format!(
                        "the pickle never refers to this record ({} bytes nobody loads)",
                        record.len
                    ),
                )
                .member(record.name.clone())
                .offset(record.start),
            );
        }
    }
    check_views(&pickle, &pickle_member, &sizes, out);
}

/// Every storage reference of `pickle`, by key (the first reference of a key decides, as
/// in torch), with where it is; malformed references are reported under `rule`, and so are
/// persistent ids of other kinds when `storages_only` (a zip has no others).
fn storage_refs(
    pickle: &Pickle<'_>,
    member: &str,
    rule: &'static Rule,
    storages_only: bool,
    out: &mut Vec<Problem>,
) -> BTreeMap<String, (StorageId, u64)> {
    let mut refs = BTreeMap::new();
    for (id, object) in pickle.objects() {
        let Object::PersistentId(pid) = object else {
            continue;
        };
        match interpret::storage_id(pickle, *pid) {
            Ok(Some(storage)) => {
                refs.entry(storage.key.clone())
                    .or_insert((storage, pickle.offset(id)));
            }
            Ok(None) if storages_only => out.push(
                Problem::new(
                    rule,
                    "the persistent id is not a storage reference (torch.load fails on it)",
                )
                .member(member.to_owned())
                .offset(pickle.offset(id)),
            ),
            Ok(None) => {}
            Err(e) => out.push(Problem::from_error(rule, &e).member(member.to_owned())),
        }
    }
    refs
}

/// Every tensor view must stay inside its storage: `offset + Σ (size-1)·stride` elements,
/// plus one, fit in the bytes the storage's reference declares (`sizes`, by key).
fn check_views(
    pickle: &Pickle<'_>,
    member: &str,
    sizes: &HashMap<String, Option<u64>>,
    out: &mut Vec<Problem>,
) {
    let names = value_names(pickle);
    for (id, object) in pickle.objects() {
        let Object::Call { callable, args } = object else {
            continue;
        };
        let Some((module, function)) = interpret::global_of(pickle, *callable) else {
            continue;
        };
        // The rebuild functions whose arguments start `(storage, offset, size, stride)`.
        let Some(Meaning::Rebuild(
            rebuild @ (Rebuild::Tensor | Rebuild::TensorV2 | Rebuild::TensorV3 | Rebuild::QTensor),
        )) = globals::meaning(&module, &function)
        else {
            continue;
        };
        let Some(&[storage, offset, size, stride, ref rest @ ..]) = pickle.as_seq(*args) else {
            continue;
        };
        let Object::PersistentId(pid) = pickle.get(storage) else {
            continue;
        };
        let Ok(Some(storage)) = interpret::storage_id(pickle, *pid) else {
            continue;
        };
        if storage.view.is_some() {
            continue;
        }
        let Some(Some(storage_bytes)) = sizes.get(&storage.key) else {
            continue;
        };
        // `_rebuild_tensor_v3` names the dtype (its storage is untyped, counted in bytes).
        let element = match (rebuild, rest.get(2), storage.kind) {
            (Rebuild::TensorV3, Some(&dtype), _) => interpret::global_of(pickle, dtype)
                .and_then(|(_, name)| Dtype::from_name(&name))
                .and_then(Dtype::byte_size),
            (_, _, StorageKind::Typed(dtype)) => dtype.byte_size(),
            (_, _, StorageKind::Untyped) => Some(1),
        };
        let ints = |id: ObjectId| -> Option<Vec<i64>> {
            pickle
                .as_seq(id)?
                .iter()
                .map(|&i| pickle.as_int(i))
                .collect()
        };
        let (Some(element), Some(offset), Some(size), Some(stride)) =
            (element, pickle.as_int(offset), ints(size), ints(stride))
        else {
            continue;
        };
        let needed = view_extent(offset, &size, &stride)
            .and_then(|elements| elements.checked_mul(element as u128));
        let fits = needed.is_some_and(|n| n <= u128::from(*storage_bytes));
        if !fits || size.len() != stride.len() {
            let needs =
                needed.map_or_else(|| "an impossible number of".to_owned(), |n| n.to_string());
            let mut problem = Problem::new(
                &TORCH_VIEW_BOUNDS,
                format!(
                    "the tensor (storage offset {offset}, size {size:?}, stride {stride:?}) \
                     needs {needs} bytes of storage `{}`, which holds {storage_bytes} \
                     (torch.load fails)",
                    storage.key
                ),
            )
            .member(member.to_owned())
            .offset(pickle.offset(id));
            if let Some(name) = names.get(&id) {
                problem = problem.tensor(name.clone());
            }
            out.push(problem);
        }
    }
}

/// How many elements of its storage a view reaches (`0` for an empty view), or `None`
/// when its numbers are negative or inconsistent.
fn view_extent(offset: i64, size: &[i64], stride: &[i64]) -> Option<u128> {
    if size.len() != stride.len() {
        return None;
    }
    let offset = u128::try_from(offset).ok()?;
    let mut last = offset;
    for (&n, &s) in size.iter().zip(stride) {
        let n = u128::try_from(n).ok()?;
        let s = u128::try_from(s).ok()?;
        if n == 0 {
            return Some(0);
        }
        last = last.checked_add((n - 1).checked_mul(s)?)?;
    }
    last.checked_add(1)
}

/// The dict key under which each object of the pickle is stored (the key of a state
/// dict), also for the tensor inside a `_rebuild_parameter` call.
fn value_names(pickle: &Pickle<'_>) -> HashMap<ObjectId, String> {
    let mut names = HashMap::new();
    for (_, object) in pickle.objects() {
        if let Object::Dict(entries) = object {
            for &(key, value) in entries {
                if let Some(key) = interpret::text(pickle, key) {
                    names.entry(value).or_insert(key);
                }
            }
        }
    }
    for (id, object) in pickle.objects() {
        if let Object::Call { callable, args } = object
            && interpret::global_of(pickle, *callable)
                .is_some_and(|(_, name)| name.starts_with("_rebuild_parameter"))
            && let Some(&inner) = pickle.as_seq(*args).and_then(<[ObjectId]>::first)
            && let Some(name) = names.get(&id).cloned()
        {
            names.entry(inner).or_insert(name);
        }
    }
    names
}

/// Reads the file with `read`; what it still refuses is a problem under `rule` (a warning
/// when the refusal is about code or an unsupported feature, not about structure).
pub(super) fn check_read(
    bytes: &[u8],
    rule: &'static Rule,
    read: for<'a> fn(&'a [u8], &Limits) -> Result<Checkpoint<'a>>,
    limits: &Limits,
    out: &mut Vec<Problem>,
) {
    if let Err(e) = read(bytes, limits) {
        let problem = Problem::from_error(rule, &e);
        out.push(match e.kind() {
            ErrorKind::Refused | ErrorKind::Unsupported => problem.warning(),
            _ => problem,
        });
    }
}

/// Checks a legacy `torch.save` stream: the leading pickles, every storage present with
/// the size the pickle declares, nothing after the last one.
pub(super) fn check_legacy(bytes: &[u8], limits: &Limits, out: &mut Vec<Problem>) {
    let start = out.len();
    let pickles = legacy::stream_pickles(bytes, 0, limits);
    for part in &pickles {
        // The object pickle and the key list are the stream's own pickles; the three before
        // them are headers of plain values.
        let rule = if part.name == "object pickle" || part.name == "storage keys" {
            &LEGACY_PICKLE
        } else {
            &LEGACY_HEADER
        };
        if let Some(error) = &part.error {
            out.push(Problem::from_error(rule, &pickle_error(error, part.name)));
            return;
        }
        if part.name != "object pickle"
            && let Err(e) = plain_only(&part.pickle, part.name)
        {
            out.push(Problem::from_error(rule, &e));
            return;
        }
        match part.name {
            "magic number" if pickle_int(&part.pickle).as_deref() != Some(MAGIC_NUMBER) => {
                out.push(
                    Problem::new(
                        &LEGACY_HEADER,
                        "the file does not start with torch's magic number",
                    )
                    .offset(0),
                );
                return;
            }
            "protocol version" => {
                let version = part.pickle.root().and_then(|r| part.pickle.as_int(r));
                if version != Some(PROTOCOL_VERSION) {
                    out.push(
                        Problem::new(
                            &LEGACY_HEADER,
                            format!(
                                "the protocol version is {}; torch reads only {PROTOCOL_VERSION}",
                                version
                                    .map_or_else(|| "not a number".to_owned(), |v| v.to_string())
                            ),
                        )
                        .offset(part.start as u64),
                    );
                    return;
                }
            }
            _ => {}
        }
    }
    let main_member = "object pickle";
    let [.., main, keys_part] = &pickles[..] else {
        return;
    };
    if pickles.len() < legacy::PICKLES.len() {
        out.push(
            Problem::new(
                &LEGACY_PICKLE,
                "the stream ends before its storage key list",
            )
            .offset((keys_part.start + keys_part.len) as u64)
            .hint("the file is truncated; fetch it again"),
        );
        return;
    }
    let main = &main.pickle;
    let mut pos = keys_part.start + keys_part.len;
    let keys: Option<Vec<String>> = {
        let pickle = &keys_part.pickle;
        pickle
            .root()
            .and_then(|r| pickle.as_seq(r))
            .and_then(|list| list.iter().map(|&k| interpret::text(pickle, k)).collect())
    };
    let Some(keys) = keys else {
        if out.len() == start {
            out.push(
                Problem::new(
                    &LEGACY_PICKLE,
                    "the storage key list is not a list of text keys",
                )
                .member("storage keys")
                .offset(keys_part.start as u64),
            );
        }
        return;
    };
    let declared = storage_refs(main, main_member, &LEGACY_PICKLE, false, out);
    let listed: HashSet<&str> = keys.iter().map(String::as_str).collect();
    for (key, (_, at)) in &declared {
        if !listed.contains(key.as_str()) {
            out.push(
                Problem::new(
                    &LEGACY_STORAGE_MISSING,
                    format!("the pickle refers to storage `{key}`, which the stream does not hold"),
                )
                .member(main_member)
                .offset(*at),
            );
        }
    }
    let mut sizes = HashMap::new();
    for key in &keys {
        let Some(count) = le64(bytes, pos) else {
            out.push(
                Problem::new(
                    &LEGACY_STORAGE_MISSING,
                    format!("the stream ends before storage `{key}`"),
                )
                .offset(pos as u64)
                .hint("the file is truncated; fetch it again"),
            );
            return;
        };
        let Some((id, _)) = declared.get(key) else {
            out.push(
                Problem::new(
                    &LEGACY_STORAGE_UNUSED,
                    format!(
                        "the stream holds storage `{key}`, which the object pickle never refers \
                         to (torch.load fails on it)"
                    ),
                )
                .offset(pos as u64),
            );
            // Its element size is unknown, so where the next storage starts is too.
            return;
        };
        let unit = id.kind.unit_size();
        if count != id.numel {
            out.push(
                Problem::new(
                    &LEGACY_STORAGE_SIZE,
                    format!(
                        "storage `{key}` holds {count} elements but the pickle declares {}",
                        id.numel
                    ),
                )
                .offset(pos as u64),
            );
        }
        sizes.insert(key.clone(), id.numel.checked_mul(unit));
        let end_of = |count: u64| {
            count
                .checked_mul(unit)
                .and_then(|len| usize::try_from(len).ok())
                .and_then(|len| pos.checked_add(8)?.checked_add(len))
                .filter(|&end| end <= bytes.len())
        };
        // A damaged count whose declared size still fits: the count is what is wrong.
        let end = end_of(count).or_else(|| (count != id.numel).then(|| end_of(id.numel)).flatten());
        let Some(end) = end else {
            out.push(
                Problem::new(
                    &LEGACY_STORAGE_MISSING,
                    format!(
                        "storage `{key}` declares {count} elements of {unit} bytes, past the end \
                         of the file"
                    ),
                )
                .offset(pos as u64)
                .hint("the file is truncated; fetch it again"),
            );
            return;
        };
        pos = end;
    }
    if pos != bytes.len() {
        out.push(
            Problem::new(
                &LEGACY_TRAILING,
                format!(
                    "{} bytes follow the last storage; torch ignores them, and they can hide data",
                    bytes.len() - pos
                ),
            )
            .offset(pos as u64),
        );
    }
    check_views(main, main_member, &sizes, out);
    if out.len() == start {
        check_read(
            bytes,
            &TORCH_READ,
            crate::torch::read_legacy_with,
            limits,
            out,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extents() {
        assert_eq!(view_extent(0, &[2, 3], &[3, 1]), Some(6));
        assert_eq!(view_extent(1, &[2], &[3]), Some(5));
        assert_eq!(view_extent(0, &[], &[]), Some(1));
        assert_eq!(view_extent(9, &[0, 3], &[3, 1]), Some(0));
        assert_eq!(view_extent(-1, &[2], &[1]), None);
        assert_eq!(view_extent(0, &[2], &[1, 1]), None);
        assert!(view_extent(0, &[i64::MAX, i64::MAX], &[i64::MAX, i64::MAX]).is_some());
    }

    #[test]
    fn deflated_crc_checks_the_inflated_size() {
        use std::io::Write;
        let mut encoder =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(b"hello hello hello").unwrap();
        let deflated = encoder.finish().unwrap();
        assert_eq!(
            inflated_crc(&deflated, 17).unwrap(),
            crc32fast::hash(b"hello hello hello")
        );
        assert!(inflated_crc(&deflated, 16).is_err());
        assert!(inflated_crc(&deflated, 18).is_err());
        assert!(inflated_crc(b"\xff\xff\xff", 3).is_err());
    }
}
