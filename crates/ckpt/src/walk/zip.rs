//! Zip archives, as every loader of them sees them: the central directory (what torch's
//! miniz and Python's `zipfile` read), each member's local header and data descriptor (what
//! streaming readers read), and every byte that none of them holds.
//!
//! The directory, local headers and descriptors are read at their offsets
//! ([`Input::peek`]), never through a map, so that opening an archive of thousands of
//! tensors touches kilobytes. Every entry of the directory is a member, duplicates
//! included (torch reads the first of a name, Python's `zipfile` the last). Member data is handed out borrowed when stored, inflated
//! within a limit when compressed, and only when asked for.

use std::collections::HashMap;
use std::io::Read;

use crate::error::{Error, Result};
use crate::input::Input;

use super::{Anomaly, AnomalyKind};

const LOCAL: &[u8; 4] = b"PK\x03\x04";
const DESCRIPTOR: &[u8; 4] = b"PK\x07\x08";
const END: &[u8; 4] = b"PK\x05\x06";
/// The fixed part of a local header.
const LOCAL_LEN: u64 = 30;
/// The same, as a length to read.
const LOCAL_SIZE: usize = 30;
/// The most hidden members looked for in the bytes the directory leaves out.
const MAX_HIDDEN: usize = 1 << 16;

/// Compression methods, by their number in the zip format.
pub(crate) const STORED: u16 = 0;
pub(crate) const DEFLATED: u16 = 8;
pub(crate) const BZIP2: u16 = 12;
pub(crate) const LZMA: u16 = 14;

/// The name of a compression method, for messages.
pub(crate) fn method_name(method: u16) -> String {
    match method {
        STORED => "stored".to_owned(),
        DEFLATED => "deflate".to_owned(),
        BZIP2 => "bzip2".to_owned(),
        LZMA => "lzma".to_owned(),
        9 => "deflate64".to_owned(),
        93 => "zstd".to_owned(),
        95 => "xz".to_owned(),
        99 => "AES".to_owned(),
        other => format!("method {other}"),
    }
}

/// The names the central directory of the zip in `bytes` lists (for telling archives
/// apart by their records).
pub(crate) fn directory_names(bytes: &[u8]) -> Result<Vec<String>> {
    let directory = Directory::read(Input::new(bytes))?;
    Ok(directory.entries.into_iter().map(|m| m.name).collect())
}

/// The end of central directory record, as torch's miniz and Python's `zipfile` find it:
/// the last signature in the final 64 KiB, with the zip64 records it points to.
#[derive(Debug, Clone, Copy)]
struct End {
    /// Where the record (or the zip64 record, when there is one) starts.
    start: u64,
    /// Where the archive ends: after the record and its comment.
    end: u64,
    entries: u64,
    directory_size: u64,
    directory_start: u64,
}

impl End {
    fn find(input: Input<'_>) -> Result<End> {
        let len = input.len();
        let from = len.saturating_sub(22 + 65535);
        let tail = input.peek(from, usize::try_from(len - from).unwrap_or(0))?;
        let at = memchr::memmem::rfind(&tail, END)
            .filter(|&at| at + 22 <= tail.len())
            .ok_or_else(|| {
                Error::malformed("the zip archive has no end of central directory record")
                    .at_offset(input.base().saturating_add(len))
                    .with_hint("the file is probably truncated or damaged; fetch it again")
            })?;
        let record = tail.get(at..at + 22).unwrap_or_default();
        let le16 = |i: usize| u64::from(u16::from_le_bytes(field(record, i)));
        let le32 = |i: usize| u64::from(u32::from_le_bytes(field(record, i)));
        let start = from + at as u64;
        let mut end = End {
            start,
            end: (start + 22 + le16(20)).min(len),
            entries: le16(10),
            directory_size: le32(12),
            directory_start: le32(16),
        };
        if end.entries == 0xFFFF
            || end.directory_size == 0xFFFF_FFFF
            || end.directory_start == 0xFFFF_FFFF
        {
            end.read_zip64(input)?;
        }
        Ok(end)
    }

