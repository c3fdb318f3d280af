//! The writer behind every output file: buffered, and copying the input's bytes inside
//! the kernel.
//!
//! Writers hand over tensor data as slices; dense little-endian data is a slice of the
//! input's memory map. [`FileSink`] recognises such slices by their address and copies the
//! same bytes from the input file, so the mapped pages are never faulted in: converting a
//! 10 GB checkpoint keeps ckpt's resident memory at a few megabytes. Adjacent slices are
//! merged into one copy of at most [`MAX_PENDING`] bytes. When the bytes keep their place
//! within a page, the kernel copies them (`copy_file_range`, through `std::io::copy`, which
//! falls back to `sendfile` or a plain copy where the system cannot); when they move within
//! their page (a 64-byte-aligned zip record to a packed safetensors offset, say) they are
//! read at their offset into a 1 MiB buffer and written, which is faster than the kernel's
//! page-splitting copy (see [`in_phase`]).
//!
//! Every [`RELEASE_EVERY`] bytes, the pages a writer read through the input's map (to cast,
//! swap bytes or checksum them) are let go of, so they do not accumulate in resident
//! memory.
//!
//! Every [`WRITEBACK_EVERY`] bytes, a helper thread asks the kernel to write what is dirty
//! so far to disk (`fdatasync` of the same open file), so that writing to the disk
//! overlaps with producing the rest instead of all waiting for the final `fsync`.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::thread::JoinHandle;

/// The buffer for bytes that are written, not copied (headers, converted data).
const BUFFER_LEN: usize = 1 << 20;
/// Slices shorter than this are buffered even when they come from the input.
pub(crate) const MIN_COPY_LEN: usize = 64 << 10;
/// The most bytes held back for one kernel copy.
const MAX_PENDING: u64 = 64 << 20;
/// How many bytes are written between two requests to start writing them to disk.
const WRITEBACK_EVERY: u64 = 64 << 20;
/// How many bytes are written between two releases of the input's mapped pages: a writer
/// that reads its input through the map (a cast, a byte swap, a checksum) keeps at most
/// about this much of it resident.
const RELEASE_EVERY: u64 = 4 << 20;

/// The input file and its memory map, as the slices handed to a [`FileSink`] borrow it; or
/// the files of a checkpoint stored in several (see `Source::mapped_input`).
#[derive(Debug, Clone, Copy)]
pub struct MappedInput<'a> {
    file: &'a File,
    map: &'a [u8],
    /// Further inputs, each with its own map (the shards of a multi-file checkpoint).
    more: &'a [crate::source::Source],
    /// The sources whose maps these are, when known, to let go of their pages.
    owners: &'a [crate::source::Source],
}

impl<'a> MappedInput<'a> {
    /// `map` must be a map of all of `file`, from its first byte.
    pub fn new(file: &'a File, map: &'a [u8]) -> Self {
        MappedInput {
            file,
            map,
            more: &[],
            owners: &[],
        }
    }

    /// Marks the maps as those of `owners`, which [`MappedInput::release`] lets go of.
    pub(crate) fn releasing(mut self, owners: &'a [crate::source::Source]) -> Self {
        self.owners = owners;
        self
    }

    /// Drops the pages read through the maps from resident memory (see
    /// [`Source`](crate::Source)); nothing for maps not made by a `Source`.
    fn release(&self) {
        for source in self.owners.iter().chain(self.more) {
            source.release();
        }
    }

    /// Adds the files of a checkpoint stored in several, each mapped by its [`Source`].
    ///
    /// [`Source`]: crate::Source
    pub(crate) fn with_more(mut self, more: &'a [crate::source::Source]) -> Self {
        self.more = more;
        // `more` holds every file, this one's source too.
        self.owners = &[];
        self
    }

    /// The file that holds `bytes` and their offset in it, when they lie within a map.
    fn locate(&self, bytes: &[u8]) -> Option<(&'a File, u64)> {
        let within = |map: &[u8]| {
            let offset = (bytes.as_ptr() as usize).checked_sub(map.as_ptr() as usize)?;
            let end = offset.checked_add(bytes.len())?;
            (end <= map.len()).then_some(offset as u64)
        };
        if let Some(offset) = within(self.map) {
            return Some((self.file, offset));
        }
        self.more.iter().find_map(|source| {
            let input = source.mapped_input()?;
            within(input.map).map(|offset| (input.file, offset))
        })
    }

