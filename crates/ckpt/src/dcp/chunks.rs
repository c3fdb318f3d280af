//! Every item's bytes, found in the opened files and checked: the place the metadata gives
//! must lie inside its `.distcp` file, and a tensor chunk's `torch.save` archive there must
//! hold a tensor of the chunk's sizes and the tensor's dtype.

use std::collections::HashMap;
use std::sync::Arc;

use super::metadata::{Chunk, Metadata, Place};
use crate::error::{Error, Result};
use crate::model::{Dtype, TensorView, Tile, Value};
use crate::source::Member;

/// The opened files of a folder, found by the index a [`Place`] gives them.
pub(super) struct Files<'m, 'a> {
    metadata: &'m Metadata,
    by_name: HashMap<&'a str, Member<'a>>,
}

impl<'m, 'a> Files<'m, 'a> {
    /// `members` holds the files `metadata` names (each once), each looked up by name.
    pub(super) fn new(metadata: &'m Metadata, members: &[Member<'a>]) -> Self {
        let by_name = members.iter().map(|m| (&**m.name(), *m)).collect();
        Files { metadata, by_name }
    }

    /// The opened file that holds a place.
    pub(super) fn of(&self, place: &Place) -> Result<Member<'a>> {
        self.metadata
            .files
            .get(place.file)
            .and_then(|name| self.by_name.get(name.as_str()).copied())
            .ok_or_else(|| Error::malformed("an item's file was not opened"))
    }
}

/// Where an item is, as errors and audits name it: `__0_0.distcp at byte 640`.
pub(super) fn label(file: Member<'_>, place: &Place) -> String {
    format!("{} at byte {}", file.name(), place.offset)
}

/// The bytes of an item, checked to lie inside its file.
pub(super) fn slice<'a>(file: Member<'a>, place: &Place) -> Result<&'a [u8]> {
    let bytes = file.bytes();
    let end = place.offset.checked_add(place.length);
    let range = match end {
        Some(end) if end <= bytes.len() as u64 => usize::try_from(place.offset)
            .ok()
            .zip(usize::try_from(end).ok()),
        _ => None,
    };
    range
        .and_then(|(start, end)| bytes.get(start..end))
        .ok_or_else(|| {
            Error::malformed(format!(
                "the metadata puts an item at bytes {}..+{} of `{}`, which is {} bytes long",
                place.offset,
                place.length,
                file.name(),
                bytes.len()
            ))
            .with_member(file.name().to_string())
        })
}

/// The tile of one chunk of `file`: its offsets in the whole tensor, and the tensor of its
/// archive (see [`chunk_view`]).
pub(super) fn tile<'a>(file: Member<'a>, chunk: &Chunk, dtype: Dtype) -> Result<Tile<'a>> {
    Ok(Tile::new(
        chunk.offsets.clone(),
        chunk_view(file, chunk, dtype)?,
    ))
}

/// The tensor of one chunk: the `torch.save` archive at its place, holding a tensor of the
/// chunk's sizes and the tensor's dtype.
fn chunk_view<'a>(file: Member<'a>, chunk: &Chunk, dtype: Dtype) -> Result<TensorView<'a>> {
    let bytes = slice(file, &chunk.place)?;
    let name: Arc<str> = file.name().clone();
    let at = |e: Error| e.with_member(label(file, &chunk.place));
    let saved = crate::torch::read_zip(bytes).map_err(at)?;
    let Value::Tensor(view) = saved.root() else {
        return Err(at(Error::malformed(format!(
            "the chunk at offsets {:?} does not hold a tensor",
            chunk.offsets
        ))));
    };
    if view.dtype() != dtype || view.shape() != chunk.sizes.as_slice() {
        return Err(at(Error::malformed(format!(
            "the chunk at offsets {:?} holds a {} tensor of shape {:?}, but the metadata says \
             {dtype} of shape {:?}",
            chunk.offsets,
            view.dtype(),
            view.shape(),
            chunk.sizes
        ))));
    }
    Ok(view.clone().in_file(name, chunk.place.offset))
}
