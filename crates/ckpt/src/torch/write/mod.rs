//! Writing PyTorch zip checkpoints (`.pt`, `.pth`, `.bin`) that
//! `torch.load(f, weights_only=True)` loads, with or without `mmap=True`.
//!
//! The whole [`Value`] tree is written, so that loading the file gives back what loading
//! the source gave: dicts and `OrderedDict`s (with their `_metadata`), lists, tuples, plain
//! values, `torch.Size`, devices, dtypes, tensors and `nn.Parameter`s (with
//! `requires_grad`, conj/neg bits, quantization and Python attributes). The file is laid
//! out as torch 2.15 lays it out (see [`Plan`]); tensors that share a storage in the
//! source share one `data/N` record, written once with its views' offsets and strides.
//!
//! As with the safetensors writer, the layout is planned first ([`Plan::new`]: every
//! refusal happens there, before a byte is written), then the bytes are streamed
//! ([`Plan::write_to`]) in bounded chunks.
//!
//! ```
//! use ckpt::model::{ByteOrder, Dict, Dtype, Storage, TensorView, Value};
//!
//! let data: Vec<u8> = [1.0f32, 2.0, 3.0].iter().flat_map(|x| x.to_le_bytes()).collect();
//! let w = TensorView::contiguous(Dtype::Float32, vec![3], Storage::new(&data, ByteOrder::Little))?;
//! let root = Value::Dict(Dict::new(vec![
//!     (Value::Str("w".into()), Value::Tensor(w)),
//!     (Value::Str("epoch".into()), Value::Int(7)),
//! ]));
//! let plan = ckpt::torch::write::Plan::new(&root, "model")?;
//! let mut file = Vec::new();
//! plan.write_to(&mut file, &())?;
//! assert_eq!(file.len() as u64, plan.file_len());
//!
//! let checkpoint = ckpt::read(&file)?;
//! assert_eq!(checkpoint.format(), ckpt::Format::TorchZip);
//! assert_eq!(checkpoint.details().weights_only, Some(true));
//! assert_eq!(checkpoint.tensors()[0].1.data(), Some(&data[..]));
//! # Ok::<(), ckpt::Error>(())
//! ```

mod pickler;
mod storage;
mod zip;

use std::io::Write;
use std::path::Path;

use crate::cast::TensorCast;
use crate::error::{Error, ErrorKind, Result};
use crate::model::{Dtype, Value};
use crate::output::MappedInput;
use crate::progress::Progress;

/// The record `torch.save` writes as `.format_version` (storages in numeric key order).
const FORMAT_VERSION: &[u8] = b"1";
/// The record `version`: `kMinProducedFileFormatVersion`, as `torch.save` writes it.
const VERSION: &[u8] = b"3\n";
/// The record `byteorder`: ckpt always writes little-endian storages.
const BYTE_ORDER: &[u8] = b"little";
/// The length of `.data/serialization_id`: two 20-digit numbers.
const SERIALIZATION_ID_LEN: u64 = 40;
/// How many refused values an error names.
const SHOWN_PROBLEMS: usize = 10;

/// What fills a record.
#[derive(Debug, Clone, Copy)]
enum Content {
    /// `data.pkl`.
    Pickle,
    /// A small constant text record.
    Text(&'static [u8]),
    /// A storage, by key.
    Storage(usize),
    /// `.data/serialization_id`, computed from the records before it.
    SerializationId,
}

/// The layout of a PyTorch zip checkpoint, computed before any byte is written.
///
/// The archive is the one `torch.save` (torch 2.15) writes for the same objects: records
/// `data.pkl` (a protocol-2 pickle), `.format_version`, `.storage_alignment` (`64`),
/// `byteorder` (`little`), `data/0`, `data/1`... (numbered in the order the pickle first
/// refers to them), `version` (`3`) and `.data/serialization_id`, all in one folder named
/// by the caller (torch uses the file's stem), STORED, with each record's data on a
/// multiple of 64 bytes (torch's `FB` padding field), data descriptors, CRC-32s, and zip64
/// end records; records or offsets past 4 GiB get miniz's zip64 fields. Two things differ
/// from torch's output: storages are all located on `cpu`, and the first half of
/// `.data/serialization_id` (a hash of record names that torch derives from its C++
/// standard library's string hash) is ckpt's own; readers ignore it.
#[derive(Debug)]
pub struct Plan<'data> {
    layout: zip::Layout,
    contents: Vec<Content>,
    /// Record names without the folder (what torch hashes into the serialization id).
    names: Vec<String>,
    pickle: Vec<u8>,
    storages: Vec<storage::Record<'data>>,
}

