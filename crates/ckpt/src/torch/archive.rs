//! The zip container of `torch.save` (torch >= 1.6) and `torch.jit.save`.
//!
//! Every record lives under one top-level folder (the file's stem, `archive`, or anything
//! else: torch takes the folder of the first entry). Records are found by name, never by
//! position. Stored records are handed out as slices of the input (zero copy); compressed
//! ones (TorchScript's `code/`, or archives rewritten by other tools) can be inflated when
//! they are small (pickles, text), but never tensor data, which torch itself reads
//! uncompressed under `mmap=True`.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Cursor, Read, Seek, SeekFrom};

use zip::CompressionMethod;

use crate::error::{Error, Result};

/// Opens the zip directory of `bytes`, whose offsets count from the start of the file.
///
/// The zip crate's default also guesses an offset for archives with data prepended, and
/// guesses wrong on some archives torch 2.0 writes; torch (miniz) never shifts offsets,
/// and neither does ckpt.
pub(crate) fn open_zip(bytes: &[u8]) -> zip::result::ZipResult<zip::ZipArchive<Cursor<&[u8]>>> {
    open_zip_from(Cursor::new(bytes))
}

/// [`open_zip`] of the bytes `reader` reads.
fn open_zip_from<R: Read + Seek>(reader: R) -> zip::result::ZipResult<zip::ZipArchive<R>> {
    let config = zip::read::Config {
        archive_offset: zip::read::ArchiveOffset::Known(0),
    };
    zip::ZipArchive::with_config(config, reader)
}

/// A file read at explicit offsets (`pread`), as a reader with a position of its own: the
/// file's shared position is never moved.
struct FileReader<'f> {
    file: &'f File,
    /// The size of the file as mapped (the end for `SeekFrom::End`).
    len: u64,
    position: u64,
}

impl<'f> FileReader<'f> {
    fn new(file: &'f File, len: u64) -> Self {
        FileReader {
            file,
            len,
            position: 0,
        }
    }
}

impl Read for FileReader<'_> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let read = crate::source::read_at(self.file, buffer, self.position)?;
        self.position = self.position.saturating_add(read as u64);
        Ok(read)
    }
}

impl Seek for FileReader<'_> {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let position = match to {
            SeekFrom::Start(at) => Some(at),
            SeekFrom::End(by) => self.len.checked_add_signed(by),
            SeekFrom::Current(by) => self.position.checked_add_signed(by),
        };
        self.position = position.ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "a seek before the start of the file",
            )
        })?;
        Ok(self.position)
    }
}

/// A member as the zip's central directory lists it, kept after the archive is dropped:
/// what the scanner and verify check each member's local header, data and CRC against.
#[derive(Debug, Clone)]
pub(crate) struct ZipMember {
    /// The name as stored (bytes that are not UTF-8 replaced).
    pub(crate) name: String,
    pub(crate) header_start: u64,
    /// Where the data starts, when the local header could be read.
    pub(crate) data_start: Option<u64>,
    pub(crate) compressed_size: u64,
    pub(crate) size: u64,
    pub(crate) method: CompressionMethod,
    pub(crate) encrypted: bool,
    pub(crate) crc32: u32,
}

impl ZipMember {
    pub(crate) fn of<R: Read + ?Sized>(file: &zip::read::ZipFile<'_, R>) -> Self {
        ZipMember {
            name: String::from_utf8_lossy(file.name_raw()).into_owned(),
            header_start: file.header_start(),
            data_start: file.data_start(),
            compressed_size: file.compressed_size(),
            size: file.size(),
            method: file.compression(),
            encrypted: file.encrypted(),
            crc32: file.crc32(),
        }
    }
}