    /// The zip64 end record, through the locator right before the end record.
    fn read_zip64(&mut self, input: Input<'_>) -> Result<()> {
        let Some(locator_at) = self.start.checked_sub(20) else {
            return Ok(());
        };
        let locator = input.peek(locator_at, 20)?;
        if !locator.starts_with(b"PK\x06\x07") {
            return Ok(());
        }
        let record_at = u64::from_le_bytes(field(&locator, 8));
        let record = input.peek(record_at, 56)?;
        if !record.starts_with(b"PK\x06\x06") || record.len() < 56 {
            return Err(Error::malformed(
                "the zip64 end of central directory record is missing where its locator points",
            )
            .at_offset(input.base().saturating_add(record_at)));
        }
        self.start = record_at;
        self.entries = u64::from_le_bytes(field(&record, 32));
        self.directory_size = u64::from_le_bytes(field(&record, 40));
        self.directory_start = u64::from_le_bytes(field(&record, 48));
        Ok(())
    }
}

/// `N` bytes of `bytes` at `at` (zeros past the end).
fn field<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    bytes
        .get(at..at + N)
        .and_then(|b| b.try_into().ok())
        .unwrap_or([0; N])
}

/// The central directory: every entry it lists, duplicates included.
struct Directory {
    start: u64,
    end: u64,
    entries: Vec<Member>,
    anomalies: Vec<Anomaly>,
}

impl Directory {
    fn read(input: Input<'_>) -> Result<Directory> {
        let end = End::find(input)?;
        let start = end.directory_start;
        let raw = input.peek(
            start,
            usize::try_from(end.directory_size).unwrap_or(usize::MAX),
        )?;
        if (raw.len() as u64) < end.directory_size {
            return Err(Error::malformed(format!(
                "the central directory ({} bytes at byte {start}) runs past the end of the file",
                end.directory_size
            ))
            .at_offset(input.base().saturating_add(start))
            .with_hint("the file is probably truncated or damaged; fetch it again"));
        }
        let mut entries = Vec::new();
        let mut anomalies = Vec::new();
        let mut pos = 0usize;
        // Each entry takes at least 46 bytes: the count is bounded by the directory's size.
        let count = end.entries.min(raw.len() as u64 / 46);
        for index in 0..count {
            let Some(fixed) = raw
                .get(pos..pos + 46)
                .filter(|f| f.starts_with(b"PK\x01\x02"))
            else {
                anomalies.push(
                    Anomaly::new(
                        AnomalyKind::ZipEntry,
                        format!("entry {index} of the central directory cannot be read"),
                    )
                    .at(input.base().saturating_add(start + pos as u64)),
                );
                break;
            };
            let le16 = |i: usize| u16::from_le_bytes(field(fixed, i));
            let le32 = |i: usize| u32::from_le_bytes(field(fixed, i));
            let (name_len, extra_len, comment_len) = (
                usize::from(le16(28)),
                usize::from(le16(30)),
                usize::from(le16(32)),
            );
            let name = raw.get(pos + 46..pos + 46 + name_len).unwrap_or_default();
            let extra = raw
                .get(pos + 46 + name_len..pos + 46 + name_len + extra_len)
                .unwrap_or_default();
            let mut compressed_size = u64::from(le32(20));
            let mut size = u64::from(le32(24));
            let mut header_start = u64::from(le32(42));
            // zip64: the fields that overflow are in the 0x0001 extra field, in order.
            let mut rest = extra;
            while let Some(header) = rest.get(..4) {
                let id = u16::from_le_bytes(field(header, 0));
                let len = usize::from(u16::from_le_bytes(field(header, 2)));
                let body = rest.get(4..4 + len).unwrap_or_default();
                if id == 1 {
                    let mut values = body
                        .chunks_exact(8)
                        .map(|c| u64::from_le_bytes(field(c, 0)));
                    if size == 0xFFFF_FFFF {
                        size = values.next().unwrap_or(size);
                    }
                    if compressed_size == 0xFFFF_FFFF {
                        compressed_size = values.next().unwrap_or(compressed_size);
                    }
                    if header_start == 0xFFFF_FFFF {
                        header_start = values.next().unwrap_or(header_start);
                    }
                }
                rest = rest.get(4 + len..).unwrap_or_default();
            }
            entries.push(Member {
                name: String::from_utf8_lossy(name).into_owned(),
                listed: true,
                header_start,
                data_start: None,
                compressed_size,
                size,
                method: le16(10),
                flags: le16(8),
                crc32: le32(16),
                encrypted: le16(8) & 0x1 != 0,
                end: header_start,
                in_bounds: false,
            });
            pos += 46 + name_len + extra_len + comment_len;
        }
        if (entries.len() as u64) < end.entries {
            anomalies.push(
                Anomaly::new(
                    AnomalyKind::ZipEntry,
                    format!(
                        "the end record counts {} entries but the central directory holds {}",
                        end.entries,
                        entries.len()
                    ),
                )
                .at(input.base().saturating_add(end.start)),
            );
        }
        Ok(Directory {
            start,
            end: end.end,
            entries,
            anomalies,
        })
    }
}

