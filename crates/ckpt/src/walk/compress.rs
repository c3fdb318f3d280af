//! Compressed bytes, inflated as the loaders inflate them, within a limit.
//!
//! Zip members: deflate (torch's miniz, Python's `zipfile`), bzip2 and lzma (`zipfile`,
//! so `numpy.load` of an `.npz`). Whole files: the wrappers `joblib.load` recognises by
//! their first bytes (zlib, gzip, bz2, lzma, xz) before it unpickles what they hold. Each
//! is inflated streaming, never past `max` bytes (the `inflated-len` limit) and never with
//! more memory than [`MEMORY_LIMIT`] for its dictionary; what was inflated before a limit or
//! a damaged stream is kept, so that it is still scanned.

use std::io::Read;

use super::zip::{BZIP2, DEFLATED, LZMA};

/// The most memory a decompressor's dictionary may take (LZMA and XZ streams declare
/// theirs; Python's decompressors take what they declare).
pub(crate) const MEMORY_LIMIT: u32 = 256 << 20;

/// Bytes inflated from a compressed stream.
#[derive(Debug, Default)]
pub(crate) struct Inflated {
    /// What was inflated: everything, or what came before the limit or the damage.
    pub(crate) bytes: Vec<u8>,
    /// Why it was not, when it was not.
    pub(crate) problem: Option<String>,
    /// Whether it stopped at the limit (the stream goes on past it).
    pub(crate) over_limit: bool,
}

/// Reads `reader` to its end, keeping at most `max` bytes: what it holds, whether it ended
/// within `max`, and the error that stopped it.
fn drain(reader: impl Read, max: u64) -> Inflated {
    let mut bytes = Vec::new();
    match read_within(reader, max.saturating_add(1), &mut bytes) {
        Ok(_) if bytes.len() as u64 > max => {
            bytes.truncate(usize::try_from(max).unwrap_or(usize::MAX));
            Inflated {
                bytes,
                problem: Some(format!(
                    "it inflates to more than {max} bytes (the `inflated-len` limit)"
                )),
                over_limit: true,
            }
        }
        Ok(_) => Inflated {
            bytes,
            problem: None,
            over_limit: false,
        },
        Err(e) => Inflated {
            bytes,
            problem: Some(format!("it cannot be inflated: {e}")),
            over_limit: false,
        },
    }
}

/// A reader of the inflated data of a zip member compressed with `method` (`declared`: the
/// size its entry declares, where loaders stop reading); `None` for methods ckpt does not
/// inflate, an error for a stream that cannot start.
pub(crate) fn member_reader<'a>(
    method: u16,
    data: &'a [u8],
    declared: u64,
) -> Option<Result<Box<dyn Read + 'a>, String>> {
    Some(match method {
        DEFLATED => Ok(Box::new(
            flate2::read::DeflateDecoder::new(data).take(declared),
        )),
        BZIP2 => Ok(Box::new(bzip2::read::BzDecoder::new(data).take(declared))),
        LZMA => zip_lzma(data, declared),
        _ => return None,
    })
}

/// Reads at most `max` bytes of `reader` into `out`, growing it by at most its size at a
/// time and never past `max` (`read_to_end` may double a buffer past what it will hold).
fn read_within(mut reader: impl Read, max: u64, out: &mut Vec<u8>) -> std::io::Result<()> {
    let max = usize::try_from(max).unwrap_or(usize::MAX);
    loop {
        if out.len() >= max {
            return Ok(());
        }
        if out.len() == out.capacity() {
            let grow = out.len().max(64 << 10).min(max - out.len());
            out.try_reserve_exact(grow).map_err(std::io::Error::other)?;
        }
        let start = out.len();
        let room = out.capacity().min(max) - start;
        out.resize(start + room, 0);
        let read = loop {
            match reader.read(out.get_mut(start..).unwrap_or_default()) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                other => break other,
            }
        };
        match read {
            Ok(n) => {
                out.truncate(start + n);
                if n == 0 {
                    return Ok(());
                }
            }
            Err(e) => {
                out.truncate(start);
                return Err(e);
            }
        }
    }
}

/// Inflates the data of a zip member compressed with `method`, at most `max` bytes of it;
/// `declared` is the size its entry declares, where loaders stop reading (torch's miniz and
/// Python's `zipfile` both give the member's first `declared` bytes). `None` for methods
/// ckpt does not inflate.
pub(crate) fn inflate(method: u16, data: &[u8], declared: u64, max: u64) -> Option<Inflated> {
    let limit = declared.min(max);
    Some(match member_reader(method, data, declared)? {
        Ok(reader) => drain(reader, limit),
        Err(problem) => Inflated {
            problem: Some(problem),
            ..Inflated::default()
        },
    })
}

