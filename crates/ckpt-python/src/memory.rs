//! The one place this crate uses `unsafe`: reading the bytes of the tensors a caller asks
//! to save, where they are (torch's CPU storages, numpy's buffers), without copying them.
#![allow(unsafe_code)]

use pyo3::prelude::*;

/// Memory owned by Python objects this value holds a reference to.
pub(crate) struct Held<'py> {
    regions: Vec<(Bound<'py, PyAny>, usize, usize)>,
}

impl<'py> Held<'py> {
    pub(crate) fn new() -> Self {
        Held {
            regions: Vec::new(),
        }
    }

    /// Holds the `len` bytes at `address` that `owner` keeps alive (a torch
    /// `UntypedStorage` of the CPU, or a numpy array); their index.
    pub(crate) fn hold(
        &mut self,
        owner: Bound<'py, PyAny>,
        address: usize,
        len: usize,
    ) -> PyResult<usize> {
        if (address == 0 && len > 0) || isize::try_from(len).is_err() {
            return Err(crate::errors::InvalidError::new_err(
                "a tensor's memory has no address or an impossible size",
            ));
        }
        self.regions.push((owner, address, len));
        Ok(self.regions.len() - 1)
    }

    /// The bytes held at `index`.
    pub(crate) fn bytes(&self, index: usize) -> &[u8] {
        match self.regions.get(index) {
            Some((_, _, 0)) | None => &[],
            // SAFETY: `address..address + len` is the memory of `owner` (a CPU storage's
            // `data_ptr()`/`nbytes()`, a numpy array's data pointer and size), read from the
            // owner itself by the caller, and `owner` is held by `self` for at least as long
            // as the slice lives, so the memory stays allocated. `len` fits in `isize`
            // (checked in `hold`), and `u8` has no alignment or validity requirement. The
            // bytes are only read; they must not be written while a save runs, which the
            // Python function documents (as torch.save and safetensors require too).
            Some((_, address, len)) => unsafe {
                std::slice::from_raw_parts(*address as *const u8, *len)
            },
        }
    }
}
