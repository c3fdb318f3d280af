//! PyTorch's formats: the zip archive of `torch.save` (and `torch.jit.save`), the legacy
//! pickle stream, the tar format of torch <= 0.3, and plain pickles.
//!
//! Each reader finds the pickles and the storages of its container; the pickles are read
//! by the safe VM of [`ckpt_pickle`] and given meaning by allowlist in `interpret`, which
//! never runs anything. Tensors borrow their bytes from the file. [`write`](mod@write) writes zip
//! checkpoints that `torch.load(weights_only=True)` loads.

pub(crate) mod allowlist;
pub(crate) mod archive;
pub(crate) mod globals;
pub(crate) mod interpret;
pub(crate) mod legacy;
mod pickles;
pub(crate) mod tar;
pub mod write;

use std::collections::BTreeMap;

use ckpt_pickle::Pickle;

use crate::error::{Error, ErrorKind, Result};
use crate::format::Format;
use crate::limits::{self, Limits};
use crate::model::{ByteOrder, Checkpoint, Details, Storage};
use archive::Archive;
use interpret::{StorageId, Storages};

pub use legacy::{read_legacy, read_legacy_with};
pub use pickles::{PickleSource, pickles};
pub use tar::{read_tar, read_tar_with};

/// The versions of the zip `version` record torch 2.x reads (`caffe2/serialize/versions.h`).
pub(crate) const SUPPORTED_ZIP_VERSIONS: std::ops::RangeInclusive<u64> = 1..=10;

/// A pickle error as a ckpt error, located in `member`.
pub(crate) fn pickle_error(error: &ckpt_pickle::Error, member: &str) -> Error {
    if let ckpt_pickle::ErrorKind::LimitExceeded { limit, max } = error.kind() {
        // Said in the limit's own words, not the VM's field name.
        let name = limits::pickle_limit_name(limit);
        let what = limits::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map_or("of something", |(_, what)| what);
        return limits::exceeded(&name, *max, format_args!("the pickle needs more {what}"))
            .with_member(member.to_owned())
            .at_offset(error.offset());
    }
    let kind = match error.kind() {
        ckpt_pickle::ErrorKind::LimitExceeded { .. } => ErrorKind::LimitExceeded,
        ckpt_pickle::ErrorKind::UnsupportedProtocol(_) | ckpt_pickle::ErrorKind::Unsupported(_) => {
            ErrorKind::Unsupported
        }
        _ => ErrorKind::Malformed,
    };
    let message = match error.opcode() {
        Some(op) => format!("{} (in {})", error.message(), op.name()),
        None => error.message(),
    };
    let error_out = Error::new(kind, message)
        .with_member(member.to_owned())
        .at_offset(error.offset());
    match error.kind() {
        ckpt_pickle::ErrorKind::Truncated => {
            error_out.with_hint("the file is truncated; fetch it again")
        }
        _ => error_out,
    }
}

/// Reads one pickle of `bytes` starting at `start` (a byte offset of the file).
pub(crate) fn parse_pickle<'a>(
    bytes: &'a [u8],
    start: usize,
    member: &str,
    limits: &Limits,
) -> Result<Pickle<'a>> {
    let data = bytes.get(start..).unwrap_or_default();
    ckpt_pickle::parse(data, start as u64, &limits.pickle).map_err(|e| pickle_error(&e, member))
}

/// What every torch reader reports besides the tree.
fn details(pickle: &Pickle<'_>, pickle_bytes: &[u8], weights_only_possible: bool) -> Details {
    let globals = allowlist::globals(pickle);
    let needs = allowlist::globals_outside_weights_only(pickle);
    Details {
        globals,
        needs,
        weights_only: Some(
            weights_only_possible && allowlist::weights_only_accepts(pickle_bytes, pickle),
        ),
        pickle_protocol: pickle.protocol(),
        ..Details::default()
    }
}

