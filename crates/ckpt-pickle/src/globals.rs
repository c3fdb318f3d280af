//! Every global a pickle stream names, found by decoding alone ([`static_globals`]).
//!
//! The machine stops at the first opcode CPython would refuse, or at a limit, or where it
//! cannot name a global without running code. A loader that reads on (a different
//! unpickler, a process whose copyreg registry differs, a scanner's threshold) would import
//! what comes after. This pass reads on: it follows the stack and the memo with constants
//! only (strings, numbers, globals, small tuples of those), never refuses an opcode, and
//! stops only where the opcodes themselves stop decoding, or at `STOP`.

use std::collections::HashMap;
use std::sync::Arc;

use crate::decode::{Arg, Decoder, Framing};
use crate::error::ErrorKind;
use crate::extension::{self, Entry, Key, Registry, code_from_float, code_from_text};
use crate::limits::Limits;
use crate::opcode::{Argument, Opcode};

/// A global a pickle names, found by [`static_globals`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticGlobal {
    /// The byte offset of the opcode (from the start of the file, given a base).
    pub offset: u64,
    /// `GLOBAL`, `INST`, `STACK_GLOBAL`, `EXT1`, `EXT2` or `EXT4`.
    pub opcode: Opcode,
    /// What it names.
    pub name: StaticName,
}

impl StaticGlobal {
    /// `(module, name)` as written, when the global is named.
    pub fn module_name(&self) -> Option<(&str, &str)> {
        match &self.name {
            StaticName::Named { module, name } => Some((module, name)),
            _ => None,
        }
    }
}

/// What a [`StaticGlobal`] names.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StaticName {
    /// `module.name`, as written in the pickle (Python 2 names unmapped).
    Named {
        /// The module path.
        module: Arc<str>,
        /// The name in the module (may be dotted).
        name: Arc<str>,
    },
    /// `EXT1/2/4` of a code that no `copyreg.add_extension` call with constant arguments
    /// registered earlier in the stream: the loading process's registry decides.
    Extension(i64),
    /// `STACK_GLOBAL` whose module or name is not a constant string (made by a call, or by
    /// opcodes this pass does not follow): only running code could tell.
    Computed,
}

/// A value on the shadow stack: a constant, or something this pass does not follow.
#[derive(Debug, Clone)]
enum Token {
    Str(Arc<str>),
    Int(i64),
    Float(f64),
    /// Short `bytes` (an `int()` argument for `add_extension`).
    Bytes(Arc<[u8]>),
    Global(Arc<str>, Arc<str>),
    /// A tuple of at most three tokens that are not tuples (so tokens never nest deeply).
    Tuple(Arc<[Token]>),
    /// A list, dict, set or bytearray: unhashable, so never a registry key.
    Unhashable,
    Other,
}

/// Bytes kept as a token: `int(b" 5 ")` is all a pickle could use them for here.
const MAX_BYTES_TOKEN: usize = 64;

struct Pass {
    limits: Limits,
    stack: Vec<Token>,
    marks: Vec<usize>,
    memo: HashMap<u64, Token>,
    registry: Registry,
    /// The protocol of the last `PROTO` (see [`extension::is_add_extension`]).
    protocol: u8,
    found: Vec<StaticGlobal>,
}

impl Pass {
    fn push(&mut self, token: Token) {
        // Past the limit the pass reads on without growing; what it pops is then `Other`.
        if self.stack.len() < self.limits.max_stack {
            self.stack.push(token);
        }
    }

    fn pop(&mut self) -> Token {
        self.stack.pop().unwrap_or(Token::Other)
    }

    fn top(&self) -> Token {
        self.stack.last().cloned().unwrap_or(Token::Other)
    }

    fn pop_mark(&mut self) -> Vec<Token> {
        match self.marks.pop() {
            Some(mark) => self.stack.split_off(mark.min(self.stack.len())),
            None => Vec::new(),
        }
    }

