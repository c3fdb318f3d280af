//! `ast.literal_eval` of CPython 3.11, on the text of a `.npy` header.
//!
//! numpy reads the header with `ast.literal_eval(header)`, which is `ast.parse(text.lstrip("
//! \t"), mode="eval")` and then a walk that accepts only literals. This module is that, for the
//! inputs that matter: it accepts exactly the texts CPython turns into a value, and refuses the
//! others (as [`Fail::Refused`], with the offset of the first thing wrong). Where it cannot
//! tell (a `\N{...}` name outside its table, a budget), it says so ([`Fail::Undecided`]).
//!
//! What CPython does, and so what this does:
//! - tokens: strings with every prefix (`r u b f br rb fr rf`, any case) and quote form,
//!   adjacent strings concatenated (bytes with bytes, str with str); numbers in every base with
//!   `_` separators, floats, imaginary numbers; `True False None ...`; `set()` (even spelled
//!   with NFKC-equivalent letters, `ｓｅｔ()`); comments; `\` line continuations; newlines and
//!   indentation inside brackets; `\r\n` and `\r` read as `\n` (inside strings too);
//! - values: tuples (bare at top level too), lists, dicts (a repeated key keeps the first key
//!   and the last value; `1`, `1.0` and `True` are one key), sets, unary `+`/`-` on a number,
//!   and `a + bj` / `a - bj` with a real `a` and an imaginary `bj` (and nothing else);
//! - refusals: anything else (names, calls, operators, f-strings, starred items...), a NUL
//!   anywhere, more than 200 nested brackets, a decimal integer of more than 4300 digits,
//!   unhashable dict keys or set elements, text after the expression, an indented first line.
//!
//! numpy's retry with `_filter_header` (format 1.0 and 2.0) is in `filter.rs`.

use super::Fail;
use super::int::Int;
use super::tables::{NAME_LETTERS, UNICODE_NAMES};
use super::value::{Dict, PyStr, Value, make_set, push_code_point};

/// The text of a header, decoded as numpy decodes it (latin-1 for format 1.0 and 2.0, UTF-8
/// for 3.0).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Text<'a> {
    Latin1(&'a [u8]),
    Utf8(&'a str),
}

impl Text<'_> {
    fn byte(&self, pos: usize) -> Option<u8> {
        match self {
            Text::Latin1(b) => b.get(pos).copied(),
            Text::Utf8(s) => s.as_bytes().get(pos).copied(),
        }
    }

    fn len(&self) -> usize {
        match self {
            Text::Latin1(b) => b.len(),
            Text::Utf8(s) => s.len(),
        }
    }

    /// The character at `pos` and its length in bytes, with CPython's newline translation
    /// (`\r\n` and `\r` are one `\n`).
    fn char_at(&self, pos: usize) -> Option<(char, usize)> {
        let (c, len) = match self {
            Text::Latin1(b) => (char::from(*b.get(pos)?), 1),
            Text::Utf8(s) => {
                let c = s.get(pos..)?.chars().next()?;
                (c, c.len_utf8())
            }
        };
        if c == '\r' {
            return Some((
                '\n',
                if self.byte(pos + 1) == Some(b'\n') {
                    2
                } else {
                    1
                },
            ));
        }
        Some((c, len))
    }
}

/// How to parse, and the budgets.
#[derive(Clone, Debug)]
pub(crate) struct Options {
    /// Brackets open at once beyond which ckpt stops (undecided); CPython itself refuses
    /// more than [`MAX_LEVEL`].
    pub(crate) max_depth: usize,
    /// Bytes of one integer beyond which ckpt does not compute it (undecided).
    pub(crate) max_int_bytes: usize,
    /// Values (constants and containers) beyond which ckpt stops (undecided), with the name
    /// and value of the limit it derives from.
    pub(crate) max_values: (usize, &'static str, u64),
}

/// CPython's tokenizer refuses more than this many nested brackets ("too many nested
/// parentheses").
pub(crate) const MAX_LEVEL: usize = 200;

/// CPython refuses decimal integer literals of more digits ("Exceeds the limit (4300 digits)
/// for integer string conversion").
pub(crate) const MAX_STR_DIGITS: usize = 4300;

/// `ast.literal_eval(text)`.
pub(crate) fn literal_eval(text: Text<'_>, options: &Options) -> Result<Value, Fail> {
    if (0..text.len()).any(|i| text.byte(i) == Some(0)) {
        return Err(refused(
            None,
            "the text holds a NUL byte, which Python source cannot",
        ));
    }
    let mut p = Parser {
        text,
        pos: 0,
        level: 0,
        options,
        big_digits: 0,
        values: 0,
    };
    // literal_eval strips leading spaces and tabs (not form feeds, not newlines).
    while matches!(p.text.byte(p.pos), Some(b' ' | b'\t')) {
        p.pos += 1;
    }
    // Blank lines, then the line of the expression, which must not be indented.
    loop {
        let col = p.indentation();
        match p.peek() {
            Some('#') => p.skip_comment(),
            Some('\n') => p.bump(),
            None if col > 0 => return Err(p.refused("unexpected indent (a last line of spaces)")),
            None => return Err(p.refused("there is no expression")),
            Some(_) if col > 0 => return Err(p.refused("unexpected indent")),
            Some(_) => break,
        }
    }
    let value = p.parse_toplevel()?;
    p.skip_trivia()?;
    match p.peek() {
        None => return Ok(value),
        Some('\n') => p.bump(),
        Some(c) => return Err(p.refused(format!("unexpected {c:?} after the expression"))),
    }
    // Only blank lines may follow.
    loop {
        let col = p.indentation();
        match p.peek() {
            Some('#') => p.skip_comment(),
            Some('\n') => p.bump(),
            None if col > 0 => return Err(p.refused("unexpected indent (a last line of spaces)")),
            None => return Ok(value),
            Some(_) => return Err(p.refused("text after the expression")),
        }
    }
}

fn refused(at: Option<usize>, message: impl Into<String>) -> Fail {
    Fail::Refused {
        at,
        message: message.into(),
    }
}

/// What kind of expression a parsed value came from, as far as `literal_eval`'s rules for
/// `+` and `-` care (parentheses do not change it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Form {
    /// A number constant (`int`, `float` or imaginary; not `bool`).
    Number,
    /// Another constant (str, bytes, `True`, `None`, `...`).
    Constant,
    /// `+` or `-` applied to a number constant.
    Signed,
    /// A container, `set()`, or `a + bj`.
    Other,
    /// The bare name `set`, which is only a literal when called with no arguments.
    SetName,
}

