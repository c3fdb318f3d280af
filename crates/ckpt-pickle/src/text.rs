//! The text arguments of protocol 0, read the way CPython's C unpickler reads them.
//!
//! `_pickle.c` copies each line into a NUL-terminated C string and hands it to C and
//! CPython parsers: `strtol` (`INT`), `PyLong_FromString` (`INT` overflow, `LONG`, and
//! the memo indices of `PUT`/`GET`), `PyOS_string_to_double` (`FLOAT`),
//! `PyBytes_DecodeEscape` (`STRING`) and the raw-unicode-escape codec (`UNICODE`). The
//! functions here reproduce those parsers, so that the crate takes exactly the text
//! CPython takes: a NUL byte ends a number, a vertical tab is whitespace, underscores
//! separate digits, and so on.

use std::borrow::Cow;

/// The C string a line is to CPython's parsers: the bytes before the first NUL.
pub(crate) fn c_string(line: &[u8]) -> &[u8] {
    match line.iter().position(|&b| b == 0) {
        Some(nul) => line.get(..nul).unwrap_or_default(),
        None => line,
    }
}

/// Whitespace for C's `isspace` and CPython's `Py_ISSPACE` (the same six bytes).
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

fn trim_start_space(text: &[u8]) -> &[u8] {
    let start = text
        .iter()
        .position(|&b| !is_space(b))
        .unwrap_or(text.len());
    text.get(start..).unwrap_or_default()
}

fn hex_value(digit: u8) -> u8 {
    // Callers pass ASCII hex digits.
    u8::try_from(char::from(digit).to_digit(16).unwrap_or(0)).unwrap_or(0)
}

/// C's `strtol(text, &end, 0)` when it reads the whole C string and fits in 64 bits:
/// leading whitespace, a sign, then hex after `0x`, octal after `0`, or decimal.
pub(crate) fn strtol_base0(text: &[u8]) -> Option<i64> {
    let text = trim_start_space(text);
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

/// The base `PyLong_FromString` is called with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IntBase {
    /// Base 0 (`INT`, `LONG`): `0x`, `0o` and `0b` prefixes, no leading zeros.
    Prefixed,
    /// Base 10 (`PUT`, `GET` memo indices): decimal digits only, leading zeros allowed.
    Decimal,
}

/// An integer literal as `PyLong_FromString` reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IntLiteral {
    pub(crate) negative: bool,
    pub(crate) radix: u32,
    /// The ASCII digits, underscores removed.
    pub(crate) digits: Vec<u8>,
}

/// `PyLong_FromString(text, NULL, base)` on a C string: whitespace around, a sign, a base
/// prefix (base 0) with one optional underscore after it, digits with single underscores
/// between them, and in base 0 no leading zero before a non-zero decimal. `None` where
/// CPython raises `ValueError` (its 4300-digit limit on decimal text is the caller's).
pub(crate) fn py_long_literal(text: &[u8], base: IntBase) -> Option<IntLiteral> {
    let mut s = trim_start_space(text);
    let negative = match s.first() {
        Some(b'-') => {
            s = s.get(1..)?;
            true
        }
        Some(b'+') => {
            s = s.get(1..)?;
            false
        }
        _ => false,
    };
    let mut old_octal = false;
    let radix = match base {
        IntBase::Decimal => 10,
        IntBase::Prefixed => match s {
            [b'0', b'x' | b'X', rest @ ..] => {
                s = rest;
                16
            }
            [b'0', b'o' | b'O', rest @ ..] => {
                s = rest;
                8
            }
            [b'0', b'b' | b'B', rest @ ..] => {
                s = rest;
                2
            }
            [b'0', ..] => {
                old_octal = true;
                10
            }
            _ => 10,
        },
    };
    if radix != 10 {
        // One underscore may follow the prefix.
        if let [b'_', rest @ ..] = s {
            s = rest;
        }
    }
    if s.first() == Some(&b'_') {
        return None;
    }
    let mut digits = Vec::new();
    let mut previous = b'0';
    let mut end = s.len();
    for (i, &b) in s.iter().enumerate() {
        if b == b'_' {
            if previous == b'_' {
                return None;
            }
        } else if char::from(b).is_digit(radix) {
            digits.push(b);
        } else {
            end = i;
            break;
        }
        previous = b;
    }
    if previous == b'_' || digits.is_empty() {
        return None;
    }
    if old_octal && digits.iter().any(|&d| d != b'0') {
        return None;
    }
    let rest = s.get(end..).unwrap_or_default();
    if !trim_start_space(rest).is_empty() {
        return None;
    }
    Some(IntLiteral {
        negative,
        radix,
        digits,
    })
}

