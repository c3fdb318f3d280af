//! Decoding the opcode stream: bytes in, [`Instruction`]s out, one at a time.
//!
//! This is the only place that reads the bytes of a pickle. Every length it reads is
//! checked against what remains and against [`Limits`] before anything is allocated, and
//! arguments borrow the input where they can. The machine ([`crate::machine`]) and the
//! listing ([`crate::listing`]) both consume this stream, so they cannot disagree about
//! what the bytes say.

use std::borrow::Cow;

use crate::bigint::from_digits;
use crate::error::{Error, ErrorKind};
use crate::limits::Limits;
use crate::opcode::{Argument, Opcode};
use crate::text::{
    IntBase, c_string, decode_raw_unicode_escape, parse_c_double, py_long_literal, strtol_base0,
    unquote_python_string, utf8,
};

/// One decoded opcode with its argument.
#[derive(Debug, Clone, PartialEq)]
pub struct Instruction<'a> {
    /// Where the opcode starts (from the start of the enclosing file, given a base).
    pub offset: u64,
    /// The opcode.
    pub opcode: Opcode,
    /// Its decoded argument.
    pub arg: Arg<'a>,
}

/// A decoded argument.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Arg<'a> {
    /// No argument.
    None,
    /// An integer (also memo indices, protocol numbers, extension codes, frame lengths).
    Int(i64),
    /// An integer too large for 64 bits, as little-endian two's complement bytes.
    BigInt(Cow<'a, [u8]>),
    /// `INT` spelled `00` or `01`: Python 2's way to write `False` and `True`.
    Bool(bool),
    /// A float.
    Float(f64),
    /// Text (unicode strings).
    Str(Cow<'a, str>),
    /// Raw bytes (`bytes`, `bytearray`, and Python 2 `str`, which has no encoding).
    Bytes(Cow<'a, [u8]>),
    /// A `module` and `name` pair (`GLOBAL`, `INST`).
    Global {
        /// The module path.
        module: Cow<'a, str>,
        /// The attribute path inside the module.
        name: Cow<'a, str>,
    },
}

/// How a loader takes the bytes of a pickle. CPython's C unpickler reads them in two ways
/// that agree on every pickle a pickler writes, and differ where an opcode crosses the end
/// of a `FRAME`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Framing {
    /// `pickle.loads(bytes)`, and files it can peek into: the bytes in order; `FRAME` only
    /// checks that its bytes are there.
    #[default]
    Contiguous,
    /// `pickle.load(stream)` on a stream it cannot peek into (`io.BytesIO`, which
    /// `torch.load` reads `data.pkl` through; frames larger than a file's buffer): a frame
    /// is read whole, and an opcode whose argument crosses its end is read from after the
    /// frame, the rest of the frame skipped (`bytes` payloads excepted, which continue
    /// into the stream); after `STOP` the stream stands at the end of the frame.
    Stream,
}

/// Decodes the opcodes of a pickle that starts at `data[0]`, stopping after `STOP`.
#[derive(Debug, Clone)]
pub struct Decoder<'a> {
    data: &'a [u8],
    pos: usize,
    base: u64,
    limits: Limits,
    done: bool,
    framing: Framing,
    /// The end of the frame a `Stream` reader holds in its buffer (no buffer when `pos` is
    /// past it).
    frame_end: usize,
    /// The first opcode where the two framings read different bytes.
    divergence: Option<u64>,
}

impl<'a> Decoder<'a> {
    /// A decoder over `data`, whose first byte is at offset `base` of the enclosing file
    /// (errors and instructions report offsets from there), reading as
    /// [`Framing::Contiguous`].
    pub fn new(data: &'a [u8], base: u64, limits: Limits) -> Self {
        Self::with_framing(data, base, limits, Framing::Contiguous)
    }

    /// A decoder that reads as `framing` does.
    pub fn with_framing(data: &'a [u8], base: u64, limits: Limits, framing: Framing) -> Self {
        Decoder {
            data,
            pos: 0,
            base,
            limits,
            done: false,
            framing,
            frame_end: 0,
            divergence: None,
        }
    }