    fn at_fence(&self) -> bool {
        self.marks
            .last()
            .is_some_and(|&mark| mark >= self.stack.len())
    }

    fn tuple(items: Vec<Token>) -> Token {
        if items.len() <= 3 && items.iter().all(|t| !matches!(t, Token::Tuple(_))) {
            Token::Tuple(items.into())
        } else {
            Token::Other
        }
    }

    fn report(&mut self, offset: u64, opcode: Opcode, name: StaticName) {
        if self.found.len() < self.limits.max_objects {
            self.found.push(StaticGlobal {
                offset,
                opcode,
                name,
            });
        }
    }

    fn memo_put(&mut self, index: u64) {
        if self.memo.len() < self.limits.max_memo || self.memo.contains_key(&index) {
            let top = self.top();
            self.memo.insert(index, top);
        }
    }

    /// A call of `callable` with `args`: `copyreg.add_extension` with constant arguments
    /// registers its code, with copyreg's checks (a call CPython refuses registers nothing).
    fn call(&mut self, callable: &Token, args: &[Token]) {
        let Token::Global(module, name) = callable else {
            return;
        };
        if !extension::is_add_extension(module, name, self.protocol) {
            return;
        }
        let [module, name, code] = args else {
            return;
        };
        let code = match code {
            Token::Int(i) => Ok(*i),
            Token::Float(x) => code_from_float(*x),
            Token::Str(text) if text.is_ascii() => {
                code_from_text(text.as_bytes(), self.limits.max_int_digits)
            }
            Token::Bytes(bytes) => code_from_text(bytes, self.limits.max_int_digits),
            _ => return,
        };
        let key = match (module, name) {
            (Token::Str(module), Token::Str(name)) => Key::Named(module.clone(), name.clone()),
            (Token::Unhashable, _) | (_, Token::Unhashable) => return,
            _ => Key::Opaque,
        };
        if let Ok(code) = code {
            // A registration CPython refuses stops CPython; here it just does not count.
            let _ = self.registry.add(key, code);
        }
    }

