//! The safe pickle layer of ckpt.
//!
//! Python's pickle format is a small stack machine: a pickle is a sequence of opcodes that
//! build values, import globals (`GLOBAL`, `STACK_GLOBAL`) and call them (`REDUCE`,
//! `NEWOBJ`, `BUILD`...). `pickle.load` runs those calls, which is why loading an untrusted
//! `.pth` can run arbitrary code. This crate never imports or calls anything: it reads
//! opcodes into a graph of symbolic [`Object`]s, and meaning is given elsewhere (in
//! `ckpt`) to an allowlist of known globals.
//!
//! It takes exactly what CPython's C unpickler (`_pickle`, 3.11) takes, opcode by opcode,
//! so that a scanner built on it never stops where a loader reads on; limits are budgets on
//! bytes and objects, never a narrower grammar. `tests/fixtures/pickle/` holds the
//! differential corpus that pins this against CPython.
//!
//! It is the fuzzing and security boundary of the project, so it depends on nothing in the
//! workspace, takes bytes in and never does I/O. Every length, count and depth it reads
//! meets a named limit ([`Limits`]) before it allocates or loops; errors carry the byte
//! offset and the opcode.
//!
//! - [`parse`] reads a pickle into a [`Pickle`]; [`parse_partial`] also keeps what was
//!   built before an error (for scanners), and [`static_globals`] lists every global the
//!   stream names by decoding alone, past the point where the machine stops.
//! - [`Framing`]: CPython reads a pickle from bytes and from an unbuffered stream (as
//!   `torch.load` does) differently where an opcode crosses the end of a frame;
//!   [`parse_partial_framed`] reads either way and [`Pickle::divergence`] says where they
//!   part.
//! - [`bigint_to_decimal`], [`bigint_from_decimal`], [`bigint_from_i128`]: the one codec of
//!   pickle's big integers (also ckpt's pickle writer's).
//! - [`Decoder`] yields the decoded opcodes one by one; [`write_listing`] prints them like
//!   `python -m pickletools`.
//! - [`Opcode`] is the one table of every opcode of protocols 0 to 5.
//! - [`sniff`] tells cheaply whether bytes start like a pickle.
//!
//! ```
//! use ckpt_pickle::{Limits, Object, parse};
//!
//! // pickle.dumps(os.system, protocol=2): reading it imports nothing.
//! let pickle = parse(b"\x80\x02cposix\nsystem\nq\x00.", 0, &Limits::default())?;
//! let root = pickle.root().unwrap();
//! assert_eq!(pickle.as_global(root), Some(("posix", "system")));
//! # Ok::<(), ckpt_pickle::Error>(())
//! ```

mod bigint;
mod compat;
mod decode;
mod error;
mod extension;
mod globals;
mod limits;
mod listing;
mod machine;
mod object;
mod opcode;
mod sniff;
mod text;

pub use bigint::{bigint_from_decimal, bigint_from_i128, bigint_to_decimal};
pub use compat::python3_name;
pub use decode::{Arg, Decoder, Framing, Instruction};
pub use error::{Error, ErrorKind};
pub use globals::{StaticGlobal, StaticName, static_globals, static_globals_read};
pub use limits::Limits;
pub use listing::write_listing;
pub use machine::{Inline, parse, parse_partial, parse_partial_framed, parse_partial_inline};
pub use object::{Extras, InstanceKind, Object, ObjectId, Pickle};
pub use opcode::{Argument, HIGHEST_PROTOCOL, Opcode};
pub use sniff::{Sniffed, sniff};