    /// How many bytes have been consumed (after `STOP`: the length of the pickle).
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Passes over `n` bytes that a loader reads itself between two opcodes (the raw data
    /// of an array joblib writes inline); an error when fewer remain.
    pub(crate) fn pass_over(&mut self, n: usize, at: u64, opcode: Opcode) -> Result<(), Error> {
        match self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.data.len())
        {
            Some(end) => {
                self.pos = end;
                Ok(())
            }
            None => Err(Error::new(ErrorKind::Truncated, at, Some(opcode))),
        }
    }

    /// The bytes not read yet.
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.data.get(self.pos..).unwrap_or_default()
    }

    /// Where a [`Framing::Stream`] reader stands now: after `STOP`, where a loader that
    /// calls `pickle.load` again on the same stream starts the next pickle (the end of the
    /// frame `STOP` was read from, else right after it).
    pub fn stream_position(&self) -> usize {
        self.pos.max(self.frame_end)
    }

    /// The offset of the first opcode so far whose argument crosses the end of a frame,
    /// where the other [`Framing`] reads other bytes (and so other opcodes, other globals).
    /// A pickler never writes one.
    pub fn divergence(&self) -> Option<u64> {
        self.divergence
    }

    /// Before reading `n` bytes at `pos`: a read that crosses the end of the frame in the
    /// buffer. `whole` is CPython's `_Unpickler_Read`, which then drops the rest of the
    /// frame and reads from after it; otherwise `_Unpickler_ReadInto` (the payloads of
    /// `bytes` and `bytearray`), which takes what the frame holds and goes on into the
    /// stream: the same bytes either way.
    fn cross_frame(&mut self, n: usize, at: usize, whole: bool) {
        if self.pos < self.frame_end && self.pos.saturating_add(n) > self.frame_end {
            if whole {
                self.divergence.get_or_insert(self.base + at as u64);
                if self.framing == Framing::Stream {
                    self.pos = self.frame_end;
                }
            }
            self.frame_end = 0;
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    fn error(&self, kind: ErrorKind, at: usize, opcode: Option<Opcode>) -> Error {
        Error::new(kind, self.base + at as u64, opcode)
    }

    fn take(&mut self, n: usize, at: usize, op: Opcode) -> Result<&'a [u8], Error> {
        self.cross_frame(n, at, true);
        self.take_here(n, at, op)
    }

    fn take_here(&mut self, n: usize, at: usize, op: Opcode) -> Result<&'a [u8], Error> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.data.len())
            .ok_or_else(|| self.error(ErrorKind::Truncated, at, Some(op)))?;
        let bytes = self.data.get(self.pos..end).unwrap_or_default();
        self.pos = end;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self, at: usize, op: Opcode) -> Result<[u8; N], Error> {
        let bytes = self.take(N, at, op)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    /// A length-prefixed payload: checks the declared length against the limit and what
    /// remains before taking it.
    fn sized(
        &mut self,
        len: u64,
        limit: (&'static str, usize),
        at: usize,
        op: Opcode,
    ) -> Result<&'a [u8], Error> {
        let whole = !matches!(
            op.argument(),
            Argument::Bytes1 | Argument::Bytes4 | Argument::Bytes8
        );
        self.cross_frame(usize::try_from(len).unwrap_or(usize::MAX), at, whole);
        let available = (self.data.len() - self.pos) as u64;
        if len > available {
            return Err(self.error(
                ErrorKind::BadArgument(format!(
                    "declares {len} bytes but only {available} bytes remain"
                )),
                at,
                Some(op),
            ));
        }
        if len > limit.1 as u64 {
            return Err(self.error(
                ErrorKind::LimitExceeded {
                    limit: limit.0,
                    max: limit.1 as u64,
                },
                at,
                Some(op),
            ));
        }
        // `len` is at most what remains of `data`, so it fits in a usize.
        self.take_here(usize::try_from(len).unwrap_or(usize::MAX), at, op)
    }

    /// A text-mode argument: the bytes up to `\n` (not included). CPython reads lines of
    /// any length; here a line is a string like any other, within `max_string_len`.
    fn line(&mut self, at: usize, op: Opcode) -> Result<&'a [u8], Error> {
        if self.pos < self.frame_end {
            // CPython looks for the newline in the frame it holds; without one there, it
            // reads the line from after the frame.
            let in_frame = self.data.get(self.pos..self.frame_end).unwrap_or_default();
            if !in_frame.contains(&b'\n') {
                self.cross_frame(in_frame.len() + 1, at, true);
            }
        }
        let max = self.limits.max_string_len;
        let rest = self.data.get(self.pos..).unwrap_or_default();
        let window = rest.get(..max.saturating_add(1)).unwrap_or(rest);
        match window.iter().position(|&b| b == b'\n') {
            Some(n) => {
                let line = self.take_here(n + 1, at, op)?;
                Ok(line.get(..n).unwrap_or_default())
            }
            None if window.len() > max => Err(self.error(
                ErrorKind::LimitExceeded {
                    limit: "max_string_len",
                    max: max as u64,
                },
                at,
                Some(op),
            )),
            None => Err(self.error(ErrorKind::Truncated, at, Some(op))),
        }
    }

    /// A line CPython refuses when empty (`len < 2` with its newline, in `_pickle.c`).
    fn nonempty_line(&mut self, what: &str, at: usize, op: Opcode) -> Result<&'a [u8], Error> {
        let line = self.line(at, op)?;
        if line.is_empty() {
            return Err(self.bad(format!("the {what} line is empty"), at, op));
        }
        Ok(line)
    }

    /// `FRAME`'s bytes are read whole (`_Unpickler_Read`), unless the frame in the buffer
    /// already holds them (a frame inside a frame); `Contiguous` only checks they are there.
    fn frame(&mut self, len: u64, at: usize) -> Result<(), Error> {
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if self.pos.saturating_add(len) <= self.frame_end {
            return Ok(());
        }
        self.cross_frame(len, at, true);
        if len > self.data.len() - self.pos {
            return Err(self.error(ErrorKind::Truncated, at, Some(Opcode::Frame)));
        }
        self.frame_end = self.pos + len;
        Ok(())
    }

    fn bad(&self, what: String, at: usize, op: Opcode) -> Error {
        self.error(ErrorKind::BadArgument(what), at, Some(op))
    }

    fn decode_arg(&mut self, op: Opcode, at: usize) -> Result<Arg<'a>, Error> {
        let string_limit = ("max_string_len", self.limits.max_string_len);
        let long_limit = ("max_long_bytes", self.limits.max_long_bytes);
        Ok(match op.argument() {
            Argument::None => Arg::None,
            Argument::U8 => Arg::Int(i64::from(self.array::<1>(at, op)?[0])),
            Argument::U16 => Arg::Int(i64::from(u16::from_le_bytes(self.array(at, op)?))),
            Argument::I32 => Arg::Int(i64::from(i32::from_le_bytes(self.array(at, op)?))),
            Argument::U32 => Arg::Int(i64::from(u32::from_le_bytes(self.array(at, op)?))),
            Argument::U64 => {
                let value = u64::from_le_bytes(self.array(at, op)?);
                if op == Opcode::Frame {
                    self.frame(value, at)?;
                }
                Arg::Int(
                    i64::try_from(value)
                        .map_err(|_| self.bad(format!("{value} is too large"), at, op))?,
                )
            }
            Argument::F64 => Arg::Float(f64::from_be_bytes(self.array(at, op)?)),
            Argument::DecimalLine => {
                let line = self.nonempty_line("number", at, op)?;
                let text = c_string(line);
                if op == Opcode::Int {
                    // CPython's C unpickler: strtol(base 0) over the C string, a bool when
                    // the line is two bytes worth 0 or 1, else PyLong_FromString(base 0).
                    match strtol_base0(text) {
                        Some(x @ (0 | 1)) if line.len() == 2 => Arg::Bool(x == 1),
                        Some(x) => Arg::Int(x),
                        None => self.python_int(text, IntBase::Prefixed, at, op)?,
                    }
                } else {
                    // PUT/GET: PyLong_FromString(base 10), then a C ssize_t. Negative
                    // indices are the machine's to refuse (PUT) or miss (GET).
                    match self.python_int(text, IntBase::Decimal, at, op)? {
                        Arg::Int(i) => Arg::Int(i),
                        _ => {
                            return Err(self.bad(
                                format!("memo index `{}` is too large", text.escape_ascii()),
                                at,
                                op,
                            ));
                        }
                    }
                }
            }
            Argument::LongLine => {
                let line = self.nonempty_line("number", at, op)?;
                let line = line.strip_suffix(b"L").unwrap_or(line);
                self.python_int(c_string(line), IntBase::Prefixed, at, op)?
            }
            Argument::FloatLine => {
                let line = self.nonempty_line("number", at, op)?;
                let text = c_string(line);
                Arg::Float(parse_c_double(text).ok_or_else(|| {
                    self.bad(format!("`{}` is not a float", text.escape_ascii()), at, op)
                })?)
            }
            Argument::QuotedLine => {
                let line = self.line(at, op)?;
                Arg::Bytes(Cow::Owned(
                    unquote_python_string(line).map_err(|what| self.bad(what, at, op))?,
                ))
            }
            Argument::TextLine => {
                let line = self.line(at, op)?;
                if !line.is_ascii() {
                    return Err(self.bad(
                        "persistent ids in protocol 0 must be ASCII".to_owned(),
                        at,
                        op,
                    ));
                }
                Arg::Str(Cow::Borrowed(ascii(line)))
            }
            Argument::TextLinePair => {
                // GLOBAL names are UTF-8; INST names ASCII (as CPython decodes them).
                let mut name_part = |what: &str| -> Result<&'a str, Error> {
                    let line = self.nonempty_line(&format!("{what} name"), at, op)?;
                    let text = std::str::from_utf8(line)
                        .map_err(|_| self.bad(format!("the {what} name is not UTF-8"), at, op))?;
                    if op == Opcode::Inst && !text.is_ascii() {
                        return Err(self.bad(
                            format!("the {what} name of INST is not ASCII"),
                            at,
                            op,
                        ));
                    }
                    Ok(text)
                };
                let module = name_part("module")?;
                let name = name_part("class")?;
                Arg::Global {
                    module: Cow::Borrowed(module),
                    name: Cow::Borrowed(name),
                }
            }
            Argument::UnicodeLine => {
                let line = self.line(at, op)?;
                Arg::Str(Cow::Owned(
                    decode_raw_unicode_escape(line).map_err(|what| self.bad(what, at, op))?,
                ))
            }
            Argument::Long1 => {
                let len = u64::from(self.array::<1>(at, op)?[0]);
                long(self.sized(len, long_limit, at, op)?)
            }
            Argument::Long4 => {
                let len = i32::from_le_bytes(self.array(at, op)?);
                let len = u64::try_from(len)
                    .map_err(|_| self.bad(format!("negative length {len}"), at, op))?;
                long(self.sized(len, long_limit, at, op)?)
            }
            Argument::String1 | Argument::Bytes1 => {
                let len = u64::from(self.array::<1>(at, op)?[0]);
                Arg::Bytes(Cow::Borrowed(self.sized(len, string_limit, at, op)?))
            }
            Argument::String4 => {
                let len = i32::from_le_bytes(self.array(at, op)?);
                let len = u64::try_from(len)
                    .map_err(|_| self.bad(format!("negative length {len}"), at, op))?;
                Arg::Bytes(Cow::Borrowed(self.sized(len, string_limit, at, op)?))
            }
            Argument::Bytes4 => {
                let len = u64::from(u32::from_le_bytes(self.array(at, op)?));
                Arg::Bytes(Cow::Borrowed(self.sized(len, string_limit, at, op)?))
            }
            Argument::Bytes8 => {
                let len = u64::from_le_bytes(self.array(at, op)?);
                Arg::Bytes(Cow::Borrowed(self.sized(len, string_limit, at, op)?))
            }
            Argument::Unicode1 => {
                let len = u64::from(self.array::<1>(at, op)?[0]);
                let bytes = self.sized(len, string_limit, at, op)?;
                Arg::Str(
                    utf8(bytes)
                        .ok_or_else(|| self.bad("the string is not UTF-8".to_owned(), at, op))?,
                )
            }
            Argument::Unicode4 => {
                let len = u64::from(u32::from_le_bytes(self.array(at, op)?));
                let bytes = self.sized(len, string_limit, at, op)?;
                Arg::Str(
                    utf8(bytes)
                        .ok_or_else(|| self.bad("the string is not UTF-8".to_owned(), at, op))?,
                )
            }
            Argument::Unicode8 => {
                let len = u64::from_le_bytes(self.array(at, op)?);
                let bytes = self.sized(len, string_limit, at, op)?;
                Arg::Str(
                    utf8(bytes)
                        .ok_or_else(|| self.bad("the string is not UTF-8".to_owned(), at, op))?,
                )
            }
        })
    }

    /// `PyLong_FromString(text, NULL, base)`: an `Int` when it fits, else a `BigInt`.
    /// Decimal text has at most `max_int_digits` digits (CPython's own limit, 4300);
    /// text in a power-of-two base (`0x`, `0o`, `0b`), which CPython does not limit, is
    /// converted in linear time within `max_long_bytes`.
    fn python_int(
        &self,
        text: &[u8],
        base: IntBase,
        at: usize,
        op: Opcode,
    ) -> Result<Arg<'a>, Error> {
        let literal = py_long_literal(text, base).ok_or_else(|| {
            self.bad(
                format!("`{}` is not an integer", text.escape_ascii()),
                at,
                op,
            )
        })?;
        let limit = if literal.radix == 10 {
            (literal.digits.len() > self.limits.max_int_digits)
                .then_some(("max_int_digits", self.limits.max_int_digits))
        } else {
            let significant = literal.digits.iter().skip_while(|&&d| d == b'0').count();
            let bits = significant.saturating_mul(literal.radix.trailing_zeros() as usize);
            (bits / 8 > self.limits.max_long_bytes)
                .then_some(("max_long_bytes", self.limits.max_long_bytes))
        };
        if let Some((limit, max)) = limit {
            return Err(self.error(
                ErrorKind::LimitExceeded {
                    limit,
                    max: max as u64,
                },
                at,
                Some(op),
            ));
        }
        let bytes = from_digits(&literal.digits, literal.radix, literal.negative);
        Ok(match long(&bytes) {
            Arg::Int(i) => Arg::Int(i),
            _ => Arg::BigInt(Cow::Owned(bytes)),
        })
    }

    /// Decodes the next instruction. After `STOP`, or after an error, returns `None`.
    pub fn next_instruction(&mut self) -> Option<Result<Instruction<'a>, Error>> {
        if self.done {
            return None;
        }
        let at = self.pos;
        let Some(&byte) = self.data.get(at) else {
            self.done = true;
            return Some(Err(self.error(ErrorKind::Truncated, at, None)));
        };
        let Some(opcode) = Opcode::from_byte(byte) else {
            self.done = true;
            return Some(Err(self.error(ErrorKind::UnknownOpcode(byte), at, None)));
        };
        self.pos += 1;
        let result = self.decode_arg(opcode, at).map(|arg| Instruction {
            offset: self.base + at as u64,
            opcode,
            arg,
        });
        if result.is_err() || opcode == Opcode::Stop {
            self.done = true;
        }
        Some(result)
    }
}

