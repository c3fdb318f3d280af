//! Every part of a file and what a loader does with it.
//!
//! The containers a checkpoint comes in (a zip, a tar, a stream of pickles, a compressed
//! stream...) are each parsed once, here or in their format's folder, into typed views that
//! the readers take their tensors from, and into a list of [`Part`]s that says, for every
//! region of the file, what a loader does with it: unpickles it, reads it as an array
//! header, walks it as an archive of its own, compiles it as code, maps it as tensor bytes,
//! reads it as text. Whatever the containers' own rules do not explain is an [`Anomaly`]:
//! bytes between zip members, a member the directory does not list, a local header that
//! disagrees with it. The scanner judges the parts and the anomalies, `verify` maps the
//! anomalies to its rules, and the readers refuse what the scanner calls dangerous: all
//! three see the same file.
//!
//! Nothing here runs, imports or writes anything; every number read from the file is
//! checked before it sizes an allocation or a loop.

mod archive;
pub(crate) mod compress;
mod stream;
pub(crate) mod tar;
pub(crate) mod zip;

use std::borrow::Cow;

use ckpt_pickle::Pickle;

use crate::error::{Error, ErrorKind};
use crate::input::Input;
use crate::limits::Limits;

pub(crate) use stream::is_legacy_magic;

/// Which loaders unpickle a part (for messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Loader {
    /// `torch.load`.
    Torch,
    /// `torch.jit.load` (TorchScript archives).
    TorchScript,
    /// `numpy.load(allow_pickle=True)`.
    Numpy,
    /// `pickle.load` and the loaders built on it (`joblib.load`, `numpy.load` of a file that
    /// is not an array).
    Pickle,
    /// `torch.export.load`.
    Export,
    /// `joblib.load` (an object array's nested pickle).
    Joblib,
    /// `torch.distributed.checkpoint`'s reader.
    Dcp,
}

impl Loader {
    /// How a message names the loader.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Loader::Torch => "torch.load",
            Loader::TorchScript => "torch.jit.load",
            Loader::Numpy => "numpy.load(allow_pickle=True)",
            Loader::Pickle => "pickle.load",
            Loader::Export => "torch.export.load",
            Loader::Joblib => "joblib.load",
            Loader::Dcp => "torch.distributed.checkpoint",
        }
    }
}

/// What a loader does with a part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Use {
    /// A loader unpickles it from its first byte: every byte of it is parsed as a pickle,
    /// whatever it looks like, and a pickle that breaks is never judged better than
    /// `unsafe`. `rest`: what the bytes after the pickle's `STOP` are to the loader.
    Pickle { loader: Loader, rest: Rest },
    /// Bytes that no loader of the container reads as a pickle but that another loader
    /// could (the first bytes of a file of another format, bytes after its end, members no
    /// loader reads): parsed as a pickle as far as they go; what they name is judged.
    Probe,
    /// A numpy array (`.npy`, alone or in a zip): its header is parsed as numpy does; an
    /// object array's data is a pickle.
    Npy,
    /// An archive (or a compressed stream) inside the file, walked in turn.
    Nested,
    /// TorchScript code that `torch.jit.load` compiles and runs.
    Code,
}

impl Use {
    /// What loaders make of bytes no container rule places, by their first bytes: an
    /// archive is walked, an array's header read, anything else probed as a pickle.
    pub(crate) fn of(head: &[u8]) -> Use {
        if head.starts_with(b"PK\x03\x04") {
            Use::Nested
        } else if head.starts_with(NPY_MAGIC) {
            Use::Npy
        } else {
            Use::Probe
        }
    }
}

/// What follows the `STOP` of a part's pickle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rest {
    /// Nothing should: bytes there are hidden from loaders that stop at `STOP` and read by
    /// those that call `pickle.load` again (they are scanned as stacked pickles).
    Nothing,
    /// The container's own data follows (it is a part of its own, or accounted for).
    Data,
}

/// A pickle the walk already parsed (to find where it ends), with the error that stopped
/// it, if one did.
#[derive(Debug, Clone)]
pub(crate) struct Parsed<'data> {
    pub(crate) pickle: Pickle<'data>,
    pub(crate) error: Option<ckpt_pickle::Error>,
}

