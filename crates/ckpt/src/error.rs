//! The one error type of the library.
//!
//! Every failure is an [`Error`]: a [`ErrorKind`] that says who must act, a message that
//! says what is wrong, a [`Location`] that says where (file, archive member, tensor, byte
//! offset), and, when there is one, a hint that says what to do.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What kind of failure an [`Error`] is, grouped by who must act.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The file breaks the rules of its own format: it is truncated, corrupted or crafted.
    Malformed,
    /// The file is not a checkpoint at all: empty, a Git LFS pointer, an HTML page, a GGUF
    /// or ONNX model...
    NotACheckpoint,
    /// The file is valid, but uses a format or a feature that ckpt does not implement.
    Unsupported,
    /// The file asks for more than a safety limit allows (a header over 100 MB...).
    LimitExceeded,
    /// The file needs code to load: its pickle uses a global that ckpt does not know as
    /// data (an `os.system` call, a custom class...). ckpt never runs it.
    Refused,
    /// The file (or a part of it) is what the scanner calls dangerous: loading it reaches
    /// code execution, processes, files, the network or more deserialization, or it hides
    /// something from other readers. ckpt reads nothing of it.
    Dangerous,
    /// The request cannot be carried out as asked: the output exists, the output is the
    /// input, a tensor cannot be stored in the target format...
    Invalid,
    /// The operating system failed to read or write.
    Io,
    /// The output file exists and replacing it was not asked for.
    OutputExists,
    /// The work was cancelled (Ctrl-C) before it finished; nothing was written.
    Interrupted,
}

impl ErrorKind {
    /// A short lowercase name for the kind, as used in JSON reports.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Malformed => "malformed",
            ErrorKind::NotACheckpoint => "not-a-checkpoint",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::LimitExceeded => "limit-exceeded",
            ErrorKind::Refused => "refused",
            ErrorKind::Dangerous => "dangerous",
            ErrorKind::Invalid => "invalid",
            ErrorKind::Io => "io",
            ErrorKind::OutputExists => "output-exists",
            ErrorKind::Interrupted => "interrupted",
        }
    }
}

/// Where in the input an [`Error`] happened. Every part is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Location {
    /// The file (or folder) being read or written.
    pub path: Option<PathBuf>,
    /// The member of an archive (a zip record, a shard file).
    pub member: Option<String>,
    /// The tensor concerned, by its full name.
    pub tensor: Option<String>,
    /// The byte offset from the start of the file.
    pub offset: Option<u64>,
}

impl Location {
    fn is_empty(&self) -> bool {
        self.path.is_none()
            && self.member.is_none()
            && self.tensor.is_none()
            && self.offset.is_none()
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(path) = &self.path {
            parts.push(format!("{}", path.display()));
        }
        if let Some(member) = &self.member {
            parts.push(format!("member `{member}`"));
        }
        if let Some(tensor) = &self.tensor {
            parts.push(format!("tensor `{tensor}`"));
        }
        if let Some(offset) = self.offset {
            parts.push(format!("byte {offset}"));
        }
        f.write_str(&parts.join(", "))
    }
}

/// An error of the ckpt library: what is wrong, where, and what to do about it.
///
/// `Display` prints the location and the message on one line
/// (`model.safetensors, tensor `w`, byte 1208: ...`); [`Error::hint`] gives the advice
/// separately so that a front end can print it on its own line.
pub struct Error(Box<Inner>);

struct Inner {
    kind: ErrorKind,
    message: String,
    location: Location,
    hint: Option<String>,
    source: Option<io::Error>,
}

