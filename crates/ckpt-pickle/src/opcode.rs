//! The one table of pickle opcodes.
//!
//! Everything about an opcode (its byte, its name as `pickletools` prints it, the protocol
//! that introduced it and the argument that follows it in the stream) is written once, in
//! the `opcodes!` invocation below. The enum, the decoder and the lookup functions are all
//! generated from it, so they cannot drift apart.
//!
//! Source: CPython `Lib/pickletools.py` (the `opcodes` list) and `Lib/pickle.py`.

/// The kind of argument that follows an opcode byte in the stream.
///
/// Names follow `pickletools` (`uint1`, `decimalnl_short`, `unicodestring4`...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Argument {
    /// No argument.
    None,
    /// `uint1`: one unsigned byte.
    U8,
    /// `uint2`: unsigned 16-bit little-endian.
    U16,
    /// `int4`: signed 32-bit little-endian.
    I32,
    /// `uint4`: unsigned 32-bit little-endian.
    U32,
    /// `uint8`: unsigned 64-bit little-endian.
    U64,
    /// `float8`: an IEEE-754 double, **big**-endian.
    F64,
    /// `decimalnl_short`: a decimal integer (or `00`/`01` for booleans) ending with `\n`.
    DecimalLine,
    /// `decimalnl_long`: a decimal integer with an optional `L` suffix, ending with `\n`.
    LongLine,
    /// `floatnl`: a float in `repr` form ending with `\n`.
    FloatLine,
    /// `stringnl`: a Python-2 quoted string literal (with escapes) ending with `\n`.
    QuotedLine,
    /// `stringnl_noescape`: raw text up to `\n`.
    TextLine,
    /// `stringnl_noescape_pair`: two raw text lines (module, then name).
    TextLinePair,
    /// `unicodestringnl`: raw-unicode-escape text up to `\n`.
    UnicodeLine,
    /// `long1`: a one-byte length, then that many bytes of little-endian two's complement.
    Long1,
    /// `long4`: a signed 32-bit length, then that many bytes of two's complement.
    Long4,
    /// `string1`: a one-byte length, then that many bytes (Python 2 `str`).
    String1,
    /// `string4`: a signed 32-bit length, then that many bytes (Python 2 `str`).
    String4,
    /// `bytes1`: a one-byte length, then that many bytes.
    Bytes1,
    /// `bytes4`: an unsigned 32-bit length, then that many bytes.
    Bytes4,
    /// `bytes8`: an unsigned 64-bit length, then that many bytes.
    Bytes8,
    /// `unicodestring1`: a one-byte length, then that many bytes of UTF-8.
    Unicode1,
    /// `unicodestring4`: an unsigned 32-bit length, then that many bytes of UTF-8.
    Unicode4,
    /// `unicodestring8`: an unsigned 64-bit length, then that many bytes of UTF-8.
    Unicode8,
}

