//! The safe pickle layer of ckpt.
//!
//! Python's pickle format is a small stack machine: a pickle is a sequence of opcodes that
//! build values, import globals (`GLOBAL`, `STACK_GLOBAL`) and call them (`REDUCE`,
//! `NEWOBJ`, `BUILD`...). `pickle.load` runs those calls, which is why loading an untrusted
//! `.pth` can run arbitrary code. This crate never imports or calls anything: it reads
//! opcodes into symbolic values, and meaning is given elsewhere (in `ckpt`) to an allowlist
//! of known globals.
//!
//! It is the fuzzing and security boundary of the project, so it depends on nothing in the
//! workspace, takes bytes in and never does I/O.
//!
//! What is here so far:
//!
//! - [`Opcode`]: the one table of every opcode of protocols 0 to 5, with its byte, name,
//!   the protocol that introduced it and the kind of argument that follows it.
//! - [`sniff`]: a cheap check of whether bytes start like a pickle, used by format detection.
//!
//! ```
//! use ckpt_pickle::{Opcode, Argument};
//!
//! let op = Opcode::from_byte(0x95).unwrap();
//! assert_eq!(op, Opcode::Frame);
//! assert_eq!(op.name(), "FRAME");
//! assert_eq!(op.protocol(), 4);
//! assert_eq!(op.argument(), Argument::U64);
//! ```

mod opcode;
mod sniff;

pub use opcode::{Argument, HIGHEST_PROTOCOL, Opcode};
pub use sniff::{Sniffed, sniff};