impl<'a> Iterator for Decoder<'a> {
    type Item = Result<Instruction<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_instruction()
    }
}

fn ascii(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap_or("")
}

/// `LONG1`/`LONG4` payloads: little-endian two's complement; values that fit in 64 bits
/// (however many bytes spell them) become `Int`.
fn long(bytes: &[u8]) -> Arg<'_> {
    match crate::bigint::bigint_to_i64(bytes) {
        Some(value) => Arg::Int(value),
        None => Arg::BigInt(Cow::Borrowed(bytes)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: &[u8]) -> Vec<Result<Instruction<'_>, Error>> {
        Decoder::new(bytes, 0, Limits::default()).collect()
    }

    #[test]
    fn binary_arguments() {
        let out = decode(b"\x80\x02K\x07M\x01\x02J\xff\xff\xff\xffG\x3f\xf8\0\0\0\0\0\0.");
        let args: Vec<_> = out.into_iter().map(|i| i.unwrap().arg).collect();
        assert_eq!(
            args,
            [
                Arg::Int(2),
                Arg::Int(7),
                Arg::Int(0x0201),
                Arg::Int(-1),
                Arg::Float(1.5),
                Arg::None
            ]
        );
    }

    #[test]
    fn longs() {
        assert_eq!(long(b""), Arg::Int(0));
        assert_eq!(long(b"\xff"), Arg::Int(-1));
        assert_eq!(long(b"\x00\x80\x00"), Arg::Int(32768));
        assert_eq!(long(b"\x00\x80"), Arg::Int(-32768));
        // Redundant sign bytes: CPython's int is the same.
        assert_eq!(long(b"\x05\0\0\0\0\0\0\0\0\0"), Arg::Int(5));
        assert_eq!(long(&[0xff; 12]), Arg::Int(-1));
        assert_eq!(
            long(b"\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"),
            Arg::BigInt(Cow::Borrowed(b"\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"))
        );
    }

    #[test]
    fn text_arguments() {
        let out = decode(
            b"I00\nI42\nL-5L\nF1.5\nS'a\\'b\\x41\\101'\nVcaf\\u00e9\nc__builtin__\nset\ng3\n.",
        );
        let args: Vec<_> = out.into_iter().map(|i| i.unwrap().arg).collect();
        assert_eq!(args[0], Arg::Bool(false));
        assert_eq!(args[1], Arg::Int(42));
        assert_eq!(args[2], Arg::Int(-5));
        assert_eq!(args[3], Arg::Float(1.5));
        assert_eq!(args[4], Arg::Bytes(Cow::Borrowed(b"a'bAA")));
        assert_eq!(args[5], Arg::Str(Cow::Borrowed("café")));
        assert_eq!(
            args[6],
            Arg::Global {
                module: "__builtin__".into(),
                name: "set".into()
            }
        );
        assert_eq!(args[7], Arg::Int(3));
    }

    #[test]
    fn lengths_are_checked_before_anything_is_taken() {
        let out = decode(b"X\xff\xff\xff\xffabc");
        let error = out.into_iter().next().unwrap().unwrap_err();
        assert!(
            error
                .message()
                .contains("declares 4294967295 bytes but only 3"),
            "{error}"
        );
        assert_eq!(error.opcode(), Some(Opcode::BinUnicode));

        let limits = Limits {
            max_string_len: 2,
            ..Limits::default()
        };
        let mut decoder = Decoder::new(b"C\x03abc.", 100, limits);
        let error = decoder.next().unwrap().unwrap_err();
        assert_eq!(
            error.kind(),
            &ErrorKind::LimitExceeded {
                limit: "max_string_len",
                max: 2
            }
        );
        assert_eq!(error.offset(), 100);
        assert!(decoder.next().is_none());
    }

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut data = b"\x80\x04\x95".to_vec();
        data.extend_from_slice(&(body.len() as u64).to_le_bytes());
        data.extend_from_slice(body);
        data
    }

    fn framed_args(data: &[u8], framing: Framing) -> (Vec<Arg<'_>>, Option<u64>, usize) {
        let mut decoder = Decoder::with_framing(data, 0, Limits::default(), framing);
        let mut args = Vec::new();
        while let Some(Ok(ins)) = decoder.next_instruction() {
            args.push(ins.arg);
        }
        (args, decoder.divergence(), decoder.stream_position())
    }

    #[test]
    fn the_two_framings() {
        // A GLOBAL line crossing the end of its frame: `module name` read in order, `ule name`
        // by a stream reader, which drops the frame's rest (CPython 3.11: pickle.loads vs
        // pickle.load(io.BytesIO(...))).
        let mut data = frame(b"(cmod");
        data.extend_from_slice(b"ule\nname\nl.");
        let (args, divergence, _) = framed_args(&data, Framing::Contiguous);
        assert_eq!(
            args[3],
            Arg::Global {
                module: "module".into(),
                name: "name".into()
            }
        );
        assert_eq!(divergence, Some(12));
        let (args, divergence, _) = framed_args(&data, Framing::Stream);
        assert_eq!(
            args[3],
            Arg::Global {
                module: "ule".into(),
                name: "name".into()
            }
        );
        assert_eq!(divergence, Some(12));

        // A BINUNICODE crossing: the stream reader takes its bytes from after the frame.
        let mut data = frame(b"X\x03\x00\x00\x00a");
        data.extend_from_slice(b"bcd.");
        assert_eq!(
            framed_args(&data, Framing::Contiguous).0[2],
            Arg::Str("abc".into())
        );
        assert_eq!(
            framed_args(&data, Framing::Stream).0[2],
            Arg::Str("bcd".into())
        );

        // Bytes payloads go on into the stream: both read the same, no divergence.
        let mut data = frame(b"C\x05ab");
        data.extend_from_slice(b"cde.");
        for framing in [Framing::Contiguous, Framing::Stream] {
            let (args, divergence, _) = framed_args(&data, framing);
            assert_eq!(args[2], Arg::Bytes(Cow::Borrowed(b"abcde")));
            assert_eq!(divergence, None);
        }

        // STOP inside a frame that goes on: a stream reader stands at the frame's end after
        // it (io.BytesIO's position 15), a reader of bytes right after STOP (13).
        let mut data = frame(b"N.XX");
        data.extend_from_slice(b"N.");
        let mut decoder = Decoder::with_framing(&data, 0, Limits::default(), Framing::Stream);
        while decoder.next_instruction().is_some() {}
        assert_eq!((decoder.position(), decoder.stream_position()), (13, 15));

        // A pickler's frames: no divergence, and each reader ends where STOP is.
        let data = frame(b"K\x01K\x02\x86.");
        let (_, divergence, end) = framed_args(&data, Framing::Stream);
        assert_eq!((divergence, end), (None, data.len()));
    }

    #[test]
    fn errors_name_the_byte() {
        let error = decode(b"\x80\x02\xff").pop().unwrap().unwrap_err();
        assert_eq!(error.kind(), &ErrorKind::UnknownOpcode(0xff));
        assert_eq!(error.offset(), 2);
        let error = decode(b"\x80\x02J\x01\x02").pop().unwrap().unwrap_err();
        assert_eq!(error.kind(), &ErrorKind::Truncated);
        assert_eq!(error.offset(), 2);
        let error = decode(b"I12").pop().unwrap().unwrap_err();
        assert_eq!(error.kind(), &ErrorKind::Truncated);
        let error = decode(b"Iabc\n").pop().unwrap().unwrap_err();
        assert!(error.message().contains("not an integer"));
        let digits = format!("I{}\n", "9".repeat(5000));
        let error = decode(digits.as_bytes()).pop().unwrap().unwrap_err();
        assert!(matches!(
            error.kind(),
            ErrorKind::LimitExceeded {
                limit: "max_int_digits",
                ..
            }
        ));
    }
}