/// Storages of a zip archive: record `<folder>/<key>` for each key.
struct ZipStorages<'a, 'data> {
    archive: &'a Archive<'data>,
    folder: &'static str,
    byte_order: ByteOrder,
    /// Storages already loaded, by key: as in torch, the first reference decides.
    loaded: std::collections::HashMap<String, Storage<'data>>,
}

impl<'data> Storages<'data> for ZipStorages<'_, 'data> {
    fn storage(&mut self, id: &StorageId) -> Result<Storage<'data>> {
        if id.view.is_some() {
            return Err(Error::malformed(
                "a storage reference with view metadata: the zip format has none (torch.load fails on it)",
            ));
        }
        if let Some(storage) = self.loaded.get(&id.key) {
            return Ok(storage.clone());
        }
        let name = format!("{}/{}", self.folder, id.key);
        let record = self.archive.get(&name).ok_or_else(|| {
            Error::malformed(format!(
                "the pickle refers to storage `{}` but the archive has no record `{name}`",
                id.key
            ))
            .with_member(format!("{}/{name}", self.archive.prefix()))
        })?;
        let expected = id.numel.checked_mul(id.kind.unit_size());
        if expected != Some(record.len) {
            return Err(Error::malformed(format!(
                "record `{name}` holds {} bytes but the pickle declares {} elements of {} bytes",
                record.len,
                id.numel,
                id.kind.unit_size()
            ))
            .with_member(record.name.clone())
            .at_offset(record.start));
        }
        let bytes = self.archive.stored(record)?;
        let storage = Storage::new(bytes, self.byte_order).at_file_offset(record.start);
        self.loaded.insert(id.key.clone(), storage.clone());
        Ok(storage)
    }
}

/// Reads a `torch.save` zip archive (torch >= 1.6) or a TorchScript archive.
pub fn read_zip(bytes: &[u8]) -> Result<Checkpoint<'_>> {
    read_zip_with(bytes, &Limits::default())
}

/// [`read_zip`] within `limits`.
pub fn read_zip_with<'data>(bytes: &'data [u8], limits: &Limits) -> Result<Checkpoint<'data>> {
    read_zip_from(bytes, None, limits)
}

/// [`read_zip_with`], reading the zip directory and headers from `file`, the file `bytes`
/// map (see [`Archive::open_from`]).
pub(crate) fn read_zip_from<'data>(
    bytes: &'data [u8],
    file: Option<&'data std::fs::File>,
    limits: &Limits,
) -> Result<Checkpoint<'data>> {
    let archive = Archive::open_from(bytes, file, limits.inflated_len)?;
    let prefix = archive.prefix().to_owned();
    let torchscript = archive.get("constants.pkl").is_some();
    let mut records = BTreeMap::new();
    // torch reads `.data/version` first, then `version`.
    let version = match archive.text(".data/version")? {
        Some(version) => version,
        None => archive.text("version")?.ok_or_else(|| {
            Error::malformed("the archive has no `version` record; torch.load refuses it")
        })?,
    };
    let number: u64 = version.parse().map_err(|_| {
        Error::malformed(format!("the `version` record is `{version}`, not a number"))
    })?;
    if !SUPPORTED_ZIP_VERSIONS.contains(&number) {
        return Err(Error::unsupported(format!(
            "the archive's format version is {number}; torch 2.x reads versions 1 to 10"
        ))
        .with_member(format!("{prefix}/version")));
    }
    records.insert("version".to_owned(), version);
    let byte_order = match archive.raw_text("byteorder")?.as_deref() {
        None | Some("little") => ByteOrder::Little,
        Some("big") => ByteOrder::Big,
        Some(other) => {
            return Err(Error::malformed(format!(
                "the `byteorder` record is `{other}`, not `little` or `big`"
            ))
            .with_member(format!("{prefix}/byteorder")));
        }
    };
    for name in [
        "byteorder",
        ".format_version",
        ".storage_alignment",
        ".data/serialization_id",
    ] {
        if let Some(text) = archive.text(name)? {
            records.insert(name.to_owned(), text);
        }
    }
    records.insert("archive_folder".to_owned(), prefix.clone());

    let member = format!("{prefix}/data.pkl");
    let record = archive.get("data.pkl").ok_or_else(|| {
        Error::malformed("the archive has no `data.pkl` record").with_member(member.clone())
    })?;
    let data = archive.read(record)?;
    let base = if record.compressed { 0 } else { record.start };
    let pickle =
        ckpt_pickle::parse(&data, base, &limits.pickle).map_err(|e| pickle_error(&e, &member))?;
    reject_trailing(&pickle, &data, base, &member)?;
    let mut storages = ZipStorages {
        archive: &archive,
        folder: "data",
        byte_order,
        loaded: std::collections::HashMap::new(),
    };
    let script = if torchscript {
        script_declarations(&archive, limits.code_len)?
    } else {
        interpret::ScriptDecls::new()
    };
    let container = if torchscript {
        interpret::Container::TorchScript
    } else {
        interpret::Container::Zip
    };
    let interpreted = interpret::interpret_with(&pickle, &mut storages, container, &script, limits)
        .map_err(|e| e.with_member(member.clone()))?;
    let mut details = details(&pickle, &data, !torchscript);
    if torchscript {
        // The archive carries its own code: torch.jit.load needs no Python classes.
        details.needs.clear();
    }
    details.records = records;
    details.from_modules = interpreted.from_modules;
    details.root_is_module = interpreted.root_is_module;
    let format = if torchscript {
        Format::TorchScript
    } else {
        Format::TorchZip
    };
    Ok(Checkpoint::new(format, BTreeMap::new(), interpreted.root).with_details(details))
}

