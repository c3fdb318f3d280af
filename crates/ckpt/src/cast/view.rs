//! A tensor as a writer sees it after an optional cast: its output dtype and size, and its
//! output bytes chunk by chunk. Every writer (safetensors, PyTorch) takes these instead of
//! plain [`TensorView`]s to support `--dtype`.

use super::{Cast, CastStats, TARGETS, applies};
use crate::error::{Error, Result};
use crate::model::{Dtype, TensorView};

/// A tensor to be written, cast to another dtype or kept as it is.
///
/// [`CastView::new`] decides: floating tensors ([`applies`]) of another dtype than the target
/// are cast; every other tensor, and every tensor already of the target dtype (torch's
/// `tensor.to(tensor.dtype)` is the tensor itself), is written unchanged, byte for byte.
///
/// ```
/// use ckpt::cast::CastView;
/// use ckpt::model::{ByteOrder, Storage};
/// use ckpt::{Dtype, TensorView};
///
/// let bytes: Vec<u8> = [1.5f32, -2.0].iter().flat_map(|x| x.to_le_bytes()).collect();
/// let view = TensorView::contiguous(Dtype::Float32, vec![2], Storage::new(&bytes, ByteOrder::Little))?;
/// let cast = CastView::new(&view, Some(Dtype::BFloat16))?;
/// assert_eq!((cast.dtype(), cast.nbytes()), (Dtype::BFloat16, 4));
/// let mut out = Vec::new();
/// let stats = cast.for_each_chunk(|chunk| {
///     out.extend_from_slice(chunk);
///     Ok(())
/// })?;
/// assert_eq!(out, [0xC0, 0x3F, 0x00, 0xC0]);
/// assert_eq!(stats.map(|s| s.elements), Some(2));
/// # Ok::<(), ckpt::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct CastView<'v, 'data> {
    view: &'v TensorView<'data>,
    cast: Option<Cast>,
    nbytes: usize,
}

impl<'v, 'data> CastView<'v, 'data> {
    /// `view` as written when converting to `dtype` (`None`: no cast, every tensor kept).
    ///
    /// Fails when `dtype` is not one of [`TARGETS`](super::TARGETS), or the cast tensor
    /// would not fit in memory's address space.
    pub fn new(view: &'v TensorView<'data>, dtype: Option<Dtype>) -> Result<Self> {
        let cast = match dtype {
            Some(to) => {
                let cast = Cast::new(view.dtype(), to);
                match cast {
                    Ok(cast) if !cast.is_identity() => Some(cast),
                    Ok(_) => None,
                    // Not a floating tensor: kept as it is. A bad target is an error.
                    Err(_) if !applies(view.dtype()) && TARGETS.contains(&to) => None,
                    Err(e) => return Err(e),
                }
            }
            None => None,
        };
        let nbytes = match cast {
            Some(cast) => cast.output_len(view.nbytes())?,
            None => view.nbytes(),
        };
        Ok(CastView { view, cast, nbytes })
    }

    /// `view` cast by `cast`, which must be a cast from its dtype.
    pub fn with_cast(view: &'v TensorView<'data>, cast: Cast) -> Result<Self> {
        if cast.from() != view.dtype() {
            return Err(Error::invalid(format!(
                "a cast from {} applied to a {} tensor (a bug in ckpt)",
                cast.from(),
                view.dtype()
            )));
        }
        let nbytes = cast.output_len(view.nbytes())?;
        Ok(CastView {
            view,
            cast: (!cast.is_identity()).then_some(cast),
            nbytes,
        })
    }

    /// A view written as it is.
    pub fn unchanged(view: &'v TensorView<'data>) -> Self {
        CastView {
            view,
            cast: None,
            nbytes: view.nbytes(),
        }
    }

    /// The tensor read.
    pub fn view(&self) -> &'v TensorView<'data> {
        self.view
    }

    /// The cast applied, if any.
    pub fn cast(&self) -> Option<Cast> {
        self.cast
    }

    /// The dtype written.
    pub fn dtype(&self) -> Dtype {
        self.cast.map_or_else(|| self.view.dtype(), |c| c.to())
    }

    /// The number of bytes written: the elements, packed, in the output dtype.
    pub fn nbytes(&self) -> usize {
        self.nbytes
    }

