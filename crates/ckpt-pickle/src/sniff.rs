//! A cheap look at the first bytes: does this start like a pickle?

use crate::opcode::{HIGHEST_PROTOCOL, Opcode};

/// What [`sniff`] saw at the start of a pickle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Sniffed {
    /// The protocol announced by a leading `PROTO` opcode (0 to 5: the pickler writes it
    /// from protocol 2, CPython reads any), or `None` for pickles without one.
    pub protocol: Option<u8>,
}

/// Tells whether `bytes` start like a pickle, without reading further than needed.
///
/// A protocol 2+ pickle starts with `PROTO n` (`0x80 n`; CPython reads any `n <= 5`,
/// so `0x80 0` and `0x80 1` start a pickle too). Protocol 0 and 1 pickles have no header; they are recognised by an opening opcode that pushes a value
/// and the `STOP` opcode (`.`) as the last byte. This is a hint for format detection,
/// not a validation: only parsing the whole stream proves a pickle.
///
/// ```
/// assert_eq!(ckpt_pickle::sniff(b"\x80\x02}q\x00.").unwrap().protocol, Some(2));
/// assert_eq!(ckpt_pickle::sniff(b"(dp0\n.").unwrap().protocol, None);
/// assert!(ckpt_pickle::sniff(b"hello").is_none());
/// ```
pub fn sniff(bytes: &[u8]) -> Option<Sniffed> {
    let (&first, rest) = bytes.split_first()?;
    if first == Opcode::Proto.byte() {
        let &protocol = rest.first()?;
        return (protocol <= HIGHEST_PROTOCOL).then_some(Sniffed {
            protocol: Some(protocol),
        });
    }
    let opens_a_value = matches!(
        Opcode::from_byte(first)?,
        Opcode::Mark
            | Opcode::EmptyDict
            | Opcode::EmptyList
            | Opcode::EmptyTuple
            | Opcode::Global
            | Opcode::None
            | Opcode::Int
            | Opcode::BinInt
            | Opcode::BinInt1
            | Opcode::BinInt2
            | Opcode::Long
            | Opcode::Float
            | Opcode::BinFloat
            | Opcode::String
            | Opcode::BinString
            | Opcode::ShortBinString
            | Opcode::Unicode
            | Opcode::BinUnicode
    );
    let ends_with_stop = bytes.last() == Some(&Opcode::Stop.byte());
    (opens_a_value && ends_with_stop && bytes.len() >= 2).then_some(Sniffed { protocol: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_protocols() {
        // CPython reads PROTO 0 and 1 too, though its pickler never writes them.
        for protocol in 0..=5 {
            let bytes = [0x80, protocol, b'N', b'.'];
            assert_eq!(sniff(&bytes).unwrap().protocol, Some(protocol));
        }
        assert!(sniff(&[0x80, 6, b'N', b'.']).is_none());
        assert!(sniff(&[0x80]).is_none());
        assert_eq!(sniff(b"N.").unwrap().protocol, None);
    }

    #[test]
    fn rejects_text_and_empty_input() {
        assert!(sniff(b"").is_none());
        assert!(sniff(b".").is_none());
        assert!(sniff(b"version https://git-lfs.github.com/spec/v1\n").is_none());
        assert!(sniff(b"<html>.").is_none());
    }
}