/// The bytes of a part: the file's own, or compressed bytes inflated only when read, one
/// part at a time (a walk never holds the inflated members of an archive at once).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Content<'data> {
    /// Bytes of the file, as they are.
    Stored(&'data [u8]),
    /// A zip member's compressed data: `method`, and the size its entry declares.
    Zip {
        method: u16,
        data: &'data [u8],
        size: u64,
    },
    /// A whole file in a compression wrapper (joblib's).
    Wrapped {
        wrapper: compress::Wrapper,
        data: &'data [u8],
    },
}

/// A part's bytes, read.
#[derive(Debug)]
pub(crate) struct Loaded<'data> {
    /// The bytes a loader reads: borrowed when stored, inflated (at most the limit) else.
    pub(crate) bytes: Cow<'data, [u8]>,
    /// Why inflating stopped early, when it did.
    pub(crate) problem: Option<String>,
    /// Whether it stopped at the limit, with more to come ([`Content::reader`] reads on).
    pub(crate) over_limit: bool,
}

impl<'data> Content<'data> {
    /// The bytes, inflated if need be, at most `max` of them.
    pub(crate) fn load(&self, max: u64) -> Loaded<'data> {
        let inflated = match *self {
            Content::Stored(bytes) => {
                return Loaded {
                    bytes: Cow::Borrowed(bytes),
                    problem: None,
                    over_limit: false,
                };
            }
            Content::Zip { method, data, size } => compress::inflate(method, data, size, max)
                .unwrap_or_else(|| compress::Inflated {
                    problem: Some(format!(
                        "it uses {}, which ckpt does not inflate",
                        zip::method_name(method)
                    )),
                    ..compress::Inflated::default()
                }),
            Content::Wrapped { wrapper, data } => wrapper.inflate(data, max),
        };
        Loaded {
            bytes: Cow::Owned(inflated.bytes),
            problem: inflated.problem,
            over_limit: inflated.over_limit,
        }
    }

    /// A reader of the (inflated) bytes, from the start, for what is too large to hold.
    pub(crate) fn reader(&self) -> Option<Box<dyn std::io::Read + 'data>> {
        match *self {
            Content::Stored(bytes) => Some(Box::new(bytes)),
            Content::Zip { method, data, size } => {
                compress::member_reader(method, data, size)?.ok()
            }
            Content::Wrapped { wrapper, data } => wrapper.reader(data).ok(),
        }
    }

    /// Whether the bytes are the file's own (offsets inside them are offsets in the file).
    pub(crate) fn is_stored(&self) -> bool {
        matches!(self, Content::Stored(_))
    }
}

/// A region of the file and what a loader does with it.
#[derive(Debug, Clone)]
pub(crate) struct Part<'data> {
    /// What it is: a member name (`archive/data.pkl`), or the place in a stream
    /// (`object pickle`).
    pub(crate) name: String,
    /// Where its first byte lies in the file; for compressed bytes, where the stored data
    /// starts (offsets inside are then offsets in the inflated bytes).
    pub(crate) offset: u64,
    /// Its bytes.
    pub(crate) content: Content<'data>,
    /// What a loader does with it.
    pub(crate) use_: Use,
    /// The pickle at its start, when the walk parsed it already.
    pub(crate) parsed: Option<Parsed<'data>>,
}

impl<'data> Part<'data> {
    /// A part of the file's own bytes, at `offset`.
    pub(crate) fn stored(
        name: impl Into<String>,
        offset: u64,
        bytes: &'data [u8],
        use_: Use,
    ) -> Self {
        Part {
            name: name.into(),
            offset,
            content: Content::Stored(bytes),
            use_,
            parsed: None,
        }
    }

    /// The part with the pickle the walk parsed at its start.
    pub(crate) fn with_parsed(mut self, parsed: Parsed<'data>) -> Self {
        self.parsed = Some(parsed);
        self
    }

    /// Where offsets inside the part count from (the VM's `base`): the file's offsets for
    /// stored bytes, the inflated bytes' own for the rest.
    pub(crate) fn base(&self) -> u64 {
        if self.content.is_stored() {
            self.offset
        } else {
            0
        }
    }
}

