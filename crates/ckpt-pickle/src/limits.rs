//! Named limits on what a pickle may make the reader do.
//!
//! Most sizes are already bounded by the input (a string cannot be longer than the bytes
//! that remain, each opcode creates at most one object), so the defaults only stop inputs
//! that are legal but absurd. They are budgets on bytes and objects, never a narrower
//! grammar than CPython's: a mark, a long integer or a line is as welcome as it is to
//! `pickle.load`, up to memory proportional to the input. Each limit has a name, which
//! errors report.

/// Limits on the resources a pickle may use. [`Limits::default`] is safe for untrusted
/// input; raise single fields when a real file needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Objects created (each opcode creates at most one).
    pub max_objects: usize,
    /// Values on the stack at once.
    pub max_stack: usize,
    /// `MARK`s open at once.
    pub max_marks: usize,
    /// Entries in the memo.
    pub max_memo: usize,
    /// Bytes of one string or bytes argument, and of one text line of protocol 0
    /// (numbers, names, quoted strings: CPython reads lines of any length, so a line is a
    /// string like any other).
    pub max_string_len: usize,
    /// Decimal digits of an integer given as text (`INT`, `LONG`, `PUT`, `GET`): Python's
    /// own limit, 4300 by default, since the conversion takes the square of their number.
    pub max_int_digits: usize,
    /// Bytes of a `LONG1`/`LONG4` integer, and of an integer given as text in a
    /// power-of-two base (`0x`, `0o`, `0b`), which Python does not limit.
    pub max_long_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_objects: 64 << 20,
            max_stack: 16 << 20,
            // Each MARK is a byte of input; CPython opens as many as memory holds.
            max_marks: 16 << 20,
            max_memo: 64 << 20,
            max_string_len: 1 << 30,
            max_int_digits: 4300,
            // LONG4 takes up to 2 GiB in CPython: a budget on bytes, as for strings.
            max_long_bytes: 1 << 30,
        }
    }
}