/// One member of the archive.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    /// The name as stored (bytes that are not UTF-8 replaced).
    pub(crate) name: String,
    /// Whether the central directory lists it (`false`: found by its local header only).
    pub(crate) listed: bool,
    pub(crate) header_start: u64,
    /// Where its data starts, when its local header could be read.
    pub(crate) data_start: Option<u64>,
    pub(crate) compressed_size: u64,
    pub(crate) size: u64,
    /// The compression method, by number.
    pub(crate) method: u16,
    /// The local header's general-purpose flags (0 when it could not be read).
    pub(crate) flags: u16,
    pub(crate) crc32: u32,
    pub(crate) encrypted: bool,
    /// Where the member ends: after its data and its data descriptor.
    pub(crate) end: u64,
    /// Whether its data lies inside the file.
    pub(crate) in_bounds: bool,
}

/// A zip archive's members and everything that does not add up.
#[derive(Debug)]
pub(crate) struct Zip<'data> {
    input: Input<'data>,
    /// The members the central directory lists, in its order.
    pub(crate) members: Vec<Member>,
    /// Members found only by their local headers, in the bytes the directory leaves out.
    pub(crate) hidden: Vec<Member>,
    /// What does not add up, in file order of discovery.
    pub(crate) anomalies: Vec<Anomaly>,
    /// Where the central directory starts.
    pub(crate) directory_start: u64,
    /// Where the archive ends (after its end record and comment).
    pub(crate) end: u64,
}

impl<'data> Zip<'data> {
    /// Reads the archive in `input`: an error only when its central directory cannot be
    /// read at all.
    pub(crate) fn open(input: Input<'data>) -> Result<Zip<'data>> {
        let directory = Directory::read(input)?;
        let mut zip = Zip {
            input,
            members: Vec::new(),
            hidden: Vec::new(),
            anomalies: directory.anomalies,
            directory_start: directory.start,
            end: directory.end,
        };
        let mut members = directory.entries;
        let mut ahead = ReadAhead::default();
        for member in &mut members {
            let anomalies = zip.check_local_header(member, &mut ahead)?;
            zip.anomalies.extend(anomalies);
        }
        zip.members = members;
        zip.check_names();
        zip.account();
        Ok(zip)
    }

    /// The input the archive was read from.
    pub(crate) fn input(&self) -> Input<'data> {
        self.input
    }

    /// Where offsets of the archive lie in the outermost file.
    fn at(&self, offset: u64) -> u64 {
        self.input.base().saturating_add(offset)
    }

