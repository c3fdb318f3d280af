//! The zip container of a `torch.save` file, laid out byte for byte as torch's
//! `PyTorchStreamWriter` (`caffe2/serialize/inline_container.cc`, over miniz 3.0.2's
//! `mz_zip_writer_add_mem_ex_v2` with `MZ_ZIP_FLAG_WRITE_ZIP64`) lays it out.
//!
//! Every record is STORED. Its local header has no time, date, CRC or sizes (flag bit 3:
//! a data descriptor follows the data), then the name, then, when the record is zip64
//! (its size or its header offset is at least `0xFFFF_FFFF`), miniz's zip64 extra field,
//! then torch's `FB` extra field whose `Z` padding puts the data on a multiple of 64
//! bytes. A data descriptor (16 bytes, or 24 with 64-bit sizes for zip64 records) follows
//! non-empty data; empty records have none, and no bit 3. The central directory carries
//! the CRCs and sizes (32-bit fields saturate at `0xFFFF_FFFF`, the zip64 extra field holds
//! the real values), and the archive always ends with a zip64 end of central directory
//! record, its locator and the classic end record.
//!
//! Everything here is arithmetic on names and sizes, so the layout of a multi-gigabyte
//! archive is known (and tested) before a byte is written.

use crate::error::{Error, Result};

/// Where record data starts: a multiple of this (torch's `.storage_alignment`).
pub(super) const ALIGNMENT: u64 = 64;
/// Sizes and offsets at or above this need zip64 fields (miniz's `MZ_UINT32_MAX` test).
const ZIP64_LIMIT: u64 = 0xFFFF_FFFF;

const LOCAL_HEADER_LEN: u64 = 30;
const CENTRAL_HEADER_LEN: u64 = 46;
const ZIP64_END_LEN: u64 = 56;
const ZIP64_LOCATOR_LEN: u64 = 20;
const END_LEN: u64 = 22;
/// torch's padding field: `F`, `B`, a u16 length, then that many `Z`.
const PADDING_HEADER_LEN: u64 = 4;

const LOCAL_HEADER_SIG: u32 = 0x0403_4b50;
const DATA_DESCRIPTOR_SIG: u32 = 0x0807_4b50;
const CENTRAL_HEADER_SIG: u32 = 0x0201_4b50;
const ZIP64_END_SIG: u32 = 0x0606_4b50;
const ZIP64_LOCATOR_SIG: u32 = 0x0706_4b50;
const END_SIG: u32 = 0x0605_4b50;
/// General purpose flags: bit 3 (sizes in a data descriptor), bit 11 (UTF-8 names).
const FLAG_DATA_DESCRIPTOR: u16 = 0x0008;
const FLAG_UTF8: u16 = 0x0800;
/// The zip64 extended information extra field.
const ZIP64_EXTRA_ID: u16 = 0x0001;

/// One record of the archive, placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    /// The full name, folder included (`model/data/0`).
    pub(super) name: String,
    /// The size of the data.
    pub(super) len: u64,
    /// Where the local header starts.
    pub(super) header_offset: u64,
}

impl Entry {
    /// Whether the size needs zip64 fields.
    fn big(&self) -> bool {
        self.len >= ZIP64_LIMIT
    }

    /// Whether the header offset needs zip64 fields.
    fn far(&self) -> bool {
        self.header_offset >= ZIP64_LIMIT
    }

    /// The length of miniz's zip64 extra field (0 when the record needs none): the
    /// uncompressed and compressed sizes when the size is big, the header offset when it
    /// is far. The local and central fields have the same length.
    fn zip64_extra_len(&self) -> u64 {
        if !self.big() && !self.far() {
            return 0;
        }
        4 + if self.big() { 16 } else { 0 } + if self.far() { 8 } else { 0 }
    }

    /// The `Z` padding torch's `getPadding` adds so that the data starts aligned.
    fn padding(&self) -> u64 {
        let start = self.header_offset
            + LOCAL_HEADER_LEN
            + self.name.len() as u64
            + PADDING_HEADER_LEN
            + self.zip64_extra_len();
        (ALIGNMENT - start % ALIGNMENT) % ALIGNMENT
    }

    fn local_extra_len(&self) -> u64 {
        self.zip64_extra_len() + PADDING_HEADER_LEN + self.padding()
    }

