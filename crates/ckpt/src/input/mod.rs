//! The bytes of one file as the readers see them: a borrowed slice (a map, or bytes in
//! memory) for the data they hand out without copying, and reads at offsets for the small
//! scattered places they only look at (zip headers, storage counts), so that the pages of a
//! map are not made resident around each of them.

use std::borrow::Cow;
use std::fs::File;

use crate::error::{Error, Result};

mod positioned;

pub(crate) use positioned::read_exact_at;

/// One file's bytes, and where they lie in the outermost file (`base`), for offsets in
/// messages: a member of an archive read as an archive of its own has its own `Input`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Input<'data> {
    bytes: &'data [u8],
    /// The file `bytes` map, when they do: small places are read from it at their offsets.
    file: Option<&'data File>,
    /// Where `bytes[0]` lies in the outermost file.
    base: u64,
}

impl<'data> Input<'data> {
    /// Bytes in memory (or a map read only through the slice).
    pub(crate) fn new(bytes: &'data [u8]) -> Self {
        Input {
            bytes,
            file: None,
            base: 0,
        }
    }

    /// The bytes of `file`, mapped as `bytes`: small reads go to the file at their offsets.
    pub(crate) fn mapped(bytes: &'data [u8], file: Option<&'data File>) -> Self {
        Input {
            bytes,
            file,
            base: 0,
        }
    }

    /// Bytes that live elsewhere (inflated from a member at `base` of the outermost file).
    pub(crate) fn inflated(bytes: &'data [u8], base: u64) -> Self {
        Input {
            bytes,
            file: None,
            base,
        }
    }

    /// All the bytes.
    pub(crate) fn bytes(&self) -> &'data [u8] {
        self.bytes
    }

    /// How many bytes there are.
    pub(crate) fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// Where byte 0 lies in the outermost file.
    pub(crate) fn base(&self) -> u64 {
        self.base
    }

    /// `len` bytes at `start`, borrowed; `None` past the end.
    pub(crate) fn slice(&self, start: u64, len: u64) -> Option<&'data [u8]> {
        let start = usize::try_from(start).ok()?;
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        self.bytes.get(start..end)
    }

    /// Everything from `start` on, borrowed (empty past the end).
    pub(crate) fn from(&self, start: u64) -> &'data [u8] {
        usize::try_from(start)
            .ok()
            .and_then(|start| self.bytes.get(start..))
            .unwrap_or_default()
    }

    /// `len` bytes at `start` for a look (a header): read from the file at their offset
    /// when there is one, else borrowed. Fewer bytes when the input ends first.
    pub(crate) fn peek(&self, start: u64, len: usize) -> Result<Cow<'data, [u8]>> {
        let available = self.len().saturating_sub(start);
        let len = len.min(usize::try_from(available).unwrap_or(usize::MAX));
        match self.file {
            Some(file) => {
                let mut buffer = vec![0u8; len];
                read_exact_at(file, &mut buffer, start).map_err(|e| {
                    Error::from_io("cannot read", e).at_offset(self.base.saturating_add(start))
                })?;
                Ok(Cow::Owned(buffer))
            }
            None => Ok(Cow::Borrowed(
                self.slice(start, len as u64).unwrap_or_default(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peeks_agree_from_the_file_and_from_the_bytes() {
        let mut file = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut file, b"0123456789").unwrap();
        let bytes = b"0123456789";
        for input in [Input::new(bytes), Input::mapped(bytes, Some(&file))] {
            assert_eq!(&*input.peek(3, 4).unwrap(), b"3456");
            assert_eq!(&*input.peek(8, 4).unwrap(), b"89");
            assert_eq!(&*input.peek(12, 4).unwrap(), b"");
            assert_eq!(input.slice(2, 5).unwrap(), b"23456");
            assert!(input.slice(8, 5).is_none());
        }
    }
}