    /// Reads the member's local header: its flags, where its data starts, whether it agrees
    /// with the directory, whether its data lies in the file, and its data descriptor.
    fn check_local_header(
        &self,
        member: &mut Member,
        ahead: &mut ReadAhead,
    ) -> Result<Vec<Anomaly>> {
        let mut out = Vec::new();
        let anomaly = |message: String| {
            Anomaly::new(AnomalyKind::ZipLocalHeader, message)
                .member(member.name.clone())
                .at(self.at(member.header_start))
        };
        let header = ahead.peek(self.input, member.header_start, LOCAL_SIZE)?;
        let Some(local) = LocalHeader::parse(header) else {
            out.push(anomaly(if member.header_start >= self.input.len() {
                "the central directory points past the end of the file".to_owned()
            } else if header.len() < LOCAL_SIZE && header.starts_with(LOCAL) {
                "the local header is cut short by the end of the file".to_owned()
            } else {
                "the central directory points at no local header".to_owned()
            }));
            return Ok(out);
        };
        member.flags = local.flags;
        let name_start = member.header_start + LOCAL_LEN;
        let name = ahead.peek(self.input, name_start, usize::from(local.name_len))?;
        let local_name = String::from_utf8_lossy(name).into_owned();
        if local_name != member.name {
            out.push(anomaly(format!(
                "the local header names `{local_name}` but the central directory `{}`: streaming \
                 readers and directory readers see different members",
                member.name
            )));
        }
        if local.method != member.method {
            out.push(anomaly(format!(
                "the local header says compression {}, the central directory {}",
                method_name(local.method),
                method_name(member.method)
            )));
        }
        // With bit 3, the local CRC and sizes may be zero: a data descriptor holds them.
        if local.flags & 0x8 == 0 {
            let differs = (local.compressed_size != u32::MAX
                && u64::from(local.compressed_size) != member.compressed_size)
                || (local.size != u32::MAX && u64::from(local.size) != member.size);
            if differs {
                out.push(anomaly(format!(
                    "the local header declares {} bytes ({} uncompressed), the central \
                     directory {} ({}): readers disagree on where the member ends",
                    local.compressed_size, local.size, member.compressed_size, member.size
                )));
            }
            if local.crc32 != member.crc32 {
                out.push(anomaly(format!(
                    "the local header's CRC-32 is {:08x}, the central directory's {:08x}",
                    local.crc32, member.crc32
                )));
            }
        }
        let data_start = member
            .data_start
            .unwrap_or(name_start + u64::from(local.name_len) + u64::from(local.extra_len));
        member.data_start = Some(data_start);
        let data_end = data_start.checked_add(member.compressed_size);
        match data_end.filter(|&end| end <= self.input.len()) {
            Some(data_end) => {
                member.in_bounds = true;
                member.end = data_end;
                if local.flags & 0x8 != 0 {
                    let (len, agrees) = self.descriptor(data_end, member, ahead)?;
                    member.end = data_end + len;
                    if !agrees {
                        out.push(
                            Anomaly::new(
                                AnomalyKind::ZipDescriptor,
                                format!(
                                    "the data descriptor after the member does not repeat the \
                                     central directory's CRC-32 {:08x} and sizes {}/{}",
                                    member.crc32, member.compressed_size, member.size
                                ),
                            )
                            .member(member.name.clone())
                            .at(self.at(data_end)),
                        );
                    }
                }
            }
            None => {
                // Its bytes are what the file still holds of it.
                member.end = self.input.len();
                out.push(
                    Anomaly::new(
                        AnomalyKind::ZipBounds,
                        format!(
                            "the member claims {} bytes at byte {data_start}, past the end of the \
                         file ({} bytes)",
                            member.compressed_size,
                            self.input.len()
                        ),
                    )
                    .member(member.name.clone())
                    .at(self.at(member.header_start)),
                );
            }
        }
        if member.encrypted {
            out.push(
                Anomaly::new(
                    AnomalyKind::ZipEncrypted,
                    "the member is flagged encrypted: Python's zipfile (and scanners built on \
                     it) refuse it while torch's reader ignores the flag and loads it",
                )
                .member(member.name.clone())
                .at(self.at(member.header_start)),
            );
        }
        if !matches!(member.method, STORED | DEFLATED | BZIP2 | LZMA) {
            out.push(
                Anomaly::new(
                    AnomalyKind::ZipCompression,
                    format!(
                        "the member uses {}, which ckpt does not inflate",
                        method_name(member.method)
                    ),
                )
                .member(member.name.clone())
                .at(self.at(member.header_start)),
            );
        }
        Ok(out)
    }