/// Refuses bytes after a pickle's `STOP`: torch never writes them, `pickle.load` ignores
/// them, and they can hide a second payload from tools that stop at the first.
fn reject_trailing(pickle: &Pickle<'_>, data: &[u8], base: u64, member: &str) -> Result<()> {
    let extra = data.len().saturating_sub(pickle.byte_len());
    if extra == 0 {
        return Ok(());
    }
    Err(Error::malformed(format!(
        "{extra} bytes follow the pickle's STOP; torch never writes them, and they can hide a \
         second payload from tools that read only the first"
    ))
    .with_member(member.to_owned())
    .at_offset(base + pickle.byte_len() as u64))
}

/// What the TorchScript code of an archive declares: for each class, its
/// `__parameters__` and `__buffers__`. The code is read as text and never run.
fn script_declarations(archive: &Archive<'_>, code_len: u64) -> Result<interpret::ScriptDecls> {
    let mut decls = interpret::ScriptDecls::new();
    let mut budget = code_len;
    for name in archive.record_names() {
        let Some(path) = name
            .strip_prefix("code/")
            .and_then(|p| p.strip_suffix(".py"))
        else {
            continue;
        };
        let Some(record) = archive.get(name) else {
            continue;
        };
        budget = budget.checked_sub(record.len).ok_or_else(|| {
            limits::exceeded(
                "code-len",
                code_len,
                "the archive's TorchScript code is longer",
            )
            .with_member(record.name.clone())
        })?;
        let text = archive.read(record)?;
        let module = path.replace('/', ".");
        let text = String::from_utf8_lossy(&text);
        let mut current: Option<String> = None;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("class ") {
                let class = rest.split(['(', ':']).next().unwrap_or_default().trim();
                current = Some(format!("{module}.{class}"));
            } else if let Some(class) = &current {
                let list = |key: &str| -> Option<Vec<String>> {
                    let value = line
                        .trim_start()
                        .strip_prefix(key)?
                        .trim_start()
                        .strip_prefix('=')?;
                    Some(
                        value
                            .split('"')
                            .skip(1)
                            .step_by(2)
                            .map(str::to_owned)
                            .collect(),
                    )
                };
                if let Some(parameters) = list("__parameters__") {
                    decls.entry(class.clone()).or_default().0 = parameters;
                } else if let Some(buffers) = list("__buffers__") {
                    decls.entry(class.clone()).or_default().1 = buffers;
                }
            }
        }
    }
    Ok(decls)
}

