//! numpy's `_filter_header`, which it applies to a format 1.0 or 2.0 header when
//! `ast.literal_eval` raised `SyntaxError`, before trying again:
//!
//! ```python
//! tokens = []
//! last_token_was_number = False
//! for token in tokenize.generate_tokens(StringIO(s).readline):
//!     if last_token_was_number and token.type == NAME and token.string == "L":
//!         continue
//!     tokens.append(token)
//!     last_token_was_number = (token.type == NUMBER)
//! return tokenize.untokenize(tokens)
//! ```
//!
//! Meant to drop Python 2's `L` suffixes (`(3L, 4L)`), it also rewrites the text:
//! `untokenize` puts spaces where the whitespace between tokens was, so a first line indented
//! with a form feed (`"\x0c {..."`, an `IndentationError`) comes back as spaces, which
//! `literal_eval` strips; and `tokenize` stops at a last line of only spaces, which CPython's
//! parser refuses. This module is CPython 3.11's pure-Python tokenizer (its regular
//! expressions, line by line as `StringIO.readline` splits them: at `\n` only) and
//! `Untokenizer.untokenize`, for the text they give back.
//!
//! Where Python's tokenizer raises (`TokenError` at the end of an unclosed bracket, string or
//! line continuation, `IndentationError` for an inconsistent dedent), so does numpy: `None`.

use super::tables::{LATIN1_WORD, PY_SPACE};

/// The text numpy parses after `_filter_header(text)`, or `None` where it raises; `text` is
/// latin-1 (one byte, one character), as headers of format 1.0 and 2.0 are.
pub(crate) fn filter_header(text: &[u8]) -> Option<Vec<u8>> {
    let mut t = Tokenizer::default();
    t.run(text)?;
    (!t.failed).then_some(t.out)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Number,
    Name,
    String,
    Comment,
    Newline,
    Nl,
    Indent,
    Dedent,
    Other,
}

/// A string token that continues on the next lines.
struct Continued {
    start: (usize, usize),
    text: Vec<u8>,
    quote: u8,
    triple: bool,
}

#[derive(Default)]
struct Tokenizer {
    out: Vec<u8>,
    // _filter_header
    last_was_number: bool,
    // Untokenizer
    prev: (usize, usize),
    startline: bool,
    indent_texts: Vec<Vec<u8>>,
    /// `add_whitespace` raised ValueError (a token starting before the previous one ended).
    failed: bool,
}

/// Python's `\w` on a latin-1 character.
fn is_word(c: u8) -> bool {
    c == b'_' || c.is_ascii_alphanumeric() || LATIN1_WORD.contains(&c)
}

impl Tokenizer {
    fn emit(&mut self, kind: Kind, text: &[u8], start: (usize, usize), end: (usize, usize)) {
        // _filter_header
        if self.last_was_number && kind == Kind::Name && text == b"L" {
            return;
        }
        self.last_was_number = kind == Kind::Number;
        // Untokenizer.untokenize
        match kind {
            Kind::Indent => {
                self.indent_texts.push(text.to_vec());
                return;
            }
            Kind::Dedent => {
                self.indent_texts.pop();
                self.prev = end;
                return;
            }
            Kind::Newline | Kind::Nl => self.startline = true,
            _ if self.startline => {
                if let Some(indent) = self.indent_texts.last() {
                    if start.1 >= indent.len() {
                        self.out.extend_from_slice(indent);
                        self.prev.1 = indent.len();
                    }
                    self.startline = false;
                }
            }
            _ => {}
        }
        // add_whitespace
        let (row, col) = start;
        if row < self.prev.0 || (row == self.prev.0 && col < self.prev.1) {
            self.failed = true;
            return;
        }
        if row > self.prev.0 {
            for _ in self.prev.0..row {
                self.out.extend_from_slice(b"\\\n");
            }
            self.prev.1 = 0;
        }
        if row >= self.prev.0 && col > self.prev.1 {
            self.out.resize(self.out.len() + (col - self.prev.1), b' ');
        }
        self.out.extend_from_slice(text);
        self.prev = end;
        if matches!(kind, Kind::Newline | Kind::Nl) {
            self.prev = (self.prev.0 + 1, 0);
        }
    }