    /// The data descriptor at `at` after a member whose local header defers to one: how
    /// long it is, and whether it repeats the directory's CRC and sizes. A member with no
    /// data may have none.
    fn descriptor(&self, at: u64, member: &Member, ahead: &mut ReadAhead) -> Result<(u64, bool)> {
        let raw = ahead.peek(self.input, at, 24)?;
        let (signature, fields) = match raw.strip_prefix(DESCRIPTOR.as_slice()) {
            Some(rest) => (4, rest),
            None => (0, raw),
        };
        let le32 = |at: usize| -> Option<u64> {
            Some(u64::from(u32::from_le_bytes(
                fields.get(at..at + 4)?.try_into().ok()?,
            )))
        };
        let le64 = |at: usize| -> Option<u64> {
            Some(u64::from_le_bytes(fields.get(at..at + 8)?.try_into().ok()?))
        };
        let crc = le32(0) == Some(u64::from(member.crc32));
        let sizes = (Some(member.compressed_size), Some(member.size));
        if crc && (le32(4), le32(8)) == sizes {
            return Ok((signature + 12, true));
        }
        if crc && (le64(4), le64(12)) == sizes {
            return Ok((signature + 20, true));
        }
        if signature == 0 && member.compressed_size == 0 {
            // No descriptor after an empty member: nothing to account for.
            return Ok((0, true));
        }
        Ok((signature + 12, false))
    }

    fn check_names(&mut self) {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for member in &self.members {
            *seen.entry(member.name.as_str()).or_default() += 1;
        }
        let mut reported = std::collections::HashSet::new();
        for member in &self.members {
            if seen.get(member.name.as_str()).is_some_and(|&n| n > 1)
                && reported.insert(member.name.clone())
            {
                self.anomalies.push(
                    Anomaly::new(
                        AnomalyKind::ZipDuplicate,
                        "two members share a name: readers disagree on which one counts \
                         (torch reads the first, Python's zipfile the last); both are read",
                    )
                    .member(member.name.clone())
                    .at(self.at(member.header_start)),
                );
            }
        }
    }

    /// Accounts for every byte of the archive: members (header, data, descriptor), the
    /// central directory with its end records. What is left over is searched for local
    /// headers the directory does not list, and reported.
    fn account(&mut self) {
        let mut spans: Vec<(u64, u64, Option<&str>)> = self
            .members
            .iter()
            .filter(|m| m.data_start.is_some())
            .map(|m| (m.header_start, m.end, Some(m.name.as_str())))
            .collect();
        spans.push((self.directory_start.min(self.end), self.end, None));
        spans.sort_unstable();
        let mut anomalies = Vec::new();
        let mut gaps = Vec::new();
        let mut cursor = 0u64;
        let mut last: Option<(u64, Option<&str>)> = None;
        for &(start, end, name) in &spans {
            if start < cursor {
                if let (Some((_, previous)), Some(name)) = (last, name) {
                    let previous = previous.unwrap_or("the central directory");
                    anomalies.push(
                        Anomaly::new(
                            AnomalyKind::ZipOverlap,
                            format!(
                                "members `{previous}` and `{name}` share bytes (one's data covers \
                                 the other's header or data); torch never writes such archives"
                            ),
                        )
                        .member(name)
                        .at(self.at(start)),
                    );
                }
            } else if start > cursor {
                gaps.push((cursor, start));
            }
            if end >= cursor {
                cursor = end;
                last = Some((end, name));
            }
        }
        if cursor < self.end {
            gaps.push((cursor, self.end));
        }
        self.anomalies.extend(anomalies);
        for (start, end) in gaps {
            self.search_gap(start, end);
        }
        if self.end < self.input.len() {
            self.anomalies.push(
                Anomaly::new(
                    AnomalyKind::ZipTrailing,
                    format!(
                        "{} bytes follow the end of the zip archive",
                        self.input.len() - self.end
                    ),
                )
                .at(self.at(self.end)),
            );
        }
    }

