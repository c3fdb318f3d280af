//! Content hashes of tensors.

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::model::TensorView;
use crate::progress::Progress;

/// The SHA-256 of each tensor's elements as packed row-major little-endian bytes (see
/// [`TensorView::sha256`]), computed on all cores. `progress` hears about every chunk and
/// can cancel the work.
pub fn sha256_all(views: &[&TensorView<'_>], progress: &dyn Progress) -> Result<Vec<[u8; 32]>> {
    progress.start(views.iter().map(|v| v.nbytes() as u64).sum());
    views
        .par_iter()
        .map(|view| {
            let mut hasher = Sha256::new();
            view.for_each_chunk(|chunk| {
                if progress.is_cancelled() {
                    return Err(Error::interrupted());
                }
                hasher.update(chunk);
                progress.advance(chunk.len() as u64);
                Ok(())
            })?;
            Ok(hasher.finalize().into())
        })
        .collect()
}