macro_rules! opcodes {
    ($( $(#[$doc:meta])* $variant:ident = $byte:literal, $name:literal, $proto:literal, $arg:ident; )*) => {
        /// A pickle opcode of protocols 0 to 5.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        #[non_exhaustive]
        pub enum Opcode {
            $( $(#[$doc])* $variant = $byte, )*
        }

        impl Opcode {
            /// Every opcode, in table order.
            pub const ALL: &'static [Opcode] = &[$(Opcode::$variant),*];

            /// The opcode for a byte of the stream, or `None` if no protocol defines it.
            pub const fn from_byte(byte: u8) -> Option<Opcode> {
                match byte {
                    $( $byte => Some(Opcode::$variant), )*
                    _ => None,
                }
            }

            /// The byte that encodes this opcode.
            pub const fn byte(self) -> u8 {
                self as u8
            }

            /// The opcode's name as `pickletools` prints it (`"BINUNICODE"`).
            pub const fn name(self) -> &'static str {
                match self {
                    $( Opcode::$variant => $name, )*
                }
            }

            /// The pickle protocol that introduced this opcode (0 to 5).
            pub const fn protocol(self) -> u8 {
                match self {
                    $( Opcode::$variant => $proto, )*
                }
            }

            /// The argument that follows the opcode byte.
            pub const fn argument(self) -> Argument {
                match self {
                    $( Opcode::$variant => Argument::$arg, )*
                }
            }
        }
    };
}

opcodes! {
    // Protocol 0 and 1.
    /// Push a mark onto the mark stack.
    Mark = b'(', "MARK", 0, None;
    /// End of the pickle: the top of the stack is the result.
    Stop = b'.', "STOP", 0, None;
    /// Discard the top of the stack.
    Pop = b'0', "POP", 0, None;
    /// Discard everything down to the topmost mark.
    PopMark = b'1', "POP_MARK", 1, None;
    /// Duplicate the top of the stack.
    Dup = b'2', "DUP", 0, None;
    /// A float as decimal text.
    Float = b'F', "FLOAT", 0, FloatLine;
    /// An integer (or `00`/`01` booleans) as decimal text.
    Int = b'I', "INT", 0, DecimalLine;
    /// A signed 32-bit integer.
    BinInt = b'J', "BININT", 1, I32;
    /// An unsigned 8-bit integer.
    BinInt1 = b'K', "BININT1", 1, U8;
    /// A long integer as decimal text.
    Long = b'L', "LONG", 0, LongLine;
    /// An unsigned 16-bit integer.
    BinInt2 = b'M', "BININT2", 1, U16;
    /// Push `None`.
    None = b'N', "NONE", 0, None;
    /// A persistent id given as text.
    PersId = b'P', "PERSID", 0, TextLine;
    /// A persistent id taken from the stack (torch uses it for storages).
    BinPersId = b'Q', "BINPERSID", 1, None;
    /// Call the callable under the top of the stack with the tuple on top.
    Reduce = b'R', "REDUCE", 0, None;
    /// A Python 2 `str` as a quoted literal.
    String = b'S', "STRING", 0, QuotedLine;
    /// A Python 2 `str` with a 4-byte length.
    BinString = b'T', "BINSTRING", 1, String4;
    /// A Python 2 `str` with a 1-byte length.
    ShortBinString = b'U', "SHORT_BINSTRING", 1, String1;
    /// A unicode string as raw-unicode-escape text.
    Unicode = b'V', "UNICODE", 0, UnicodeLine;
    /// A UTF-8 string with a 4-byte length.
    BinUnicode = b'X', "BINUNICODE", 1, Unicode4;
    /// Append the top of the stack to the list below it.
    Append = b'a', "APPEND", 0, None;
    /// Set an object's state (`__setstate__` or `__dict__` update).
    Build = b'b', "BUILD", 0, None;
    /// Import `module.name` (two text lines).
    Global = b'c', "GLOBAL", 0, TextLinePair;
    /// Build a dict from the items above the topmost mark.
    Dict = b'd', "DICT", 0, None;
    /// Push an empty dict.
    EmptyDict = b'}', "EMPTY_DICT", 1, None;
    /// Extend the list below the mark with the items above it.
    Appends = b'e', "APPENDS", 1, None;
    /// Push a memo entry by decimal index.
    Get = b'g', "GET", 0, DecimalLine;
    /// Push a memo entry by 1-byte index.
    BinGet = b'h', "BINGET", 1, U8;
    /// Build an instance of `module.name` from the items above the mark.
    Inst = b'i', "INST", 0, TextLinePair;
    /// Push a memo entry by 4-byte index.
    LongBinGet = b'j', "LONG_BINGET", 1, U32;
    /// Build a list from the items above the topmost mark.
    List = b'l', "LIST", 0, None;
    /// Push an empty list.
    EmptyList = b']', "EMPTY_LIST", 1, None;
    /// Build an instance of the class just above the mark from the items above it.
    Obj = b'o', "OBJ", 1, None;
    /// Store the top of the stack in the memo by decimal index.
    Put = b'p', "PUT", 0, DecimalLine;
    /// Store the top of the stack in the memo by 1-byte index.
    BinPut = b'q', "BINPUT", 1, U8;
    /// Store the top of the stack in the memo by 4-byte index.
    LongBinPut = b'r', "LONG_BINPUT", 1, U32;
    /// Set one key of the dict below the top two items.
    SetItem = b's', "SETITEM", 0, None;
    /// Build a tuple from the items above the topmost mark.
    Tuple = b't', "TUPLE", 0, None;
    /// Push an empty tuple.
    EmptyTuple = b')', "EMPTY_TUPLE", 1, None;
    /// Set many keys of the dict below the mark.
    SetItems = b'u', "SETITEMS", 1, None;
    /// A big-endian IEEE-754 double.
    BinFloat = b'G', "BINFLOAT", 1, F64;

    // Protocol 2.
    /// The protocol version, first opcode of protocol 2+ pickles.
    Proto = 0x80, "PROTO", 2, U8;
    /// `cls.__new__(cls, *args)`.
    NewObj = 0x81, "NEWOBJ", 2, None;
    /// A global from the copyreg extension registry (1-byte code).
    Ext1 = 0x82, "EXT1", 2, U8;
    /// A global from the copyreg extension registry (2-byte code).
    Ext2 = 0x83, "EXT2", 2, U16;
    /// A global from the copyreg extension registry (4-byte code).
    Ext4 = 0x84, "EXT4", 2, I32;
    /// Build a 1-tuple from the top of the stack.
    Tuple1 = 0x85, "TUPLE1", 2, None;
    /// Build a 2-tuple from the top of the stack.
    Tuple2 = 0x86, "TUPLE2", 2, None;
    /// Build a 3-tuple from the top of the stack.
    Tuple3 = 0x87, "TUPLE3", 2, None;
    /// Push `True`.
    NewTrue = 0x88, "NEWTRUE", 2, None;
    /// Push `False`.
    NewFalse = 0x89, "NEWFALSE", 2, None;
    /// A long integer with a 1-byte length.
    Long1 = 0x8a, "LONG1", 2, Long1;
    /// A long integer with a 4-byte length.
    Long4 = 0x8b, "LONG4", 2, Long4;

    // Protocol 3.
    /// `bytes` with a 4-byte length.
    BinBytes = b'B', "BINBYTES", 3, Bytes4;
    /// `bytes` with a 1-byte length.
    ShortBinBytes = b'C', "SHORT_BINBYTES", 3, Bytes1;

    // Protocol 4.
    /// A UTF-8 string with a 1-byte length.
    ShortBinUnicode = 0x8c, "SHORT_BINUNICODE", 4, Unicode1;
    /// A UTF-8 string with an 8-byte length.
    BinUnicode8 = 0x8d, "BINUNICODE8", 4, Unicode8;
    /// `bytes` with an 8-byte length.
    BinBytes8 = 0x8e, "BINBYTES8", 4, Bytes8;
    /// Push an empty set.
    EmptySet = 0x8f, "EMPTY_SET", 4, None;
    /// Add the items above the mark to the set below it.
    AddItems = 0x90, "ADDITEMS", 4, None;
    /// Build a frozenset from the items above the mark.
    FrozenSet = 0x91, "FROZENSET", 4, None;
    /// `cls.__new__(cls, *args, **kwargs)`.
    NewObjEx = 0x92, "NEWOBJ_EX", 4, None;
    /// Import the global named by the two strings on top of the stack.
    StackGlobal = 0x93, "STACK_GLOBAL", 4, None;
    /// Store the top of the stack in the memo at the next free index.
    Memoize = 0x94, "MEMOIZE", 4, None;
    /// Announce the length of the next frame of opcodes.
    Frame = 0x95, "FRAME", 4, U64;

    // Protocol 5.
    /// A `bytearray` with an 8-byte length.
    ByteArray8 = 0x96, "BYTEARRAY8", 5, Bytes8;
    /// Take the next out-of-band buffer.
    NextBuffer = 0x97, "NEXT_BUFFER", 5, None;
    /// Make the buffer on top of the stack read-only.
    ReadonlyBuffer = 0x98, "READONLY_BUFFER", 5, None;
}

/// The highest pickle protocol this table covers.
pub const HIGHEST_PROTOCOL: u8 = 5;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_round_trips_every_byte() {
        let mut seen = 0;
        for byte in 0..=u8::MAX {
            if let Some(op) = Opcode::from_byte(byte) {
                assert_eq!(op.byte(), byte);
                seen += 1;
            }
        }
        // pickletools.opcodes has 68 entries for protocols 0 to 5.
        assert_eq!(seen, 68);
        assert_eq!(Opcode::ALL.len(), 68);
    }

    #[test]
    fn names_are_unique_and_match_pickletools() {
        let mut names: Vec<_> = Opcode::ALL.iter().map(|op| op.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Opcode::ALL.len());
        assert_eq!(Opcode::from_byte(b'd').map(Opcode::name), Some("DICT"));
        assert_eq!(
            Opcode::from_byte(b'}').map(Opcode::name),
            Some("EMPTY_DICT")
        );
        assert_eq!(
            Opcode::from_byte(0x93).map(Opcode::name),
            Some("STACK_GLOBAL")
        );
    }

    #[test]
    fn protocols_are_in_range() {
        assert!(
            Opcode::ALL
                .iter()
                .all(|op| op.protocol() <= HIGHEST_PROTOCOL)
        );
        assert_eq!(Opcode::Proto.protocol(), 2);
        assert_eq!(Opcode::BinBytes.protocol(), 3);
        assert_eq!(Opcode::ByteArray8.protocol(), 5);
    }
}
