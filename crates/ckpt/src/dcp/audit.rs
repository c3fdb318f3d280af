//! A DCP folder checked item by item, as [`checkpoint`] reads it, going on after each error:
//! what `verify` reports, and where `scan` finds the archives of a `.distcp` file.

use std::path::Path;

use super::chunks::{self, Files};
use super::metadata::{Item, Metadata, Place};
use super::state_dict::checkpoint;
use crate::error::{Error, Result};
use crate::limits::Limits;
use crate::model::TensorView;
use crate::source::Member;

/// What [`Audit::of`] finds: every error item by item, and the `torch.save` archive of every
/// chunk and bytes item that lies inside its file, by where it is (`__0_0.distcp at byte
/// 640`), for a caller to verify as a file of its own.
pub(crate) struct Audit<'a> {
    pub(crate) errors: Vec<Error>,
    /// Each archive: where it is (`__0_0.distcp at byte 640`), its file, its offset in the
    /// file, and its bytes.
    pub(crate) archives: Vec<(String, String, u64, &'a [u8])>,
}

impl<'a> Audit<'a> {
    /// Keeps the archive at `place` of `file` when it lies inside the file.
    fn archive(&mut self, file: Member<'a>, place: &Place) -> Result<()> {
        let bytes = chunks::slice(file, place)?;
        self.archives.push((
            chunks::label(file, place),
            file.name().to_string(),
            place.offset,
            bytes,
        ));
        Ok(())
    }

    /// Checks every item of the folder as [`checkpoint`] reads it, but goes on after an
    /// error: each chunk's place, archive, dtype and shape, and each tensor's tiling. When no
    /// item is wrong, the state dict is assembled too (`planner_data` paths).
    pub(crate) fn of(metadata: &Metadata, metadata_path: &Path, files: &[Member<'a>]) -> Self {
        let opened = Files::new(metadata, files);
        let mut audit = Audit {
            errors: Vec::new(),
            archives: Vec::new(),
        };
        for entry in &metadata.entries {
            let located = |e: Error| e.with_path(metadata_path).with_tensor(entry.fqn.clone());
            match &entry.item {
                Item::Tensor {
                    dtype,
                    size,
                    chunks,
                } => {
                    let mut tiles = Vec::with_capacity(chunks.len());
                    for chunk in chunks {
                        let file = match opened.of(&chunk.place) {
                            Ok(file) => file,
                            Err(e) => {
                                audit.errors.push(located(e));
                                continue;
                            }
                        };
                        // A chunk outside its file is the error of `tile`, below.
                        let _ = audit.archive(file, &chunk.place);
                        match chunks::tile(file, chunk, *dtype) {
                            Ok(tile) => tiles.push(tile),
                            Err(e) => audit.errors.push(located(e)),
                        }
                    }
                    if tiles.len() == chunks.len()
                        && let Err(e) = TensorView::tiled(*dtype, size.clone(), tiles)
                    {
                        audit.errors.push(located(e.with_member(".metadata")));
                    }
                }
                Item::Bytes(place) => {
                    if let Err(e) = opened.of(place).and_then(|file| audit.archive(file, place)) {
                        audit.errors.push(located(e));
                    }
                }
            }
        }
        if audit.errors.is_empty()
            && let Err(e) = checkpoint(metadata, metadata_path, files, &Limits::default())
        {
            audit.errors.push(e);
        }
        audit
    }
}
