//! Every place a pickle can hide in a file: the pickles of a legacy stream and what
//! follows its storages, every zip member that reads as a pickle (whatever its name),
//! compressed members, numpy object arrays, bytes after a pickle's `STOP`, zip archives
//! appended to other files, and the zip anomalies that make two readers disagree.
//!
//! Only pickles, headers and directories are read: tensor storages are never touched
//! (a storage record is only sniffed), so scanning a 500 MB checkpoint reads kilobytes.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use ckpt_pickle::{Limits, Object};

use super::pickle::{Trailing, looks_like_pickle, scan_one, scan_stream, scan_trailing};
use super::{Category, Collector, Finding, Report, ScanOptions, Verdict};
use crate::error::{Error, ErrorKind, Result};
use crate::format::{self, Format};
use crate::source::Source;
use crate::torch::archive::{ZipMember, local_header_disagreements};

/// The most files a folder walk collects.
const MAX_FILES: usize = 1 << 20;
/// The deepest folder nesting walked.
const MAX_DEPTH: usize = 64;

/// Scans the file at `path`: opens it read-only (memory-mapped) and judges every pickle
/// it holds. Never fails: problems are [`Report::errors`].
pub fn scan_file(path: &Path, options: &ScanOptions) -> Report {
    let mut report = Report::new(path);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name.ends_with(".distcp") {
        scan_distcp(path, options, &mut report);
        return report;
    }
    match Source::open_file(path) {
        Ok(source) => {
            source.advise(crate::Access::Sparse);
            let mut scanned = scan_bytes(source.bytes(), &name, options);
            scanned.path = path.to_path_buf();
            for error in scanned.errors.iter_mut() {
                let taken = std::mem::replace(error, Error::invalid(""));
                *error = taken.with_path(path);
            }
            scanned
        }
        Err(error) => {
            report.errors.push(error);
            report
        }
    }
}

/// A `.distcp` file holds raw tensor bytes and `torch.save` archives of plain values at
/// places its folder's `.metadata` names: it is checked by reading the folder as a
/// checkpoint, whose reader accepts only data. A metadata refused for its globals is the
/// `.metadata` file's finding, not this file's.
fn scan_distcp(path: &Path, options: &ScanOptions, report: &mut Report) {
    report.format = Some("torch-dcp data".to_owned());
    let folder = path.parent().unwrap_or(Path::new("."));
    let _ = options;
    match Source::open(folder).and_then(|s| s.checkpoint().map(|_| ())) {
        Ok(()) => {}
        // The metadata names a global outside DCP's dataclasses: the `.metadata` file's
        // own report says so; this file holds only what the metadata points into.
        Err(e) if e.kind() == ErrorKind::Refused => {}
        Err(e) => report.errors.push(e.with_path(path)),
    }
}

/// Scans the bytes of one file named `name` (the name only tells `.metadata`, `.npy` and
/// index files apart; formats are detected from the content).
pub fn scan_bytes(bytes: &[u8], name: &str, options: &ScanOptions) -> Report {
    let mut report = Report::new(Path::new(name));
    let mut c = Collector::new(options);
    let format = scan_into(&mut c, bytes, name);
    report.format = format;
    c.into_report(&mut report);
    report
}

fn scan_into(c: &mut Collector<'_>, bytes: &[u8], name: &str) -> Option<String> {
    if bytes.is_empty() {
        c.errors.push(Error::new(
            ErrorKind::NotACheckpoint,
            "the file is empty (0 bytes)",
        ));
        return None;
    }
    if bytes.starts_with(NPY_MAGIC) {
        scan_npy(c, bytes, 0, name);
        return Some("npy".to_owned());
    }
    if name == ".metadata" {
        scan_stream(c, bytes, 0, ".metadata", Trailing::Report, true);
        return Some("torch-dcp metadata".to_owned());
    }
    if name.ends_with(".json") {
        scan_index(c, bytes);
        return Some("shard index".to_owned());
    }
    if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        let format = match format::detect(bytes) {
            Ok(format) => format.name().to_owned(),
            Err(_) if bytes.starts_with(b"PK") => "zip".to_owned(),
            Err(_) => "zip".to_owned(),
        };
        scan_zip(c, bytes, 0);
        return Some(format);
    }
    let format = match format::detect(bytes) {
        Ok(format) => format,
        Err(error) => {
            c.errors.push(error);
            scan_appended_zip(c, bytes, 0);
            return None;
        }
    };
    let mut appended = true;
    match format {
        Format::Safetensors => appended = !scan_safetensors(c, bytes),
        Format::TorchLegacy => scan_legacy(c, bytes),
        Format::TorchTar => scan_tar(c, bytes),
        Format::Pickle => {
            scan_stream(c, bytes, 0, "pickle", Trailing::Report, true);
        }
        Format::TorchZip | Format::TorchScript | Format::DistributedCheckpoint => {
            scan_zip(c, bytes, 0);
        }
    }
    if appended {
        scan_appended_zip(c, bytes, 0);
    }
    Some(format.name().to_owned())
}