/// How a member's local header disagrees with its central directory entry, a sentence
/// each (empty when they agree): streaming readers walk the local headers, torch and
/// the zip crate the directory, so a disagreement makes them see different files. Shared
/// by the scanner (findings) and verify (problems).
pub(crate) fn local_header_disagreements(bytes: &[u8], central: &ZipMember) -> Vec<String> {
    let le16 = |at: usize| -> Option<u16> {
        let field = bytes.get(at..at.checked_add(2)?)?;
        Some(u16::from_le_bytes(field.try_into().ok()?))
    };
    let le32 = |at: usize| -> Option<u32> {
        let field = bytes.get(at..at.checked_add(4)?)?;
        Some(u32::from_le_bytes(field.try_into().ok()?))
    };
    let Some(at) = usize::try_from(central.header_start)
        .ok()
        .filter(|&at| at < bytes.len())
    else {
        return vec!["the central directory points past the end of the file".to_owned()];
    };
    if bytes.get(at..at.saturating_add(4)) != Some(b"PK\x03\x04") {
        return vec!["the central directory points at no local header".to_owned()];
    }
    let fields = (
        le16(at + 6),
        le16(at + 8),
        le32(at + 14),
        le32(at + 18),
        le32(at + 22),
        le16(at + 26),
    );
    let (Some(flags), Some(method), Some(crc), Some(csize), Some(size), Some(name_len)) = fields
    else {
        return vec!["the local header is cut short by the end of the file".to_owned()];
    };
    let mut out = Vec::new();
    let name = bytes
        .get(at + 30..at + 30 + usize::from(name_len))
        .map(String::from_utf8_lossy)
        .unwrap_or_default();
    if name != central.name {
        out.push(format!(
            "the local header names `{name}` but the central directory `{}`: streaming readers \
             and directory readers see different members",
            central.name
        ));
    }
    let central_method = match central.method {
        CompressionMethod::Stored => Some(0),
        CompressionMethod::Deflated => Some(8),
        _ => None,
    };
    if let Some(central_method) = central_method.filter(|&m| m != method) {
        out.push(format!(
            "the local header says compression method {method}, the central directory \
             {central_method}"
        ));
    }
    // With bit 3, the local CRC and sizes are zero and a data descriptor holds them.
    if flags & 0x8 == 0 {
        let differs = (csize != u32::MAX && u64::from(csize) != central.compressed_size)
            || (size != u32::MAX && u64::from(size) != central.size);
        if differs {
            out.push(format!(
                "the local header declares {csize} bytes ({size} uncompressed), the central \
                 directory {} ({}): readers disagree on where the member ends",
                central.compressed_size, central.size
            ));
        }
        if crc != central.crc32 {
            out.push(format!(
                "the local header's CRC-32 is {crc:08x}, the central directory's {:08x}",
                central.crc32
            ));
        }
    }
    out
}

/// One record of the archive.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    /// The full name in the archive (with the folder).
    pub(crate) name: String,
    /// Where the record's data starts in the file.
    pub(crate) start: u64,
    /// The size of the data in the file.
    pub(crate) stored_len: u64,
    /// The size once uncompressed.
    pub(crate) len: u64,
    /// Whether the data is compressed.
    pub(crate) compressed: bool,
}

/// A torch zip archive: its folder and its records by name (without the folder).
#[derive(Debug)]
pub(crate) struct Archive<'data> {
    bytes: &'data [u8],
    /// The largest compressed record inflated (the `inflated-len` limit).
    max_inflated: u64,
    prefix: String,
    records: BTreeMap<String, Record>,
}

impl<'data> Archive<'data> {
    /// Reads the central directory of the zip in `bytes`; compressed records are inflated
    /// up to `max_inflated` bytes.
    pub(crate) fn open(bytes: &'data [u8], max_inflated: u64) -> Result<Self> {
        Archive::open_from(bytes, None, max_inflated)
    }

    /// [`Archive::open`], reading the directory and the local headers from `file` (whose
    /// bytes `bytes` map) at their offsets rather than through the map: a map's page,
    /// once touched, stays resident with its neighbours (up to hundreds of KiB a touch on
    /// current kernels), so reading one header per tensor through it would make resident
    /// memory grow with the number of tensors.
    pub(crate) fn open_from(
        bytes: &'data [u8],
        file: Option<&File>,
        max_inflated: u64,
    ) -> Result<Self> {
        let (prefix, records) = match file {
            Some(file) => {
                let reader =
                    BufReader::with_capacity(8 << 10, FileReader::new(file, bytes.len() as u64));
                records(open_zip_from(reader), bytes.len() as u64)?
            }
            None => records(open_zip(bytes), bytes.len() as u64)?,
        };
        Ok(Archive {
            bytes,
            max_inflated,
            prefix,
            records,
        })
    }