    /// The length of the local header, name and extra fields included.
    pub(super) fn local_header_len(&self) -> u64 {
        LOCAL_HEADER_LEN + self.name.len() as u64 + self.local_extra_len()
    }

    /// Where the data starts (a multiple of [`ALIGNMENT`]).
    pub(super) fn data_offset(&self) -> u64 {
        self.header_offset + self.local_header_len()
    }

    /// The length of the data descriptor after the data.
    pub(super) fn descriptor_len(&self) -> u64 {
        match (self.len, self.zip64_extra_len()) {
            (0, _) => 0,
            (_, 0) => 16,
            _ => 24,
        }
    }

    /// Where the next record starts.
    #[cfg(test)]
    pub(super) fn end(&self) -> u64 {
        self.data_offset() + self.len + self.descriptor_len()
    }

    fn flags(&self) -> u16 {
        if self.len > 0 {
            FLAG_UTF8 | FLAG_DATA_DESCRIPTOR
        } else {
            FLAG_UTF8
        }
    }

    /// miniz's zip64 extra field: for the local header it writes the compressed size as
    /// 0 (it is not known yet when the header is written), for the central directory the
    /// real one.
    fn zip64_extra(&self, out: &mut Vec<u8>, compressed: u64) {
        if self.zip64_extra_len() == 0 {
            return;
        }
        put16(out, ZIP64_EXTRA_ID);
        put16(out, u16_of(self.zip64_extra_len() - 4));
        if self.big() {
            put64(out, self.len);
            put64(out, compressed);
        }
        if self.far() {
            put64(out, self.header_offset);
        }
    }

    /// The local header, with its name and extra fields.
    pub(super) fn local_header(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(usize_of(self.local_header_len()));
        put32(&mut out, LOCAL_HEADER_SIG);
        put16(&mut out, 0); // version needed (miniz: 20 only when deflating)
        put16(&mut out, self.flags());
        put16(&mut out, 0); // method: stored
        put16(&mut out, 0); // time
        put16(&mut out, 0); // date
        put32(&mut out, 0); // CRC: in the data descriptor
        put32(&mut out, 0); // compressed size: in the data descriptor
        put32(&mut out, 0); // uncompressed size: in the data descriptor
        put16(&mut out, u16_of(self.name.len() as u64));
        put16(&mut out, u16_of(self.local_extra_len()));
        out.extend_from_slice(self.name.as_bytes());
        self.zip64_extra(&mut out, 0);
        out.extend_from_slice(b"FB");
        put16(&mut out, u16_of(self.padding()));
        out.resize(usize_of(self.local_header_len()), b'Z');
        out
    }

    /// The data descriptor that follows the data (empty for empty records).
    pub(super) fn descriptor(&self, crc: u32) -> Vec<u8> {
        let mut out = Vec::with_capacity(24);
        match self.descriptor_len() {
            0 => {}
            16 => {
                put32(&mut out, DATA_DESCRIPTOR_SIG);
                put32(&mut out, crc);
                put32(&mut out, saturate32(self.len));
                put32(&mut out, saturate32(self.len));
            }
            _ => {
                put32(&mut out, DATA_DESCRIPTOR_SIG);
                put32(&mut out, crc);
                put64(&mut out, self.len);
                put64(&mut out, self.len);
            }
        }
        out
    }

    fn central_header_len(&self) -> u64 {
        CENTRAL_HEADER_LEN + self.name.len() as u64 + self.zip64_extra_len()
    }

    fn central_header(&self, crc: u32, out: &mut Vec<u8>) {
        put32(out, CENTRAL_HEADER_SIG);
        put16(out, 0); // version made by
        put16(out, 0); // version needed
        put16(out, self.flags());
        put16(out, 0); // method: stored
        put16(out, 0); // time
        put16(out, 0); // date
        put32(out, crc);
        put32(out, saturate32(self.len));
        put32(out, saturate32(self.len));
        put16(out, u16_of(self.name.len() as u64));
        put16(out, u16_of(self.zip64_extra_len()));
        put16(out, 0); // comment length
        put16(out, 0); // disk number
        put16(out, 0); // internal attributes
        put32(out, 0); // external attributes
        put32(out, saturate32(self.header_offset));
        out.extend_from_slice(self.name.as_bytes());
        self.zip64_extra(out, self.len);
    }
}