// --- safetensors and JSON: no code, structure checked ---

/// Checks a safetensors header; `true` when it is valid (and what follows the data was
/// judged).
fn scan_safetensors(c: &mut Collector<'_>, bytes: &[u8]) -> bool {
    match crate::safetensors::read_header(bytes) {
        Ok(header) => {
            let data_start = header.data_start();
            let end = header
                .entries()
                .iter()
                .map(|e| e.file_range.1)
                .max()
                .unwrap_or(data_start);
            let end = usize::try_from(end).unwrap_or(usize::MAX).min(bytes.len());
            let rest = bytes.get(end..).unwrap_or_default();
            if !rest.is_empty() {
                c.container(
                    Verdict::Unsafe,
                    None,
                    Some(end as u64),
                    format!(
                        "{} bytes follow the last tensor's data; safetensors readers never read \
                         them, but other tools may (a polyglot)",
                        rest.len()
                    ),
                );
                if rest.starts_with(b"PK\x03\x04") {
                    scan_zip_at(c, bytes, end);
                } else if looks_like_pickle(rest) {
                    scan_trailing(c, rest, end as u64, "after the data");
                }
            }
            true
        }
        Err(error) => {
            c.errors.push(error);
            false
        }
    }
}

fn scan_index(c: &mut Collector<'_>, bytes: &[u8]) {
    if let Err(error) = crate::source::index_shards(bytes) {
        c.errors.push(error);
    }
}

// --- numpy ---

const NPY_MAGIC: &[u8] = b"\x93NUMPY";

/// A `.npy` array at `start`: an object array (`O` in its dtype) is a pickle after the
/// header, which is scanned.
fn scan_npy(c: &mut Collector<'_>, bytes: &[u8], base: u64, member: &str) {
    let header = (|| {
        let major = *bytes.get(6)?;
        let (len, skip): (usize, usize) = match major {
            1 => (
                usize::from(u16::from_le_bytes(bytes.get(8..10)?.try_into().ok()?)),
                10,
            ),
            2 | 3 => (
                usize::try_from(u32::from_le_bytes(bytes.get(8..12)?.try_into().ok()?)).ok()?,
                12,
            ),
            _ => return None,
        };
        let end = skip.checked_add(len)?;
        Some((bytes.get(skip..end)?, end))
    })();
    let Some((header, data_start)) = header else {
        c.errors.push(
            Error::malformed("the .npy header cannot be read")
                .with_member(member.to_owned())
                .at_offset(base),
        );
        return;
    };
    let text = String::from_utf8_lossy(header);
    let descr = text
        .split("'descr':")
        .nth(1)
        .and_then(|rest| rest.split("'fortran_order'").next())
        .unwrap_or(&text);
    let object = descr.contains("|O") || descr.contains("'O'") || descr.contains("\"O\"");
    if object {
        let label = format!("{member} (object array)");
        scan_stream(
            c,
            bytes.get(data_start..).unwrap_or_default(),
            base + data_start as u64,
            &label,
            Trailing::Report,
            true,
        );
    }
}

// --- legacy stream ---

const LEGACY_PICKLES: [&str; 5] = [
    "magic number",
    "protocol version",
    "sys_info",
    "object pickle",
    "storage keys",
];