    /// The archive's folder name.
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The record with this name (without the folder).
    pub(crate) fn get(&self, name: &str) -> Option<&Record> {
        self.records.get(name)
    }

    /// Names of every record (without the folder), sorted.
    pub(crate) fn record_names(&self) -> impl Iterator<Item = &str> {
        self.records.keys().map(String::as_str)
    }

    /// The stored bytes of a record, zero copy; compressed records are refused.
    pub(crate) fn stored(&self, record: &Record) -> Result<&'data [u8]> {
        if record.compressed {
            return Err(Error::unsupported(format!(
                "record `{}` is compressed; torch writes tensor data uncompressed (and \
                 `torch.load(mmap=True)` reads compressed records as garbage)",
                record.name
            ))
            .with_member(record.name.clone())
            .at_offset(record.start)
            .with_hint(
                "rewrite the archive without compression (zip -0), or save it again with torch",
            ));
        }
        self.slice(record)
    }

    fn slice(&self, record: &Record) -> Result<&'data [u8]> {
        usize::try_from(record.start)
            .ok()
            .zip(usize::try_from(record.start.saturating_add(record.stored_len)).ok())
            .and_then(|(start, end)| self.bytes.get(start..end))
            .ok_or_else(|| {
                Error::malformed("record data lies outside the file")
                    .with_member(record.name.clone())
                    .at_offset(record.start)
            })
    }

    /// The bytes of a small record (a pickle, a text record): borrowed when stored,
    /// inflated when compressed.
    pub(crate) fn read(&self, record: &Record) -> Result<Cow<'data, [u8]>> {
        let data = self.slice(record)?;
        if !record.compressed {
            return Ok(Cow::Borrowed(data));
        }
        if record.len > self.max_inflated {
            return Err(crate::limits::exceeded(
                "inflated-len",
                self.max_inflated,
                format_args!(
                    "compressed record `{}` would inflate to {} bytes",
                    record.name, record.len
                ),
            )
            .at_offset(record.start));
        }
        let mut out = Vec::new();
        flate2_inflate(data, record.len, &mut out)
            .and_then(|()| {
                if out.len() as u64 == record.len {
                    Ok(())
                } else {
                    Err(std::io::Error::other(format!(
                        "it inflates to {} bytes, not the {} its entry declares",
                        out.len(),
                        record.len
                    )))
                }
            })
            .map_err(|e| {
                Error::malformed(format!(
                    "compressed record `{}` cannot be inflated: {e}",
                    record.name
                ))
                .at_offset(record.start)
            })?;
        Ok(Cow::Owned(out))
    }

    /// A small text record, trimmed (`version`...).
    pub(crate) fn text(&self, name: &str) -> Result<Option<String>> {
        Ok(self.raw_text(name)?.map(|text| text.trim().to_owned()))
    }

    /// A small text record as it is (`byteorder`, which torch compares byte for byte).
    pub(crate) fn raw_text(&self, name: &str) -> Result<Option<String>> {
        let Some(record) = self.get(name) else {
            return Ok(None);
        };
        if record.len > 4096 {
            return Err(Error::malformed(format!(
                "record `{}` should be a short text but holds {} bytes",
                record.name, record.len
            ))
            .at_offset(record.start));
        }
        let bytes = self.read(record)?;
        Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
    }
}

/// Inflates raw DEFLATE data of a known size, reading at most `len` bytes.
fn flate2_inflate(data: &[u8], len: u64, out: &mut Vec<u8>) -> std::io::Result<()> {
    flate2::read::DeflateDecoder::new(data)
        .take(len)
        .read_to_end(out)?;
    Ok(())
}