    /// Hands the output elements to `emit` as packed row-major little-endian bytes, a
    /// bounded chunk at a time (a cast chunk is at most 8 times a chunk of
    /// [`TensorView::for_each_chunk`], whose pieces it casts one by one, on all cores).
    /// Returns what the cast did to the values, or `None` when the tensor is not cast.
    ///
    /// Without a cast the bytes are the view's own chunks (slices of the input's memory map
    /// for dense data, which [`FileSink`](crate::output::FileSink) copies in the kernel).
    pub fn for_each_chunk(
        &self,
        mut emit: impl FnMut(&[u8]) -> Result<()>,
    ) -> Result<Option<CastStats>> {
        let Some(cast) = self.cast else {
            self.view.for_each_chunk(emit)?;
            return Ok(None);
        };
        let mut stats = CastStats::default();
        let mut buffer = Vec::new();
        self.view.for_each_chunk(|chunk| {
            // Chunks are mostly of one size: the buffer is zeroed once, then overwritten.
            buffer.resize(cast.output_len(chunk.len())?, 0);
            cast.apply_to_slice(chunk, &mut buffer, &mut stats)?;
            emit(&buffer)
        })?;
        if stats.elements != self.view.numel() as u64 {
            return Err(Error::invalid(format!(
                "cast {} of {} elements",
                stats.elements,
                self.view.numel()
            )));
        }
        Ok(Some(stats))
    }
}

/// Every tensor of `tensors` as written when converting to `dtype` (see [`CastView::new`]),
/// in the same order, with the same names. Errors name the tensor.
///
/// This is the step every writer runs before planning its file: the views give each
/// tensor's output dtype ([`CastView::dtype`]) and size ([`CastView::nbytes`]), and produce
/// its bytes chunk by chunk ([`CastView::for_each_chunk`]).
pub fn cast_all<'v, 'data>(
    tensors: &[(String, &'v TensorView<'data>)],
    dtype: Option<Dtype>,
) -> Result<Vec<(String, CastView<'v, 'data>)>> {
    if let Some(to) = dtype
        && !TARGETS.contains(&to)
    {
        return Err(Error::unsupported(format!("cannot cast to {to}"))
            .with_hint(format!("ckpt casts to {}", super::names(TARGETS))));
    }
    tensors
        .iter()
        .map(|(name, view)| {
            let cast = CastView::new(view, dtype).map_err(|e| e.with_tensor(name.clone()))?;
            Ok((name.clone(), cast))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ByteOrder, Storage};

    fn collect(view: &CastView<'_, '_>) -> (Vec<u8>, Option<CastStats>) {
        let mut out = Vec::new();
        let stats = view
            .for_each_chunk(|chunk| {
                out.extend_from_slice(chunk);
                Ok(())
            })
            .unwrap();
        (out, stats)
    }

    /// A transposed big-endian view is cast as its packed little-endian elements are.
    #[test]
    fn strided_big_endian_views_cast_their_elements() {
        let (rows, cols) = (300usize, 700usize);
        let values: Vec<f32> = (0..rows * cols).map(|i| i as f32 * 1.37 - 9e4).collect();
        let big_endian: Vec<u8> = values.iter().flat_map(|v| v.to_be_bytes()).collect();
        // The transpose: element [c, r] is values[r * cols + c].
        let view = TensorView::strided(
            Dtype::Float32,
            vec![cols, rows],
            vec![1, cols],
            0,
            Storage::new(&big_endian, ByteOrder::Big),
        )
        .unwrap();
        let packed: Vec<u8> = (0..cols)
            .flat_map(|c| (0..rows).map(move |r| (r, c)))
            .flat_map(|(r, c)| values[r * cols + c].to_le_bytes())
            .collect();
        for to in TARGETS.iter().copied().filter(|&t| t != Dtype::Float32) {
            let cast = Cast::new(Dtype::Float32, to).unwrap();
            let mut want = Vec::new();
            let mut want_stats = CastStats::default();
            cast.apply(&packed, &mut want, &mut want_stats).unwrap();
            let cast_view = CastView::new(&view, Some(to)).unwrap();
            assert_eq!(cast_view.nbytes(), want.len());
            let (got, stats) = collect(&cast_view);
            assert!(got == want, "{to}");
            assert_eq!(stats, Some(want_stats), "{to}");
        }
        // float32 to float32 is no cast: the bytes are the view's own.
        let same = CastView::new(&view, Some(Dtype::Float32)).unwrap();
        assert!(same.cast().is_none());
        assert_eq!(collect(&same), (packed, None));
    }

    #[test]
    fn other_tensors_are_kept() {
        let bytes = [1u8, 0, 0, 0, 2, 0, 0, 0];
        for dtype in [Dtype::Int32, Dtype::Complex32, Dtype::UInt8] {
            let view = TensorView::contiguous(
                dtype,
                vec![8 / dtype.byte_size().unwrap()],
                Storage::new(&bytes, ByteOrder::Little),
            )
            .unwrap();
            let kept = CastView::new(&view, Some(Dtype::BFloat16)).unwrap();
            assert_eq!((kept.dtype(), kept.nbytes()), (dtype, 8));
            assert_eq!(collect(&kept), (bytes.to_vec(), None));
        }
        let view = TensorView::contiguous(
            Dtype::Int8,
            vec![8],
            Storage::new(&bytes, ByteOrder::Little),
        )
        .unwrap();
        assert!(CastView::new(&view, Some(Dtype::Int16)).is_err());
    }
}