impl<'data> Plan<'data> {
    /// Lays out `root` as a PyTorch file whose records live in the folder `archive_name`
    /// (torch names it after the output file's stem; see [`archive_name`]).
    ///
    /// Fails, naming every offending value by its dotted path, when the tree holds values
    /// that `torch.load(weights_only=True)` cannot give back (frozensets, slices, integers
    /// longer than 255 bytes, dtypes torch does not have...), and when `archive_name` is
    /// not a folder name (empty, or holding `/`, `\` or control characters).
    pub fn new(root: &Value<'data>, archive_name: &str) -> Result<Self> {
        Self::with_cast(root, archive_name, None)
    }

    /// [`Plan::new`], with the floating point tensors of another dtype than `cast` written
    /// cast to it (as torch's `tensor.to(dtype)`, bit for bit; see [`crate::cast`]), each on
    /// a storage of its own (tied tensors, the same view of one storage, stay tied).
    /// Other tensors are written as they are.
    pub fn with_cast(root: &Value<'data>, archive_name: &str, cast: Option<Dtype>) -> Result<Self> {
        check_archive_name(archive_name)?;
        let mut registry = storage::Registry::default();
        pickler::scan(root, &mut registry, 0);
        let pickled = pickler::pickle(root, &mut registry, cast);
        if !pickled.problems.is_empty() {
            return Err(refusal(&pickled.problems));
        }
        let storages = registry.into_records();
        let mut records: Vec<(String, u64, Content)> = vec![
            (
                "data.pkl".to_owned(),
                pickled.bytes.len() as u64,
                Content::Pickle,
            ),
            text(".format_version", FORMAT_VERSION),
            text(".storage_alignment", ALIGNMENT_TEXT),
            text("byteorder", BYTE_ORDER),
        ];
        for (key, record) in storages.iter().enumerate() {
            records.push((format!("data/{key}"), record.len(), Content::Storage(key)));
        }
        records.push(text("version", VERSION));
        records.push((
            ".data/serialization_id".to_owned(),
            SERIALIZATION_ID_LEN,
            Content::SerializationId,
        ));
        let layout = zip::Layout::new(
            records
                .iter()
                .map(|(name, len, _)| (format!("{archive_name}/{name}"), *len))
                .collect(),
        )?;
        Ok(Plan {
            layout,
            contents: records.iter().map(|(_, _, content)| *content).collect(),
            names: records.into_iter().map(|(name, _, _)| name).collect(),
            pickle: pickled.bytes,
            storages,
        })
    }

    /// The size of the whole file.
    pub fn file_len(&self) -> u64 {
        self.layout.file_len()
    }

    /// The pickle written as `data.pkl`.
    pub fn pickle(&self) -> &[u8] {
        &self.pickle
    }

    /// The number of storage records (`data/N`).
    pub fn storages(&self) -> usize {
        self.storages.len()
    }

    /// Writes the file to `out`: each record's header, then its bytes (storages in
    /// chunks of at most 1 MiB, byteswapped to little-endian when the source is
    /// big-endian; memory use does not grow with the checkpoint), then the central
    /// directory. Reports every chunk to `progress` and stops with an
    /// [`ErrorKind::Interrupted`] error when it is
    /// cancelled.
    /// Returns what the casts of [`Plan::with_cast`] did to each tensor's values.
    pub fn write_to(
        &self,
        out: &mut dyn Write,
        progress: &dyn Progress,
    ) -> Result<Vec<TensorCast>> {
        self.write_reading(out, None, progress)
    }