    /// The same bytes as `bytes`, a slice of the map, read from the file into `buffer`
    /// instead of through the map, so that the map's pages are never faulted in (a
    /// writer that must look at the data, to checksum it, then keeps its resident memory
    /// flat). `None` when `bytes` are not in the map.
    pub fn read_copy<'b>(
        &self,
        bytes: &[u8],
        buffer: &'b mut Vec<u8>,
    ) -> Option<io::Result<&'b [u8]>> {
        let (file, offset) = self.locate(bytes)?;
        buffer.clear();
        buffer.resize(bytes.len(), 0);
        Some(crate::input::read_exact_at(file, buffer, offset).map(|()| buffer.as_slice()))
    }
}

/// A buffered writer to `file` that copies slices of the mapped input in the kernel.
///
/// Call [`Write::flush`] at the end: bytes may be held back until then.
#[derive(Debug)]
pub struct FileSink<'a> {
    file: &'a File,
    input: Option<MappedInput<'a>>,
    buffer: Vec<u8>,
    /// A kernel copy not done yet: `(input file, offset, length)`.
    pending: Option<(&'a File, u64, u64)>,
    /// Bytes written since the last writeback request.
    unsynced: u64,
    /// [`WRITEBACK_EVERY`], smaller in tests.
    writeback_every: u64,
    /// Bytes written since the input's pages were last let go of.
    unreleased: u64,
    writeback: Option<Writeback>,
}

/// A thread that runs `fdatasync` on the output when asked, while writing goes on.
#[derive(Debug)]
struct Writeback {
    wake: SyncSender<()>,
    thread: JoinHandle<io::Result<()>>,
}

impl Writeback {
    fn start(file: &File) -> io::Result<Writeback> {
        let file = file.try_clone()?;
        // One request may wait: a request made while the disk is still busy with the
        // previous one is folded into the next.
        let (wake, requests) = mpsc::sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name("ckpt-writeback".into())
            .spawn(move || {
                for () in requests {
                    file.sync_data()?;
                }
                Ok(())
            })?;
        Ok(Writeback { wake, thread })
    }

    /// Asks for a writeback; false when the thread has stopped (on an error, which
    /// [`Writeback::finish`] returns).
    fn request(&self) -> bool {
        !matches!(self.wake.try_send(()), Err(TrySendError::Disconnected(())))
    }

    /// Waits for the thread, returning the first error of its syncs: an error seen there
    /// may not be reported again by the final `fsync` (the two share one open file).
    fn finish(self) -> io::Result<()> {
        drop(self.wake);
        self.thread
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the writeback thread failed")))
    }
}

impl<'a> FileSink<'a> {
    /// Writes to `file` (from its current position), copying slices of `input` directly.
    pub fn new(file: &'a File, input: Option<MappedInput<'a>>) -> Self {
        FileSink {
            file,
            input,
            buffer: Vec::with_capacity(BUFFER_LEN),
            pending: None,
            unsynced: 0,
            writeback_every: WRITEBACK_EVERY,
            unreleased: 0,
            writeback: None,
        }
    }

    /// Leaves writing to disk to the kernel's own time (for outputs that will not be
    /// synced): no early writeback.
    #[must_use]
    pub fn without_writeback(mut self) -> Self {
        self.writeback_every = u64::MAX;
        self
    }

    /// Counts `len` bytes handed to the kernel, and asks for a writeback every
    /// [`WRITEBACK_EVERY`] bytes.
    fn wrote(&mut self, len: u64) -> io::Result<()> {
        self.unreleased = self.unreleased.saturating_add(len);
        if self.unreleased >= RELEASE_EVERY {
            self.unreleased = 0;
            if let Some(input) = &self.input {
                input.release();
            }
        }
        self.unsynced = self.unsynced.saturating_add(len);
        if self.unsynced < self.writeback_every {
            return Ok(());
        }
        self.unsynced = 0;
        if self.writeback.is_none() {
            self.writeback = Some(Writeback::start(self.file)?);
        }
        if let Some(writeback) = &self.writeback
            && !writeback.request()
        {
            return self.finish_writeback();
        }
        Ok(())
    }

