//! Every limit on what a file may make ckpt do, in one place.
//!
//! ckpt reads files from strangers. Most sizes in a file are already bounded by the file
//! itself, and checked so: a string cannot be longer than the bytes that remain, a tensor's
//! bytes must lie inside its file, a pickle opcode creates at most one object. The limits
//! here stop what is legal but absurd, where a few bytes could otherwise ask for a lot of
//! memory or time: nesting that recurses, compressed members that inflate, names that grow
//! with nesting, chunked tensors whose tiling check is quadratic, folders of a million
//! files.
//!
//! Other bounds follow the size of the input itself rather than a fixed number: the
//! values a pickle may expand to through shared references (four per object it holds, and
//! at least a million), the bytes of text it may copy (sixteen per byte, at least 64 MiB),
//! the bytes a zero-stride view may produce ([`MAX_EXPANDED_LEN`], [`MAX_EXPANSION`]).
//!
//! Every limit has a name. An input over one fails with
//! [`ErrorKind::LimitExceeded`](crate::ErrorKind::LimitExceeded), naming the limit and how to
//! raise it: `ckpt --limit NAME=VALUE` on the command line (any command, repeatable), or
//! [`Limits::set`] and the `*_with` functions ([`read_with`](crate::read_with),
//! [`Source::open_with`](crate::Source::open_with)) in the library. The defaults
//! ([`Limits::default`]) are far above what real checkpoints need; `ckpt --help` lists them.
//!
//! ```
//! use ckpt::Limits;
//!
//! let mut limits = Limits::default();
//! limits.set("depth", "1000")?;
//! limits.set("inflated-len", "1GiB")?;
//! assert_eq!(limits.depth, 1000);
//! assert!(limits.set("no-such-limit", "1").is_err());
//! # Ok::<(), ckpt::Error>(())
//! ```

use crate::error::{Error, Result};

/// Views with zero strides repeat their storage (torch's `expand`); ckpt produces (hashes,
/// converts) up to this many bytes of such a view whatever its storage...
pub const MAX_EXPANDED_LEN: usize = 1 << 30;
/// ...and beyond it, up to this many times the size of its storage. Not configurable: a
/// file that needs more is a crafted one.
pub const MAX_EXPANSION: usize = 64;

/// Limits on the resources an input may use. [`Limits::default`] is safe for untrusted
/// input; raise single limits by name with [`Limits::set`] when a real file needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// The pickle VM's limits (`pickle-objects`, `pickle-stack`, `pickle-marks`,
    /// `pickle-memo`, `pickle-string-len`, `pickle-int-digits`, `pickle-long-bytes`).
    pub pickle: ckpt_pickle::Limits,
    /// `header-len`: bytes of a safetensors JSON header (the format's own limit, 100 MB), and of
    /// a `.npy` array header (numpy has no limit of its own when it may unpickle).
    pub header_len: u64,
    /// `depth`: nesting of values in a checkpoint (dicts in lists in dicts...), and parts
    /// of a DCP entry's path.
    pub depth: usize,
    /// `name-len`: bytes of a dotted tensor or value name.
    pub name_len: usize,
    /// `int-len`: bytes of an integer too large for 64 bits, as a pickle stores it.
    pub int_len: usize,
    /// `inflated-len`: bytes a compressed zip member or file may inflate to (held at once;
    /// past it the scanner reads on streaming, as much again, for the names only; a file's
    /// compressed parts inflate to four times it at most).
    pub inflated_len: u64,
    /// `code-len`: bytes of TorchScript source read to list its classes.
    pub code_len: u64,
    /// `tensors`: tensors in one checkpoint.
    pub tensors: usize,
    /// `rank`: dimensions of a tensor assembled from chunks or read from a tar checkpoint.
    pub rank: usize,
    /// `tiles`: chunks one tensor of a DCP checkpoint is stored in (checking that they tile
    /// the tensor costs up to the square of their number).
    pub tiles: usize,
    /// `files`: files of a multi-file checkpoint (shards, DCP data files).
    pub files: usize,
    /// `index-len`: bytes of a shard index or DCP `.metadata` file (read whole).
    pub index_len: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            pickle: ckpt_pickle::Limits::default(),
            header_len: 100_000_000,
            depth: 256,
            name_len: 64 << 10,
            int_len: 4096,
            inflated_len: 256 << 20,
            code_len: 64 << 20,
            tensors: 1 << 22,
            rank: 64,
            tiles: 1 << 14,
            files: 1 << 16,
            index_len: 256 << 20,
        }
    }
}

/// Every limit's name and what it bounds, as `--limit` takes them.
pub const NAMES: &[(&str, &str)] = &[
    ("pickle-objects", "objects a pickle creates"),
    ("pickle-stack", "values on a pickle's stack at once"),
    ("pickle-marks", "MARKs open at once in a pickle"),
    ("pickle-memo", "entries in a pickle's memo"),
    (
        "pickle-string-len",
        "bytes of one string or text line in a pickle",
    ),
    (
        "pickle-int-digits",
        "decimal digits of an integer given as text in a pickle",
    ),
    (
        "pickle-long-bytes",
        "bytes of a LONG1/LONG4 or 0x/0o/0b text integer in a pickle",
    ),
    ("header-len", "bytes of a safetensors or .npy header"),
    ("depth", "nesting of values in a checkpoint"),
    ("name-len", "bytes of a dotted tensor or value name"),
    (
        "int-len",
        "bytes of an integer beyond 64 bits in a checkpoint",
    ),
    (
        "inflated-len",
        "bytes a compressed member or file inflates to",
    ),
    ("code-len", "bytes of TorchScript source read"),
    ("tensors", "tensors in one checkpoint"),
    ("rank", "dimensions of a chunked or tar tensor"),
    ("tiles", "chunks of one DCP tensor"),
    ("files", "files of a multi-file checkpoint"),
    ("index-len", "bytes of a shard index or DCP metadata file"),
];