/// The records of a zip directory (`open_zip`'s result), checked as torch would have them,
/// with the archive's folder. `len` is the size of the file.
fn records<R: Read + Seek>(
    zip: zip::result::ZipResult<zip::ZipArchive<R>>,
    len: u64,
) -> Result<(String, BTreeMap<String, Record>)> {
    let mut zip = zip.map_err(|e| {
        Error::malformed(format!("the zip archive cannot be read: {e}"))
            .with_hint("the file is probably truncated or damaged; fetch it again")
    })?;
    if zip.has_duplicate_names() {
        return Err(Error::malformed(
            "the zip archive holds two records with the same name; readers disagree on \
             which one counts, so ckpt refuses it",
        ));
    }
    let mut prefix: Option<String> = None;
    let mut records = BTreeMap::new();
    for index in 0..zip.len() {
        let file = zip
            .by_index_raw(index)
            .map_err(|e| Error::malformed(format!("zip entry {index} cannot be read: {e}")))?;
        let name = file
            .name()
            .map_err(|e| Error::malformed(format!("zip entry {index} has a bad name: {e}")))?
            .into_owned();
        let start = file
            .data_start()
            .ok_or_else(|| Error::malformed(format!("zip entry `{name}` has no data offset")))?;
        let compressed = match file.compression() {
            CompressionMethod::Stored => false,
            CompressionMethod::Deflated => true,
            other => {
                return Err(Error::unsupported(format!(
                    "zip entry `{name}` uses compression {other:?}, which torch never writes"
                ))
                .at_offset(file.header_start()));
            }
        };
        if file.encrypted() {
            return Err(
                Error::unsupported(format!("zip entry `{name}` is encrypted"))
                    .at_offset(file.header_start()),
            );
        }
        let record = Record {
            name: name.clone(),
            start,
            stored_len: file.compressed_size(),
            len: file.size(),
            compressed,
        };
        // torch: the folder is the first entry's name up to its first `/`, and every
        // entry must be under it.
        let Some((folder, rest)) = name.split_once('/') else {
            return Err(Error::malformed(format!(
                "zip entry `{name}` is not inside a folder; torch.save archives keep every \
                 record under one folder"
            ))
            .at_offset(file.header_start()));
        };
        match &prefix {
            None => prefix = Some(folder.to_owned()),
            Some(p) if p == folder => {}
            Some(p) => {
                return Err(Error::malformed(format!(
                    "zip entry `{name}` is outside the archive's folder `{p}/`; torch \
                     refuses such archives"
                ))
                .at_offset(file.header_start()));
            }
        }
        let end = start.checked_add(record.stored_len);
        if end.is_none_or(|end| end > len) {
            return Err(Error::malformed(format!(
                "zip entry `{name}` claims {} bytes at byte {start}, past the end of the file",
                record.stored_len
            ))
            .with_hint("the file is truncated; fetch it again"));
        }
        if !record.compressed && record.stored_len != record.len {
            return Err(Error::malformed(format!(
                "zip entry `{name}` is stored uncompressed but declares {} bytes stored and {} \
                 bytes in all",
                record.stored_len, record.len
            ))
            .at_offset(file.header_start()));
        }
        records.insert(rest.to_owned(), record);
    }
    // Two records sharing bytes let a tiny archive claim a lot of data (and readers
    // disagree on such archives): refuse them.
    let mut ranges: Vec<(u64, u64, &str)> = records
        .values()
        .map(|r| {
            (
                r.start,
                r.start.saturating_add(r.stored_len),
                r.name.as_str(),
            )
        })
        .filter(|(start, end, _)| end > start)
        .collect();
    ranges.sort_unstable();
    for pair in ranges.windows(2) {
        if let [(_, end, first), (start, _, second)] = pair
            && start < end
        {
            return Err(Error::malformed(format!(
                "zip entries `{first}` and `{second}` share bytes; torch never writes such archives"
            ))
            .at_offset(*start));
        }
    }
    Ok((prefix.unwrap_or_default(), records))
}