fn scan_legacy(c: &mut Collector<'_>, bytes: &[u8]) {
    let mut pos = 0usize;
    let mut starts = Vec::new();
    for name in LEGACY_PICKLES {
        let Some(len) = scan_one(
            c,
            bytes.get(pos..).unwrap_or_default(),
            pos as u64,
            name,
            true,
        ) else {
            return;
        };
        starts.push(pos);
        pos += len;
    }
    // Then the storages: an element count and the bytes of each key, in key order.
    let (Some(&main), Some(&keys)) = (starts.get(3), starts.get(4)) else {
        return;
    };
    match legacy_storages_end(bytes, main, keys, pos, &c.options.limits.pickle) {
        Some(end) => {
            scan_trailing(
                c,
                bytes.get(end..).unwrap_or_default(),
                end as u64,
                "after the storages",
            );
        }
        None => c.errors.push(
            Error::malformed(
                "cannot tell where the storages of the legacy stream end, so what follows them \
                 was not scanned",
            )
            .at_offset(pos as u64),
        ),
    }
}

/// Where the storage records of a legacy stream end, from the storage keys and how the
/// object pickle declares each storage (count headers are read, storage bytes are not).
fn legacy_storages_end(
    bytes: &[u8],
    main: usize,
    keys: usize,
    mut pos: usize,
    limits: &Limits,
) -> Option<usize> {
    let main = ckpt_pickle::parse(bytes.get(main..)?, main as u64, limits).ok()?;
    let keys_pickle = ckpt_pickle::parse(bytes.get(keys..)?, keys as u64, limits).ok()?;
    let mut units: HashMap<String, u64> = HashMap::new();
    for (_, object) in main.objects() {
        if let Object::PersistentId(pid) = object
            && let Ok(Some(storage)) = crate::torch::interpret::storage_id(&main, *pid)
        {
            units.entry(storage.key).or_insert(storage.kind.unit_size());
        }
    }
    let keys = keys_pickle.as_seq(keys_pickle.root()?)?;
    for &key in keys {
        let key = crate::torch::interpret::text(&keys_pickle, key)?;
        let unit = *units.get(&key)?;
        let count = u64::from_le_bytes(bytes.get(pos..pos.checked_add(8)?)?.try_into().ok()?);
        let len = usize::try_from(count.checked_mul(unit)?).ok()?;
        pos = pos.checked_add(8)?.checked_add(len)?;
        if pos > bytes.len() {
            return None;
        }
    }
    Some(pos)
}

// --- tar (torch <= 0.3) ---

fn scan_tar(c: &mut Collector<'_>, bytes: &[u8]) {
    let members = match crate::torch::tar::tar_members(bytes) {
        Ok(members) => members,
        Err(error) => {
            c.errors.push(error);
            return;
        }
    };
    let mut names: Vec<(&String, &(usize, usize))> = members.iter().collect();
    names.sort();
    for (name, &(start, len)) in names {
        let data = bytes
            .get(start..start.saturating_add(len))
            .unwrap_or_default();
        if looks_like_pickle(data) {
            // `tensors` and `storages` are a pickle followed by raw records.
            let trailing = if matches!(name.as_str(), "sys_info" | "pickle") {
                Trailing::Report
            } else {
                Trailing::Ignore
            };
            scan_stream(c, data, start as u64, name, trailing, true);
        }
    }
}

// --- zip ---

/// The end of central directory record: where it is and where the archive ends.
fn find_eocd(bytes: &[u8]) -> Option<(usize, usize)> {
    let from = bytes.len().saturating_sub(22 + 65535);
    let tail = bytes.get(from..)?;
    let at = tail.windows(4).rposition(|w| w == b"PK\x05\x06")?;
    let pos = from + at;
    let comment_len = usize::from(u16::from_le_bytes(
        bytes.get(pos + 20..pos + 22)?.try_into().ok()?,
    ));
    Some((pos, pos + 22 + comment_len))
}

/// A zip archive appended to a file of another format (a polyglot): reported, and its
/// members scanned.
fn scan_appended_zip(c: &mut Collector<'_>, bytes: &[u8], base: usize) {
    let Some((eocd, _)) = find_eocd(bytes) else {
        return;
    };
    // The archive starts at the first local header before its directory.
    let Some(start) = bytes
        .get(..eocd)
        .and_then(|head| head.windows(4).position(|w| w == b"PK\x03\x04"))
    else {
        return;
    };
    if start == 0 {
        return;
    }
    c.container(
        Verdict::Unsafe,
        None,
        Some((base + start) as u64),
        "a zip archive is appended to the file (a polyglot): zip readers see it, the \
         file's own format does not; its members are scanned too",
    );
    scan_zip_at(c, bytes, start);
}

