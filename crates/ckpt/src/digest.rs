//! Content hashes of tensors.

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::model::TensorView;
use crate::progress::Progress;

/// The SHA-256 of each named tensor's elements as packed row-major little-endian bytes
/// (see [`TensorView::sha256`]), computed on all cores, in the order given. `progress`
/// hears about every chunk and can cancel the work. Errors name the tensor.
pub fn sha256_all(
    tensors: &[(String, &TensorView<'_>)],
    progress: &dyn Progress,
) -> Result<Vec<[u8; 32]>> {
    progress.start(tensors.iter().map(|(_, v)| v.nbytes() as u64).sum());
    tensors
        .par_iter()
        .map(|(name, view)| {
            let mut hasher = Sha256::new();
            view.for_each_chunk(|chunk| {
                if progress.is_cancelled() {
                    return Err(Error::interrupted());
                }
                hasher.update(chunk);
                progress.advance(chunk.len() as u64);
                Ok(())
            })
            .map_err(|e| e.with_tensor(name.clone()))?;
            Ok(hasher.finalize().into())
        })
        .collect()
}

/// Lowercase hexadecimal, two digits a byte.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