/// The whole archive: its records placed back to back from offset 0, then the central
/// directory and the end records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Layout {
    /// The records, in file order.
    pub(super) entries: Vec<Entry>,
    central_offset: u64,
    central_len: u64,
}

impl Layout {
    /// Places records of these full names and sizes, in this order.
    pub(super) fn new(records: Vec<(String, u64)>) -> Result<Layout> {
        let mut entries = Vec::with_capacity(records.len());
        let mut offset = 0u64;
        let mut central_len = 0u64;
        for (name, len) in records {
            if u16::try_from(name.len()).is_err() {
                return Err(Error::invalid(format!(
                    "the record name `{name}` is longer than the 65535 bytes a zip name holds"
                ))
                .with_hint("choose a shorter output file name"));
            }
            let entry = Entry {
                name,
                len,
                header_offset: offset,
            };
            // Sizes are bounded by what the sources hold, but sums of them are checked
            // anyway: a wrap-around would silently corrupt every later offset.
            offset = entry
                .header_offset
                .checked_add(entry.local_header_len())
                .and_then(|o| o.checked_add(len))
                .and_then(|o| o.checked_add(entry.descriptor_len()))
                .ok_or_else(|| Error::limit("the archive would be larger than 2^64 bytes"))?;
            central_len += entry.central_header_len();
            entries.push(entry);
        }
        // miniz refuses central directories of 4 GiB and more, and so does torch.
        if central_len >= ZIP64_LIMIT {
            return Err(Error::limit(
                "the archive's central directory would reach 4 GiB: too many records",
            ));
        }
        Ok(Layout {
            entries,
            central_offset: offset,
            central_len,
        })
    }

    /// The size of the whole file.
    pub(super) fn file_len(&self) -> u64 {
        self.central_offset + self.central_len + ZIP64_END_LEN + ZIP64_LOCATOR_LEN + END_LEN
    }

    /// Where the central directory starts (right after the last record).
    pub(super) fn central_offset(&self) -> u64 {
        self.central_offset
    }

    /// The central directory and the end records, given each record's CRC-32.
    pub(super) fn trailer(&self, crcs: &[u32]) -> Vec<u8> {
        let mut out = Vec::with_capacity(usize_of(self.file_len() - self.central_offset));
        for (entry, &crc) in self.entries.iter().zip(crcs) {
            entry.central_header(crc, &mut out);
        }
        let count = self.entries.len() as u64;
        let zip64_end = self.central_offset + self.central_len;
        // The zip64 end of central directory record (version made by 0x031E and needed
        // 0x002D, as miniz writes them).
        put32(&mut out, ZIP64_END_SIG);
        put64(&mut out, ZIP64_END_LEN - 12);
        put16(&mut out, 0x031E);
        put16(&mut out, 0x002D);
        put32(&mut out, 0);
        put32(&mut out, 0);
        put64(&mut out, count);
        put64(&mut out, count);
        put64(&mut out, self.central_len);
        put64(&mut out, self.central_offset);
        // Its locator.
        put32(&mut out, ZIP64_LOCATOR_SIG);
        put32(&mut out, 0);
        put64(&mut out, zip64_end);
        put32(&mut out, 1);
        // The classic end record, with saturated fields.
        put32(&mut out, END_SIG);
        put16(&mut out, 0);
        put16(&mut out, 0);
        put16(&mut out, u16::try_from(count).unwrap_or(u16::MAX));
        put16(&mut out, u16::try_from(count).unwrap_or(u16::MAX));
        put32(&mut out, saturate32(self.central_len));
        put32(&mut out, saturate32(self.central_offset));
        put16(&mut out, 0);
        out
    }
}

fn put16(out: &mut Vec<u8>, value: u16) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn put32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn put64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_le_bytes());
}

/// A 32-bit zip field: the value, or `0xFFFF_FFFF` when the zip64 field holds it.
fn saturate32(value: u64) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

/// A 16-bit length the layout has already bounded (names are checked, extra fields and
/// padding are short).
fn u16_of(value: u64) -> u16 {
    u16::try_from(value).unwrap_or(u16::MAX)
}