    /// Bytes no listed member holds: local headers in them are hidden members (which
    /// streaming readers see), the rest is reported as bytes nobody reads.
    fn search_gap(&mut self, start: u64, end: u64) {
        let Some(gap) = self.input.slice(start, end - start) else {
            return;
        };
        let mut at = 0usize;
        let mut loose_from = 0usize;
        let mut loose = 0u64;
        while let Some(found) = find(gap.get(at..).unwrap_or_default(), LOCAL) {
            let header = at + found;
            if self.hidden.len() >= MAX_HIDDEN {
                break;
            }
            loose += (header - loose_from) as u64;
            let Some(member) = self.hidden_member(start + header as u64, self.input.len()) else {
                at = header + 4;
                loose_from = header;
                continue;
            };
            self.anomalies.push(
                Anomaly::new(
                    AnomalyKind::ZipHidden,
                    "a member that the central directory does not list: streaming readers \
                     see it, directory readers (torch, Python's zipfile, most scanners) do not",
                )
                .member(member.name.clone())
                .at(self.at(member.header_start)),
            );
            let next = usize::try_from(member.end - start)
                .unwrap_or(gap.len())
                .max(header + 4);
            self.hidden.push(member);
            at = next;
            loose_from = next;
        }
        loose += gap.len().saturating_sub(loose_from) as u64;
        if loose > 0 {
            let (kind, message) = if start == 0 {
                (
                    AnomalyKind::ZipPrefix,
                    format!("{loose} bytes come before the first member of the archive"),
                )
            } else {
                (
                    AnomalyKind::ZipGap,
                    format!(
                        "{loose} bytes between the members are held by no member, descriptor \
                         or directory: no zip reader reads them"
                    ),
                )
            };
            self.anomalies
                .push(Anomaly::new(kind, message).at(self.at(start)));
        }
    }

    /// The member whose local header starts at `at`, found in bytes that end at `limit`.
    fn hidden_member(&self, at: u64, limit: u64) -> Option<Member> {
        let header = self.input.slice(at, LOCAL_LEN)?;
        let local = LocalHeader::parse(header)?;
        let name_start = at + LOCAL_LEN;
        let name = self.input.slice(name_start, u64::from(local.name_len))?;
        let data_start = name_start + u64::from(local.name_len) + u64::from(local.extra_len);
        if data_start > limit {
            return None;
        }
        let declared = u64::from(local.compressed_size);
        let room = limit - data_start;
        let compressed_size = if local.flags & 0x8 == 0 || declared != 0 {
            declared.min(room)
        } else {
            // Sizes deferred to a descriptor: where the data ends is found in the data.
            let data = self.input.slice(data_start, room).unwrap_or_default();
            match local.method {
                DEFLATED => deflate_len(data).unwrap_or(room),
                _ => find(data, DESCRIPTOR).map_or(room, |n| n as u64),
            }
        };
        let mut end = data_start + compressed_size;
        let mut size = u64::from(local.size);
        if self.input.slice(end, 4) == Some(DESCRIPTOR.as_slice()) {
            // The descriptor's uncompressed size, as a streaming reader takes it.
            if local.flags & 0x8 != 0
                && let Some(field) = self.input.slice(end + 12, 4)
            {
                size = u64::from(u32::from_le_bytes(field.try_into().unwrap_or_default()));
            }
            end = (end + 16).min(limit);
        }
        if local.flags & 0x8 != 0 && size == 0 {
            // No size to go by: a streaming reader inflates to the end of the stream.
            size = if local.method == STORED {
                compressed_size
            } else {
                u64::MAX
            };
        }
        Some(Member {
            name: String::from_utf8_lossy(name).into_owned(),
            listed: false,
            header_start: at,
            data_start: Some(data_start),
            compressed_size,
            size,
            method: local.method,
            flags: local.flags,
            crc32: local.crc32,
            encrypted: local.flags & 0x1 != 0,
            end,
            in_bounds: true,
        })
    }

    /// The member's stored bytes (compressed or not), borrowed.
    pub(crate) fn stored(&self, member: &Member) -> Result<&'data [u8]> {
        member
            .data_start
            .filter(|_| member.in_bounds)
            .and_then(|start| self.input.slice(start, member.compressed_size))
            .ok_or_else(|| {
                Error::malformed("the member's data lies outside the file")
                    .with_member(member.name.clone())
                    .at_offset(self.at(member.header_start))
            })
    }
}