    /// [`Plan::write_to`] for storages that borrow from the memory map of `input`: their
    /// bytes are checksummed from reads of the file rather than through the map, and
    /// large pieces are handed to `out` as slices of the map, which a
    /// [`FileSink`](crate::output::FileSink) copies in the kernel. The map's pages are never
    /// faulted in, so resident memory stays flat however large the checkpoint.
    pub fn write_reading(
        &self,
        out: &mut dyn Write,
        input: Option<MappedInput<'_>>,
        progress: &dyn Progress,
    ) -> Result<Vec<TensorCast>> {
        progress.start(self.file_len());
        let mut casts = Vec::new();
        let mut out = Counted {
            out,
            written: 0,
            progress,
        };
        let mut crcs = Vec::with_capacity(self.layout.entries.len());
        for (entry, content) in self.layout.entries.iter().zip(&self.contents) {
            if progress.is_cancelled() {
                return Err(Error::interrupted());
            }
            out.expect_at(entry.header_offset)?;
            out.write(&entry.local_header())?;
            let mut crc = crc32fast::Hasher::new();
            // Writes bytes and checksums `checksummed` (the same bytes, read another way).
            let mut data = |out: &mut Counted<'_, '_>, bytes: &[u8], checksummed: &[u8]| {
                crc.update(checksummed);
                out.write(bytes)
            };
            match *content {
                Content::Pickle => data(&mut out, &self.pickle, &self.pickle)?,
                Content::Text(bytes) => data(&mut out, bytes, bytes)?,
                Content::SerializationId => {
                    let written: Vec<(&str, u64, u32)> = self
                        .names
                        .iter()
                        .zip(&self.layout.entries)
                        .zip(&crcs)
                        .map(|((name, entry), &crc)| (name.as_str(), entry.len, crc))
                        .collect();
                    let id = serialization_id(&written);
                    data(&mut out, id.as_bytes(), id.as_bytes())?;
                }
                Content::Storage(key) => {
                    let record = self.storages.get(key).ok_or_else(|| {
                        Error::invalid(format!("storage {key} was not planned (a bug in ckpt)"))
                    })?;
                    let mut copy = Vec::new();
                    let cast = record
                        .stream(|chunk| {
                            if progress.is_cancelled() {
                                return Err(Error::interrupted());
                            }
                            match input.and_then(|input| input.read_copy(chunk, &mut copy)) {
                                Some(read) => {
                                    let read = read.map_err(|e| {
                                        Error::from_io("failed to read the input", e)
                                    })?;
                                    // Large pieces as slices of the map (copied in the
                                    // kernel), small ones as the copy just read.
                                    if chunk.len() >= crate::output::MIN_COPY_LEN {
                                        data(&mut out, chunk, read)
                                    } else {
                                        data(&mut out, read, read)
                                    }
                                }
                                None => data(&mut out, chunk, chunk),
                            }
                        })
                        .map_err(|e| match e.kind() {
                            ErrorKind::Io | ErrorKind::Interrupted => e,
                            _ => e.with_member(entry.name.clone()),
                        })?;
                    casts.extend(cast);
                }
            }
            out.expect_at(entry.data_offset() + entry.len)?;
            let crc = crc.clone().finalize();
            out.write(&entry.descriptor(crc))?;
            crcs.push(crc);
        }
        out.expect_at(self.layout.central_offset())?;
        out.write(&self.layout.trailer(&crcs))?;
        out.expect_at(self.file_len())?;
        Ok(casts)
    }
}

/// `.storage_alignment`.
const ALIGNMENT_TEXT: &[u8] = b"64";
const _: () = assert!(zip::ALIGNMENT == 64);

fn text(name: &str, bytes: &'static [u8]) -> (String, u64, Content) {
    (name.to_owned(), bytes.len() as u64, Content::Text(bytes))
}