struct Parser<'a> {
    text: Text<'a>,
    pos: usize,
    /// Brackets open, as CPython's tokenizer counts them (calls included).
    level: usize,
    options: &'a Options,
    /// Decimal digits of integers beyond 64 bits converted so far (a budget: conversion is
    /// quadratic).
    big_digits: usize,
    /// Values parsed so far (a budget: each takes memory).
    values: usize,
}

type R<T> = Result<T, Fail>;

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.text.char_at(self.pos).map(|(c, _)| c)
    }

    fn peek_at(&self, pos: usize) -> Option<char> {
        self.text.char_at(pos).map(|(c, _)| c)
    }

    fn bump(&mut self) {
        if let Some((_, n)) = self.text.char_at(self.pos) {
            self.pos += n;
        }
    }

    fn refused(&self, message: impl Into<String>) -> Fail {
        refused(Some(self.pos), message)
    }

    fn refused_at(&self, at: usize, message: impl Into<String>) -> Fail {
        refused(Some(at), message)
    }

    fn undecided(
        &self,
        at: usize,
        message: impl Into<String>,
        limit: Option<(&'static str, u64)>,
    ) -> Fail {
        Fail::Undecided {
            at: Some(at),
            message: message.into(),
            limit,
        }
    }

    /// At the start of a line: skips its indentation and says whether it is zero (a form feed
    /// resets it, as in CPython's tokenizer).
    fn indentation(&mut self) -> usize {
        let mut col = 0;
        loop {
            match self.peek() {
                Some(' ' | '\t') => col += 1,
                Some('\x0c') => col = 0,
                _ => return col,
            }
            self.bump();
        }
    }

    /// Skips a comment, up to (not including) the end of its line.
    fn skip_comment(&mut self) {
        while !matches!(self.peek(), None | Some('\n')) {
            self.bump();
        }
    }

    /// Skips what separates tokens: spaces, tabs, form feeds, comments, line continuations,
    /// and newlines inside brackets. Stops at a newline outside brackets.
    fn skip_trivia(&mut self) -> R<()> {
        loop {
            match self.text.char_at(self.pos) {
                Some((' ' | '\t' | '\x0c', n)) => self.pos += n,
                Some(('#', _)) => self.skip_comment(),
                Some(('\\', n)) => self.continuation(n)?,
                Some(('\n', n)) if self.level > 0 => self.pos += n,
                _ => return Ok(()),
            }
        }
    }

    /// A `\` (of `n` bytes) at `pos`: it must end its line, and the text must go on.
    fn continuation(&mut self, n: usize) -> R<()> {
        match self.text.char_at(self.pos + n) {
            Some(('\n', m)) => {
                if self.text.char_at(self.pos + n + m).is_none() {
                    return Err(self.refused("unexpected end of text after a line continuation"));
                }
                self.pos += n + m;
                Ok(())
            }
            _ => Err(self.refused("unexpected character after line continuation character")),
        }
    }

    /// The expression of `mode="eval"`: one expression, or a tuple without parentheses.
    fn parse_toplevel(&mut self) -> R<Value> {
        let first = self.parse_expr()?;
        self.skip_trivia()?;
        if self.peek() != Some(',') {
            return self.value(first);
        }
        let mut items = vec![self.value(first)?];
        while self.peek() == Some(',') {
            self.bump();
            self.skip_trivia()?;
            if matches!(self.peek(), None | Some('\n')) {
                break;
            }
            let item = self.parse_expr()?;
            items.push(self.value(item)?);
            self.skip_trivia()?;
        }
        Ok(Value::Tuple(items.into_boxed_slice()))
    }

    /// A parsed expression as a value: the bare name `set` is not one.
    fn value(&self, (v, form): (Value, Form)) -> R<Value> {
        if form == Form::SetName {
            return Err(self.refused("the name `set` is not a literal (only `set()` is)"));
        }
        Ok(v)
    }

    /// `a`, or `a + b` / `a - b` (the only binary operators `literal_eval` knows, for complex
    /// numbers: a real on the left, an imaginary number on the right).
    fn parse_expr(&mut self) -> R<(Value, Form)> {
        let left = self.parse_factor()?;
        self.skip_trivia()?;
        let at = self.pos;
        let subtract = match self.peek() {
            Some('+') => false,
            Some('-') => true,
            _ => return Ok(left),
        };
        self.bump();
        let right = self.parse_factor()?;
        self.skip_trivia()?;
        if matches!(self.peek(), Some('+' | '-')) {
            return Err(self.refused("not a literal: more than one `+` or `-` between numbers"));
        }
        let real = match (&left.0, left.1) {
            (Value::Int(i), Form::Number | Form::Signed) => i.to_f64().ok_or_else(|| {
                self.refused_at(at, "int too large to convert to float (in `a + bj`)")
            })?,
            (Value::Float(x), Form::Number | Form::Signed) => *x,
            _ => {
                return Err(self.refused_at(
                    at,
                    "not a literal: `+` and `-` only join a real number and an imaginary one",
                ));
            }
        };
        let imag = match (&right.0, right.1) {
            (Value::Complex(_, im), Form::Number) => *im,
            _ => {
                return Err(self.refused_at(
                    at,
                    "not a literal: `+` and `-` only join a real number and an imaginary one",
                ));
            }
        };
        // complex(real) +/- complex(0.0, imag), as Python computes it.
        let value = if subtract {
            Value::Complex(real - 0.0, 0.0 - imag)
        } else {
            Value::Complex(real + 0.0, 0.0 + imag)
        };
        Ok((value, Form::Other))
    }

    /// A primary, or `+`/`-` applied to a number.
    fn parse_factor(&mut self) -> R<(Value, Form)> {
        self.skip_trivia()?;
        let negate = match self.peek() {
            Some('+') => false,
            Some('-') => true,
            Some('~') => return Err(self.refused("not a literal: `~`")),
            _ => return self.parse_primary(),
        };
        let at = self.pos;
        self.bump();
        self.skip_trivia()?;
        if matches!(self.peek(), Some('+' | '-' | '~')) {
            return Err(self.refused("not a literal: a sign applied to a signed value"));
        }
        let (v, form) = self.parse_primary()?;
        if form != Form::Number {
            return Err(self.refused_at(
                at,
                "not a literal: `+` or `-` applied to something other than a number",
            ));
        }
        let v = match (negate, v) {
            (false, v) => v,
            (true, Value::Int(i)) => Value::Int(i.neg()),
            (true, Value::Float(x)) => Value::Float(-x),
            (true, Value::Complex(re, im)) => Value::Complex(-re, -im),
            (true, v) => v,
        };
        Ok((v, Form::Signed))
    }

    /// An atom and what follows it: only `set` may be called, with no arguments.
    fn parse_primary(&mut self) -> R<(Value, Form)> {
        let (mut v, mut form) = self.parse_atom()?;
        loop {
            self.skip_trivia()?;
            match self.peek() {
                Some('(') if form == Form::SetName => {
                    self.open()?;
                    self.skip_trivia()?;
                    if self.peek() != Some(')') {
                        return Err(self.refused("not a literal: `set(...)` with arguments"));
                    }
                    self.close(')')?;
                    v = Value::Set(Box::new([]));
                    form = Form::Other;
                }
                Some('(' | '[' | '.') => {
                    return Err(self.refused("not a literal: a call, subscript or attribute"));
                }
                _ => return Ok((v, form)),
            }
        }
    }

    fn open(&mut self) -> R<()> {
        if self.level >= MAX_LEVEL {
            return Err(self.refused("too many nested parentheses (CPython allows 200)"));
        }
        if self.level >= self.options.max_depth {
            let depth = u64::try_from(self.options.max_depth).unwrap_or(u64::MAX);
            return Err(self.undecided(
                self.pos,
                format!("brackets nested more than {depth} deep"),
                Some(("depth", depth)),
            ));
        }
        self.level += 1;
        self.bump();
        Ok(())
    }

    fn close(&mut self, bracket: char) -> R<()> {
        self.skip_trivia()?;
        if self.peek() != Some(bracket) {
            return Err(match self.peek() {
                None => self.refused(format!("the text ends before the closing {bracket:?}")),
                Some(c) => self.refused(format!("expected {bracket:?}, found {c:?}")),
            });
        }
        self.level -= 1;
        self.bump();
        Ok(())
    }

    fn parse_atom(&mut self) -> R<(Value, Form)> {
        self.skip_trivia()?;
        self.values += 1;
        let (max, name, limit) = self.options.max_values;
        if self.values > max {
            return Err(self.undecided(
                self.pos,
                format!("more than {max} values (one per 64 bytes of the limit)"),
                Some((name, limit)),
            ));
        }
        let Some(c) = self.peek() else {
            return Err(self.refused("the text ends where a value should be"));
        };
        match c {
            '(' | '[' | '{' => stacker::maybe_grow(64 << 10, 1 << 20, || self.parse_container(c)),
            '0'..='9' => self.parse_number(),
            '.' => {
                if self
                    .peek_at(self.pos + 1)
                    .is_some_and(|c| c.is_ascii_digit())
                {
                    self.parse_number()
                } else if self.text.byte(self.pos + 1) == Some(b'.')
                    && self.text.byte(self.pos + 2) == Some(b'.')
                {
                    self.pos += 3;
                    Ok((Value::Ellipsis, Form::Constant))
                } else {
                    Err(self.refused("unexpected '.'"))
                }
            }
            '\'' | '"' => self.parse_strings(),
            c if c == '_' || c.is_ascii_alphabetic() || !c.is_ascii() => self.parse_name(),
            c => Err(self.refused(format!("not a literal: unexpected {c:?}"))),
        }
    }

    fn parse_container(&mut self, open: char) -> R<(Value, Form)> {
        let close = match open {
            '(' => ')',
            '[' => ']',
            _ => '}',
        };
        self.open()?;
        self.skip_trivia()?;
        if self.peek() == Some(close) {
            self.close(close)?;
            let empty = match open {
                '(' => Value::Tuple(Box::new([])),
                '[' => Value::List(Box::new([])),
                _ => Value::Dict(Box::default()),
            };
            return Ok((empty, Form::Other));
        }
        let first_at = self.pos;
        let first = self.parse_expr()?;
        self.skip_trivia()?;
        if open == '(' && self.peek() == Some(')') {
            // Parentheses around an expression leave it as it is.
            self.close(')')?;
            return Ok(first);
        }
        if open == '{' && self.peek() == Some(':') {
            return self.parse_dict(self.value(first)?, first_at);
        }
        let mut items = vec![self.value(first)?];
        loop {
            self.skip_trivia()?;
            match self.peek() {
                Some(',') => {
                    self.bump();
                    self.skip_trivia()?;
                    if self.peek() == Some(close) {
                        break;
                    }
                    let item = self.parse_expr()?;
                    items.push(self.value(item)?);
                }
                _ => break,
            }
        }
        let at = self.pos;
        self.close(close)?;
        let value = match open {
            '(' => Value::Tuple(items.into_boxed_slice()),
            '[' => Value::List(items.into_boxed_slice()),
            _ => make_set(items).map_err(|_| self.refused_at(at, "unhashable type in a set"))?,
        };
        Ok((value, Form::Other))
    }

    fn parse_dict(&mut self, first_key: Value, first_at: usize) -> R<(Value, Form)> {
        let mut dict = Dict::default();
        let mut key = first_key;
        let mut key_at = first_at;
        loop {
            // At the ':' after `key`.
            self.bump();
            self.skip_trivia()?;
            let value_at = self.pos;
            let value = self.parse_expr()?;
            let value = self.value(value)?;
            dict.insert(key, value, value_at)
                .map_err(|_| self.refused_at(key_at, "unhashable type as a dict key"))?;
            self.skip_trivia()?;
            if self.peek() != Some(',') {
                break;
            }
            self.bump();
            self.skip_trivia()?;
            if self.peek() == Some('}') {
                break;
            }
            key_at = self.pos;
            let k = self.parse_expr()?;
            key = self.value(k)?;
            self.skip_trivia()?;
            if self.peek() != Some(':') {
                return Err(self.refused("expected ':' in a dict"));
            }
        }
        self.close('}')?;
        Ok((Value::Dict(Box::new(dict)), Form::Other))
    }

    /// An identifier: `True`, `False`, `None`, `set`, or a string prefix.
    fn parse_name(&mut self) -> R<(Value, Form)> {
        let start = self.pos;
        let mut word = String::new();
        while let Some(c) = self.peek() {
            if c == '_' || c.is_ascii_alphanumeric() || !c.is_ascii() {
                word.push(c);
                self.bump();
            } else {
                break;
            }
        }
        if matches!(self.peek(), Some('\'' | '"')) && is_string_prefix(&word) {
            self.pos = start;
            return self.parse_strings();
        }
        match word.as_str() {
            "True" => Ok((Value::Bool(true), Form::Constant)),
            "False" => Ok((Value::Bool(false), Form::Constant)),
            "None" => Ok((Value::None, Form::Constant)),
            _ if means_set(&word) => Ok((Value::None, Form::SetName)),
            _ => Err(self.refused_at(start, format!("not a literal: the name {word:?}"))),
        }
    }

    /// One or more adjacent string tokens, concatenated.
    fn parse_strings(&mut self) -> R<(Value, Form)> {
        let start = self.pos;
        let mut text: Vec<u8> = Vec::new();
        let mut bytes: Option<bool> = None;
        let mut fstring = false;
        loop {
            let token_at = self.pos;
            let token = self.lex_string()?;
            if bytes.is_some_and(|b| b != token.bytes) {
                return Err(self.refused_at(token_at, "cannot mix bytes and nonbytes literals"));
            }
            bytes = Some(token.bytes);
            fstring |= token.fstring;
            text.extend_from_slice(&token.value);
            let save = self.pos;
            self.skip_trivia()?;
            if !self.at_string() {
                self.pos = save;
                break;
            }
        }
        if fstring {
            return Err(self.refused_at(start, "not a literal: an f-string"));
        }
        let value = if bytes == Some(true) {
            Value::Bytes(text.into_boxed_slice())
        } else {
            Value::Str(PyStr::from_encoded(text))
        };
        Ok((value, Form::Constant))
    }

    /// Whether a string token starts here.
    fn at_string(&self) -> bool {
        let mut pos = self.pos;
        let mut word = String::new();
        while let Some((c, n)) = self.text.char_at(pos) {
            if c == '\'' || c == '"' {
                return is_string_prefix(&word);
            }
            if word.len() >= 2 || !c.is_ascii_alphabetic() {
                return false;
            }
            word.push(c);
            pos += n;
        }
        false
    }

    /// One string token at `pos`: its prefix, quotes, and decoded value (code points encoded
    /// as in [`PyStr`] for str, raw bytes for bytes).
    fn lex_string(&mut self) -> R<StringToken> {
        let mut prefix = String::new();
        while let Some(c) = self.peek().filter(|c| c.is_ascii_alphabetic()) {
            prefix.push(c.to_ascii_lowercase());
            self.bump();
        }
        let raw = prefix.contains('r');
        let bytes = prefix.contains('b');
        let fstring = prefix.contains('f');
        let open_at = self.pos;
        let Some(quote) = self.peek() else {
            return Err(self.refused("expected a quote"));
        };
        self.bump();
        // '' is an empty string, ''' opens a triple-quoted one (quotes are one byte).
        let q = u8::try_from(u32::from(quote)).unwrap_or(0);
        let triple = self.text.byte(self.pos) == Some(q) && self.text.byte(self.pos + 1) == Some(q);
        if triple {
            self.pos += 2;
        }
        // The body: characters up to the closing quote(s); a backslash takes the next
        // character with it.
        let mut body: Vec<char> = Vec::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(self.refused_at(open_at, "unterminated string literal"));
            };
            if c == quote {
                if !triple {
                    self.bump();
                    break;
                }
                let save = self.pos;
                self.bump();
                if self.peek() == Some(quote) {
                    self.bump();
                    if self.peek() == Some(quote) {
                        self.bump();
                        break;
                    }
                }
                self.pos = save;
            }
            if c == '\n' && !triple {
                return Err(self.refused_at(open_at, "unterminated string literal"));
            }
            self.bump();
            body.push(c);
            if c == '\\' {
                let Some(next) = self.peek() else {
                    return Err(self.refused_at(open_at, "unterminated string literal"));
                };
                self.bump();
                body.push(next);
            }
        }
        if bytes && body.iter().any(|c| !c.is_ascii()) {
            return Err(self.refused_at(open_at, "bytes can only contain ASCII literal characters"));
        }
        let value = if raw {
            if bytes {
                body.iter().map(|&c| ascii_byte(c)).collect()
            } else {
                let mut out = Vec::new();
                for &c in &body {
                    push_code_point(&mut out, u32::from(c));
                }
                out
            }
        } else if bytes {
            self.decode_bytes(&body, open_at)?
        } else {
            self.decode_str(&body, open_at)?
        };
        Ok(StringToken {
            bytes,
            fstring,
            value,
        })
    }

    /// The escapes of a bytes literal (`PyBytes_DecodeEscape`).
    fn decode_bytes(&self, body: &[char], at: usize) -> R<Vec<u8>> {
        let mut out = Vec::with_capacity(body.len());
        let mut i = 0;
        while let Some(&c) = body.get(i) {
            i += 1;
            if c != '\\' {
                out.push(ascii_byte(c));
                continue;
            }
            let Some(&e) = body.get(i) else { break };
            i += 1;
            match e {
                '\n' => {}
                '\\' | '\'' | '"' => out.push(ascii_byte(e)),
                'a' => out.push(7),
                'b' => out.push(8),
                'f' => out.push(12),
                'n' => out.push(10),
                'r' => out.push(13),
                't' => out.push(9),
                'v' => out.push(11),
                '0'..='7' => {
                    let (value, used) = octal(body.get(i - 1..).unwrap_or_default());
                    i += used - 1;
                    out.push(u8::try_from(value & 0xFF).unwrap_or(0));
                }
                'x' => {
                    let value = hex(body.get(i..).unwrap_or_default(), 2).ok_or_else(|| {
                        self.refused_at(at, "invalid \\x escape in a bytes literal")
                    })?;
                    i += 2;
                    out.push(u8::try_from(value).unwrap_or(0));
                }
                _ => {
                    out.push(b'\\');
                    out.push(ascii_byte(e));
                }
            }
        }
        Ok(out)
    }

    /// The escapes of a str literal (the `unicode_escape` codec), as code points encoded in
    /// [`PyStr`]'s form.
    fn decode_str(&self, body: &[char], at: usize) -> R<Vec<u8>> {
        let mut out = Vec::with_capacity(body.len());
        let mut i = 0;
        let bad = |what: &str| self.refused_at(at, format!("(unicode error) {what}"));
        while let Some(&c) = body.get(i) {
            i += 1;
            if c != '\\' {
                push_code_point(&mut out, u32::from(c));
                continue;
            }
            let Some(&e) = body.get(i) else { break };
            i += 1;
            let point = match e {
                '\n' => continue,
                '\\' | '\'' | '"' => u32::from(e),
                'a' => 7,
                'b' => 8,
                'f' => 12,
                'n' => 10,
                'r' => 13,
                't' => 9,
                'v' => 11,
                '0'..='7' => {
                    let (value, used) = octal(body.get(i - 1..).unwrap_or_default());
                    i += used - 1;
                    value
                }
                'x' | 'u' | 'U' => {
                    let digits = match e {
                        'x' => 2,
                        'u' => 4,
                        _ => 8,
                    };
                    let value = hex(body.get(i..).unwrap_or_default(), digits)
                        .ok_or_else(|| bad(&format!("truncated \\{e} escape")))?;
                    i += digits;
                    if value > 0x10FFFF {
                        return Err(bad("illegal Unicode character"));
                    }
                    value
                }
                'N' => {
                    let rest = body.get(i..).unwrap_or_default();
                    if rest.first() != Some(&'{') {
                        return Err(bad("malformed \\N character escape"));
                    }
                    let Some(close) = rest.iter().position(|&c| c == '}') else {
                        return Err(bad("malformed \\N character escape"));
                    };
                    let name: String = rest.get(1..close).unwrap_or_default().iter().collect();
                    i += close + 1;
                    if name.is_empty() {
                        return Err(bad("malformed \\N character escape"));
                    }
                    match lookup_name(&name) {
                        Some(p) => p,
                        None if name
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '-') =>
                        {
                            return Err(self.undecided(
                                at,
                                format!(
                                    "the character name \\N{{{name}}} is not in ckpt's table \
                                     (Latin letters, digits, punctuation and control names); \
                                     Python may or may not know it"
                                ),
                                None,
                            ));
                        }
                        None => return Err(bad("unknown Unicode character name")),
                    }
                }
                _ => {
                    // An unknown escape stays as it is (a DeprecationWarning in 3.11).
                    push_code_point(&mut out, u32::from('\\'));
                    u32::from(e)
                }
            };
            push_code_point(&mut out, point);
        }
        Ok(out)
    }

    /// A number token, and in `_filter_header` mode the `L` names after it.
    fn parse_number(&mut self) -> R<(Value, Form)> {
        let start = self.pos;
        let b = |p: usize| self.text.byte(p);
        let digit = |p: usize| b(p).is_some_and(|c| c.is_ascii_digit());
        let mut p = start;
        let value = if b(p) == Some(b'0')
            && matches!(b(p + 1), Some(b'x' | b'X' | b'o' | b'O' | b'b' | b'B'))
        {
            let radix: u32 = match b(p + 1) {
                Some(b'x' | b'X') => 16,
                Some(b'o' | b'O') => 8,
                _ => 2,
            };
            let is = |p: usize| b(p).is_some_and(|c| char::from(c).is_digit(radix));
            p += 2;
            let mut digits = Vec::new();
            loop {
                if b(p) == Some(b'_') {
                    p += 1;
                }
                if !is(p) {
                    return Err(self.refused_at(p, "invalid integer literal"));
                }
                while is(p) {
                    digits.extend(b(p));
                    p += 1;
                }
                if b(p) != Some(b'_') {
                    break;
                }
            }
            let bytes = (digits.len() * radix.trailing_zeros() as usize).div_ceil(8);
            if bytes > self.options.max_int_bytes {
                return Err(self.int_too_big(start, bytes));
            }
            Value::Int(Int::from_digits(&digits, radix))
        } else {
            let mut digits: Vec<u8> = Vec::new(); // of the whole literal, without '_'
            let mut float = false;
            if digit(p) {
                p = self.decimal_tail(p, &mut digits)?;
            }
            let int_digits = digits.len();
            if b(p) == Some(b'.') {
                float = true;
                digits.push(b'.');
                p += 1;
                if digit(p) {
                    p = self.decimal_tail(p, &mut digits)?;
                }
            }
            if matches!(b(p), Some(b'e' | b'E')) {
                let mut q = p + 1;
                let mut exponent = vec![b'e'];
                if let Some(sign @ (b'+' | b'-')) = b(q) {
                    exponent.push(sign);
                    q += 1;
                }
                if !digit(q) {
                    return Err(self.refused_at(p, "invalid decimal literal"));
                }
                p = self.decimal_tail(q, &mut exponent)?;
                digits.extend(exponent);
                float = true;
            }
            let imaginary = matches!(b(p), Some(b'j' | b'J'));
            if imaginary {
                p += 1;
            }
            let text = String::from_utf8_lossy(&digits);
            if imaginary {
                Value::Complex(0.0, text.parse::<f64>().unwrap_or(f64::NAN))
            } else if float {
                Value::Float(text.parse::<f64>().unwrap_or(f64::NAN))
            } else {
                let all = digits.get(..int_digits).unwrap_or_default();
                let significant = all
                    .iter()
                    .position(|&d| d != b'0')
                    .map_or(&[][..], |i| all.get(i..).unwrap_or_default());
                if !significant.is_empty() && all.first() == Some(&b'0') {
                    return Err(self.refused_at(
                        start,
                        "leading zeros in decimal integer literals are not permitted",
                    ));
                }
                self.decimal_int(significant, start)?
            }
        };
        // The end of a number: no identifier character may follow (`1L`, `1if`).
        self.pos = p;
        if self
            .text
            .byte(p)
            .is_some_and(|c| c == b'_' || c.is_ascii_alphanumeric() || !c.is_ascii())
        {
            return Err(self.refused_at(start, "invalid number literal (a letter follows it)"));
        }
        Ok((value, Form::Number))
    }

    /// Digits (with single `_` between them) from `p`, appended to `out` without the `_`.
    fn decimal_tail(&self, mut p: usize, out: &mut Vec<u8>) -> R<usize> {
        loop {
            while let Some(c) = self.text.byte(p).filter(u8::is_ascii_digit) {
                out.push(c);
                p += 1;
            }
            if self.text.byte(p) != Some(b'_') {
                return Ok(p);
            }
            p += 1;
            if !self.text.byte(p).is_some_and(|c| c.is_ascii_digit()) {
                return Err(self.refused_at(p, "invalid decimal literal"));
            }
        }
    }

    fn decimal_int(&mut self, significant: &[u8], at: usize) -> R<Value> {
        if significant.len() > MAX_STR_DIGITS {
            return Err(self.refused_at(
                at,
                format!(
                    "Exceeds the limit ({MAX_STR_DIGITS} digits) for integer string conversion"
                ),
            ));
        }
        if significant.len() > 18 {
            // ~0.4153 bytes per decimal digit.
            let bytes = (significant.len() * 4153).div_ceil(10000);
            if bytes > self.options.max_int_bytes {
                return Err(self.int_too_big(at, bytes));
            }
            self.big_digits += significant.len();
            let budget = self.options.max_int_bytes.saturating_mul(256);
            if self.big_digits > budget {
                return Err(self.undecided(
                    at,
                    format!("more than {budget} digits of integers beyond 64 bits in one header"),
                    Some((
                        "int-len",
                        u64::try_from(self.options.max_int_bytes).unwrap_or(u64::MAX),
                    )),
                ));
            }
        }
        Ok(Value::Int(Int::from_digits(significant, 10)))
    }

    fn int_too_big(&self, at: usize, bytes: usize) -> Fail {
        let limit = u64::try_from(self.options.max_int_bytes).unwrap_or(u64::MAX);
        self.undecided(
            at,
            format!("an integer of about {bytes} bytes"),
            Some(("int-len", limit)),
        )
    }
}