    fn step(&mut self, offset: u64, opcode: Opcode, arg: Arg<'_>) {
        match opcode {
            Opcode::Proto => {
                if let Arg::Int(version) = arg {
                    self.protocol = u8::try_from(version).unwrap_or(u8::MAX);
                }
            }
            Opcode::Frame | Opcode::Stop | Opcode::ReadonlyBuffer => {}
            Opcode::Mark => {
                if self.marks.len() < self.limits.max_marks {
                    self.marks.push(self.stack.len());
                }
            }
            Opcode::Pop => {
                if self.at_fence() || self.stack.is_empty() {
                    self.pop_mark();
                } else {
                    self.pop();
                }
            }
            Opcode::PopMark => {
                self.pop_mark();
            }
            Opcode::Dup => {
                let top = self.top();
                self.push(top);
            }
            Opcode::None | Opcode::NextBuffer | Opcode::PersId => self.push(Token::Other),
            Opcode::NewTrue => self.push(Token::Int(1)),
            Opcode::NewFalse => self.push(Token::Int(0)),
            Opcode::Int
            | Opcode::BinInt
            | Opcode::BinInt1
            | Opcode::BinInt2
            | Opcode::Long
            | Opcode::Long1
            | Opcode::Long4 => self.push(match arg {
                Arg::Int(i) => Token::Int(i),
                Arg::Bool(b) => Token::Int(i64::from(b)),
                _ => Token::Other,
            }),
            Opcode::Float | Opcode::BinFloat => self.push(match arg {
                Arg::Float(x) => Token::Float(x),
                _ => Token::Other,
            }),
            Opcode::String
            | Opcode::BinString
            | Opcode::ShortBinString
            | Opcode::BinBytes
            | Opcode::ShortBinBytes
            | Opcode::BinBytes8 => {
                let py2 = matches!(
                    opcode,
                    Opcode::String | Opcode::BinString | Opcode::ShortBinString
                );
                self.push(match arg {
                    // A Python 2 string is text when it is UTF-8, as the machine reads it.
                    Arg::Bytes(bytes) => match std::str::from_utf8(&bytes) {
                        Ok(text) if py2 => Token::Str(text.into()),
                        _ if bytes.len() <= MAX_BYTES_TOKEN => Token::Bytes(bytes.as_ref().into()),
                        _ => Token::Other,
                    },
                    _ => Token::Other,
                });
            }
            Opcode::Unicode
            | Opcode::BinUnicode
            | Opcode::ShortBinUnicode
            | Opcode::BinUnicode8 => self.push(match arg {
                Arg::Str(text) => Token::Str(text.as_ref().into()),
                _ => Token::Other,
            }),
            Opcode::ByteArray8 | Opcode::EmptyList | Opcode::EmptyDict | Opcode::EmptySet => {
                self.push(Token::Unhashable);
            }
            Opcode::EmptyTuple => self.push(Token::Tuple(Arc::from([]))),
            Opcode::Tuple => {
                let items = self.pop_mark();
                self.push(Self::tuple(items));
            }
            Opcode::Tuple1 | Opcode::Tuple2 | Opcode::Tuple3 => {
                let n = match opcode {
                    Opcode::Tuple1 => 1,
                    Opcode::Tuple2 => 2,
                    _ => 3,
                };
                let mut items: Vec<Token> = (0..n).map(|_| self.pop()).collect();
                items.reverse();
                self.push(Self::tuple(items));
            }
            Opcode::List | Opcode::Dict => {
                self.pop_mark();
                self.push(Token::Unhashable);
            }
            Opcode::FrozenSet => {
                self.pop_mark();
                self.push(Token::Other);
            }
            Opcode::Append | Opcode::Build => {
                self.pop();
            }
            Opcode::SetItem => {
                self.pop();
                self.pop();
            }
            Opcode::Appends | Opcode::SetItems | Opcode::AddItems => {
                self.pop_mark();
            }
            Opcode::Global => {
                if let Arg::Global { module, name } = arg {
                    let (module, name): (Arc<str>, Arc<str>) = (module.into(), name.into());
                    self.report(
                        offset,
                        opcode,
                        StaticName::Named {
                            module: module.clone(),
                            name: name.clone(),
                        },
                    );
                    self.push(Token::Global(module, name));
                } else {
                    self.push(Token::Other);
                }
            }
            Opcode::Inst => {
                let args = self.pop_mark();
                if let Arg::Global { module, name } = arg {
                    let (module, name): (Arc<str>, Arc<str>) = (module.into(), name.into());
                    self.report(
                        offset,
                        opcode,
                        StaticName::Named {
                            module: module.clone(),
                            name: name.clone(),
                        },
                    );
                    self.call(&Token::Global(module, name), &args);
                }
                self.push(Token::Other);
            }
            Opcode::StackGlobal => {
                let name = self.pop();
                let module = self.pop();
                match (module, name) {
                    (Token::Str(module), Token::Str(name)) => {
                        self.report(
                            offset,
                            opcode,
                            StaticName::Named {
                                module: module.clone(),
                                name: name.clone(),
                            },
                        );
                        self.push(Token::Global(module, name));
                    }
                    _ => {
                        self.report(offset, opcode, StaticName::Computed);
                        self.push(Token::Other);
                    }
                }
            }
            Opcode::Reduce => {
                let args = self.pop();
                let callable = self.pop();
                if let Token::Tuple(items) = &args {
                    self.call(&callable, items);
                }
                self.push(Token::Other);
            }
            Opcode::Obj => {
                let items = self.pop_mark();
                if let Some((class, args)) = items.split_first() {
                    self.call(class, args);
                }
                self.push(Token::Other);
            }
            Opcode::NewObj => {
                self.pop();
                self.pop();
                self.push(Token::Other);
            }
            Opcode::NewObjEx => {
                self.pop();
                self.pop();
                self.pop();
                self.push(Token::Other);
            }
            Opcode::BinPersId => {
                self.pop();
                self.push(Token::Other);
            }
            Opcode::Ext1 | Opcode::Ext2 | Opcode::Ext4 => {
                let code = match arg {
                    Arg::Int(code) => code,
                    _ => 0,
                };
                if code > 0 {
                    match self.registry.get(code) {
                        Some(Entry::Named(module, name)) => {
                            let (module, name) = (module.clone(), name.clone());
                            self.report(
                                offset,
                                opcode,
                                StaticName::Named {
                                    module: module.clone(),
                                    name: name.clone(),
                                },
                            );
                            self.push(Token::Global(module, name));
                            return;
                        }
                        _ => self.report(offset, opcode, StaticName::Extension(code)),
                    }
                }
                self.push(Token::Other);
            }
            Opcode::Put | Opcode::BinPut | Opcode::LongBinPut => {
                if let Arg::Int(index) = arg
                    && let Ok(index) = u64::try_from(index)
                {
                    self.memo_put(index);
                }
            }
            Opcode::Memoize => {
                let index = self.memo.len() as u64;
                self.memo_put(index);
            }
            Opcode::Get | Opcode::BinGet | Opcode::LongBinGet => {
                let token = match arg {
                    Arg::Int(index) => u64::try_from(index)
                        .ok()
                        .and_then(|index| self.memo.get(&index))
                        .cloned(),
                    _ => None,
                };
                self.push(token.unwrap_or(Token::Other));
            }
        }
    }
}

