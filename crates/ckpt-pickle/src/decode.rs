//! Decoding the opcode stream: bytes in, [`Instruction`]s out, one at a time.
//!
//! This is the only place that reads the bytes of a pickle. Every length it reads is
//! checked against what remains and against [`Limits`] before anything is allocated, and
//! arguments borrow the input where they can. The machine ([`crate::machine`]) and the
//! listing ([`crate::listing`]) both consume this stream, so they cannot disagree about
//! what the bytes say.

use std::borrow::Cow;

use crate::error::{Error, ErrorKind};
use crate::limits::Limits;
use crate::opcode::{Argument, Opcode};

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

/// Decodes the opcodes of a pickle that starts at `data[0]`, stopping after `STOP`.
#[derive(Debug, Clone)]
pub struct Decoder<'a> {
    data: &'a [u8],
    pos: usize,
    base: u64,
    limits: Limits,
    done: bool,
}

impl<'a> Decoder<'a> {
    /// A decoder over `data`, whose first byte is at offset `base` of the enclosing file
    /// (errors and instructions report offsets from there).
    pub fn new(data: &'a [u8], base: u64, limits: Limits) -> Self {
        Decoder {
            data,
            pos: 0,
            base,
            limits,
            done: false,
        }
    }

    /// How many bytes have been consumed (after `STOP`: the length of the pickle).
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    fn error(&self, kind: ErrorKind, at: usize, opcode: Option<Opcode>) -> Error {
        Error::new(kind, self.base + at as u64, opcode)
    }

    fn take(&mut self, n: usize, at: usize, op: Opcode) -> Result<&'a [u8], Error> {
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
        self.take(usize::try_from(len).unwrap_or(usize::MAX), at, op)
    }

    /// A text-mode argument: the bytes up to `\n` (not included).
    fn line(&mut self, at: usize, op: Opcode) -> Result<&'a [u8], Error> {
        let rest = self.data.get(self.pos..).unwrap_or_default();
        let window = rest
            .get(..self.limits.max_line_len.saturating_add(1))
            .unwrap_or(rest);
        match window.iter().position(|&b| b == b'\n') {
            Some(n) => {
                let line = self.take(n + 1, at, op)?;
                Ok(line.get(..n).unwrap_or_default())
            }
            None if window.len() > self.limits.max_line_len => Err(self.error(
                ErrorKind::LimitExceeded {
                    limit: "max_line_len",
                    max: self.limits.max_line_len as u64,
                },
                at,
                Some(op),
            )),
            None => Err(self.error(ErrorKind::Truncated, at, Some(op))),
        }
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
                if op == Opcode::Frame && value > (self.data.len() - self.pos) as u64 {
                    return Err(self.error(ErrorKind::Truncated, at, Some(op)));
                }
                Arg::Int(
                    i64::try_from(value)
                        .map_err(|_| self.bad(format!("{value} is too large"), at, op))?,
                )
            }
            Argument::F64 => Arg::Float(f64::from_be_bytes(self.array(at, op)?)),
            Argument::DecimalLine => {
                let line = self.line(at, op)?;
                if op == Opcode::Int {
                    // CPython's C unpickler: strtol(base 0), a bool when the line is two
                    // characters worth 0 or 1, else Python's int(text, 0).
                    match c_strtol_base0(line) {
                        Some(x @ (0 | 1)) if line.len() == 2 => Arg::Bool(x == 1),
                        Some(x) => Arg::Int(x),
                        None => self.python_int(line, at, op)?,
                    }
                } else {
                    let text = ascii(line).trim();
                    Arg::Int(
                        text.parse::<i64>()
                            .ok()
                            .filter(|&i| i >= 0)
                            .ok_or_else(|| {
                                self.bad(
                                    format!("memo index `{}` is not a number", line.escape_ascii()),
                                    at,
                                    op,
                                )
                            })?,
                    )
                }
            }
            Argument::LongLine => {
                let line = self.line(at, op)?;
                let line = line.strip_suffix(b"L").unwrap_or(line);
                self.python_int(line, at, op)?
            }
            Argument::FloatLine => {
                let line = self.line(at, op)?;
                Arg::Float(parse_c_double(line).ok_or_else(|| {
                    self.bad(format!("`{}` is not a float", line.escape_ascii()), at, op)
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
                    let line = self.line(at, op)?;
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

    /// Python's `int(text, 0)`: an `Int` when it fits, else a `BigInt`.
    fn python_int(&self, line: &[u8], at: usize, op: Opcode) -> Result<Arg<'a>, Error> {
        let not_int = || {
            self.bad(
                format!("`{}` is not an integer", line.escape_ascii()),
                at,
                op,
            )
        };
        let (negative, radix, digits) = python_int_literal(line).ok_or_else(not_int)?;
        if digits.len() > self.limits.max_int_digits {
            return Err(self.error(
                ErrorKind::LimitExceeded {
                    limit: "max_int_digits",
                    max: self.limits.max_int_digits as u64,
                },
                at,
                Some(op),
            ));
        }
        let bytes = digits_to_twos_complement(&digits, radix, negative);
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

/// UTF-8 text as CPython decodes pickle strings (`surrogatepass`): valid UTF-8, where
/// encoded lone surrogates are also accepted. Rust strings cannot hold those, so they become
/// U+FFFD; anything else that is not UTF-8 is `None`.
fn utf8(bytes: &[u8]) -> Option<Cow<'_, str>> {
    if let Ok(text) = std::str::from_utf8(bytes) {
        return Some(Cow::Borrowed(text));
    }
    let mut out = String::with_capacity(bytes.len());
    let mut rest = bytes;
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(text) => {
                out.push_str(text);
                break;
            }
            Err(e) => {
                let (valid, tail) = rest.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(valid).ok()?);
                // An encoded surrogate: ED A0..BF 80..BF.
                match tail {
                    [0xed, 0xa0..=0xbf, 0x80..=0xbf, after @ ..] => {
                        out.push('\u{fffd}');
                        rest = after;
                    }
                    _ => return None,
                }
            }
        }
    }
    Some(Cow::Owned(out))
}