struct StringToken {
    bytes: bool,
    fstring: bool,
    value: Vec<u8>,
}

fn ascii_byte(c: char) -> u8 {
    u8::try_from(u32::from(c)).unwrap_or(b'?')
}

/// Up to three octal digits at the start of `chars`: their value and how many.
fn octal(chars: &[char]) -> (u32, usize) {
    let mut value = 0;
    let mut used = 0;
    for c in chars.iter().take(3) {
        match c.to_digit(8) {
            Some(d) => {
                value = value * 8 + d;
                used += 1;
            }
            None => break,
        }
    }
    (value, used)
}

/// Exactly `n` hex digits at the start of `chars`.
fn hex(chars: &[char], n: usize) -> Option<u32> {
    let digits = chars.get(..n)?;
    digits
        .iter()
        .try_fold(0u32, |acc, c| Some(acc * 16 + c.to_digit(16)?))
}

/// Whether `word` may prefix a string literal (CPython 3.11: `b r u f br rb fr rf`, any case).
fn is_string_prefix(word: &str) -> bool {
    matches!(
        word.to_ascii_lowercase().as_str(),
        "" | "b" | "r" | "u" | "f" | "br" | "rb" | "fr" | "rf"
    )
}

/// Whether an identifier is `set` once Python has NFKC-normalised it.
fn means_set(word: &str) -> bool {
    let mut letters = String::new();
    for (i, c) in word.chars().enumerate() {
        if c.is_ascii() {
            letters.push(c);
            continue;
        }
        match NAME_LETTERS.iter().find(|(from, _, _)| *from == c) {
            Some(&(_, to, start)) if start || i > 0 => letters.push(to),
            _ => return false,
        }
    }
    letters == "set"
}