/// A small length (a header) as a capacity.
fn usize_of(value: u64) -> usize {
    usize::try_from(value).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, len: u64, header_offset: u64) -> Entry {
        Entry {
            name: name.to_owned(),
            len,
            header_offset,
        }
    }

    fn ix(offset: u64) -> usize {
        usize::try_from(offset).unwrap()
    }

    fn u16_at(bytes: &[u8], at: usize) -> u16 {
        u16::from_le_bytes(bytes[at..at + 2].try_into().unwrap())
    }

    fn u32_at(bytes: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
    }

    fn u64_at(bytes: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
    }

    /// formats.md §9: `my.model/data.pkl` at offset 0 gets `FB 0d 00` and 13 `Z`s.
    #[test]
    fn padding_matches_torch() {
        let e = entry("my.model/data.pkl", 100, 0);
        let header = e.local_header();
        assert_eq!(header.len(), 64);
        assert_eq!(e.data_offset(), 64);
        assert_eq!(u16_at(&header, 28), 17);
        assert_eq!(&header[47..51], b"FB\x0d\x00");
        assert!(header[51..].iter().all(|&b| b == b'Z'));
        assert_eq!(u16_at(&header, 6), 0x0808);
        // A name that already ends on the boundary gets an empty padding, never none.
        let e = entry(&"n".repeat(30), 0, 0);
        assert_eq!(e.padding(), 0);
        assert_eq!(e.local_header_len(), 64);
        assert_eq!(&e.local_header()[60..], b"FB\x00\x00");
    }

    /// The bytes of torch 2.15's `tensor-2.15-zip.pt` fixture, rebuilt from the record
    /// names and sizes: every header, descriptor and end record is identical.
    #[test]
    fn layout_of_a_real_torch_file() {
        let torch = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../tests/fixtures/ok/torch/tensor-2.15-zip.pt"),
        )
        .unwrap();
        let names = [
            ("data.pkl", 152),
            (".format_version", 1),
            (".storage_alignment", 2),
            ("byteorder", 6),
            ("data/0", 24),
            ("version", 2),
            (".data/serialization_id", 40),
        ];
        let layout = Layout::new(
            names
                .iter()
                .map(|&(n, len)| (format!("tensor-2.15-zip/{n}"), len))
                .collect(),
        )
        .unwrap();
        assert_eq!(layout.file_len(), torch.len() as u64);
        let mut crcs = Vec::new();
        for e in &layout.entries {
            let start = ix(e.header_offset);
            assert_eq!(
                e.local_header(),
                &torch[start..ix(e.data_offset())],
                "{}",
                e.name
            );
            let data = &torch[ix(e.data_offset())..ix(e.data_offset() + e.len)];
            let mut crc = crc32fast::Hasher::new();
            crc.update(data);
            crcs.push(crc.clone().finalize());
            let tail = ix(e.data_offset() + e.len);
            assert_eq!(
                e.descriptor(crc.clone().finalize()),
                &torch[tail..ix(e.end())]
            );
            assert_eq!(e.data_offset() % ALIGNMENT, 0);
        }
        assert_eq!(layout.trailer(&crcs), &torch[ix(layout.central_offset())..]);
    }

    #[test]
    fn a_record_of_4_gib_gets_zip64_sizes() {
        let size = 5 << 30;
        let e = entry("m/data/0", size, 1000);
        assert!(e.big() && !e.far());
        assert_eq!(e.zip64_extra_len(), 20);
        assert_eq!(e.data_offset() % ALIGNMENT, 0);
        let header = e.local_header();
        assert_eq!(header.len() as u64, e.local_header_len());
        // name, then the zip64 field (uncompressed size, compressed size 0), then FB.
        assert_eq!(u16_at(&header, 30 + 8), ZIP64_EXTRA_ID);
        assert_eq!(u16_at(&header, 30 + 10), 16);
        assert_eq!(u64_at(&header, 30 + 12), size);
        assert_eq!(u64_at(&header, 30 + 20), 0);
        assert_eq!(&header[58..60], b"FB");
        // A 24-byte descriptor with 64-bit sizes.
        let descriptor = e.descriptor(7);
        assert_eq!(descriptor.len(), 24);
        assert_eq!(u64_at(&descriptor, 8), size);
        assert_eq!(u64_at(&descriptor, 16), size);
        assert_eq!(e.end(), e.data_offset() + size + 24);
        // The central header saturates the 32-bit sizes and carries both real ones.
        let mut central = Vec::new();
        e.central_header(7, &mut central);
        assert_eq!(central.len() as u64, e.central_header_len());
        assert_eq!(u32_at(&central, 20), u32::MAX);
        assert_eq!(u32_at(&central, 24), u32::MAX);
        assert_eq!(u32_at(&central, 42), 1000);
        assert_eq!(u16_at(&central, 30), 20);
        assert_eq!(u64_at(&central, 46 + 8 + 4), size);
        assert_eq!(u64_at(&central, 46 + 8 + 12), size);
    }

    #[test]
    fn a_record_past_4_gib_gets_a_zip64_offset() {
        let offset = (4u64 << 30) + 3;
        let e = entry("m/version", 2, offset);
        assert!(!e.big() && e.far());
        assert_eq!(e.zip64_extra_len(), 12);
        assert_eq!(e.data_offset() % ALIGNMENT, 0);
        let header = e.local_header();
        assert_eq!(u16_at(&header, 30 + 9), ZIP64_EXTRA_ID);
        assert_eq!(u16_at(&header, 30 + 11), 8);
        assert_eq!(u64_at(&header, 30 + 13), offset);
        // Any zip64 field means 64-bit descriptor sizes (miniz keys them on the field).
        assert_eq!(e.descriptor_len(), 24);
        let mut central = Vec::new();
        e.central_header(0, &mut central);
        assert_eq!(u32_at(&central, 20), 2);
        assert_eq!(u32_at(&central, 42), u32::MAX);
        assert_eq!(u64_at(&central, 46 + 9 + 4), offset);
        // Right at the limit counts too (miniz tests `>= MZ_UINT32_MAX`).
        assert!(entry("x/y", 0xFFFF_FFFF, 0).big());
        assert!(!entry("x/y", 0xFFFF_FFFE, 0xFFFF_FFFE).big());
        assert!(entry("x/y", 0, 0xFFFF_FFFF).far());
    }

    #[test]
    fn offsets_run_through_a_large_archive() {
        let layout = Layout::new(vec![
            ("m/data.pkl".to_owned(), 100),
            ("m/data/0".to_owned(), 3 << 30),
            ("m/data/1".to_owned(), 5 << 30),
            ("m/data/2".to_owned(), 10),
            ("m/data/3".to_owned(), 0),
            ("m/version".to_owned(), 2),
        ])
        .unwrap();
        for pair in layout.entries.windows(2) {
            assert_eq!(pair[1].header_offset, pair[0].end());
        }
        let [_, small, big, far, empty, version] = &layout.entries[..] else {
            panic!()
        };
        assert!(!small.big() && !small.far());
        assert!(big.big() && !big.far());
        assert!(far.far() && !far.big());
        assert_eq!(small.descriptor_len(), 16);
        assert_eq!(big.descriptor_len(), 24);
        assert_eq!(far.descriptor_len(), 24);
        assert_eq!(empty.descriptor_len(), 0);
        assert_eq!(empty.flags(), FLAG_UTF8);
        assert!(version.far());
        for e in &layout.entries {
            assert_eq!(e.data_offset() % ALIGNMENT, 0, "{}", e.name);
        }
        let trailer = layout.trailer(&[0; 6]);
        assert_eq!(
            layout.central_offset() + trailer.len() as u64,
            layout.file_len()
        );
        // The classic end record saturates the central directory offset; the zip64 one
        // holds it.
        let end = &trailer[trailer.len() - 22..];
        assert_eq!(u32_at(end, 16), u32::MAX);
        let zip64 = &trailer[trailer.len() - 22 - 20 - 56..];
        assert_eq!(u64_at(zip64, 48), layout.central_offset());
        let locator = &trailer[trailer.len() - 22 - 20..];
        assert_eq!(
            u64_at(locator, 8),
            layout.central_offset() + trailer.len() as u64 - 98
        );
    }

    #[test]
    fn names_must_fit_in_a_zip_header() {
        let error = Layout::new(vec![("a".repeat(70_000), 1)]).unwrap_err();
        assert!(error.to_string().contains("65535"), "{error}");
    }
}