    /// The NEWLINE tokenize adds when the text does not end with one (its spaces are all
    /// `untokenize` writes of it).
    fn implicit_newline(&mut self, last_line: &[u8], row: usize) {
        let is_space = |c: &u8| PY_SPACE.contains(&char::from(*c));
        let stripped = last_line.iter().position(|c| !is_space(c));
        let comment = stripped.is_some_and(|i| last_line.get(i) == Some(&b'#'));
        if !last_line.is_empty() && !matches!(last_line.last(), Some(b'\r' | b'\n')) && !comment {
            self.emit(
                Kind::Newline,
                b"",
                (row, last_line.len()),
                (row, last_line.len() + 1),
            );
        }
    }

    fn run(&mut self, text: &[u8]) -> Option<()> {
        self.prev = (1, 0);
        let mut lines = text.split_inclusive(|&c| c == b'\n');
        let mut lnum = 0;
        let mut parenlev: i64 = 0;
        let mut continued = false;
        let mut contstr: Option<Continued> = None;
        // Python's `needcont`: set by a one-quote string continued with a backslash, cleared
        // only when a continued string ends, so it also applies to a later triple-quoted one.
        let mut needcont = false;
        let mut indents: Vec<usize> = vec![0];
        let mut line: &[u8] = &[];
        loop {
            let last_line = line;
            line = lines.next().unwrap_or_default();
            lnum += 1;
            let max = line.len();
            let mut pos = 0;
            if let Some(mut c) = contstr.take() {
                if line.is_empty() {
                    return None; // TokenError: EOF in multi-line string
                }
                let end = if c.triple {
                    end_triple(line, 0, c.quote)
                } else {
                    end_single(line, c.quote)
                };
                if let Some(end) = end {
                    c.text
                        .extend_from_slice(line.get(..end).unwrap_or_default());
                    self.emit(Kind::String, &c.text, c.start, (lnum, end));
                    pos = end;
                    needcont = false;
                } else if needcont && !line.ends_with(b"\\\n") && !line.ends_with(b"\\\r\n") {
                    c.text.extend_from_slice(line);
                    self.emit(Kind::Other, &c.text, c.start, (lnum, max));
                    continue;
                } else {
                    c.text.extend_from_slice(line);
                    contstr = Some(c);
                    continue;
                }
            } else if parenlev == 0 && !continued {
                if line.is_empty() {
                    self.implicit_newline(last_line, lnum - 1);
                    return Some(());
                }
                let mut column = 0;
                while let Some(&c) = line.get(pos) {
                    match c {
                        b' ' => column += 1,
                        b'\t' => column = (column / 8 + 1) * 8,
                        0x0c => column = 0,
                        _ => break,
                    }
                    pos += 1;
                }
                if pos == max {
                    return Some(()); // a last line of only whitespace ends the tokens
                }
                if matches!(line.get(pos), Some(b'#' | b'\r' | b'\n')) {
                    if line.get(pos) == Some(&b'#') {
                        let rest = line.get(pos..).unwrap_or_default();
                        let comment = rest
                            .iter()
                            .rposition(|&c| c != b'\r' && c != b'\n')
                            .map_or(&[][..], |e| rest.get(..=e).unwrap_or_default());
                        let end = pos + comment.len();
                        self.emit(Kind::Comment, comment, (lnum, pos), (lnum, end));
                        pos = end;
                    }
                    let rest = line.get(pos..).unwrap_or_default();
                    self.emit(Kind::Nl, rest, (lnum, pos), (lnum, max));
                    continue;
                }
                if column > indents.last().copied().unwrap_or(0) {
                    indents.push(column);
                    let indent = line.get(..pos).unwrap_or_default();
                    self.emit(Kind::Indent, indent, (lnum, 0), (lnum, pos));
                }
                while column < indents.last().copied().unwrap_or(0) {
                    if !indents.contains(&column) {
                        return None; // IndentationError
                    }
                    indents.pop();
                    self.emit(Kind::Dedent, b"", (lnum, pos), (lnum, pos));
                }
            } else {
                if line.is_empty() {
                    return None; // TokenError: EOF in multi-line statement
                }
                continued = false;
            }
            while pos < max {
                // Whitespace, then one of: continuation, end, comment, triple-quoted string,
                // number, newline or operator, string, name. When none matches, the first
                // character (a space, if there was one) is an error token.
                let unmatched = pos;
                while matches!(line.get(pos), Some(b' ' | b'\t' | 0x0c)) {
                    pos += 1;
                }
                let start = pos;
                let at = |i: usize| line.get(i).copied();
                let Some(c) = at(start) else {
                    break;
                };
                if c == b'\\'
                    && (at(start + 1) == Some(b'\n')
                        || (at(start + 1) == Some(b'\r') && at(start + 2) == Some(b'\n')))
                {
                    continued = true;
                    pos = max;
                    continue;
                }
                if c == b'#' {
                    let end = (start..max)
                        .find(|&i| matches!(at(i), Some(b'\r' | b'\n')))
                        .unwrap_or(max);
                    self.emit(
                        Kind::Comment,
                        line.get(start..end).unwrap_or_default(),
                        (lnum, start),
                        (lnum, end),
                    );
                    pos = end;
                    continue;
                }
                if let Some((quote_at, quote)) = string_start(line, start)
                    && at(quote_at + 1) == Some(quote)
                    && at(quote_at + 2) == Some(quote)
                {
                    if let Some(end) = end_triple(line, quote_at + 3, quote) {
                        let text = line.get(start..end).unwrap_or_default();
                        self.emit(Kind::String, text, (lnum, start), (lnum, end));
                        pos = end;
                        continue;
                    }
                    contstr = Some(Continued {
                        start: (lnum, start),
                        text: line.get(start..).unwrap_or_default().to_vec(),
                        quote,
                        triple: true,
                    });
                    break;
                }
                if let Some(end) = number_end(line, start) {
                    self.emit(
                        Kind::Number,
                        line.get(start..end).unwrap_or_default(),
                        (lnum, start),
                        (lnum, end),
                    );
                    pos = end;
                    continue;
                }
                if c == b'\n' || (c == b'\r' && at(start + 1) == Some(b'\n')) {
                    let end = if c == b'\n' { start + 1 } else { start + 2 };
                    let kind = if parenlev > 0 {
                        Kind::Nl
                    } else {
                        Kind::Newline
                    };
                    self.emit(
                        kind,
                        line.get(start..end).unwrap_or_default(),
                        (lnum, start),
                        (lnum, end),
                    );
                    pos = end;
                    continue;
                }
                if b"!%&()*+,-./:;<=>@[]^{|}~".contains(&c)
                    && !(c == b'!' && at(start + 1) != Some(b'='))
                {
                    match c {
                        b'(' | b'[' | b'{' => parenlev += 1,
                        b')' | b']' | b'}' => parenlev -= 1,
                        _ => {}
                    }
                    self.emit(Kind::Other, &[c], (lnum, start), (lnum, start + 1));
                    pos = start + 1;
                    continue;
                }
                if let Some((quote_at, quote)) = string_start(line, start) {
                    match single_end(line, quote_at + 1, quote) {
                        Some(Single::Closed(end)) => {
                            self.emit(
                                Kind::String,
                                line.get(start..end).unwrap_or_default(),
                                (lnum, start),
                                (lnum, end),
                            );
                            pos = end;
                            continue;
                        }
                        Some(Single::Continues) => {
                            needcont = true;
                            contstr = Some(Continued {
                                start: (lnum, start),
                                text: line.get(start..).unwrap_or_default().to_vec(),
                                quote,
                                triple: false,
                            });
                            break;
                        }
                        None => {}
                    }
                }
                if is_word(c) {
                    let end = (start..max)
                        .find(|&i| !at(i).is_some_and(is_word))
                        .unwrap_or(max);
                    self.emit(
                        Kind::Name,
                        line.get(start..end).unwrap_or_default(),
                        (lnum, start),
                        (lnum, end),
                    );
                    pos = end;
                    continue;
                }
                let c = at(unmatched).unwrap_or(c);
                self.emit(Kind::Other, &[c], (lnum, unmatched), (lnum, unmatched + 1));
                pos = unmatched + 1;
            }
        }
    }
}