/// C's `strtol(text, &end, 0)` when it reads the whole text and fits in 64 bits: leading
/// whitespace, a sign, then hex after `0x`, octal after `0`, or decimal.
fn c_strtol_base0(text: &[u8]) -> Option<i64> {
    let text = text.trim_ascii_start();
    let (negative, text) = match text {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, text),
    };
    let (radix, digits) = match text {
        [b'0', b'x' | b'X', rest @ ..] if rest.first().is_some_and(u8::is_ascii_hexdigit) => {
            (16, rest)
        }
        [b'0', rest @ ..] if !rest.is_empty() => (8, rest),
        _ => (10, text),
    };
    if digits.is_empty() {
        return None;
    }
    let mut value: i128 = 0;
    for &d in digits {
        let digit = char::from(d).to_digit(radix)?;
        value = value
            .checked_mul(i128::from(radix))?
            .checked_add(i128::from(digit))?;
        if value > i128::from(u64::MAX) {
            return None;
        }
    }
    let value = if negative { -value } else { value };
    i64::try_from(value).ok()
}

/// Python's `int(text, 0)` literal: `(negative, radix, digits)`, or `None` if Python
/// refuses it (whitespace around, a sign, `0x`/`0o`/`0b` prefixes, single underscores
/// between digits, no leading zeros in a non-zero decimal).
fn python_int_literal(text: &[u8]) -> Option<(bool, u32, String)> {
    let text = std::str::from_utf8(text).ok()?.trim();
    let (negative, text) = match text.as_bytes().first() {
        Some(b'-') => (true, text.get(1..)?),
        Some(b'+') => (false, text.get(1..)?),
        _ => (false, text),
    };
    let lower = text.to_ascii_lowercase();
    let (radix, body, prefixed) = match lower.get(..2) {
        Some("0x") => (16, lower.get(2..)?, true),
        Some("0o") => (8, lower.get(2..)?, true),
        Some("0b") => (2, lower.get(2..)?, true),
        _ => (10, lower.as_str(), false),
    };
    // Underscores: one at a time, between digits (or right after a base prefix).
    let body = if prefixed {
        body.strip_prefix('_').unwrap_or(body)
    } else {
        body
    };
    if body.is_empty() || body.starts_with('_') || body.ends_with('_') || body.contains("__") {
        return None;
    }
    let digits: String = body.chars().filter(|&c| c != '_').collect();
    if !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    if radix == 10
        && digits.len() > 1
        && digits.starts_with('0')
        && digits.chars().any(|c| c != '0')
    {
        return None;
    }
    Some((negative, radix, digits))
}

