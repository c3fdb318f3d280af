//! The one place ckpt uses `unsafe`: mapping a file into memory.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;

use memmap2::{Mmap, MmapOptions};

/// Maps all of `file` read-only.
///
/// The map stays valid while the file is unchanged. If another process truncates the file
/// while it is mapped, reading the lost pages raises SIGBUS and the process dies: no
/// memory unsafety, but a crash. ckpt itself never writes to a file it has mapped (outputs
/// go to a new temporary file that is renamed, and an output may never be an input).
pub(super) fn map(file: &File) -> io::Result<Mmap> {
    // SAFETY: memmap2 requires that the mapped file is not modified while the map lives.
    // The map is read-only (PROT_READ, MAP_PRIVATE), ckpt never writes to its inputs, and
    // the `Source` that owns the map hands out only `&[u8]` borrows of it. Concurrent
    // modification by another process cannot be ruled out by any program; it is documented
    // on `Source::open` as the same caveat every mmap-based reader (safetensors, torch
    // `mmap=True`) has.
    unsafe { MmapOptions::new().map(file) }
}
