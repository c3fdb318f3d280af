//! The one place ckpt uses `unsafe`: mapping a file into memory, and letting go of the
//! pages read through the map.
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
    // The map is read-only (PROT_READ, MAP_SHARED), ckpt never writes to its inputs, and
    // the `Source` that owns the map hands out only `&[u8]` borrows of it. Concurrent
    // modification by another process cannot be ruled out by any program; it is documented
    // on `Source::open` as the same caveat every mmap-based reader (safetensors, torch
    // `mmap=True`) has.
    unsafe { MmapOptions::new().map(file) }
}

/// Drops every page of `map` from this process's page tables (`MADV_DONTNEED`): its
/// resident memory falls, the pages stay in the page cache, and a later read of the map
/// faults the same bytes back in. Writers that read their input through the map (casts,
/// byte swaps) call it as they go, so that converting a checkpoint does not leave all of
/// it resident. Best effort: where the advice is not supported nothing changes.
pub(super) fn release(map: &Mmap) {
    #[cfg(unix)]
    {
        // SAFETY: `map` is a read-only shared mapping of a file (`map` above: PROT_READ,
        // MAP_SHARED), never written through. For shared file mappings MADV_DONTNEED
        // only unmaps the pages: later accesses repopulate them "from the up-to-date
        // contents of the underlying mapped file" (madvise(2)), so every borrow of the map
        // reads the same bytes as before, under the invariant `map` already documents (the
        // file is not modified while mapped). The zero-fill that makes the advice unsafe in
        // general applies to private anonymous mappings only.
        let _ = unsafe { map.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
    }
    #[cfg(not(unix))]
    let _ = map;
}