/// Refuses a pickle that holds anything but plain values (the small pickles of a legacy
/// stream or a tar archive: numbers, strings, tuples, lists, dicts, and storage or tensor
/// class names). Python runs every opcode of them when it loads the file.
pub(crate) fn plain_only(pickle: &Pickle<'_>, what: &str) -> Result<()> {
    for (id, object) in pickle.objects() {
        let allowed = match object {
            ckpt_pickle::Object::Global { module, name } => {
                let (module, name) = ckpt_pickle::python3_name(module, name);
                allowlist::weights_only_allows(module, name)
            }
            ckpt_pickle::Object::Call { .. }
            | ckpt_pickle::Object::Instance { .. }
            | ckpt_pickle::Object::PersistentId(_)
            | ckpt_pickle::Object::Extension(_) => false,
            _ => true,
        };
        if !allowed {
            return Err(Error::new(
                ErrorKind::Refused,
                "this pickle should hold plain values only, but it imports or calls code: \
                 loading the file in Python runs it",
            )
            .with_member(what.to_owned())
            .at_offset(pickle.offset(id)));
        }
    }
    Ok(())
}

/// Storages of a plain pickle: there are none.
struct NoStorages;

impl<'data> Storages<'data> for NoStorages {
    fn storage(&mut self, id: &StorageId) -> Result<Storage<'data>> {
        Err(Error::malformed(format!(
            "the pickle refers to torch storage `{}`, but a plain pickle has no storages",
            id.key
        )))
    }
}

/// Reads a plain pickle file (numpy arrays and plain values; torch storages need a torch
/// container).
pub fn read_pickle(bytes: &[u8]) -> Result<Checkpoint<'_>> {
    read_pickle_with(bytes, &Limits::default())
}

/// [`read_pickle`] within `limits`.
pub fn read_pickle_with<'data>(bytes: &'data [u8], limits: &Limits) -> Result<Checkpoint<'data>> {
    let pickle = parse_pickle(bytes, 0, "pickle", limits)?;
    // torch's legacy loader checks the value of the first pickle, however it is spelled
    // (opcodes before the number, another protocol): a magic number with more pickles after
    // it is a legacy stream.
    if pickle.byte_len() < bytes.len()
        && pickle
            .root()
            .is_some_and(|root| crate::walk::is_legacy_magic(&pickle, root))
    {
        return read_legacy_with(bytes, limits);
    }
    reject_trailing(&pickle, bytes, 0, "pickle").map_err(|e| {
        if bytes.starts_with(b"\x80\x02\x8a") {
            e.with_hint("this looks like a legacy torch.save stream whose magic number is wrong: the file is corrupted")
        } else {
            e
        }
    })?;
    let interpreted = interpret::interpret(
        &pickle,
        &mut NoStorages,
        interpret::Container::Pickle,
        limits,
    )?;
    let mut details = details(
        &pickle,
        bytes.get(..pickle.byte_len()).unwrap_or(bytes),
        true,
    );
    details.from_modules = interpreted.from_modules;
    details.root_is_module = interpreted.root_is_module;
    Ok(Checkpoint::new(Format::Pickle, BTreeMap::new(), interpreted.root).with_details(details))
}

/// The value of a parsed int-like pickle (`Int` or `BigInt`), in decimal.
pub(crate) fn pickle_int(pickle: &Pickle<'_>) -> Option<String> {
    match pickle.get(pickle.root()?) {
        ckpt_pickle::Object::Int(i) => Some(i.to_string()),
        ckpt_pickle::Object::BigInt(bytes) => ckpt_pickle::bigint_to_decimal(bytes, 64),
        _ => None,
    }
}