/// CPython's `PyOS_string_to_double` on a whole `FLOAT` line: no surrounding space, no
/// underscores, `inf`/`nan` spelled out, and an overflow is an error.
fn parse_c_double(text: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(text).ok()?;
    let bare = text.trim_start_matches(['+', '-']).to_ascii_lowercase();
    let special = matches!(bare.as_str(), "inf" | "infinity" | "nan");
    if !special
        && !text
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E'))
    {
        return None;
    }
    let value: f64 = text.parse().ok()?;
    if value.is_infinite() && !special {
        return None;
    }
    Some(value)
}

/// `LONG1`/`LONG4` payloads: little-endian two's complement; short ones become `Int`.
fn long(bytes: &[u8]) -> Arg<'_> {
    if bytes.len() <= 8 {
        let fill = if bytes.last().is_some_and(|&b| b & 0x80 != 0) {
            0xff
        } else {
            0
        };
        let mut buf = [fill; 8];
        buf.get_mut(..bytes.len())
            .unwrap_or_default()
            .copy_from_slice(bytes);
        Arg::Int(i64::from_le_bytes(buf))
    } else {
        Arg::BigInt(Cow::Borrowed(bytes))
    }
}

/// Digits in `radix` to little-endian two's complement bytes (minimal length).
#[allow(clippy::cast_possible_truncation)] // keeping the low 32 bits of a limb product is the point
fn digits_to_twos_complement(digits: &str, radix: u32, negative: bool) -> Vec<u8> {
    // Magnitude in base 2^32 limbs, little-endian.
    let mut limbs: Vec<u32> = vec![0];
    for chunk in digits.as_bytes().chunks(7) {
        let (mut carry, scale) = chunk.iter().fold((0u64, 1u64), |(value, scale), &d| {
            let digit = char::from(d).to_digit(radix).unwrap_or(0);
            (
                value * u64::from(radix) + u64::from(digit),
                scale * u64::from(radix),
            )
        });
        for limb in &mut limbs {
            let product = u64::from(*limb) * scale + carry;
            *limb = product as u32;
            carry = product >> 32;
        }
        if carry > 0 {
            limbs.push(carry as u32);
        }
    }
    let mut bytes: Vec<u8> = limbs.iter().flat_map(|l| l.to_le_bytes()).collect();
    // Room for the sign bit before negating (0x80000001 needs a fifth byte as -0x80000001).
    bytes.push(0);
    if negative {
        // Two's complement: invert and add one.
        let mut carry = true;
        for byte in &mut bytes {
            *byte = !*byte;
            if carry {
                let (sum, overflow) = byte.overflowing_add(1);
                *byte = sum;
                carry = overflow;
            }
        }
    }
    // Trim redundant sign bytes, keeping the sign bit right.
    let sign = if negative { 0xff } else { 0x00 };
    while let [.., before, last] = bytes[..] {
        if last == sign && (before & 0x80 == sign & 0x80) {
            bytes.pop();
        } else {
            break;
        }
    }
    if !negative && bytes.last().is_some_and(|&b| b & 0x80 != 0) {
        bytes.push(0);
    }
    bytes
}