/// A zip member in LZMA (method 14): a 2-byte version, a 2-byte properties length, the
/// LZMA properties (a byte and the dictionary size), then a raw LZMA stream.
fn zip_lzma<'a>(data: &'a [u8], declared: u64) -> Result<Box<dyn Read + 'a>, String> {
    let broken = |what: &str| format!("its LZMA header is {what}");
    let Some(&[_, _, len_lo, len_hi]) = data.get(..4) else {
        return Err(broken("cut short"));
    };
    let props_len = usize::from(u16::from_le_bytes([len_lo, len_hi]));
    let Some(props) = data.get(4..4 + props_len) else {
        return Err(broken("cut short"));
    };
    let Some((&byte, dict)) = props.split_first() else {
        return Err(broken("empty"));
    };
    let Some(dict) = dict.get(..4).and_then(|d| d.try_into().ok()) else {
        return Err(broken("cut short"));
    };
    let dict = u32::from_le_bytes(dict);
    let stream = data.get(4 + props_len..).unwrap_or_default();
    // The dictionary never needs to be larger than what is inflated, nor than the memory
    // limit.
    let dict = dict
        .min(u32::try_from(declared).unwrap_or(u32::MAX))
        .clamp(4096, MEMORY_LIMIT);
    lzma_rust2::LzmaReader::new_with_props(stream, declared, byte, dict, None)
        .map(|reader| Box::new(reader) as Box<dyn Read + 'a>)
        .map_err(|e| format!("its LZMA stream cannot be read: {e}"))
}

/// A compression wrapper around a whole file, as `joblib.load` detects it by the file's
/// first bytes (`joblib.numpy_pickle_utils._detect_compressor`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wrapper {
    /// joblib's format before 0.10: `ZF`, the length in hex padded to 19 characters, then
    /// one zlib stream (`joblib.numpy_pickle_compat.read_zfile`).
    ZfCompat,
    Zlib,
    Gzip,
    Bz2,
    Lzma,
    Xz,
    /// LZ4 frames, which `joblib.load` reads when the `lz4` package is installed.
    Lz4,
}

impl Wrapper {
    /// The wrapper `bytes` start with, in joblib's order of detection.
    pub(crate) fn detect(bytes: &[u8]) -> Option<Wrapper> {
        if bytes.starts_with(b"ZF") {
            return Some(Wrapper::ZfCompat);
        }
        const PREFIXES: [(&[u8], Wrapper); 6] = [
            (b"\x78", Wrapper::Zlib),
            (b"\x1f\x8b", Wrapper::Gzip),
            (b"BZ", Wrapper::Bz2),
            (b"\x5d\x00", Wrapper::Lzma),
            (b"\xfd\x37\x7a\x58\x5a", Wrapper::Xz),
            (b"\x04\x22\x4d\x18", Wrapper::Lz4),
        ];
        PREFIXES
            .iter()
            .find(|(prefix, _)| bytes.starts_with(prefix))
            .map(|&(_, wrapper)| wrapper)
    }

    /// A name for messages (`gzip`...).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Wrapper::ZfCompat => "joblib zfile",
            Wrapper::Zlib => "zlib",
            Wrapper::Gzip => "gzip",
            Wrapper::Bz2 => "bz2",
            Wrapper::Lzma => "lzma",
            Wrapper::Xz => "xz",
            Wrapper::Lz4 => "lz4",
        }
    }

    /// A reader of a whole wrapped file's inflated bytes; concatenated streams are read one
    /// after the other, as joblib's file objects read them.
    pub(crate) fn reader<'a>(self, data: &'a [u8]) -> Result<Box<dyn Read + 'a>, String> {
        Ok(match self {
            Wrapper::ZfCompat => {
                // `ZF` and 19 characters of length; joblib <= 0.8.4 wrote one more space.
                let stream = data.get(21..).unwrap_or_default();
                let stream = stream.strip_prefix(b" ").unwrap_or(stream);
                Box::new(flate2::read::ZlibDecoder::new(stream))
            }
            Wrapper::Zlib => Box::new(Concatenated::new(data)),
            Wrapper::Gzip => Box::new(flate2::read::MultiGzDecoder::new(data)),
            Wrapper::Bz2 => Box::new(bzip2::read::MultiBzDecoder::new(data)),
            Wrapper::Lzma => Box::new(
                lzma_rust2::LzmaReader::new_mem_limit(data, MEMORY_LIMIT / 1024, None)
                    .map_err(|e| format!("its LZMA stream cannot be read: {e}"))?,
            ),
            Wrapper::Xz => Box::new(lzma_rust2::XzReader::new_mem_limit(
                data,
                true,
                MEMORY_LIMIT / 1024,
            )),
            Wrapper::Lz4 => Box::new(lz4_flex::frame::FrameDecoder::new(data)),
        })
    }

    /// Inflates a whole wrapped file, at most `max` bytes.
    pub(crate) fn inflate(self, data: &[u8], max: u64) -> Inflated {
        match self.reader(data) {
            Ok(reader) => drain(reader, max),
            Err(problem) => Inflated {
                problem: Some(problem),
                ..Inflated::default()
            },
        }
    }
}