/// Every global the pickle at the start of `data` (byte `base` of its file) names, by
/// decoding alone: `GLOBAL` and `INST` operands; `STACK_GLOBAL` of constant strings, pushed
/// by the opcodes before it or fetched from the memo (`MEMOIZE` numbering slots by the
/// memo's size, as CPython does); `EXT1/2/4` codes resolved through `copyreg.add_extension`
/// calls with constant arguments earlier in the stream. What cannot be named is reported
/// too ([`StaticName::Extension`], [`StaticName::Computed`]). In stream order.
///
/// Unlike [`crate::parse`] it never refuses an opcode: it reads on past the point where the
/// machine stops (a wrong type, a limit of the machine, an unregistered extension code),
/// until the opcodes stop decoding or `STOP`. When an opcode crosses the end of a `FRAME`
/// (see [`crate::Framing`]), the globals of both readings are reported, in offset order. A scanner calls it after a machine error to
/// judge what lies beyond the break. Its memory follows the limits: `max_stack`,
/// `max_marks` and `max_memo` bound what it tracks, `max_objects` what it reports, and each
/// opcode's argument is decoded within the same limits as for the machine.
///
/// ```
/// use ckpt_pickle::{Limits, StaticName, static_globals};
///
/// // os.system through STACK_GLOBAL, after an APPEND onto an int that stops the machine.
/// let data = b"\x80\x04K\x01K\x02a\x8c\x02os\x94\x8c\x06system\x93.";
/// assert!(ckpt_pickle::parse(data, 0, &Limits::default()).is_err());
/// let found = static_globals(data, 0, &Limits::default());
/// assert_eq!(found[0].module_name(), Some(("os", "system")));
/// assert_eq!(found[0].offset, 20);
/// ```
pub fn static_globals(data: &[u8], base: u64, limits: &Limits) -> Vec<StaticGlobal> {
    let (mut found, divergence) = static_pass(data, base, limits, Framing::Contiguous);
    // Where an opcode crosses the end of a frame, loaders reading a stream see other
    // bytes: their globals too.
    if divergence.is_some() {
        let (stream, _) = static_pass(data, base, limits, Framing::Stream);
        for global in stream {
            if !found.contains(&global) && found.len() < limits.max_objects {
                found.push(global);
            }
        }
        found.sort_by_key(|g| g.offset);
    }
    found
}