    fn finish_writeback(&mut self) -> io::Result<()> {
        match self.writeback.take() {
            Some(writeback) => writeback.finish(),
            None => Ok(()),
        }
    }

    fn flush_buffer(&mut self) -> io::Result<()> {
        if !self.buffer.is_empty() {
            self.file.write_all(&self.buffer)?;
            let len = self.buffer.len() as u64;
            self.buffer.clear();
            self.wrote(len)?;
        }
        Ok(())
    }

    fn flush_pending(&mut self) -> io::Result<()> {
        let Some((reader, offset, len)) = self.pending.take() else {
            return Ok(());
        };
        // The buffer is empty here: it is flushed before a copy is held back.
        let position = self.file.stream_position()?;
        if in_phase(offset, position) {
            self.copy_in_kernel(reader, offset, len)?;
        } else {
            self.copy_through_buffer(reader, offset, len)?;
        }
        self.wrote(len)
    }

    /// Copies with `copy_file_range` (through `std::io::copy`, which falls back where the
    /// system cannot), sharing the blocks where the file system can (XFS, Btrfs).
    fn copy_in_kernel(&mut self, mut reader: &File, offset: u64, len: u64) -> io::Result<()> {
        reader.seek(SeekFrom::Start(offset))?;
        let copied = io::copy(&mut reader.take(len), &mut self.file)?;
        if copied != len {
            return Err(shorter_input());
        }
        Ok(())
    }

    /// Copies by reading into the (empty) buffer and writing it out, one cache-sized
    /// chunk at a time: reading at an offset does not map the input's pages, so resident
    /// memory stays flat as with a kernel copy.
    fn copy_through_buffer(&mut self, reader: &File, offset: u64, len: u64) -> io::Result<()> {
        self.buffer.clear();
        self.buffer.resize(BUFFER_LEN, 0);
        let result = copy_chunks(reader, offset, len, self.file, &mut self.buffer);
        self.buffer.clear();
        result
    }
}

/// The granule of the page cache: a kernel copy between two offsets that differ by a
/// whole number of pages moves whole pages, one between offsets out of phase within a page
/// splits every page in two and was measured to take 1.3-1.6x as long (see
/// docs/performance.md), longer than the same bytes read into a buffer and written.
const PAGE: u64 = 4096;

/// Whether a copy from `from` to `to` keeps every byte at the same place within its page.
fn in_phase(from: u64, to: u64) -> bool {
    from % PAGE == to % PAGE
}

fn shorter_input() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the input file became shorter while it was being copied",
    )
}

/// Copies `len` bytes of `from` at `offset` to `to` (at its position) through `buffer`.
fn copy_chunks(
    from: &File,
    offset: u64,
    len: u64,
    mut to: &File,
    buffer: &mut [u8],
) -> io::Result<()> {
    let mut done = 0;
    while done < len {
        let left = usize::try_from(len - done).unwrap_or(usize::MAX);
        let Some(chunk) = buffer.get_mut(..left.min(buffer.len())) else {
            break;
        };
        if chunk.is_empty() {
            return Err(io::Error::other("no buffer to copy through"));
        }
        read_exact_at(from, chunk, offset + done)?;
        to.write_all(chunk)?;
        done += chunk.len() as u64;
    }
    Ok(())
}

/// Fills `buffer` from `file` at `offset`, without moving the file's position.
fn read_exact_at(file: &File, buffer: &mut [u8], offset: u64) -> io::Result<()> {
    crate::input::read_exact_at(file, buffer, offset).map_err(|error| {
        if error.kind() == io::ErrorKind::UnexpectedEof {
            shorter_input()
        } else {
            error
        }
    })
}