/// How many bytes a read of a local header, a name or a data descriptor fetches: those of
/// members written one after another (a data descriptor, the next local header, its name
/// and extra field) then lie in one read, not three.
const READ_AHEAD: usize = 512;

/// The bytes of the last read made ahead, so that the small places read one after
/// another in [`Zip::open`] cost one positioned read, not one each.
#[derive(Debug, Default)]
struct ReadAhead {
    start: u64,
    bytes: Vec<u8>,
}

impl ReadAhead {
    /// `len` bytes of `input` at `start` (fewer when the input ends first), as
    /// [`Input::peek`] gives them, read ahead by [`READ_AHEAD`] bytes.
    fn peek(&mut self, input: Input<'_>, start: u64, len: usize) -> Result<&[u8]> {
        let wanted_end = start.saturating_add(len as u64).min(input.len());
        let block_end = self.start.saturating_add(self.bytes.len() as u64);
        let held = start >= self.start && wanted_end <= block_end && !self.bytes.is_empty();
        if !held {
            self.start = start;
            self.bytes = input.peek(start, len.max(READ_AHEAD))?.into_owned();
        }
        let from = usize::try_from(start - self.start).unwrap_or(usize::MAX);
        let to = usize::try_from(wanted_end.max(start) - self.start).unwrap_or(usize::MAX);
        Ok(self.bytes.get(from..to).unwrap_or_default())
    }
}

/// The fixed fields of a local header.
#[derive(Debug, Clone, Copy)]
struct LocalHeader {
    flags: u16,
    method: u16,
    crc32: u32,
    compressed_size: u32,
    size: u32,
    name_len: u16,
    extra_len: u16,
}

impl LocalHeader {
    fn parse(bytes: &[u8]) -> Option<LocalHeader> {
        if !bytes.starts_with(LOCAL) {
            return None;
        }
        let le16 = |at: usize| Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?));
        let le32 = |at: usize| Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?));
        Some(LocalHeader {
            flags: le16(6)?,
            method: le16(8)?,
            crc32: le32(14)?,
            compressed_size: le32(18)?,
            size: le32(22)?,
            name_len: le16(26)?,
            extra_len: le16(28)?,
        })
    }
}

/// Where `needle` first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