/// Scans a zip archive starting at `start` of `bytes` (offsets in the archive count from
/// `start`).
fn scan_zip_at(c: &mut Collector<'_>, bytes: &[u8], start: usize) {
    scan_zip(c, bytes.get(start..).unwrap_or_default(), start as u64);
}

fn le16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn le32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn scan_zip(c: &mut Collector<'_>, bytes: &[u8], base: u64) {
    let mut zip = match crate::torch::open_zip(bytes) {
        Ok(zip) => zip,
        Err(e) => {
            c.errors.push(
                Error::malformed(format!("the zip archive cannot be read: {e}")).at_offset(base),
            );
            return;
        }
    };
    if zip.has_duplicate_names() {
        c.container(
            Verdict::Dangerous,
            None,
            None,
            "two members share a name: readers disagree on which one counts (a scanner may \
             read one, torch the other); both are scanned",
        );
    }
    let mut members = Vec::new();
    for index in 0..zip.len() {
        let file = match zip.by_index_raw(index) {
            Ok(file) => file,
            Err(e) => {
                c.errors.push(
                    Error::malformed(format!("zip entry {index} cannot be read: {e}"))
                        .at_offset(base),
                );
                continue;
            }
        };
        // Only members whose data can be located are scanned as members.
        if file.data_start().is_some() {
            members.push(ZipMember::of(&file));
        }
    }
    drop(zip);
    scan_hidden_members(c, bytes, base, &members);
    let mut code_seen = false;
    for member in &members {
        check_local_header(c, bytes, base, member);
        let inner = member
            .name
            .split_once('/')
            .map_or(member.name.as_str(), |(_, r)| r);
        if !code_seen && (inner.starts_with("code/") || member.name.starts_with("code/")) {
            code_seen = true;
            c.add(Finding {
                verdict: Verdict::Unsafe,
                category: Category::Code,
                global: None,
                usage: None,
                member: Some(member.name.clone()),
                offset: Some(base + member.header_start),
                count: 1,
                why: "TorchScript code: torch.jit.load compiles and runs it (it can read and \
                      write files); `ckpt convert` extracts the tensors without it"
                    .to_owned(),
            });
        }
        if member.encrypted {
            c.container(
                Verdict::Dangerous,
                Some(&member.name),
                Some(base + member.header_start),
                "the member is flagged encrypted: Python's zipfile (and scanners built on it) \
                 refuse it while torch's reader ignores the flag and loads it; scanned as stored",
            );
        }
        scan_member(c, bytes, base, member, inner);
    }
    if let Some((_, end)) = find_eocd(bytes)
        && end < bytes.len()
    {
        let rest = bytes.get(end..).unwrap_or_default();
        c.container(
            Verdict::Unsafe,
            None,
            Some(base + end as u64),
            format!("{} bytes follow the end of the zip archive", rest.len()),
        );
        if looks_like_pickle(rest) {
            scan_trailing(c, rest, base + end as u64, "after the archive");
        }
    }
}

/// Walks the local headers from the start of the archive, as a streaming reader does: a
/// member that the central directory does not list is seen by streaming readers only.
/// The walk stops at the first header whose size is deferred to a data descriptor.
fn scan_hidden_members(c: &mut Collector<'_>, bytes: &[u8], base: u64, members: &[ZipMember]) {
    let listed: HashSet<u64> = members.iter().map(|m| m.header_start).collect();
    let mut at = 0usize;
    let mut walked = 0usize;
    while bytes.get(at..at + 4) == Some(b"PK\x03\x04") && walked < MAX_FILES {
        walked += 1;
        let (Some(flags), Some(method), Some(csize), Some(nlen), Some(elen)) = (
            le16(bytes, at + 6),
            le16(bytes, at + 8),
            le32(bytes, at + 18),
            le16(bytes, at + 26),
            le16(bytes, at + 28),
        ) else {
            return;
        };
        let name_end = at + 30 + usize::from(nlen);
        let data_start = name_end + usize::from(elen);
        let Ok(csize) = usize::try_from(csize) else {
            return;
        };
        if !listed.contains(&(at as u64)) {
            let name = bytes
                .get(at + 30..name_end)
                .map(String::from_utf8_lossy)
                .unwrap_or_default()
                .into_owned();
            c.container(
                Verdict::Dangerous,
                Some(&name),
                Some(base + at as u64),
                "a member that the central directory does not list: streaming readers see \
                 it, directory readers (and most scanners) do not",
            );
            if method == 0
                && let Some(data) = bytes.get(data_start..data_start.saturating_add(csize))
                && looks_like_pickle(data)
            {
                scan_stream(
                    c,
                    data,
                    base + data_start as u64,
                    &name,
                    Trailing::Report,
                    false,
                );
            }
        }
        if flags & 0x8 != 0 || csize == u32::MAX as usize {
            return;
        }
        at = data_start.saturating_add(csize);
    }
}