impl Write for FileSink<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.write_all(bytes)?;
        Ok(bytes.len())
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        let from_input = match self.input {
            Some(input) if bytes.len() >= MIN_COPY_LEN => input.locate(bytes),
            _ => None,
        };
        match from_input {
            Some((file, offset)) => {
                let len = bytes.len() as u64;
                match self.pending {
                    Some((pending_file, start, pending))
                        if std::ptr::eq(pending_file, file)
                            && start + pending == offset
                            && pending + len <= MAX_PENDING =>
                    {
                        self.pending = Some((file, start, pending + len));
                    }
                    _ => {
                        self.flush_pending()?;
                        self.flush_buffer()?;
                        self.pending = Some((file, offset, len));
                    }
                }
                Ok(())
            }
            None => {
                self.flush_pending()?;
                if self.buffer.len() + bytes.len() > BUFFER_LEN {
                    self.flush_buffer()?;
                }
                if bytes.len() >= BUFFER_LEN {
                    self.file.write_all(bytes)?;
                    self.wrote(bytes.len() as u64)
                } else {
                    self.buffer.extend_from_slice(bytes);
                    Ok(())
                }
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_pending()?;
        self.flush_buffer()?;
        self.finish_writeback()?;
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_back(file: &mut File) -> Vec<u8> {
        let mut out = Vec::new();
        file.seek(SeekFrom::Start(0)).unwrap();
        file.read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn slices_of_the_input_are_copied_and_the_rest_written_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let input_path = dir.path().join("in");
        let data: Vec<u8> = (0..3u32 << 20).map(|i| (i % 251) as u8).collect();
        std::fs::write(&input_path, &data).unwrap();
        let input_file = File::open(&input_path).unwrap();
        // The "map": the same bytes at a known address (a Vec stands in for the mmap).
        let map = std::fs::read(&input_path).unwrap();
        let mut out = tempfile::tempfile().unwrap();
        {
            let mut sink = FileSink::new(&out, Some(MappedInput::new(&input_file, &map)));
            sink.write_all(b"header").unwrap();
            // Adjacent slices (merged into one copy), then a gap, then a small slice
            // (buffered), then bytes from elsewhere.
            sink.write_all(&map[..1 << 20]).unwrap();
            sink.write_all(&map[1 << 20..2 << 20]).unwrap();
            sink.write_all(&map[(2 << 20) + 5..3 << 20]).unwrap();
            sink.write_all(&map[10..20]).unwrap();
            sink.write_all(&vec![7u8; 2 << 20]).unwrap();
            sink.write_all(b"end").unwrap();
            sink.flush().unwrap();
        }
        let mut want = b"header".to_vec();
        want.extend_from_slice(&data[..2 << 20]);
        want.extend_from_slice(&data[(2 << 20) + 5..3 << 20]);
        want.extend_from_slice(&data[10..20]);
        want.extend_from_slice(&[7u8; 2 << 20]);
        want.extend_from_slice(b"end");
        assert!(read_back(&mut out) == want);
    }

    #[test]
    fn copies_in_phase_and_out_of_phase_arrive_alike() {
        let dir = tempfile::tempdir().unwrap();
        let input_path = dir.path().join("in");
        let data: Vec<u8> = (0..5u32 << 20).map(|i| (i % 241) as u8).collect();
        std::fs::write(&input_path, &data).unwrap();
        let input_file = File::open(&input_path).unwrap();
        let map = std::fs::read(&input_path).unwrap();
        let mut out = tempfile::tempfile().unwrap();
        {
            let mut sink = FileSink::new(&out, Some(MappedInput::new(&input_file, &map)));
            // A page of header puts the first copy in phase (kernel copy)...
            sink.write_all(&[1u8; 4096]).unwrap();
            sink.write_all(&map[..2 << 20]).unwrap();
            // ...one byte more puts the next out of phase, across several buffers,
            // ending in a partial one.
            sink.write_all(b"x").unwrap();
            sink.write_all(&map[100..(3 << 20) + 777]).unwrap();
            // And back in phase: 4096 + 2 MiB + 1 + (3 MiB + 677) bytes written so far.
            let at = 4096 + (2 << 20) + 1 + (3 << 20) + 677;
            let from = at % 4096 + 4096;
            sink.write_all(&map[from..from + (1 << 20)]).unwrap();
            sink.flush().unwrap();
        }
        let mut want = vec![1u8; 4096];
        want.extend_from_slice(&data[..2 << 20]);
        want.push(b'x');
        want.extend_from_slice(&data[100..(3 << 20) + 777]);
        let from = want.len() % 4096 + 4096;
        want.extend_from_slice(&data[from..from + (1 << 20)]);
        assert!(read_back(&mut out) == want);
    }

    #[test]
    fn an_input_that_shrank_is_an_error_in_either_copy() {
        let dir = tempfile::tempdir().unwrap();
        let input_path = dir.path().join("in");
        std::fs::write(&input_path, vec![3u8; 1 << 20]).unwrap();
        let input_file = File::open(&input_path).unwrap();
        // The map is longer than the file now is.
        let map = vec![3u8; 2 << 20];
        for header in [0, 1] {
            let out = tempfile::tempfile().unwrap();
            let mut sink = FileSink::new(&out, Some(MappedInput::new(&input_file, &map)));
            sink.write_all(&vec![0u8; header]).unwrap();
            sink.write_all(&map[..]).unwrap();
            let error = sink.flush().unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof, "{header}");
            assert!(error.to_string().contains("became shorter"), "{error}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn slices_of_the_map_are_read_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in");
        std::fs::write(&path, b"0123456789").unwrap();
        let file = File::open(&path).unwrap();
        // The "map" holds other bytes than the file: the copy must come from the file.
        let map = b"abcdefghij".to_vec();
        let input = MappedInput::new(&file, &map);
        let mut buffer = Vec::new();
        let read = input.read_copy(&map[3..7], &mut buffer).unwrap().unwrap();
        assert_eq!(read, b"3456");
        assert!(input.read_copy(b"elsewhere", &mut buffer).is_none());
        // A map longer than the file (the file shrank): an error, not a short read.
        let long = vec![0u8; 20];
        let input = MappedInput::new(&file, &long);
        assert!(input.read_copy(&long[8..16], &mut buffer).unwrap().is_err());
    }

    #[test]
    fn writeback_runs_while_writing_and_everything_arrives() {
        let dir = tempfile::tempdir().unwrap();
        let input_path = dir.path().join("in");
        let data: Vec<u8> = (0..8u32 << 20).map(|i| (i % 253) as u8).collect();
        std::fs::write(&input_path, &data).unwrap();
        let input_file = File::open(&input_path).unwrap();
        let map = std::fs::read(&input_path).unwrap();
        let mut out = tempfile::tempfile_in(dir.path()).unwrap();
        {
            let mut sink = FileSink::new(&out, Some(MappedInput::new(&input_file, &map)));
            sink.writeback_every = 1 << 20;
            for chunk in map.chunks(1 << 20) {
                sink.write_all(chunk).unwrap();
                sink.write_all(&[0xEE; 100]).unwrap();
            }
            assert!(sink.writeback.is_some());
            sink.flush().unwrap();
            assert!(sink.writeback.is_none());
        }
        let mut want = Vec::new();
        for chunk in data.chunks(1 << 20) {
            want.extend_from_slice(chunk);
            want.extend_from_slice(&[0xEE; 100]);
        }
        assert!(read_back(&mut out) == want);
    }

    #[test]
    fn slices_of_several_inputs_are_copied_from_their_own_file() {
        let dir = tempfile::tempdir().unwrap();
        let sources: Vec<crate::source::Source> = (0..3u8)
            .map(|n| {
                let path = dir.path().join(format!("shard{n}"));
                std::fs::write(&path, vec![n + 1; 200 << 10]).unwrap();
                crate::source::Source::open(&path).unwrap()
            })
            .collect();
        let input = sources[1].mapped_input().unwrap().with_more(&sources);
        let mut out = tempfile::tempfile().unwrap();
        {
            let mut sink = FileSink::new(&out, Some(input));
            // Adjacent in address order across two maps must not merge into one copy.
            for source in [&sources[2], &sources[0], &sources[1]] {
                let bytes = source.bytes();
                sink.write_all(&bytes[..100 << 10]).unwrap();
                sink.write_all(&bytes[100 << 10..]).unwrap();
            }
            sink.flush().unwrap();
        }
        let back = read_back(&mut out);
        let mut want = vec![3u8; 200 << 10];
        want.extend_from_slice(&[1u8; 200 << 10]);
        want.extend_from_slice(&[2u8; 200 << 10]);
        assert!(back == want);
    }

    #[test]
    fn without_an_input_everything_is_written() {
        let mut out = tempfile::tempfile().unwrap();
        {
            let mut sink = FileSink::new(&out, None);
            sink.write_all(&[1u8; 100]).unwrap();
            sink.write_all(&vec![2u8; 3 << 20]).unwrap();
            sink.flush().unwrap();
        }
        let back = read_back(&mut out);
        assert_eq!(back.len(), 100 + (3 << 20));
        assert!(back[..100].iter().all(|&b| b == 1));
        assert!(back[100..].iter().all(|&b| b == 2));
    }
}
