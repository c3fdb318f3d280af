//! Writing safetensors files: plan the whole layout first, then stream the bytes.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;

use serde::Serialize;
use serde::ser::SerializeMap;

use super::header::METADATA_KEY;
use super::{LENGTH_LEN, MAX_HEADER_LEN, dtype_name, storable_dtypes};
use crate::cast::{CastView, TensorCast};
use crate::error::{Error, ErrorKind, Result};
use crate::model::{Dtype, TensorView};
use crate::progress::Progress;

/// The layout of a safetensors file, computed before any byte is written.
///
/// The layout is the one of HF's `safetensors.torch.save_file` (the reference crate's
/// `prepare`): tensors sorted by dtype (in the reference enum's order, descending), then by
/// name; data offsets back to back from 0; the header serialised compactly with
/// `__metadata__` first and padded with spaces to a multiple of 8 bytes. For the same
/// tensors and metadata (with at most one metadata key, since the reference's metadata
/// order is random beyond that) both write identical bytes. ckpt writes metadata keys in
/// sorted order, so its output is deterministic.
///
/// Empty metadata is written as no `__metadata__` key at all (the reference writes
/// `"__metadata__":{}` when given an empty dict): transformers refuses a file whose
/// `__metadata__` exists without a `format` key, and accepts one without metadata.
///
/// [`Plan::with_casts`] plans tensors cast to another dtype ([`CastView`]): the header gives
/// their new dtype and size, and [`Plan::write_to`] casts the data chunk by chunk.
#[derive(Debug)]
pub struct Plan<'a, 'data> {
    header: Vec<u8>,
    tensors: Vec<(&'a str, CastView<'a, 'data>)>,
    data_len: u64,
}

struct Placed<'a> {
    name: &'a str,
    dtype: &'static str,
    rank: usize,
    shape: Vec<usize>,
    nbytes: u64,
}

/// How a tensor is described in the header.
#[derive(Serialize)]
struct Info<'a> {
    dtype: &'static str,
    shape: &'a [usize],
    data_offsets: (u64, u64),
}

struct HeaderJson<'a, 'm> {
    metadata: &'m BTreeMap<String, String>,
    tensors: Vec<(&'a str, Info<'a>)>,
}

impl Serialize for HeaderJson<'_, '_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let with_metadata = !self.metadata.is_empty();
        let mut map =
            serializer.serialize_map(Some(self.tensors.len() + usize::from(with_metadata)))?;
        if with_metadata {
            map.serialize_entry(METADATA_KEY, self.metadata)?;
        }
        for (name, info) in &self.tensors {
            map.serialize_entry(name, info)?;
        }
        map.end()
    }
}

/// The safetensors dtype and shape for a tensor: torch's `float4_e2m1fn_x2` (two values a
/// byte) is stored as `F4` with its last dimension doubled, as `safetensors.torch` does.
fn layout(name: &str, view: &CastView<'_, '_>) -> Result<(&'static str, usize, Vec<usize>)> {
    let (dtype, shape) = match view.dtype() {
        Dtype::Float4E2M1FnX2 => {
            let mut shape = view.view().shape().to_vec();
            match shape.last_mut() {
                Some(last) => {
                    *last = last.checked_mul(2).ok_or_else(|| {
                        Error::invalid("shape is too large to double its last dimension")
                            .with_tensor(name)
                    })?;
                }
                None => {
                    return Err(Error::invalid(
                        "a 0-d float4_e2m1fn_x2 tensor cannot be stored in safetensors \
                         (it counts float4 values along the last dimension)",
                    )
                    .with_tensor(name));
                }
            }
            (Dtype::Float4E2M1Fn, shape)
        }
        other => (other, view.view().shape().to_vec()),
    };
    let (st_name, rank) = dtype_name(dtype).ok_or_else(|| {
        Error::invalid(format!("{dtype} tensors cannot be stored in safetensors"))
            .with_tensor(name)
            .with_hint(format!(
                "safetensors stores {}; keep this tensor in a PyTorch file",
                storable_dtypes()
            ))
    })?;
    Ok((st_name, rank, shape))
}

impl<'a, 'data> Plan<'a, 'data> {
    /// Lays out `tensors` (name, view) and string `metadata` as a safetensors file.
    ///
    /// Fails if two tensors have the same name, if a dtype cannot be stored in safetensors
    /// (`complex128`, quantized types...), or if the header would exceed
    /// [`MAX_HEADER_LEN`](super::MAX_HEADER_LEN).
    pub fn new(
        tensors: &'a [(String, &'a TensorView<'data>)],
        metadata: &BTreeMap<String, String>,
    ) -> Result<Self> {
        let entries = tensors
            .iter()
            .map(|(name, view)| (name.as_str(), CastView::unchanged(view)))
            .collect();
        Plan::build(entries, metadata)
    }

    /// Lays out tensors that may be cast to another dtype (see [`CastView`]): the header
    /// has each tensor's output dtype and size. Fails as [`Plan::new`] does.
    pub fn with_casts(
        tensors: &'a [(String, CastView<'a, 'data>)],
        metadata: &BTreeMap<String, String>,
    ) -> Result<Self> {
        let entries = tensors
            .iter()
            .map(|(name, view)| (name.as_str(), *view))
            .collect();
        Plan::build(entries, metadata)
    }