/// zlib streams back to back (joblib's `BinaryZlibFile` starts a new one where the last
/// ends, until the data runs out).
struct Concatenated<'a> {
    rest: &'a [u8],
    current: Option<flate2::bufread::ZlibDecoder<&'a [u8]>>,
}

impl<'a> Concatenated<'a> {
    fn new(data: &'a [u8]) -> Self {
        Concatenated {
            rest: data,
            current: None,
        }
    }
}

impl Read for Concatenated<'_> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let decoder = match &mut self.current {
                Some(decoder) => decoder,
                None if self.rest.is_empty() => return Ok(0),
                None => self
                    .current
                    .insert(flate2::bufread::ZlibDecoder::new(self.rest)),
            };
            let read = decoder.read(buffer)?;
            if read > 0 || buffer.is_empty() {
                return Ok(read);
            }
            // This stream ended: the next starts where it stopped reading.
            let used = usize::try_from(decoder.total_in()).unwrap_or(usize::MAX);
            let next = self.rest.get(used..).unwrap_or_default();
            if used == 0 || next.len() == self.rest.len() {
                self.rest = &[];
            } else {
                self.rest = next;
            }
            self.current = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    const TEXT: &[u8] = b"\x80\x02cos\nsystem\nq\x00.";

    #[test]
    fn every_wrapper_joblib_knows_inflates() {
        let zlib = {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(TEXT).unwrap();
            e.finish().unwrap()
        };
        let mut twice = zlib.clone();
        twice.extend_from_slice(&zlib);
        let gzip = {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(TEXT).unwrap();
            e.finish().unwrap()
        };
        let bz2 = {
            let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
            e.write_all(TEXT).unwrap();
            e.finish().unwrap()
        };
        let lz4 = {
            let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
            e.write_all(TEXT).unwrap();
            e.finish().unwrap()
        };
        for (bytes, wrapper, expected) in [
            (&lz4, Wrapper::Lz4, TEXT.to_vec()),
            (&zlib, Wrapper::Zlib, TEXT.to_vec()),
            (&twice, Wrapper::Zlib, [TEXT, TEXT].concat()),
            (&gzip, Wrapper::Gzip, TEXT.to_vec()),
            (&bz2, Wrapper::Bz2, TEXT.to_vec()),
        ] {
            assert_eq!(Wrapper::detect(bytes), Some(wrapper));
            let out = wrapper.inflate(bytes, 1 << 20);
            assert!(out.problem.is_none(), "{wrapper:?}: {:?}", out.problem);
            assert_eq!(out.bytes, expected, "{wrapper:?}");
        }
        assert_eq!(Wrapper::detect(b"\x80\x02"), None);
    }

    #[test]
    fn past_the_limit_the_inflated_part_is_kept() {
        let big = vec![b'a'; 10_000];
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(&big).unwrap();
        let deflated = e.finish().unwrap();
        let out = inflate(DEFLATED, &deflated, 10_000, 1000).unwrap();
        assert!(out.over_limit);
        assert_eq!(out.bytes.len(), 1000);
        assert!(out.problem.unwrap().contains("inflated-len"));
        let out = inflate(DEFLATED, &deflated, 10_000, 1 << 20).unwrap();
        assert!(out.problem.is_none());
        assert_eq!(out.bytes, big);
        let out = inflate(DEFLATED, b"\xff\xff\xff", 3, 1 << 20).unwrap();
        assert!(out.problem.is_some());
        assert!(inflate(99, b"", 0, 10).is_none());
    }
}