/// Compares a member's local header with its central directory entry: a mismatch makes
/// streaming readers and directory readers see different files.
fn check_local_header(c: &mut Collector<'_>, bytes: &[u8], base: u64, member: &ZipMember) {
    for why in local_header_disagreements(bytes, member) {
        c.container(
            Verdict::Dangerous,
            Some(&member.name),
            Some(base + member.header_start),
            why,
        );
    }
}

/// Whether a member is named as a pickle (`data.pkl`, `constants.pkl`, `*.pickle`): a
/// parse error there is an error, not a sign that it is something else.
fn must_be_pickle(inner: &str) -> bool {
    inner.ends_with(".pkl") || inner.ends_with(".pickle")
}

/// Whether a member is a tensor storage record (`<folder>/data/<key>`, TorchScript's
/// `.data/`), which loaders never unpickle.
fn is_storage_record(inner: &str) -> bool {
    inner.starts_with("data/") || inner.starts_with(".data/")
}

fn scan_member(c: &mut Collector<'_>, bytes: &[u8], base: u64, member: &ZipMember, inner: &str) {
    // Every member listed for scanning has its data start (see `scan_zip`).
    let Some(data_start) = member.data_start else {
        return;
    };
    let (Ok(start), Ok(len)) = (
        usize::try_from(data_start),
        usize::try_from(member.compressed_size),
    ) else {
        return;
    };
    let Some(stored) = start.checked_add(len).and_then(|end| bytes.get(start..end)) else {
        c.errors.push(
            Error::malformed("the member's data lies outside the file")
                .with_member(member.name.clone())
                .at_offset(base + data_start),
        );
        return;
    };
    let storage = is_storage_record(inner);
    match member.method {
        zip::CompressionMethod::Stored => {
            let plausible = if storage {
                ckpt_pickle::sniff(stored).is_some() && stored.len() < (64 << 20)
            } else {
                looks_like_pickle(stored) || stored.starts_with(NPY_MAGIC)
            };
            if !plausible {
                return;
            }
            scan_blob(c, stored, base + data_start, &member.name, storage, must_be_pickle(inner));
        }
        zip::CompressionMethod::Deflated => {
            // Sniff the first bytes, inflate the whole member only when it is a pickle.
            let mut head = Vec::new();
            let _ = flate2::read::DeflateDecoder::new(stored)
                .take(64)
                .read_to_end(&mut head);
            if !(looks_like_pickle(&head) || head.starts_with(NPY_MAGIC)) {
                return;
            }
            let max = c.options.limits.inflated_len;
            let mut out = Vec::new();
            let inflated = flate2::read::DeflateDecoder::new(stored)
                .take(max.saturating_add(1))
                .read_to_end(&mut out);
            if inflated.is_err() || out.len() as u64 > max {
                c.container(
                    Verdict::Unsafe,
                    Some(&member.name),
                    Some(base + data_start),
                    format!(
                        "a compressed member that starts like a pickle cannot be inflated \
                         within {max} bytes (the `inflated-len` limit), so it was not scanned"
                    ),
                );
                return;
            }
            let label = format!("{} (inflated)", member.name);
            scan_blob(c, &out, 0, &label, storage, must_be_pickle(inner));
        }
        other => c.container(
            Verdict::Unsafe,
            Some(&member.name),
            Some(base + member.header_start),
            format!("the member uses compression {other:?}, which ckpt does not inflate, so it was not scanned"),
        ),
    }
}