/// What an anomaly is, for the scanner's verdicts and verify's rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum AnomalyKind {
    /// An entry of the zip's central directory cannot be read.
    ZipEntry,
    /// Two members of a zip share a name.
    ZipDuplicate,
    /// A member's local header is missing or disagrees with the central directory.
    ZipLocalHeader,
    /// A member's data lies past the end of the file.
    ZipBounds,
    /// Two members share bytes.
    ZipOverlap,
    /// A member is flagged encrypted.
    ZipEncrypted,
    /// A member uses a compression method that no loader inflates (or ckpt does not).
    ZipCompression,
    /// A data descriptor disagrees with the central directory.
    ZipDescriptor,
    /// A local header that the central directory does not list.
    ZipHidden,
    /// Bytes of the archive that no member, directory or descriptor holds.
    ZipGap,
    /// Bytes before the first member.
    ZipPrefix,
    /// Bytes after the end of the archive.
    ZipTrailing,
    /// Bytes after the last part a loader reads of a stream (after a legacy stream's last
    /// storage, after the data of a safetensors file).
    Trailing,
    /// A stream whose rest cannot be told apart (storages of unknown size): the bytes after
    /// the point are not accounted for.
    Unaccounted,
    /// An archive appended to a file of another format (a polyglot).
    Polyglot,
}

/// Something in a file that its container's rules do not explain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Anomaly {
    pub(crate) kind: AnomalyKind,
    /// The member concerned, when there is one.
    pub(crate) member: Option<String>,
    /// Where, in the file.
    pub(crate) offset: Option<u64>,
    /// What is wrong, in a sentence.
    pub(crate) message: String,
}

impl Anomaly {
    pub(crate) fn new(kind: AnomalyKind, message: impl Into<String>) -> Self {
        Anomaly {
            kind,
            member: None,
            offset: None,
            message: message.into(),
        }
    }

    pub(crate) fn member(mut self, member: impl Into<String>) -> Self {
        self.member = Some(member.into());
        self
    }

    pub(crate) fn at(mut self, offset: u64) -> Self {
        self.offset = Some(offset);
        self
    }
}

/// A file walked: its parts, what does not add up, and what could not be read.
#[derive(Debug, Default)]
pub(crate) struct Walk<'data> {
    /// What the file is (`torch-zip`, `pickle`, `npz`...), when known.
    pub(crate) format: Option<&'static str>,
    /// Every part a loader does something with, in file order.
    pub(crate) parts: Vec<Part<'data>>,
    /// What does not add up.
    pub(crate) anomalies: Vec<Anomaly>,
    /// What could not be read.
    pub(crate) errors: Vec<Error>,
}

impl<'data> Walk<'data> {
    fn part(&mut self, part: Part<'data>) {
        self.parts.push(part);
    }

    /// Bytes the container's loader does not read itself (`name`, at `offset` of the file):
    /// what another loader makes of them, by their first bytes. Returns it.
    fn rest(&mut self, name: &str, offset: u64, bytes: &'data [u8]) -> Use {
        let use_ = Use::of(bytes);
        self.part(Part::stored(name, offset, bytes, use_));
        use_
    }

    fn anomaly(&mut self, anomaly: Anomaly) {
        self.anomalies.push(anomaly);
    }
}

/// numpy's magic.
pub(crate) const NPY_MAGIC: &[u8] = b"\x93NUMPY";