impl Limits {
    /// The value of the limit called `name` (see [`NAMES`]).
    pub fn get(&self, name: &str) -> Option<u64> {
        let p = &self.pickle;
        let value = match name {
            "pickle-objects" => p.max_objects as u64,
            "pickle-stack" => p.max_stack as u64,
            "pickle-marks" => p.max_marks as u64,
            "pickle-memo" => p.max_memo as u64,
            "pickle-string-len" => p.max_string_len as u64,
            "pickle-int-digits" => p.max_int_digits as u64,
            "pickle-long-bytes" => p.max_long_bytes as u64,
            "header-len" => self.header_len,
            "depth" => self.depth as u64,
            "name-len" => self.name_len as u64,
            "int-len" => self.int_len as u64,
            "inflated-len" => self.inflated_len,
            "code-len" => self.code_len,
            "tensors" => self.tensors as u64,
            "rank" => self.rank as u64,
            "tiles" => self.tiles as u64,
            "files" => self.files as u64,
            "index-len" => self.index_len,
            _ => return None,
        };
        Some(value)
    }

    /// Sets the limit called `name` (see [`NAMES`]) to `value`: a number, or a size such
    /// as `2GB` or `512MiB` for limits counted in bytes.
    pub fn set(&mut self, name: &str, value: &str) -> Result<()> {
        let unknown = || {
            let names: Vec<&str> = NAMES.iter().map(|(n, _)| *n).collect();
            Error::invalid(format!("there is no limit called `{name}`"))
                .with_hint(format!("the limits are {}", names.join(", ")))
        };
        if self.get(name).is_none() {
            return Err(unknown());
        }
        let number = crate::size::parse_size(value).map_err(|_| {
            Error::invalid(format!(
                "`{value}` is not a number or size for limit `{name}`"
            ))
            .with_hint("write a number, or a size such as 500MB or 2GiB")
        })?;
        let count = usize::try_from(number)
            .map_err(|_| Error::invalid(format!("{number} is too large for limit `{name}`")))?;
        let p = &mut self.pickle;
        match name {
            "pickle-objects" => p.max_objects = count,
            "pickle-stack" => p.max_stack = count,
            "pickle-marks" => p.max_marks = count,
            "pickle-memo" => p.max_memo = count,
            "pickle-string-len" => p.max_string_len = count,
            "pickle-int-digits" => p.max_int_digits = count,
            "pickle-long-bytes" => p.max_long_bytes = count,
            "header-len" => self.header_len = number,
            "depth" => self.depth = count,
            "name-len" => self.name_len = count,
            "int-len" => self.int_len = count,
            "inflated-len" => self.inflated_len = number,
            "code-len" => self.code_len = number,
            "tensors" => self.tensors = count,
            "rank" => self.rank = count,
            "tiles" => self.tiles = count,
            "files" => self.files = count,
            "index-len" => self.index_len = number,
            _ => return Err(unknown()),
        }
        Ok(())
    }
}

/// The error for an input over the limit called `name`: `what` says what the input has.
pub(crate) fn exceeded(name: &str, limit: u64, what: impl std::fmt::Display) -> Error {
    Error::limit(format!("{what}, over the `{name}` limit of {limit}"))
        .with_hint(format!("if you trust the file, raise its `{name}` limit"))
}

/// The name `--limit` gives the pickle VM's limit that its errors call `pickle_name`.
pub(crate) fn pickle_limit_name(pickle_name: &str) -> String {
    let short = pickle_name.strip_prefix("max_").unwrap_or(pickle_name);
    format!("pickle-{}", short.replace('_', "-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_reads_and_sets_its_own_field() {
        for (i, (name, _)) in NAMES.iter().enumerate() {
            let mut limits = Limits::default();
            let value = 1000 + i as u64;
            limits.set(name, &value.to_string()).unwrap();
            assert_eq!(limits.get(name), Some(value), "{name}");
            // No other limit changed.
            for (other, _) in NAMES.iter().filter(|(other, _)| other != name) {
                assert_eq!(
                    limits.get(other),
                    Limits::default().get(other),
                    "{name} changed {other}"
                );
            }
        }
    }

    #[test]
    fn pickle_names_map_to_flags() {
        assert_eq!(pickle_limit_name("max_string_len"), "pickle-string-len");
        for name in [
            "max_objects",
            "max_stack",
            "max_marks",
            "max_memo",
            "max_string_len",
            "max_int_digits",
            "max_long_bytes",
        ] {
            assert!(
                Limits::default().get(&pickle_limit_name(name)).is_some(),
                "{name}"
            );
        }
    }

    #[test]
    fn bad_names_and_values_are_refused() {
        let mut limits = Limits::default();
        let error = limits.set("depht", "3").unwrap_err();
        assert!(error.hint().unwrap().contains("depth"), "{error}");
        assert!(limits.set("depth", "many").is_err());
        limits.set("inflated-len", "1GiB").unwrap();
        assert_eq!(limits.inflated_len, 1 << 30);
    }
}