    fn build(
        tensors: Vec<(&'a str, CastView<'a, 'data>)>,
        metadata: &BTreeMap<String, String>,
    ) -> Result<Self> {
        let mut seen = HashSet::with_capacity(tensors.len());
        let mut placed = Vec::with_capacity(tensors.len());
        let unstorable: Vec<String> = tensors
            .iter()
            .filter(|(_, view)| {
                view.dtype() != Dtype::Float4E2M1FnX2 && dtype_name(view.dtype()).is_none()
            })
            .map(|(name, view)| format!("`{name}` ({})", view.dtype()))
            .collect();
        if !unstorable.is_empty() {
            let shown: Vec<&str> = unstorable.iter().take(10).map(String::as_str).collect();
            let more = unstorable.len().saturating_sub(shown.len());
            return Err(Error::invalid(format!(
                "{} tensor{} cannot be stored in safetensors, whose dtypes do not include theirs: {}{}",
                unstorable.len(),
                if unstorable.len() == 1 { "" } else { "s" },
                shown.join(", "),
                if more > 0 { format!(" and {more} more") } else { String::new() }
            ))
            .with_hint(format!(
                "safetensors stores {}; keep these tensors in a PyTorch file",
                storable_dtypes()
            )));
        }
        for (index, (name, view)) in tensors.iter().enumerate() {
            if !seen.insert(*name) {
                return Err(Error::invalid(
                    "two tensors have this name; a safetensors file holds each name once",
                )
                .with_tensor(*name));
            }
            let (dtype, rank, shape) = layout(name, view)?;
            view.view()
                .check_producible()
                .map_err(|e| e.with_tensor(*name))?;
            placed.push((
                index,
                Placed {
                    name,
                    dtype,
                    rank,
                    shape,
                    nbytes: view.nbytes() as u64,
                },
            ));
        }
        // The reference's order: dtype rank descending, then name ascending (bytewise).
        placed.sort_by(|(_, a), (_, b)| b.rank.cmp(&a.rank).then_with(|| a.name.cmp(b.name)));
        let mut offset = 0u64;
        let mut infos = Vec::with_capacity(placed.len());
        let mut order = Vec::with_capacity(placed.len());
        for (index, tensor) in &placed {
            let end = offset.checked_add(tensor.nbytes).ok_or_else(|| {
                Error::limit("the tensors would take more than 2^64 bytes").with_tensor(tensor.name)
            })?;
            infos.push((
                tensor.name,
                Info {
                    dtype: tensor.dtype,
                    shape: &tensor.shape,
                    data_offsets: (offset, end),
                },
            ));
            if let Some(entry) = tensors.get(*index) {
                order.push(*entry);
            }
            offset = end;
        }
        let json = HeaderJson {
            metadata,
            tensors: infos,
        };
        let mut header = serde_json::to_vec(&json)
            .map_err(|e| Error::invalid(format!("cannot serialise the header: {e}")))?;
        header.resize(header.len().next_multiple_of(LENGTH_LEN), b' ');
        if header.len() as u64 > MAX_HEADER_LEN {
            return Err(Error::limit(format!(
                "the header would take {} bytes, over the {MAX_HEADER_LEN}-byte limit of \
                 safetensors readers",
                header.len()
            ))
            .with_hint("split the checkpoint into shards or shorten the metadata"));
        }
        Ok(Plan {
            header,
            tensors: order,
            data_len: offset,
        })
    }

    /// The padded JSON header.
    pub fn header(&self) -> &[u8] {
        &self.header
    }

    /// The size of the whole file.
    pub fn file_len(&self) -> u64 {
        LENGTH_LEN as u64 + self.header.len() as u64 + self.data_len
    }

    /// Writes the file to `out`: the header, then each tensor's bytes in bounded chunks
    /// (memory use does not grow with the checkpoint), cast where planned. Reports every
    /// chunk to `progress` and stops with an
    /// [`ErrorKind::Interrupted`](crate::ErrorKind::Interrupted) error when it is cancelled.
    ///
    /// Returns what the casts did, one entry per cast tensor, in the file's order (empty
    /// when nothing was cast).
    pub fn write_to(
        &self,
        out: &mut dyn Write,
        progress: &dyn Progress,
    ) -> Result<Vec<TensorCast>> {
        let write_error = |e: std::io::Error| Error::from_io("failed to write", e);
        progress.start(self.file_len());
        out.write_all(&(self.header.len() as u64).to_le_bytes())
            .map_err(write_error)?;
        out.write_all(&self.header).map_err(write_error)?;
        progress.advance(LENGTH_LEN as u64 + self.header.len() as u64);
        let mut casts = Vec::new();
        for (name, view) in &self.tensors {
            let stats = view
                .for_each_chunk(|chunk| {
                    if progress.is_cancelled() {
                        return Err(Error::interrupted());
                    }
                    out.write_all(chunk).map_err(write_error)?;
                    progress.advance(chunk.len() as u64);
                    Ok(())
                })
                .map_err(|e| match e.kind() {
                    ErrorKind::Io | ErrorKind::Interrupted => e,
                    _ => e.with_tensor(*name),
                })?;
            if let Some(stats) = stats {
                casts.push(TensorCast {
                    name: (*name).to_owned(),
                    from: view.view().dtype(),
                    to: view.dtype(),
                    stats,
                });
            }
        }
        Ok(casts)
    }
}
