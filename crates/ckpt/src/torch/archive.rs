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

use crate::error::{Error, Result};
use crate::input::Input;
use crate::walk::AnomalyKind;
use crate::walk::zip::{DEFLATED, Member, STORED, Zip, method_name};

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

/// A torch zip archive: its folder and its records by name (without the folder), over the
/// zip as [`Zip`] reads it.
#[derive(Debug)]
pub(crate) struct Archive<'data> {
    zip: Zip<'data>,
    /// The largest compressed record inflated (the `inflated-len` limit).
    max_inflated: u64,
    prefix: String,
    records: BTreeMap<String, Record>,
}

impl<'data> Archive<'data> {
    /// Reads the zip in `bytes` as torch does (compressed records are inflated up to
    /// `max_inflated` bytes), reading the directory and the local headers from `file` (whose
    /// bytes `bytes` map) at their offsets rather than through the map: a map's page,
    /// once touched, stays resident with its neighbours (up to hundreds of KiB a touch on
    /// current kernels), so reading one header per tensor through it would make resident
    /// memory grow with the number of tensors.
    pub(crate) fn open_from(
        bytes: &'data [u8],
        file: Option<&'data std::fs::File>,
        max_inflated: u64,
    ) -> Result<Self> {
        Archive::new(Zip::open(Input::mapped(bytes, file))?, max_inflated)
    }

    /// The archive torch reads from `zip`: its records as torch checks them.
    pub(crate) fn new(zip: Zip<'data>, max_inflated: u64) -> Result<Self> {
        let (prefix, records) = records(&zip)?;
        Ok(Archive {
            zip,
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
        self.zip
            .input()
            .slice(record.start, record.stored_len)
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
    use std::io::Read;
    flate2::read::DeflateDecoder::new(data)
        .take(len)
        .read_to_end(out)?;
    Ok(())
}

/// The records of a zip, checked as torch would have them, with the archive's folder.
fn records(zip: &Zip<'_>) -> Result<(String, BTreeMap<String, Record>)> {
    // What makes readers disagree on the bytes of a record: ckpt refuses to pick one.
    for anomaly in &zip.anomalies {
        let refused = match anomaly.kind {
            AnomalyKind::ZipDuplicate => Some(
                "the zip archive holds two records with the same name; readers disagree on \
                 which one counts, so ckpt refuses it",
            ),
            AnomalyKind::ZipOverlap => Some("torch never writes such archives"),
            AnomalyKind::ZipBounds => Some("the file is truncated; fetch it again"),
            _ => None,
        };
        if let Some(why) = refused {
            let mut error = Error::malformed(if anomaly.kind == AnomalyKind::ZipDuplicate {
                why.to_owned()
            } else {
                anomaly.message.clone()
            });
            if anomaly.kind != AnomalyKind::ZipDuplicate {
                error = error.with_hint(why);
            }
            if let Some(member) = &anomaly.member {
                error = error.with_member(member.clone());
            }
            if let Some(offset) = anomaly.offset {
                error = error.at_offset(offset);
            }
            return Err(error);
        }
    }
    let mut prefix: Option<String> = None;
    let mut records = BTreeMap::new();
    for member in &zip.members {
        let record = record(member)?;
        let name = &member.name;
        // torch: the folder is the first entry's name up to its first `/`, and every
        // entry must be under it.
        let Some((folder, rest)) = name.split_once('/') else {
            return Err(Error::malformed(format!(
                "zip entry `{name}` is not inside a folder; torch.save archives keep every \
                 record under one folder"
            ))
            .at_offset(member.header_start));
        };
        match &prefix {
            None => prefix = Some(folder.to_owned()),
            Some(p) if p == folder => {}
            Some(p) => {
                return Err(Error::malformed(format!(
                    "zip entry `{name}` is outside the archive's folder `{p}/`; torch \
                     refuses such archives"
                ))
                .at_offset(member.header_start));
            }
        }
        records.insert(rest.to_owned(), record);
    }
    Ok((prefix.unwrap_or_default(), records))
}

/// A member as a record torch can read.
fn record(member: &Member) -> Result<Record> {
    let name = &member.name;
    let start = member
        .data_start
        .ok_or_else(|| Error::malformed(format!("zip entry `{name}` has no data offset")))?;
    let compressed = match member.method {
        STORED => false,
        DEFLATED => true,
        other => {
            return Err(Error::unsupported(format!(
                "zip entry `{name}` uses compression {}, which torch never writes",
                method_name(other)
            ))
            .at_offset(member.header_start));
        }
    };
    if member.encrypted {
        return Err(
            Error::unsupported(format!("zip entry `{name}` is encrypted"))
                .at_offset(member.header_start),
        );
    }
    if !compressed && member.compressed_size != member.size {
        return Err(Error::malformed(format!(
            "zip entry `{name}` is stored uncompressed but declares {} bytes stored and {} \
             bytes in all",
            member.compressed_size, member.size
        ))
        .at_offset(member.header_start));
    }
    Ok(Record {
        name: name.clone(),
        start,
        stored_len: member.compressed_size,
        len: member.size,
        compressed,
    })
}