/// [`static_globals`] of a stream too large to hold in memory (a compressed member that
/// inflates past a limit): the opcodes are read from `reader` one by one, each argument of
/// at most `keep` bytes decoded as [`static_globals`] decodes it, longer ones skipped
/// without being held (their values are unknown to the pass). At most `budget` bytes are
/// read. Offsets count from `base`, as the stream's own. Stops at `STOP`, at the end of the
/// stream or the budget, or where the opcodes stop decoding.
pub fn static_globals_read<R: std::io::Read>(
    reader: R,
    base: u64,
    limits: &Limits,
    keep: usize,
    budget: u64,
) -> Vec<StaticGlobal> {
    let mut pass = Pass {
        limits: limits.clone(),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        registry: Registry::default(),
        protocol: 0,
        found: Vec::new(),
    };
    let mut stream = Stream {
        // Read in blocks: the pass takes a byte at a time, and a decompressor behind a
        // `dyn Read` costs a call per read.
        reader: std::io::BufReader::with_capacity(64 << 10, std::io::Read::take(reader, budget)),
        offset: base,
        ended: false,
    };
    let mut buffer = Vec::new();
    while let Some(opcode) = stream.byte().and_then(Opcode::from_byte) {
        let offset = stream.offset - 1;
        buffer.clear();
        buffer.push(opcode.byte());
        // The argument's bytes: kept (and decoded) when short, skipped when long.
        let kept = match opcode.argument() {
            Argument::None => true,
            Argument::U8 => stream.take(1, &mut buffer),
            Argument::U16 => stream.take(2, &mut buffer),
            Argument::I32 | Argument::U32 => stream.take(4, &mut buffer),
            Argument::U64 | Argument::F64 => stream.take(8, &mut buffer),
            Argument::DecimalLine
            | Argument::LongLine
            | Argument::FloatLine
            | Argument::QuotedLine
            | Argument::TextLine
            | Argument::UnicodeLine => stream.line(keep, &mut buffer),
            Argument::TextLinePair => {
                stream.line(keep, &mut buffer) && stream.line(keep, &mut buffer)
            }
            Argument::Long1 | Argument::String1 | Argument::Bytes1 | Argument::Unicode1 => {
                stream.sized(1, keep, &mut buffer)
            }
            Argument::Long4 | Argument::String4 | Argument::Bytes4 | Argument::Unicode4 => {
                stream.sized(4, keep, &mut buffer)
            }
            Argument::Bytes8 | Argument::Unicode8 => stream.sized(8, keep, &mut buffer),
        };
        if stream.ended {
            break;
        }
        if opcode == Opcode::Frame {
            continue;
        }
        if !kept {
            // A value this pass does not hold.
            pass.push(Token::Other);
            continue;
        }
        let mut decoder = Decoder::new(&buffer, offset, limits.clone());
        match decoder.next_instruction() {
            Some(Ok(instruction)) => {
                pass.step(instruction.offset, instruction.opcode, instruction.arg);
                if instruction.opcode == Opcode::Stop {
                    break;
                }
            }
            // A value one reader refuses and another takes: unknown, the pass goes on.
            Some(Err(error)) if matches!(error.kind(), ErrorKind::BadArgument(_)) => {
                pass.push(Token::Other);
            }
            _ => break,
        }
    }
    pass.found
}

/// The reading of [`static_globals_read`]: where it is, and whether the stream ended.
struct Stream<R> {
    reader: std::io::BufReader<std::io::Take<R>>,
    offset: u64,
    ended: bool,
}