/// The quoted literal of a protocol-0 `STRING` (`'abc\n'`): strip the quotes, then undo
/// Python's escapes (`codecs.escape_decode`).
fn unquote_python_string(line: &[u8]) -> Result<Vec<u8>, String> {
    let inner = match line {
        [q @ (b'\'' | b'"'), inner @ .., last] if last == q => inner,
        _ => return Err("STRING argument is not a quoted literal".to_owned()),
    };
    let mut out = Vec::with_capacity(inner.len());
    let mut rest = inner;
    while let Some((&b, tail)) = rest.split_first() {
        rest = tail;
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let Some((&e, tail)) = rest.split_first() else {
            return Err("STRING ends with a lone backslash".to_owned());
        };
        rest = tail;
        match e {
            b'\n' => {}
            b'\\' => out.push(b'\\'),
            b'\'' => out.push(b'\''),
            b'"' => out.push(b'"'),
            b'a' => out.push(0x07),
            b'b' => out.push(0x08),
            b'f' => out.push(0x0c),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(0x0b),
            b'x' => {
                let hex = rest.get(..2).ok_or("STRING has a short \\x escape")?;
                let text = std::str::from_utf8(hex).map_err(|_| "bad \\x escape")?;
                out.push(u8::from_str_radix(text, 16).map_err(|_| "bad \\x escape in STRING")?);
                rest = rest.get(2..).unwrap_or_default();
            }
            b'0'..=b'7' => {
                let mut value = u32::from(e - b'0');
                for _ in 0..2 {
                    match rest.first() {
                        Some(&d @ b'0'..=b'7') => {
                            value = value * 8 + u32::from(d - b'0');
                            rest = rest.get(1..).unwrap_or_default();
                        }
                        _ => break,
                    }
                }
                out.push(value.to_le_bytes()[0]);
            }
            other => {
                out.push(b'\\');
                out.push(other);
            }
        }
    }
    Ok(out)
}

/// Python's `raw-unicode-escape` codec: bytes are Latin-1 characters, except `\uXXXX` and
/// `\UXXXXXXXX` after an odd run of backslashes, which must be complete and in range.
/// Surrogate code points (which Rust strings cannot hold) become U+FFFD.
fn decode_raw_unicode_escape(bytes: &[u8]) -> Result<String, String> {
    let mut out = String::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'\\' {
            let run = bytes
                .get(i..)
                .unwrap_or_default()
                .iter()
                .take_while(|&&c| c == b'\\')
                .count();
            let after = i + run;
            let width = match bytes.get(after) {
                Some(b'u') => Some(4),
                Some(b'U') => Some(8),
                _ => None,
            };
            if let (true, Some(width)) = (run % 2 == 1, width) {
                let digits = bytes
                    .get(after + 1..after + 1 + width)
                    .filter(|d| d.iter().all(u8::is_ascii_hexdigit))
                    .ok_or_else(|| {
                        format!(
                            "truncated \\{} escape",
                            if width == 4 { "uXXXX" } else { "UXXXXXXXX" }
                        )
                    })?;
                let code = std::str::from_utf8(digits)
                    .ok()
                    .and_then(|d| u32::from_str_radix(d, 16).ok())
                    .filter(|&c| c <= 0x10ffff)
                    .ok_or_else(|| "\\Uxxxxxxxx out of range".to_owned())?;
                out.extend(std::iter::repeat_n('\\', run - 1));
                out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                i = after + 1 + width;
                continue;
            }
            out.extend(std::iter::repeat_n('\\', run));
            i = after;
            continue;
        }
        out.push(char::from(b));
        i += 1;
    }
    Ok(out)
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
        assert_eq!(
            long(b"\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"),
            Arg::BigInt(Cow::Borrowed(b"\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"))
        );
        assert_eq!(
            digits_to_twos_complement("119547037146038801333356", 10, false),
            b"\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"
        );
        // -2**80: Python's pickle.encode_long gives 00 00 00 00 00 00 00 00 00 00 ff.
        assert_eq!(
            digits_to_twos_complement("1208925819614629174706176", 10, true),
            b"\0\0\0\0\0\0\0\0\0\0\xff"
        );
        assert_eq!(digits_to_twos_complement("255", 10, false), b"\xff\x00");
        assert_eq!(digits_to_twos_complement("128", 10, true), b"\x80");
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
    fn raw_unicode_escape() {
        assert_eq!(decode_raw_unicode_escape(b"a\\u0041").unwrap(), "aA");
        assert_eq!(
            decode_raw_unicode_escape(b"a\\\\u0041").unwrap(),
            "a\\\\u0041"
        );
        assert_eq!(decode_raw_unicode_escape(b"\\\\\\u0041").unwrap(), "\\\\A");
        assert_eq!(decode_raw_unicode_escape(b"\\U0001F642").unwrap(), "🙂");
        assert_eq!(decode_raw_unicode_escape(b"\xe9").unwrap(), "é");
        assert_eq!(decode_raw_unicode_escape(b"\\x").unwrap(), "\\x");
        assert!(decode_raw_unicode_escape(b"\\u12").is_err());
        assert!(decode_raw_unicode_escape(b"\\U00110000").is_err());
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