/// CPython's `PyOS_string_to_double` on a whole C string, as `FLOAT` uses it: no
/// whitespace, no underscores, `inf`/`infinity`/`nan` spelled out, and an overflow is an
/// error.
pub(crate) fn parse_c_double(text: &[u8]) -> Option<f64> {
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

/// UTF-8 text as CPython decodes pickle strings (`surrogatepass`): valid UTF-8, where
/// encoded lone surrogates are also accepted. Rust strings cannot hold those, so they become
/// U+FFFD; anything else that is not UTF-8 is `None`.
pub(crate) fn utf8(bytes: &[u8]) -> Option<Cow<'_, str>> {
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

/// The quoted literal of a protocol-0 `STRING` (`'abc\n'`): strip the quotes, then undo
/// Python's escapes (`codecs.escape_decode`).
pub(crate) fn unquote_python_string(line: &[u8]) -> Result<Vec<u8>, String> {
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
                // Exactly two hex digits (no sign, unlike `u8::from_str_radix`).
                let (high, low) = match rest {
                    [h, l, ..] if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => (*h, *l),
                    _ => return Err("invalid \\x escape in STRING".to_owned()),
                };
                out.push(hex_value(high) << 4 | hex_value(low));
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
pub(crate) fn decode_raw_unicode_escape(bytes: &[u8]) -> Result<String, String> {
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

    fn literal(text: &[u8], base: IntBase) -> Option<(bool, u32, String)> {
        py_long_literal(text, base)
            .map(|l| (l.negative, l.radix, String::from_utf8(l.digits).unwrap()))
    }

    #[test]
    fn strtol_reads_what_c_reads() {
        assert_eq!(strtol_base0(b"42"), Some(42));
        assert_eq!(strtol_base0(b"\x0b 1"), Some(1));
        assert_eq!(strtol_base0(b"010"), Some(8));
        assert_eq!(strtol_base0(b"-0x1f"), Some(-31));
        assert_eq!(strtol_base0(b"0x"), None);
        assert_eq!(strtol_base0(b"08"), None);
        assert_eq!(strtol_base0(b"1 "), None);
        assert_eq!(strtol_base0(b"1_0"), None);
        assert_eq!(strtol_base0(b"\x1c1"), None);
        assert_eq!(strtol_base0(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(strtol_base0(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(strtol_base0(b"9223372036854775808"), None);
        assert_eq!(strtol_base0(b""), None);
        assert_eq!(strtol_base0(b"-"), None);
    }

    #[test]
    fn py_long_reads_what_cpython_reads() {
        use IntBase::{Decimal, Prefixed};
        assert_eq!(
            literal(b" -1_000 ", Prefixed),
            Some((true, 10, "1000".into()))
        );
        assert_eq!(literal(b"0x_1f", Prefixed), Some((false, 16, "1f".into())));
        assert_eq!(literal(b"0O17", Prefixed), Some((false, 8, "17".into())));
        assert_eq!(literal(b"0b1_0", Prefixed), Some((false, 2, "10".into())));
        assert_eq!(literal(b"000", Prefixed), Some((false, 10, "000".into())));
        assert_eq!(literal(b"0_0", Prefixed), Some((false, 10, "00".into())));
        assert_eq!(literal(b"007", Prefixed), None);
        assert_eq!(literal(b"007", Decimal), Some((false, 10, "007".into())));
        assert_eq!(literal(b"0x1", Decimal), None);
        assert_eq!(literal(b"1__0", Prefixed), None);
        assert_eq!(literal(b"_1", Prefixed), None);
        assert_eq!(literal(b"1_", Prefixed), None);
        assert_eq!(literal(b"0x", Prefixed), None);
        assert_eq!(literal(b"0x_", Prefixed), None);
        assert_eq!(literal(b"0x__1", Prefixed), None);
        assert_eq!(literal(b"", Decimal), None);
        assert_eq!(literal(b" ", Decimal), None);
        assert_eq!(literal(b"+", Decimal), None);
        assert_eq!(literal(b"1 2", Decimal), None);
        assert_eq!(
            literal(b"\t+7\x0b\r", Decimal),
            Some((false, 10, "7".into()))
        );
        assert_eq!(literal(b"1\x1c", Decimal), None);
    }

    #[test]
    fn c_strings_end_at_nul() {
        assert_eq!(c_string(b"12\0zz"), b"12");
        assert_eq!(c_string(b"12"), b"12");
        assert_eq!(c_string(b"\0"), b"");
    }

    #[test]
    fn floats() {
        assert_eq!(parse_c_double(b"1.5"), Some(1.5));
        assert_eq!(parse_c_double(b"5."), Some(5.0));
        assert_eq!(parse_c_double(b"-Infinity"), Some(f64::NEG_INFINITY));
        assert!(parse_c_double(b"nan").unwrap().is_nan());
        assert_eq!(parse_c_double(b"1e-400"), Some(0.0));
        assert_eq!(parse_c_double(b"1e400"), None);
        assert_eq!(parse_c_double(b"."), None);
        assert_eq!(parse_c_double(b" 1"), None);
        assert_eq!(parse_c_double(b"1\x0b"), None);
        assert_eq!(parse_c_double(b"1_0"), None);
        assert_eq!(parse_c_double(b"0x10"), None);
    }

    #[test]
    fn string_escapes() {
        assert_eq!(unquote_python_string(b"'a\\x41\\xAb'").unwrap(), b"aA\xab");
        assert!(unquote_python_string(b"'\\x+f'").is_err());
        assert!(unquote_python_string(b"'\\x4'").is_err());
        assert_eq!(unquote_python_string(b"'\\777'").unwrap(), b"\xff");
        assert_eq!(unquote_python_string(b"\"\\q\"").unwrap(), b"\\q");
        assert!(unquote_python_string(b"'").is_err());
        assert!(unquote_python_string(b"'a\"").is_err());
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
        assert_eq!(decode_raw_unicode_escape(b"\\").unwrap(), "\\");
        assert!(decode_raw_unicode_escape(b"\\u12").is_err());
        assert!(decode_raw_unicode_escape(b"\\U00110000").is_err());
    }
}