/// Walks the file in `input`, named `name` (the name tells only `.metadata` and index files
/// apart; everything else is told by content).
pub(crate) fn walk<'data>(input: Input<'data>, name: &str, limits: &Limits) -> Walk<'data> {
    let mut walk = Walk::default();
    let bytes = input.bytes();
    if bytes.is_empty() {
        walk.errors.push(Error::new(
            ErrorKind::NotACheckpoint,
            "the file is empty (0 bytes)",
        ));
        return walk;
    }
    if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        archive::walk_zip(input, &mut walk);
        return walk;
    }
    if bytes.starts_with(NPY_MAGIC) {
        walk.format = Some("npy");
        walk.part(Part::stored("array", input.base(), bytes, Use::Npy));
        return walk;
    }
    if name.ends_with(".metadata") {
        walk.format = Some("torch-dcp metadata");
        stream::walk_pickles(input, Loader::Dcp, limits, &mut walk);
        return walk;
    }
    if name.ends_with(".json") {
        walk.format = Some("shard index");
        if let Err(error) = crate::hf::index_shards(bytes) {
            walk.errors.push(error);
        }
        return walk;
    }
    let mut own_end = None;
    if crate::format::looks_like_safetensors(bytes) {
        walk.format = Some("safetensors");
        own_end = safetensors_end(bytes, limits, &mut walk);
    } else if tar::is_tar(bytes) {
        walk.format = Some("torch-tar");
        tar::walk_tar(input, limits, &mut walk);
    } else if let Some(wrapper) = compress::Wrapper::detect(bytes) {
        walk.format = Some(match wrapper {
            compress::Wrapper::ZfCompat => "joblib (zfile)",
            compress::Wrapper::Zlib => "joblib (zlib)",
            compress::Wrapper::Gzip => "joblib (gzip)",
            compress::Wrapper::Bz2 => "joblib (bz2)",
            compress::Wrapper::Lzma => "joblib (lzma)",
            compress::Wrapper::Xz => "joblib (xz)",
            compress::Wrapper::Lz4 => "joblib (lz4)",
        });
        walk.part(Part {
            name: format!("{} stream", wrapper.name()),
            offset: input.base(),
            content: Content::Wrapped {
                wrapper,
                data: bytes,
            },
            use_: Use::Nested,
            parsed: None,
        });
        return walk;
    } else if let Some(format) = stream::walk_stream(input, limits, &mut walk) {
        walk.format = Some(format);
    } else {
        // Not a format ckpt knows; `pickle.load` (and `numpy.load`, `joblib.load`) would
        // still unpickle it from its first byte.
        if let Err(error) = crate::format::detect(bytes) {
            walk.errors.push(error);
        }
        walk.part(Part::stored(
            "the file (read as a pickle)",
            input.base(),
            bytes,
            Use::Probe,
        ));
    }
    if walk.format.is_some() && walk.format != Some("pickle") && walk.format != Some("torch-legacy")
    {
        // Whatever the file is to its own loader, `pickle.load` reads it from byte 0.
        walk.part(Part::stored(
            "the file (read as a pickle)",
            input.base(),
            bytes,
            Use::Probe,
        ));
    }
    appended_zip(input, own_end, &mut walk);
    walk
}

/// Checks a safetensors header; returns where its data ends, when the header is valid.
fn safetensors_end(bytes: &[u8], limits: &Limits, walk: &mut Walk<'_>) -> Option<u64> {
    match crate::safetensors::read_header_with(bytes, limits) {
        Ok(header) => {
            let data_start = header.data_start();
            let end = header
                .entries()
                .iter()
                .map(|e| e.file_range.1)
                .max()
                .unwrap_or(data_start)
                .min(bytes.len() as u64);
            if end < bytes.len() as u64 {
                walk.anomaly(
                    Anomaly::new(
                        AnomalyKind::Trailing,
                        format!(
                            "{} bytes follow the last tensor's data; safetensors readers never \
                             read them, but other tools may (a polyglot)",
                            bytes.len() as u64 - end
                        ),
                    )
                    .at(end),
                );
            }
            Some(end)
        }
        Err(error) => {
            walk.errors.push(error);
            None
        }
    }
}

/// A zip archive appended to a file of another format (a polyglot), or bytes after the
/// file's own end: zip readers see the archive, and it is walked too.
fn appended_zip<'data>(input: Input<'data>, own_end: Option<u64>, walk: &mut Walk<'data>) {
    let bytes = input.bytes();
    if let Some(end) = own_end.filter(|&end| end < input.len()) {
        let offset = input.base().saturating_add(end);
        if walk.rest("the bytes after the data", offset, input.from(end)) == Use::Nested {
            return;
        }
    }
    // The archive's end record, within the last 64 KiB, and its first local header.
    let from = bytes.len().saturating_sub(22 + 65535);
    let Some(end_record) = bytes
        .get(from..)
        .and_then(|tail| memchr::memmem::rfind(tail, b"PK\x05\x06"))
        .map(|at| from + at)
    else {
        return;
    };
    let Some(start) = bytes
        .get(..end_record)
        .and_then(|head| memchr::memmem::find(head, b"PK\x03\x04"))
        .filter(|&start| start > 0)
    else {
        return;
    };
    walk.anomaly(
        Anomaly::new(
            AnomalyKind::Polyglot,
            "a zip archive is appended to the file (a polyglot): zip readers see it, the \
             file's own format does not; its members are scanned too",
        )
        .at(input.base().saturating_add(start as u64)),
    );
    let rest = bytes.get(start..).unwrap_or_default();
    walk.part(Part::stored(
        "the appended zip archive",
        input.base().saturating_add(start as u64),
        rest,
        Use::Nested,
    ));
}
