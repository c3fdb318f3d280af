//! Reading an open file at an offset (`pread`), without its shared position and without
//! its map: for the few scattered bytes a reader needs (zip headers, legacy storage
//! counts) and for copies, so that pages of the map are not made resident around them.

use std::fs::File;
use std::io;

/// Reads from `file` at `offset` into `buffer`: how many bytes were read, 0 at the end.
pub(crate) fn read_at(file: &File, buffer: &mut [u8], offset: u64) -> io::Result<usize> {
    #[cfg(unix)]
    return std::os::unix::fs::FileExt::read_at(file, buffer, offset);
    #[cfg(windows)]
    return std::os::windows::fs::FileExt::seek_read(file, buffer, offset);
    #[cfg(not(any(unix, windows)))]
    {
        let _ = (file, buffer, offset);
        Err(io::ErrorKind::Unsupported.into())
    }
}

/// Fills `buffer` from `file` at `offset`; `UnexpectedEof` when the file ends first.
pub(crate) fn read_exact_at(file: &File, mut buffer: &mut [u8], mut offset: u64) -> io::Result<()> {
    while !buffer.is_empty() {
        match read_at(file, buffer, offset) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the file ends before the bytes asked for",
                ));
            }
            Ok(read) => {
                buffer = buffer.get_mut(read..).unwrap_or_default();
                offset = offset.saturating_add(read as u64);
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_at_offsets_and_stops_at_the_end() {
        let mut file = tempfile::tempfile().unwrap();
        io::Write::write_all(&mut file, b"0123456789").unwrap();
        let mut buffer = [0u8; 4];
        read_exact_at(&file, &mut buffer, 3).unwrap();
        assert_eq!(&buffer, b"3456");
        assert_eq!(read_at(&file, &mut buffer, 8).unwrap(), 2);
        assert_eq!(read_at(&file, &mut buffer, 10).unwrap(), 0);
        let error = read_exact_at(&file, &mut buffer, 8).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
        // The file's own position is untouched.
        assert_eq!(io::Seek::stream_position(&mut file).unwrap(), 10);
    }
}
