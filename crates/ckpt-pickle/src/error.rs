//! The error type of the pickle reader: what went wrong, at which byte, in which opcode.

use std::fmt;

use crate::opcode::Opcode;

/// What went wrong while reading a pickle.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The input ended in the middle of an opcode or before `STOP`.
    Truncated,
    /// A byte that is not an opcode of protocols 0 to 5.
    UnknownOpcode(u8),
    /// `PROTO` announced a protocol newer than 5.
    UnsupportedProtocol(u8),
    /// An opcode's argument cannot be decoded (a bad number, bad text, a bad escape...).
    BadArgument(String),
    /// An opcode needed more values on the stack than there were.
    StackUnderflow,
    /// An opcode needed a `MARK` and there was none.
    NoMark,
    /// `GET` of a memo slot that was never `PUT` (or of a negative one).
    MissingMemo(i64),
    /// An opcode was applied to a value of the wrong kind (`APPEND` onto a dict...).
    WrongType(String),
    /// The pickle needs something a file cannot provide (out-of-band buffers).
    Unsupported(String),
    /// A named limit was exceeded.
    LimitExceeded {
        /// The limit's name, as in [`Limits`](crate::Limits).
        limit: &'static str,
        /// Its value.
        max: u64,
    },
}

/// An error reading a pickle, with the byte offset (from the start of the enclosing file
/// when a base offset was given) and the opcode being read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    offset: u64,
    opcode: Option<Opcode>,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, offset: u64, opcode: Option<Opcode>) -> Self {
        Error {
            kind,
            offset,
            opcode,
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The byte offset of the opcode at fault.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The opcode at fault, when there is one.
    pub fn opcode(&self) -> Option<Opcode> {
        self.opcode
    }

    /// What went wrong, without the place.
    pub fn message(&self) -> String {
        match &self.kind {
            ErrorKind::Truncated => "the pickle is truncated".to_owned(),
            ErrorKind::UnknownOpcode(byte) => format!(
                "unknown opcode 0x{byte:02x} (not part of pickle protocols 0 to 5; the data is \
                 corrupted or not a pickle)"
            ),
            ErrorKind::UnsupportedProtocol(p) => {
                format!("pickle protocol {p} is newer than the protocols ckpt reads (0 to 5)")
            }
            ErrorKind::BadArgument(what) => format!("bad argument: {what}"),
            ErrorKind::StackUnderflow => "the stack is empty where a value is needed".to_owned(),
            ErrorKind::NoMark => "no MARK where one is needed".to_owned(),
            ErrorKind::MissingMemo(index) => format!("memo slot {index} is read before it is set"),
            ErrorKind::WrongType(what) => what.clone(),
            ErrorKind::Unsupported(what) => what.clone(),
            ErrorKind::LimitExceeded { limit, max } => {
                format!("the pickle exceeds the limit `{limit}` ({max})")
            }
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.opcode {
            Some(op) => write!(
                f,
                "{} (at byte {}, in {})",
                self.message(),
                self.offset,
                op.name()
            ),
            None => write!(f, "{} (at byte {})", self.message(), self.offset),
        }
    }
}

impl std::error::Error for Error {}