impl Error {
    /// A new error of `kind` with `message` (a lowercase phrase, no final period).
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error(Box::new(Inner {
            kind,
            message: message.into(),
            location: Location::default(),
            hint: None,
            source: None,
        }))
    }

    /// A [`ErrorKind::Malformed`] error.
    pub fn malformed(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Malformed, message)
    }

    /// A [`ErrorKind::Unsupported`] error.
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, message)
    }

    /// A [`ErrorKind::Invalid`] error.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, message)
    }

    /// A [`ErrorKind::LimitExceeded`] error.
    pub fn limit(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::LimitExceeded, message)
    }

    /// An [`ErrorKind::Io`] error about `path`: `action` says what was being done
    /// (`"failed to read"`).
    pub fn io(action: impl Into<String>, path: &Path, source: io::Error) -> Self {
        Self::from_io(action, source).with_path(path)
    }

    /// An [`ErrorKind::Io`] error whose file the caller adds later with [`Error::with_path`].
    pub fn from_io(action: impl Into<String>, source: io::Error) -> Self {
        let mut error = Self::new(ErrorKind::Io, format!("{}: {source}", action.into()));
        if source.kind() == io::ErrorKind::StorageFull {
            // Outputs are written to a temporary file that is removed on any error.
            error.0.hint = Some(
                "the disk is full: free some space or write the output to another disk; no partial output was left behind"
                    .to_owned(),
            );
        }
        error.0.source = Some(source);
        error
    }

    /// An [`ErrorKind::Interrupted`] error.
    pub fn interrupted() -> Self {
        Self::new(
            ErrorKind::Interrupted,
            "interrupted before the work was finished",
        )
    }

    /// Sets the advice printed under the error.
    #[must_use]
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.0.hint = Some(hint.into());
        self
    }

    /// Sets the file the error is about, unless one is already set.
    #[must_use]
    pub fn with_path(mut self, path: &Path) -> Self {
        self.0
            .location
            .path
            .get_or_insert_with(|| path.to_path_buf());
        self
    }

    /// Sets the file the error is about, replacing the one set (a temporary file that
    /// stands for standard input, named `-` to the user).
    #[must_use]
    pub fn replace_path(mut self, path: &Path) -> Self {
        self.0.location.path = Some(path.to_path_buf());
        self
    }

    /// Sets the archive member the error is about, unless one is already set.
    #[must_use]
    pub fn with_member(mut self, member: impl Into<String>) -> Self {
        self.0.location.member.get_or_insert_with(|| member.into());
        self
    }

    /// Sets the tensor the error is about, unless one is already set.
    #[must_use]
    pub fn with_tensor(mut self, tensor: impl Into<String>) -> Self {
        self.0.location.tensor.get_or_insert_with(|| tensor.into());
        self
    }

    /// Sets the byte offset the error is about, unless one is already set.
    #[must_use]
    pub fn at_offset(mut self, offset: u64) -> Self {
        self.0.location.offset.get_or_insert(offset);
        self
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    /// What is wrong, without the location.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// Where it went wrong.
    pub fn location(&self) -> &Location {
        &self.0.location
    }

    /// What the user can do about it, if there is something to say.
    pub fn hint(&self) -> Option<&str> {
        self.0.hint.as_deref()
    }

    /// The operating system's error, for [`ErrorKind::Io`] errors.
    pub fn io_error(&self) -> Option<&io::Error> {
        self.0.source.as_ref()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.location.is_empty() {
            f.write_str(&self.0.message)
        } else {
            write!(f, "{}: {}", self.0.location, self.0.message)
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.0.kind)
            .field("message", &self.0.message)
            .field("location", &self.0.location)
            .field("hint", &self.0.hint)
            .finish()
    }
}

/// The message of an I/O error already includes the operating system's reason, so
/// `source()` returns nothing, and a reporter that walks the chain does not print it twice;
/// [`Error::io_error`] gives the underlying error to code that wants it.
impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_says_so_and_that_nothing_is_left() {
        let error = Error::from_io(
            "failed to write",
            io::Error::from(io::ErrorKind::StorageFull),
        );
        assert_eq!(error.kind(), ErrorKind::Io);
        assert!(error.hint().is_some_and(|h| h.contains("disk is full")));
        let other = Error::from_io(
            "failed to write",
            io::Error::from(io::ErrorKind::BrokenPipe),
        );
        assert_eq!(other.hint(), None);
    }

    #[test]
    fn display_puts_location_before_message() {
        let error = Error::malformed("declares 48 bytes but spans 40")
            .with_tensor("w")
            .at_offset(1208)
            .with_path(Path::new("m.safetensors"));
        assert_eq!(
            error.to_string(),
            "m.safetensors, tensor `w`, byte 1208: declares 48 bytes but spans 40"
        );
        assert_eq!(error.kind(), ErrorKind::Malformed);
    }

    #[test]
    fn first_location_wins() {
        let error = Error::malformed("x").at_offset(3).at_offset(9);
        assert_eq!(error.location().offset, Some(3));
        assert_eq!(Error::invalid("bare").to_string(), "bare");
    }

    #[test]
    fn error_is_small() {
        assert_eq!(size_of::<Error>(), size_of::<usize>());
    }
}