impl<R: std::io::Read> Stream<R> {
    fn byte(&mut self) -> Option<u8> {
        let mut one = [0u8; 1];
        match std::io::Read::read_exact(&mut self.reader, &mut one) {
            Ok(()) => {
                self.offset += 1;
                let [b] = one;
                Some(b)
            }
            Err(_) => {
                self.ended = true;
                None
            }
        }
    }

    /// `n` more bytes into `buffer`.
    fn take(&mut self, n: usize, buffer: &mut Vec<u8>) -> bool {
        for _ in 0..n {
            match self.byte() {
                Some(b) => buffer.push(b),
                None => return false,
            }
        }
        true
    }

    /// A line, newline included, into `buffer` when it is at most `keep` bytes; `false`
    /// (the rest of the line skipped) when it is longer.
    fn line(&mut self, keep: usize, buffer: &mut Vec<u8>) -> bool {
        let start = buffer.len();
        loop {
            let Some(b) = self.byte() else {
                return false;
            };
            if buffer.len() - start < keep {
                buffer.push(b);
            }
            if b == b'\n' {
                return buffer.len() - start <= keep && buffer.last() == Some(&b'\n');
            }
        }
    }

    /// A little-endian length of `width` bytes, then that many bytes: kept when at most
    /// `keep`, skipped otherwise.
    fn sized(&mut self, width: usize, keep: usize, buffer: &mut Vec<u8>) -> bool {
        let start = buffer.len();
        if !self.take(width, buffer) {
            return false;
        }
        let mut raw = [0u8; 8];
        for (slot, b) in raw.iter_mut().zip(buffer.get(start..).unwrap_or_default()) {
            *slot = *b;
        }
        let len = u64::from_le_bytes(raw);
        // A negative 4-byte length (LONG4, BINSTRING) stops CPython: nothing to skip.
        if width == 4 && len & 0x8000_0000 != 0 {
            return true;
        }
        if usize::try_from(len).is_ok_and(|len| len <= keep) {
            return self.take(usize::try_from(len).unwrap_or(0), buffer);
        }
        let skipped = std::io::copy(
            &mut std::io::Read::take(&mut self.reader, len),
            &mut std::io::sink(),
        )
        .unwrap_or(0);
        self.offset += skipped;
        if skipped < len {
            self.ended = true;
        }
        false
    }
}