/// Where a string's opening quote is, if a (possibly empty) string prefix and a quote start
/// at `start`: `b r u f br rb fr rf` in any case.
fn string_start(line: &[u8], start: usize) -> Option<(usize, u8)> {
    let mut prefix = Vec::new();
    for i in start..start + 3 {
        match line.get(i).copied() {
            Some(q @ (b'\'' | b'"')) => {
                let lower: Vec<u8> = prefix.iter().map(u8::to_ascii_lowercase).collect();
                let valid = matches!(
                    lower.as_slice(),
                    b"" | b"b" | b"r" | b"u" | b"f" | b"br" | b"rb" | b"fr" | b"rf"
                );
                return valid.then_some((i, q));
            }
            Some(c) if c.is_ascii_alphabetic() => prefix.push(c),
            _ => return None,
        }
    }
    None
}

/// The end of a triple-quoted string's rest from `pos` on this line (`Single3`/`Double3`).
fn end_triple(line: &[u8], mut pos: usize, quote: u8) -> Option<usize> {
    loop {
        let c = *line.get(pos)?;
        if c == b'\\' {
            // `\\.`: any character but a newline.
            if matches!(line.get(pos + 1), None | Some(b'\n')) {
                return None;
            }
            pos += 2;
        } else if c == quote
            && line.get(pos + 1) == Some(&quote)
            && line.get(pos + 2) == Some(&quote)
        {
            return Some(pos + 3);
        } else {
            pos += 1;
        }
    }
}

