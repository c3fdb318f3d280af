//! A `pickletools.dis`-like listing of a pickle's opcodes, for people.

use std::fmt::{self, Write};

use crate::decode::{Arg, Decoder};
use crate::error::Error;
use crate::limits::Limits;
use crate::opcode::Opcode;

/// Strings longer than this are cut in the listing.
const MAX_SHOWN: usize = 80;

/// Writes one line per opcode of the pickle at the start of `data` (which starts at byte
/// `base` of its file): offset, opcode name and argument, indented by `MARK` depth, as
/// `python -m pickletools` does. Stops after `STOP` and returns the pickle's length, or
/// the decoding error (after listing everything before it).
pub fn write_listing(
    data: &[u8],
    base: u64,
    limits: &Limits,
    out: &mut dyn Write,
) -> Result<Result<usize, Error>, fmt::Error> {
    let mut decoder = Decoder::new(data, base, limits.clone());
    let mut depth = 0usize;
    while let Some(instruction) = decoder.next_instruction() {
        let instruction = match instruction {
            Ok(instruction) => instruction,
            Err(error) => return Ok(Err(error)),
        };
        if matches!(
            instruction.opcode,
            Opcode::Tuple
                | Opcode::List
                | Opcode::Dict
                | Opcode::FrozenSet
                | Opcode::Appends
                | Opcode::SetItems
                | Opcode::AddItems
                | Opcode::Obj
                | Opcode::Inst
                | Opcode::PopMark
        ) {
            depth = depth.saturating_sub(1);
        }
        write!(
            out,
            "{:>8}: {:indent$}{:<16}",
            instruction.offset,
            "",
            instruction.opcode.name(),
            indent = depth.min(40) * 4
        )?;
        write_arg(&instruction.arg, out)?;
        out.write_char('\n')?;
        if instruction.opcode == Opcode::Mark {
            depth += 1;
        }
    }
    Ok(Ok(decoder.position()))
}

fn write_arg(arg: &Arg<'_>, out: &mut dyn Write) -> fmt::Result {
    match arg {
        Arg::None => Ok(()),
        Arg::Int(i) => write!(out, "{i}"),
        Arg::BigInt(bytes) => match crate::bigint::bigint_to_decimal(bytes, 64) {
            Some(decimal) => out.write_str(&decimal),
            None => write!(out, "<{}-byte integer>", bytes.len()),
        },
        Arg::Bool(b) => out.write_str(if *b { "True" } else { "False" }),
        Arg::Float(x) => write!(out, "{x:?}"),
        Arg::Str(s) => {
            let shown: String = s.chars().take(MAX_SHOWN).collect();
            write!(out, "{shown:?}")?;
            if s.chars().count() > MAX_SHOWN {
                write!(out, "... ({} bytes)", s.len())?;
            }
            Ok(())
        }
        Arg::Bytes(b) => {
            let shown = b.get(..MAX_SHOWN).unwrap_or(b);
            write!(out, "b\"{}\"", shown.escape_ascii())?;
            if b.len() > MAX_SHOWN {
                write!(out, "... ({} bytes)", b.len())?;
            }
            Ok(())
        }
        Arg::Global { module, name } => write!(out, "{:?} {:?}", module, name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_like_pickletools() {
        let mut text = String::new();
        let len = write_listing(
            b"\x80\x02}q\x00(X\x01\x00\x00\x00aK\x01u.junk",
            0,
            &Limits::default(),
            &mut text,
        )
        .unwrap()
        .unwrap();
        assert_eq!(len, 16);
        assert_eq!(
            text,
            "       0: PROTO           2\n       2: EMPTY_DICT      \n       3: BINPUT          0\n       5: MARK            \n       6:     BINUNICODE      \"a\"\n      12:     BININT1         1\n      14: SETITEMS        \n      15: STOP            \n"
        );
    }

    #[test]
    fn errors_come_after_what_was_listed() {
        let mut text = String::new();
        let error = write_listing(b"\x80\x02\xff", 7, &Limits::default(), &mut text)
            .unwrap()
            .unwrap_err();
        assert_eq!(error.offset(), 9);
        assert!(text.contains("PROTO"));
    }
}