/// One reading of the stream: what it names, and where the framings part ways.
fn static_pass(
    data: &[u8],
    base: u64,
    limits: &Limits,
    framing: Framing,
) -> (Vec<StaticGlobal>, Option<u64>) {
    let mut pass = Pass {
        limits: limits.clone(),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        registry: Registry::default(),
        protocol: 0,
        found: Vec::new(),
    };
    let mut start = 0usize;
    let mut divergence = None;
    loop {
        let rest = data.get(start..).unwrap_or_default();
        let mut decoder = Decoder::with_framing(rest, base + start as u64, limits.clone(), framing);
        let mut failed = None;
        while let Some(instruction) = decoder.next_instruction() {
            match instruction {
                Ok(instruction) => {
                    pass.step(instruction.offset, instruction.opcode, instruction.arg)
                }
                Err(error) => {
                    failed = Some(error);
                    break;
                }
            }
        }
        divergence = divergence.or(decoder.divergence());
        // A text argument whose value one reader refuses and another takes (a float
        // with underscores, which the C unpickler refuses and Python's `float()` reads): its
        // extent is known, so the pass goes on after its line with an unknown value.
        let Some(error) = failed else { break };
        let line_argument = matches!(
            error.opcode().map(Opcode::argument),
            Some(
                Argument::DecimalLine
                    | Argument::LongLine
                    | Argument::FloatLine
                    | Argument::QuotedLine
                    | Argument::UnicodeLine
            )
        );
        if !line_argument || !matches!(error.kind(), ErrorKind::BadArgument(_)) {
            break;
        }
        let Some(at) = usize::try_from(error.offset().saturating_sub(base)).ok() else {
            break;
        };
        let Some(end) = data
            .get(at..)
            .and_then(|tail| tail.iter().position(|&b| b == b'\n'))
        else {
            break;
        };
        pass.push(Token::Other);
        start = at + end + 1;
    }
    (pass.found, divergence)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(data: &[u8]) -> Vec<(u64, Opcode, StaticName)> {
        static_globals(data, 0, &Limits::default())
            .into_iter()
            .map(|g| (g.offset, g.opcode, g.name))
            .collect()
    }

    fn named(module: &str, name: &str) -> StaticName {
        StaticName::Named {
            module: module.into(),
            name: name.into(),
        }
    }

    #[test]
    fn streams_are_read_past_what_they_cannot_hold() {
        // A 1 MiB BINBYTES8, popped, then os.system: the bytes are skipped, not held.
        let mut data = b"\x80\x04\x8e".to_vec();
        data.extend_from_slice(&(1u64 << 20).to_le_bytes());
        data.extend(std::iter::repeat_n(0u8, 1 << 20));
        data.extend_from_slice(b"0\x8c\x02os\x8c\x06system\x93.");
        let found = static_globals_read(&data[..], 0, &Limits::default(), 64, u64::MAX);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].module_name(), Some(("os", "system")));
        assert_eq!(found[0].offset, data.len() as u64 - 2);
        assert_eq!(found, static_globals(&data, 0, &Limits::default()));
        // Within a budget: nothing past it is read.
        assert!(static_globals_read(&data[..], 0, &Limits::default(), 64, 1 << 19).is_empty());
        // Long lines kept or skipped.
        let text = b"cos\nsystem\n.";
        assert_eq!(
            static_globals_read(&text[..], 0, &Limits::default(), 64, u64::MAX),
            static_globals(text, 0, &Limits::default())
        );
        assert!(static_globals_read(&text[..], 0, &Limits::default(), 3, u64::MAX).is_empty());
    }

    #[test]
    fn a_line_one_reader_refuses_is_read_past() {
        // FLOAT `1_0.5`: the C unpickler refuses it, Python's float() (joblib's unpickler)
        // reads 10.5 and goes on to the payload.
        assert_eq!(
            names(b"\x80\x04F1_0.5\n0\x8c\x02os\x8c\x06system\x93."),
            [(22, Opcode::StackGlobal, named("os", "system"))]
        );
    }

    #[test]
    fn globals_by_text_and_by_stack() {
        assert_eq!(
            names(b"cos\nsystem\n(imod\nC\n."),
            [
                (0, Opcode::Global, named("os", "system")),
                (12, Opcode::Inst, named("mod", "C")),
            ]
        );
        // SHORT_BINUNICODE, MEMOIZE, then BINGET of the memoised strings.
        assert_eq!(
            names(b"\x80\x04\x8c\x02os\x94\x8c\x06system\x94\x930h\x00h\x01\x93."),
            [
                (16, Opcode::StackGlobal, named("os", "system")),
                (22, Opcode::StackGlobal, named("os", "system")),
            ]
        );
        // MEMOIZE numbers by the memo's size: after BINPUT 7, the next slot is 1.
        assert_eq!(
            names(b"\x80\x04Nq\x07\x8c\x02os\x94\x8c\x01xq\x02h\x01h\x02\x93."),
            [(19, Opcode::StackGlobal, named("os", "x"))]
        );
        // A slot overwritten by something else no longer holds the string.
        assert_eq!(
            names(b"\x80\x04\x8c\x02osq\x00Nq\x00h\x00\x8c\x01x\x93."),
            [(16, Opcode::StackGlobal, StaticName::Computed)]
        );
        // Text memo indices as CPython reads them, and Python 2 strings.
        assert_eq!(
            names(b"S'os'\np1_0\n0g 10 \nS'popen'\n\x93."),
            [(27, Opcode::StackGlobal, named("os", "popen"))]
        );
    }

    #[test]
    fn reads_on_past_what_stops_the_machine() {
        // An unregistered EXT, an APPEND onto an int, a computed STACK_GLOBAL: the VM stops
        // at the first; the pass reports each and reads on.
        let data = b"\x80\x04\x82\x09K\x01K\x02acm\nf\n)R\x8c\x01n\x93cos\nsystem\n.";
        assert_eq!(
            names(data),
            [
                (2, Opcode::Ext1, StaticName::Extension(9)),
                (9, Opcode::Global, named("m", "f")),
                (19, Opcode::StackGlobal, StaticName::Computed),
                (20, Opcode::Global, named("os", "system")),
            ]
        );
        // It stops where decoding stops.
        assert_eq!(names(b"cos\nsystem\n\xffcos\npopen\n.").len(), 1);
        assert_eq!(names(b"cos\nsystem\n.cos\npopen\n.").len(), 1);
    }

    #[test]
    fn extension_codes_registered_by_the_pickle() {
        // copyreg.add_extension('os', 'system', 5) (memoised global, MARK ... TUPLE), then
        // copy_reg.add_extension('os', 'popen', '300') through INST, then EXT1/EXT2.
        let data = b"\x80\x02ccopyreg\nadd_extension\nq\x00(X\x02\x00\x00\x00osX\x06\x00\x00\x00systemK\x05tR0(Vos\nVpopen\nV300\nicopy_reg\nadd_extension\n0\x82\x05\x83\x2c\x01\x82\x06.";
        let found = names(data);
        let tail: Vec<_> = found.iter().rev().take(3).rev().cloned().collect();
        assert_eq!(tail[0].2, named("os", "system"));
        assert_eq!(tail[1].2, named("os", "popen"));
        assert_eq!(tail[2].2, StaticName::Extension(6));
        // A conflicting registration does not count.
        let data = b"\x80\x02ccopyreg\nadd_extension\nq\x00X\x02\x00\x00\x00osX\x01\x00\x00\x00aK\x05\x87R0h\x00X\x02\x00\x00\x00osX\x01\x00\x00\x00bK\x05\x87R0\x82\x05.";
        assert_eq!(names(data).last().unwrap().2, named("os", "a"));
    }

    #[test]
    fn both_readings_of_a_frame_crossing() {
        // The GLOBAL line crosses the end of its frame: `\xffos` (not UTF-8: decoding stops)
        // read in order, `os system` read as a stream (torch.load's io.BytesIO).
        let mut data = b"\x80\x04\x95\x03\x00\x00\x00\x00\x00\x00\x00(c\xff".to_vec();
        data.extend_from_slice(b"os\nsystem\nl.");
        assert_eq!(names(&data), [(12, Opcode::Global, named("os", "system"))]);
        // Both names where each reading makes one.
        let mut data = b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00(cmod".to_vec();
        data.extend_from_slice(b"ule\nname\nl.");
        assert_eq!(
            names(&data),
            [
                (12, Opcode::Global, named("module", "name")),
                (12, Opcode::Global, named("ule", "name")),
            ]
        );
    }

    #[test]
    fn memory_follows_the_limits() {
        let limits = Limits {
            max_stack: 4,
            max_memo: 2,
            max_objects: 3,
            ..Limits::default()
        };
        let mut data = b"\x80\x04".to_vec();
        for _ in 0..10 {
            data.extend_from_slice(b"\x8c\x01m\x94cos\nsystem\n");
        }
        data.push(b'.');
        assert_eq!(static_globals(&data, 0, &limits).len(), 3);
        // Deeply nested tuples stay flat tokens (dropping them cannot recurse).
        let mut data = b"\x80\x02)".to_vec();
        data.extend(std::iter::repeat_n(0x85, 200_000));
        data.push(b'.');
        assert!(static_globals(&data, 0, &Limits::default()).is_empty());
    }
}