/// The archive folder torch gives a file saved at `path`: its name after the last `/` or
/// `\`, up to its last `.` (`model.pt` → `model`, `a.b.pth` → `a.b`), or `archive` when
/// that leaves nothing or the name is not ASCII (torch then writes through a Python file
/// object, which always gets `archive`).
pub fn archive_name(path: &Path) -> String {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let name = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let stem = match name.rfind('.') {
        Some(dot) => name.get(..dot).unwrap_or_default(),
        None => name,
    };
    if stem.is_empty() || !stem.is_ascii() || stem.chars().any(|c| c.is_ascii_control()) {
        "archive".to_owned()
    } else {
        stem.to_owned()
    }
}

fn check_archive_name(name: &str) -> Result<()> {
    if name.is_empty() || name.contains(['/', '\\']) || name.chars().any(char::is_control) {
        return Err(Error::invalid(format!(
            "`{}` cannot name the folder of a PyTorch archive: it must be a non-empty name \
             without `/`, `\\` or control characters",
            name.escape_debug()
        )));
    }
    Ok(())
}

/// One error naming every value that cannot be written.
fn refusal(problems: &[pickler::Problem]) -> Error {
    let shown: Vec<String> = problems
        .iter()
        .take(SHOWN_PROBLEMS)
        .map(|p| {
            let name = if p.name.is_empty() {
                "(the root)".to_owned()
            } else {
                format!("`{}`", p.name)
            };
            format!("{name}: {}", p.what)
        })
        .collect();
    let more = problems.len().saturating_sub(shown.len());
    Error::invalid(format!(
        "{} value{} cannot be written so that torch.load(weights_only=True) gives {} back: {}{}",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" },
        if problems.len() == 1 { "it" } else { "them" },
        shown.join("; "),
        if more > 0 {
            format!("; and {more} more")
        } else {
            String::new()
        }
    ))
    .with_hint(
        "convert only the part you need, under one key of the checkpoint such as `model`; \
         write only the tensors as a flat state dict, with an include pattern such as `*`; or \
         turn these values into lists, tuples or tensors in Python",
    )
}

/// torch's `c10::hash_combine`.
fn hash_combine(seed: u64, value: u64) -> u64 {
    seed ^ value
        .wrapping_add(0x9e37_79b9)
        .wrapping_add(seed << 6)
        .wrapping_add(seed >> 2)
}

/// `.data/serialization_id` after the records `written` (name without the folder, length,
/// CRC-32): a hash of their names, then torch's combined CRC-32 of those that have a data
/// descriptor (the non-empty ones), in write order, each as 20 zero-padded digits. torch
/// hashes names with its C++ standard library's string hash over an unordered set; ckpt
/// uses FNV-1a in write order.
fn serialization_id(written: &[(&str, u64, u32)]) -> String {
    let mut name_hash = 0u64;
    let mut crc_hash = 0u64;
    for &(name, len, crc) in written {
        let fnv = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        name_hash = hash_combine(name_hash, fnv);
        if len > 0 {
            crc_hash = hash_combine(crc_hash, u64::from(crc));
        }
    }
    format!("{name_hash:020}{crc_hash:020}")
}

/// The output, counting what was written (to check it against the layout) and reporting
/// it.
struct Counted<'o, 'p> {
    out: &'o mut dyn Write,
    written: u64,
    progress: &'p dyn Progress,
}

impl Counted<'_, '_> {
    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.out
            .write_all(bytes)
            .map_err(|e| Error::from_io("failed to write", e))?;
        self.written += bytes.len() as u64;
        self.progress.advance(bytes.len() as u64);
        Ok(())
    }

    /// Checks that the output is where the layout says it is.
    fn expect_at(&self, offset: u64) -> Result<()> {
        if self.written == offset {
            return Ok(());
        }
        Err(Error::invalid(format!(
            "the archive was planned to reach byte {offset} here but reached {} (a bug in \
             ckpt, or a source that changed while it was read)",
            self.written
        )))
    }
}

#[cfg(test)]
mod tests;