/// A member's bytes: a `.npy` array or a pickle stream.
fn scan_blob(
    c: &mut Collector<'_>,
    data: &[u8],
    base: u64,
    member: &str,
    storage: bool,
    must: bool,
) {
    if data.starts_with(NPY_MAGIC) {
        scan_npy(c, data, base, member);
        return;
    }
    if storage {
        // Tensor bytes that happen to start like a pickle: judged only if they are one.
        if ckpt_pickle::parse(data, base, &c.options.limits.pickle).is_ok() {
            scan_stream(c, data, base, member, Trailing::Ignore, true);
        }
        return;
    }
    scan_stream(c, data, base, member, Trailing::Report, must);
}

// --- folders ---

/// The files to scan under `paths`: files as given, folders walked recursively (symbolic
/// links followed, loops skipped), and the shards a given shard index names. Each file
/// once, in a deterministic order; paths that cannot be read are errors.
pub fn collect_files(paths: &[PathBuf]) -> Vec<Result<PathBuf>> {
    let mut out = Vec::new();
    let mut seen_files = HashSet::new();
    let mut seen_dirs = HashSet::new();
    for path in paths {
        let metadata = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) => {
                out.push(Err(Error::io("cannot open", path, e)));
                continue;
            }
        };
        if metadata.is_dir() {
            walk_dir(path, 0, &mut seen_dirs, &mut seen_files, &mut out);
        } else {
            push_file(path, &mut seen_files, &mut out);
            // An index brings its shards.
            let is_index = path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().ends_with(".index.json"));
            if is_index
                && let Ok(bytes) = std::fs::read(path)
                && let Ok(shards) = crate::source::index_shards(&bytes)
            {
                let folder = path.parent().unwrap_or(Path::new("."));
                for shard in shards {
                    if !shard.contains(['/', '\\']) && shard != ".." {
                        push_file(&folder.join(shard), &mut seen_files, &mut out);
                    }
                }
            }
        }
    }
    out
}

fn push_file(path: &Path, seen: &mut HashSet<PathBuf>, out: &mut Vec<Result<PathBuf>>) {
    let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    if seen.insert(key) && out.len() < MAX_FILES {
        out.push(Ok(path.to_path_buf()));
    }
}

fn walk_dir(
    dir: &Path,
    depth: usize,
    seen_dirs: &mut HashSet<PathBuf>,
    seen_files: &mut HashSet<PathBuf>,
    out: &mut Vec<Result<PathBuf>>,
) {
    let Ok(canonical) = std::fs::canonicalize(dir) else {
        out.push(Err(
            Error::invalid("cannot resolve the folder").with_path(dir)
        ));
        return;
    };
    if depth > MAX_DEPTH || !seen_dirs.insert(canonical) {
        return; // a symbolic link loop, or absurd nesting
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            out.push(Err(Error::io("cannot list", dir, e)));
            return;
        }
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        match std::fs::metadata(&path) {
            Ok(m) if m.is_dir() => walk_dir(&path, depth + 1, seen_dirs, seen_files, out),
            Ok(_) => {
                if worth_scanning(&path) {
                    push_file(&path, seen_files, out);
                }
            }
            // A dangling link or a file we may not read.
            Err(e) => out.push(Err(Error::io("cannot open", &path, e))),
        }
    }
}

/// Extensions of files that hold (or may hold) pickles or weights.
const EXTENSIONS: &[&str] = &[
    "pt",
    "pth",
    "bin",
    "ckpt",
    "pkl",
    "pickle",
    "joblib",
    "dill",
    "safetensors",
    "npy",
    "npz",
    "distcp",
    "mar",
    "pt2",
    "model",
    "data",
    "h5",
    "pb",
    "onnx",
    "gguf",
    "zip",
    "tar",
    "7z",
];

/// Whether a file met in a folder walk is scanned: checkpoint extensions, shard indexes,
/// DCP metadata, and any file that starts like a zip or a protocol 2+ pickle.
fn worth_scanning(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name == ".metadata" || name.ends_with(".index.json") {
        return true;
    }
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    if ["onnx", "gguf", "h5", "pb", "7z"].contains(&ext.as_str()) {
        return false; // formats without pickles, which ckpt does not read
    }
    if EXTENSIONS.contains(&ext.as_str()) {
        return true;
    }
    let mut head = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && (head.starts_with(b"PK\x03\x04")
            || matches!(head, [0x80, 2..=5, ..])
            || head.starts_with(NPY_MAGIC.get(..4).unwrap_or_default()))
}