/// The code point CPython's `\N{name}` gives, if ckpt's table knows the name.
fn lookup_name(name: &str) -> Option<u32> {
    if let Some(hex) = name.strip_prefix("CJK UNIFIED IDEOGRAPH-") {
        // Algorithmic names, matched case-sensitively as CPython does.
        if !(hex.len() == 4 || hex.len() == 5)
            || !hex
                .chars()
                .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
        {
            return None;
        }
        let v = u32::from_str_radix(hex, 16).ok()?;
        let unified = [
            (0x3400, 0x4DBF),
            (0x4E00, 0x9FFF),
            (0x20000, 0x2A6DF),
            (0x2A700, 0x2B738),
            (0x2B740, 0x2B81D),
            (0x2B820, 0x2CEA1),
            (0x2CEB0, 0x2EBE0),
            (0x30000, 0x3134A),
        ];
        return unified
            .iter()
            .any(|&(lo, hi)| (lo..=hi).contains(&v))
            .then_some(v);
    }
    let upper = name.to_ascii_uppercase();
    UNICODE_NAMES
        .binary_search_by(|(n, _)| (*n).cmp(upper.as_str()))
        .ok()
        .and_then(|i| UNICODE_NAMES.get(i))
        .map(|&(_, p)| p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> Options {
        Options {
            max_depth: 256,
            max_int_bytes: 4096,
            max_values: (1 << 20, "header-len", 1 << 26),
        }
    }

    fn eval(text: &str) -> Result<Value, Fail> {
        literal_eval(Text::Utf8(text), &options())
    }

    fn show(text: &str) -> String {
        match eval(text) {
            Ok(v) => v.describe(),
            Err(Fail::Refused { .. }) => "refused".into(),
            Err(Fail::Undecided { .. }) => "undecided".into(),
            Err(Fail::Crash { .. }) => "crash".into(),
        }
    }

    fn string(text: &str) -> String {
        match eval(text) {
            Ok(Value::Str(s)) => s.lossy(),
            Ok(Value::Bytes(b)) => format!("b{}", String::from_utf8_lossy(&b)),
            other => panic!("{text:?}: {other:?}"),
        }
    }

    #[test]
    fn layout_that_cpython_accepts_and_refuses() {
        for ok in [
            "1",
            " \t1",
            "\x0c1",
            "1 # c",
            "# c\n1",
            "\n1",
            "1\n",
            "1\n  \n",
            "1\n  # c",
            "1\n \x0c",
            "1\\\n ",
            "\\\n1",
            "(1,\n 2)",
            "1\r",
            "(1,\r\n2)",
            "( # c\n 1)",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }          \n",
        ] {
            assert!(eval(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "",
            "   ",
            "\n 1",
            "\x0c 1",
            "1\n  ",
            "1\n\t",
            "1\n\x0c ",
            "1\n2",
            "1 +\n 2j",
            "1 \\\n",
            "1; 2",
            "(1\r2)",
            "\u{feff}1",
            "1\x00",
            "1\x0b",
            "1\u{a0}",
            "(1",
            "1)",
            "[1)",
            "(,)",
            "[,]",
            "{,}",
            "{1:}",
            "{:1}",
            "1 2",
        ] {
            assert!(
                matches!(eval(bad), Err(Fail::Refused { .. })),
                "{bad:?}: {:?}",
                eval(bad)
            );
        }
    }

    #[test]
    fn containers() {
        assert_eq!(show("()"), "()");
        assert_eq!(show("(1,)"), "(1,)");
        assert_eq!(show("((1))"), "1");
        assert_eq!(show("1,"), "(1,)");
        assert_eq!(show("1, 2,"), "(1, 2)");
        assert_eq!(show("[1, [2, (3,)],]"), "[1, [2, (3,)]]");
        assert_eq!(show("{}"), "{}");
        assert_eq!(show("{1: 'a', True: 'b', 1.0: 'c'}"), "{1: 'c'}");
        assert_eq!(show("{1, 1.0, True, 2}"), "{1, 2}");
        assert_eq!(show("set()"), "{}");
        assert_eq!(show("set ( )"), "{}");
        assert_eq!(show("(set)()"), "{}");
        assert_eq!(show("ｓｅｔ()"), "{}");
        assert_eq!(show("ſet()"), "{}");
        for bad in [
            "set",
            "set(())",
            "set()()",
            "[1][0]",
            "{**{}}",
            "[*()]",
            "{[]: 1}",
            "{(1, []): 1}",
            "{1, []}",
            "x",
            "Ｔｒｕｅ",
            "__debug__",
            "(yield)",
            "1 if 1 else 2",
            "lambda: 1",
            "not 1",
            "~1",
            "1 < 2",
            "(1 for x in y)",
            "(x := 1)",
            "print(1)",
            "'a'.upper()",
        ] {
            assert_eq!(show(bad), "refused", "{bad:?}");
        }
        // A value error keeps its kind even deep inside.
        assert_eq!(show("{'a': [1, {2: set}]}"), "refused");
    }

    #[test]
    fn nesting_is_bounded_as_cpython_bounds_it() {
        let deep = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
        assert!(eval(&deep(200)).is_ok());
        assert!(matches!(eval(&deep(201)), Err(Fail::Refused { .. })));
        let shallow = Options {
            max_depth: 10,
            ..options()
        };
        assert!(literal_eval(Text::Utf8(&deep(10)), &shallow).is_ok());
        assert!(matches!(
            literal_eval(Text::Utf8(&deep(11)), &shallow),
            Err(Fail::Undecided {
                limit: Some(("depth", 10)),
                ..
            })
        ));
        // Long sign chains do not recurse: they are refused at the second sign.
        assert_eq!(show(&format!("{}1", "-".repeat(100_000))), "refused");
    }

    #[test]
    fn numbers() {
        for (text, shown) in [
            ("0", "0"),
            ("00", "0"),
            ("0_0", "0"),
            ("1_000", "1000"),
            ("0x_1f", "31"),
            ("0XFF", "255"),
            ("0o17", "15"),
            ("0b_1", "1"),
            ("-1", "-1"),
            ("+1", "1"),
            ("- 1", "-1"),
            ("-(1)", "-1"),
            ("(-\n1)", "-1"),
            ("1.", "1.0"),
            (".5", "0.5"),
            ("1e+5", "100000.0"),
            ("1_0.0_1e1_0", "100100000000.0"),
            ("09.5", "9.5"),
            ("00.0", "0.0"),
            ("0e0", "0.0"),
            ("1e999", "inf"),
            ("1J", "(0.0+1.0j)"),
            ("0777j", "(0.0+777.0j)"),
            ("1+2j", "(1.0+2.0j)"),
            ("-1-2j", "(-1.0+-2.0j)"),
            ("(-1)+2j", "(-1.0+2.0j)"),
            ("-1e999j", "(-0.0+-infj)"),
        ] {
            assert_eq!(show(text), shown, "{text:?}");
        }
        for bad in [
            "007",
            "09",
            "1__0",
            "1_",
            "0_",
            "0x",
            "0x_",
            "0b102",
            "0o8",
            "1e",
            "1e+",
            "1L",
            "1 L",
            "0xffL",
            "1j L",
            "--1",
            "-+1",
            "-True",
            "-'a'",
            "-(1,)",
            "1+2",
            "1j+1j",
            "1+-2j",
            "(1+2j)+3j",
            "1+2j+3j",
            "1+2j*1",
            "-1**2",
            "-(1+2j)",
            "True+1j",
            "1 j",
            "1if 1else 2",
            "1..5",
            "..",
            ". . .",
        ] {
            assert_eq!(show(bad), "refused", "{bad:?}");
        }
        assert_eq!(show("..."), "Ellipsis");
        // Python's limit on decimal digits, and ckpt's budget beyond it for other bases.
        assert!(eval(&"1".repeat(4300)).is_ok());
        assert_eq!(show(&"1".repeat(4301)), "refused");
        assert!(eval(&format!("{}1", "1_".repeat(4299))).is_ok());
        assert!(eval(&"0".repeat(5000)).is_ok());
        assert!(eval(&format!("0x{}", "f".repeat(8192))).is_ok());
        assert!(matches!(
            eval(&format!("0x{}", "f".repeat(8194))),
            Err(Fail::Undecided {
                limit: Some(("int-len", 4096)),
                ..
            })
        ));
        // A huge int cannot join a complex number: Python cannot make it a float.
        assert_eq!(show(&format!("0x1{} + 1j", "0".repeat(256))), "refused");
    }

    #[test]
    fn strings() {
        for (text, value) in [
            ("'O'", "O"),
            ("\"O\"", "O"),
            ("u'O'", "O"),
            ("U'O'", "O"),
            ("'\\x4f'", "O"),
            ("'\\117'", "O"),
            ("'\\u004f'", "O"),
            ("'\\U0000004f'", "O"),
            ("'\\N{LATIN CAPITAL LETTER O}'", "O"),
            ("'\\N{latin capital letter o}'", "O"),
            ("'\\N{LF}'", "\n"),
            ("'\\N{NUL}'", "\0"),
            ("'\\N{CJK UNIFIED IDEOGRAPH-4E00}'", "一"),
            ("'|' 'O'", "|O"),
            ("('|'\n 'O')", "|O"),
            ("'a' \\\n 'b'", "ab"),
            ("'a' u'b'", "ab"),
            ("'''a\rb'''", "a\nb"),
            ("'''a\r\nb'''", "a\nb"),
            ("'\\\r\nx'", "x"),
            ("'\\\nx'", "x"),
            ("'''a'''''", "a"),
            ("''''a'''", "'a"),
            ("'\\d'", "\\d"),
            ("'\\8'", "\\8"),
            ("'\\0'", "\0"),
            ("'\\08'", "\08"),
            ("'\\777'", "\u{1ff}"),
            ("'\\1234'", "S4"),
            ("r'\\x4f'", "\\x4f"),
            ("R'\\''", "\\'"),
            ("r'\\\\'", "\\\\"),
            ("'é'", "é"),
            ("'\\é'", "\\é"),
            ("'a\\\n'", "a"),
            ("\"'\"", "'"),
        ] {
            assert_eq!(string(text), value, "{text:?}");
        }
        for (text, value) in [
            ("b'O'", "bO"),
            ("B'\\x4f'", "bO"),
            ("rb'\\x'", "b\\x"),
            ("Rb'x'", "bx"),
            ("bR'x'", "bx"),
            ("br'\\x'", "b\\x"),
            ("b'\\777'", "b\u{fffd}"),
            ("b'\\N{X}'", "b\\N{X}"),
            ("b'\\u0041'", "b\\u0041"),
            ("b'a' B'b'", "bab"),
        ] {
            assert_eq!(string(text), value, "{text:?}");
        }
        for bad in [
            "'a",
            "'a\nb'",
            "'a\rb'",
            "'\\'",
            "'''a''''",
            "\"\"\"a\"\"\"\"",
            "'\\x4'",
            "'\\x4g'",
            "'\\U00110000'",
            "'\\N'",
            "'\\N{}'",
            "'\\N{LATIN CAPITAL LETTER O'",
            "'\\N{LATIN_CAPITAL_LETTER_O}'",
            "b'é'",
            "b'\\x4'",
            "'a' b'b'",
            "f'x'",
            "F'a'",
            "rf'a'",
            "'a' f'b'",
            "ur'O'",
            "x'a'",
            "rb'\\'",
        ] {
            assert_eq!(show(bad), "refused", "{bad:?}");
        }
        // Names outside ckpt's table: undecided, not refused.
        for unknown in [
            "'\\N{SNOWMAN}'",
            "'\\N{HANGUL SYLLABLE GA}'",
            "'\\N{NO SUCH NAME}'",
        ] {
            assert!(
                matches!(eval(unknown), Err(Fail::Undecided { .. })),
                "{unknown:?}"
            );
        }
        // Lone surrogates are valid Python strings.
        let Ok(Value::Str(s)) = eval("'\\ud800'") else {
            panic!()
        };
        assert_eq!(s.code_points().collect::<Vec<_>>(), [0xD800]);
    }

    #[test]
    fn latin1_text_is_read_byte_by_byte() {
        let text = b"'\xe9' # \xff\n";
        let v = literal_eval(Text::Latin1(text), &options()).unwrap();
        assert!(matches!(v, Value::Str(ref s) if s.as_str() == Some("é")));
        assert!(literal_eval(Text::Latin1(b"\xe9"), &options()).is_err());
    }

    #[test]
    fn dict_values_remember_where_they_start() {
        let Value::Dict(d) = eval("{'a': 1, 'b':  [2]}").unwrap() else {
            panic!()
        };
        assert_eq!(d.get_str("b").unwrap().offset, 15);
    }
}