/// The end of a continued one-quote string on a following line (`Single`/`Double`).
fn end_single(line: &[u8], quote: u8) -> Option<usize> {
    let mut pos = 0;
    loop {
        let c = *line.get(pos)?;
        if c == b'\\' {
            if matches!(line.get(pos + 1), None | Some(b'\n')) {
                return None;
            }
            pos += 2;
        } else if c == quote {
            return Some(pos + 1);
        } else {
            pos += 1;
        }
    }
}

enum Single {
    Closed(usize),
    /// Ends with a backslash and a newline: the string goes on on the next line.
    Continues,
}

/// A one-quote string's body from `pos` (`ContStr`).
fn single_end(line: &[u8], mut pos: usize, quote: u8) -> Option<Single> {
    loop {
        let c = *line.get(pos)?;
        match c {
            b'\n' => return None,
            b'\\' => match (line.get(pos + 1), line.get(pos + 2)) {
                (Some(b'\n'), _) | (Some(b'\r'), Some(b'\n')) => return Some(Single::Continues),
                (Some(_), _) => pos += 2,
                (None, _) => return None,
            },
            _ if c == quote => return Some(Single::Closed(pos + 1)),
            _ => pos += 1,
        }
    }
}

/// Python tokenize's `Number` at `start`: the first of `Imagnumber`, `Floatnumber`,
/// `Intnumber` that matches (not the longest).
fn number_end(line: &[u8], start: usize) -> Option<usize> {
    let at = |i: usize| line.get(i).copied();
    let digit = |i: usize| at(i).is_some_and(|c| c.is_ascii_digit());
    // [0-9](?:_?[0-9])*
    let digitpart = |mut i: usize| -> Option<usize> {
        if !digit(i) {
            return None;
        }
        i += 1;
        loop {
            if digit(i) {
                i += 1;
            } else if at(i) == Some(b'_') && digit(i + 1) {
                i += 2;
            } else {
                return Some(i);
            }
        }
    };
    // [eE][-+]?[0-9](?:_?[0-9])*
    let exponent = |i: usize| -> Option<usize> {
        if !matches!(at(i), Some(b'e' | b'E')) {
            return None;
        }
        let j = if matches!(at(i + 1), Some(b'+' | b'-')) {
            i + 2
        } else {
            i + 1
        };
        digitpart(j)
    };
    let pointfloat = |i: usize| -> Option<usize> {
        let end = match digitpart(i) {
            Some(d) if at(d) == Some(b'.') => digitpart(d + 1).unwrap_or(d + 1),
            Some(_) => return None,
            None if at(i) == Some(b'.') => digitpart(i + 1)?,
            None => return None,
        };
        Some(exponent(end).unwrap_or(end))
    };
    let expfloat = |i: usize| exponent(digitpart(i)?);
    let floatnumber = |i: usize| pointfloat(i).or_else(|| expfloat(i));
    let imag = |end: Option<usize>| {
        end.filter(|&e| matches!(at(e), Some(b'j' | b'J')))
            .map(|e| e + 1)
    };
    // 0[xX](?:_?[0-9a-fA-F])+ and the like
    let prefixed = |i: usize, letters: &[u8], ok: &dyn Fn(u8) -> bool| -> Option<usize> {
        if at(i) != Some(b'0') || !at(i + 1).is_some_and(|c| letters.contains(&c)) {
            return None;
        }
        let mut j = i + 2;
        let start = j;
        loop {
            if at(j) == Some(b'_') && at(j + 1).is_some_and(ok) {
                j += 2;
            } else if at(j).is_some_and(ok) {
                j += 1;
            } else {
                return (j > start).then_some(j);
            }
        }
    };
    let decnumber = |i: usize| -> Option<usize> {
        match at(i) {
            Some(b'0') => {
                let mut j = i + 1;
                loop {
                    if at(j) == Some(b'0') {
                        j += 1;
                    } else if at(j) == Some(b'_') && at(j + 1) == Some(b'0') {
                        j += 2;
                    } else {
                        return Some(j);
                    }
                }
            }
            Some(b'1'..=b'9') => digitpart(i),
            _ => None,
        }
    };
    imag(digitpart(start))
        .or_else(|| imag(floatnumber(start)))
        .or_else(|| floatnumber(start))
        .or_else(|| prefixed(start, b"xX", &|c: u8| c.is_ascii_hexdigit()))
        .or_else(|| prefixed(start, b"bB", &|c: u8| c == b'0' || c == b'1'))
        .or_else(|| prefixed(start, b"oO", &|c: u8| (b'0'..=b'7').contains(&c)))
        .or_else(|| decnumber(start))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filtered(text: &str) -> String {
        String::from_utf8(filter_header(text.as_bytes()).unwrap()).unwrap()
    }

    #[test]
    fn long_suffixes_after_numbers_go() {
        assert_eq!(filtered("(3L, 4L)"), "(3 , 4 )");
        assert_eq!(filtered("(3 L L,)"), "(3    ,)");
        assert_eq!(
            filtered("(0x1fL, 1.L, 1jL, 1e5L, 00L)"),
            "(0x1f , 1. , 1j , 1e5 , 00 )"
        );
        assert_eq!(filtered("(0777L,)"), "(0777 ,)");
        // Not after a number, or not a whole name.
        assert_eq!(
            filtered("(L, 1LL, 1eL, 1_L, 'L')"),
            "(L, 1LL, 1eL, 1_L, 'L')"
        );
        assert_eq!(filtered("(1\nL)"), "(1\nL)");
        assert_eq!(filtered("(1 # c\nL)"), "(1 # c\nL)");
        assert_eq!(filtered("(1 \\\n L)"), "(1\\\n  )");
    }

    #[test]
    fn whitespace_is_rewritten_as_untokenize_does() {
        assert_eq!(filtered("\x0c {'a': 1}"), "  {'a': 1}");
        assert_eq!(filtered("{'a':\t1}\n  "), "{'a': 1}\n");
        assert_eq!(filtered("\n {'a': 1}"), "\n {'a': 1}");
        assert_eq!(filtered("{'a': 1}"), "{'a': 1}");
        assert_eq!(filtered("('a' # c\n 'b')"), "('a' # c\n 'b')");
        assert_eq!(filtered("\r{'a': 3L}\n"), "\r{'a': 3L}\n");
        assert_eq!(filtered("('''a\n''', 2L)"), "('''a\n''', 2 )");
        assert_eq!(filtered("('a\\\nb', 2L)"), "('a\\\nb', 2 )");
        // Python's tokenizer keeps `needcont` from a broken continued string: a later
        // triple-quoted string over lines then ends at its first line without a backslash.
        assert_eq!(
            filtered("(\"a\\\nb\n'''x\ny''')"),
            "(\"a\\\nb\n\\\n'''x\ny''')"
        );
        // Spaces before a character nothing matches stay as they are.
        assert_eq!(filtered("a \t\\x"), "a \t\\x");
        assert_eq!(filtered("{}\r"), "{}\r");
    }

    /// The corpus records what numpy's `_filter_header` made of every 1.0/2.0 header that
    /// `literal_eval` refused.
    #[test]
    fn agrees_with_numpys_filter_header_on_the_corpus() {
        let path = std::env::var_os("CKPT_NPY_CORPUS").map_or_else(
            || {
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../../tests/fixtures/npy/corpus.json")
            },
            std::path::PathBuf::from,
        );
        let corpus: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let unhex = |h: &str| -> Vec<u8> {
            (0..h.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
                .collect()
        };
        let mut checked = 0;
        for case in corpus["cases"].as_array().unwrap() {
            let Some(want) = case.get("filtered") else {
                continue;
            };
            let file = unhex(case["file"].as_str().unwrap());
            let size = if file[6] == 1 { 10 } else { 12 };
            let len = if file[6] == 1 {
                usize::from(u16::from_le_bytes([file[8], file[9]]))
            } else {
                usize::try_from(u32::from_le_bytes([file[8], file[9], file[10], file[11]])).unwrap()
            };
            let header = &file[size..(size + len).min(file.len())];
            let ours = filter_header(header).map(|f| String::from_utf8_lossy(&f).into_owned());
            let numpy = want
                .as_str()
                .map(|w| String::from_utf8_lossy(&unhex(w)).into_owned());
            assert_eq!(ours, numpy, "{}", case["name"]);
            checked += 1;
        }
        assert!(
            checked > 100,
            "only {checked} filtered headers in the corpus"
        );
    }

    #[test]
    fn tokenize_errors_are_errors() {
        for text in [
            "(1,",
            "1 \\\n",
            "'''a",
            "('a\\\n",
            "1)",
            " 1\n   2\n  3",
            "\r{}",
        ] {
            assert_eq!(filter_header(text.as_bytes()), None, "{text:?}");
        }
    }

    #[test]
    fn numbers_are_matched_as_pythons_regex_does() {
        for (text, end) in [
            ("1", 1),
            ("1_000", 5),
            ("0777", 1),
            ("00", 2),
            ("0_0", 3),
            ("1.5e+3j", 7),
            ("1.", 2),
            (".5", 2),
            ("1e", 1),
            ("1ej", 1),
            ("0x_1f", 5),
            ("0b102", 4),
            ("0o8", 1),
            ("1__0", 1),
            ("09.5", 4),
            ("1jL", 2),
        ] {
            assert_eq!(number_end(text.as_bytes(), 0), Some(end), "{text}");
        }
        assert_eq!(number_end(b".", 0), None);
        assert_eq!(number_end(b"x1", 0), None);
    }
}