/// How many bytes of `data` a raw DEFLATE stream takes, when it ends in them.
fn deflate_len(data: &[u8]) -> Option<u64> {
    let mut decoder = flate2::read::DeflateDecoder::new(data);
    let mut sink = [0u8; 8192];
    // Bounded by the input: every call consumes input or ends the stream.
    loop {
        match decoder.read(&mut sink) {
            Ok(0) => return Some(decoder.total_in()),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Cursor, Write};

    use super::*;

    fn archive(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        for (name, data) in members {
            writer.start_file(*name, options).unwrap();
            writer.write_all(data).unwrap();
        }
        writer.finish().unwrap().into_inner()
    }

    #[test]
    fn a_plain_archive_adds_up() {
        let bytes = archive(&[("a/data.pkl", b"\x80\x02}q\x00."), ("a/version", b"3\n")]);
        let zip = Zip::open(Input::new(&bytes)).unwrap();
        assert_eq!(zip.members.len(), 2);
        assert!(zip.anomalies.is_empty(), "{:?}", zip.anomalies);
        assert!(zip.hidden.is_empty());
        let data = zip.stored(&zip.members[0]).unwrap();
        assert_eq!(data, b"\x80\x02}q\x00.");
    }

    #[test]
    fn bytes_before_between_and_after_are_reported() {
        let plain = archive(&[("a/x", b"xx")]);
        // Bytes before an archive whose offsets count from its own start: its directory
        // is not where the end record says, as torch's reader finds too; the local headers
        // are still found.
        let mut before = b"junk".to_vec();
        before.extend_from_slice(&plain);
        let zip = Zip::open(Input::new(&before)).unwrap();
        let kinds: Vec<_> = zip.anomalies.iter().map(|a| a.kind).collect();
        assert!(
            kinds.contains(&AnomalyKind::ZipEntry),
            "{:?}",
            zip.anomalies
        );
        assert_eq!(
            zip.hidden.len(),
            1,
            "{:?} {}",
            zip.anomalies,
            zip.directory_start
        );
        let mut after = plain.clone();
        after.extend_from_slice(b"trailing");
        let zip = Zip::open(Input::new(&after)).unwrap();
        assert_eq!(zip.anomalies.len(), 1);
        assert_eq!(zip.anomalies[0].kind, AnomalyKind::ZipTrailing);
        assert_eq!(zip.end, plain.len() as u64);
    }

    #[test]
    fn a_member_the_directory_does_not_list_is_found() {
        // Two members; then drop the second from the directory by rewriting the end record.
        let hidden = archive(&[("a/x", b"xx"), ("a/evil.pkl", b"\x80\x02cos\nsystem\n.")]);
        let one = archive(&[("a/x", b"xx")]);
        // Splice: the local headers of both, then the directory of the first alone.
        let zip_one = Zip::open(Input::new(&one)).unwrap();
        let zip_two = Zip::open(Input::new(&hidden)).unwrap();
        let mut spliced = hidden[..usize::try_from(zip_two.directory_start).unwrap()].to_vec();
        let shift = spliced.len() as u64 - zip_one.directory_start;
        let mut directory = one[usize::try_from(zip_one.directory_start).unwrap()..].to_vec();
        // Patch the end record's directory offset.
        let end = directory.len() - 22;
        let offset = u32::from_le_bytes(directory[end + 16..end + 20].try_into().unwrap());
        let shift = u32::try_from(shift).unwrap();
        directory[end + 16..end + 20].copy_from_slice(&(offset + shift).to_le_bytes());
        spliced.extend_from_slice(&directory);
        let zip = Zip::open(Input::new(&spliced)).unwrap();
        assert_eq!(zip.members.len(), 1);
        assert_eq!(zip.hidden.len(), 1, "{:?}", zip.anomalies);
        assert_eq!(zip.hidden[0].name, "a/evil.pkl");
        assert!(
            zip.anomalies
                .iter()
                .any(|a| a.kind == AnomalyKind::ZipHidden)
        );
        let data = zip.stored(&zip.hidden[0]).unwrap();
        assert_eq!(data, b"\x80\x02cos\nsystem\n.");
    }

    #[test]
    fn reads_from_a_file_agree_with_reads_from_bytes() {
        let bytes = archive(&[
            ("a/data.pkl", b"\x80\x02}q\x00."),
            ("a/data/0", &[7u8; 100]),
        ]);
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&bytes).unwrap();
        let from_bytes = Zip::open(Input::new(&bytes)).unwrap();
        let from_file = Zip::open(Input::mapped(&bytes, Some(&file))).unwrap();
        assert_eq!(
            format!("{:?}", from_bytes.members),
            format!("{:?}", from_file.members)
        );
        assert_eq!(from_bytes.anomalies, from_file.anomalies);
    }
}

#[cfg(test)]
mod fixtures {
    use super::*;

    /// Every zip torch (2.0 and 2.15) and the DCP writer made: every byte is accounted for.
    #[test]
    fn real_archives_have_no_anomaly() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/ok");
        let mut pending = vec![root];
        let mut seen = 0;
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    pending.push(path);
                    continue;
                }
                let bytes = std::fs::read(&path).unwrap();
                // A `.distcp` file is archives back to back, read by the offsets its
                // metadata gives, not as one zip.
                if !bytes.starts_with(LOCAL) || path.extension().is_some_and(|e| e == "distcp") {
                    continue;
                }
                let zip = Zip::open(Input::new(&bytes)).unwrap();
                assert!(
                    zip.anomalies.is_empty(),
                    "{}: {:?}",
                    path.display(),
                    zip.anomalies
                );
                assert!(zip.hidden.is_empty());
                seen += 1;
            }
        }
        assert!(seen > 40, "{seen}");
    }
}
