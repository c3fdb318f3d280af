//! Tensors assembled from tiles: the chunks of a sharded save (`torch.distributed.checkpoint`
//! with FSDP or tensor parallelism), each a view of its own storage, placed at an offset in
//! the whole tensor.
//!
//! Nothing is concatenated: a tiled [`TensorView`] keeps its tiles, and hands out the whole
//! tensor's elements in row-major order by walking a plan computed once, when the tiling is
//! checked. The plan splits the tensor along its first dimension at every tile boundary, then
//! each piece along the next dimension, until a piece lies in one tile and spans that tile's
//! full extent in every later dimension: such a piece is one strided block of the tile, read
//! as it is. Building the plan is also the proof that the tiles cover the tensor exactly: a
//! piece that no tile covers is a gap, and two tiles meeting in a piece overlap.

use std::sync::Arc;

use super::{Dtype, TensorView};
use crate::error::{Error, Result};
use crate::limits::Limits;

/// The size of the pieces in which a tiled tensor's bytes are handed out.
const CHUNK_LEN: usize = 1 << 20;

/// One piece of a tiled tensor: a view placed at `offsets` (in elements, one per dimension)
/// in the whole tensor.
#[derive(Debug, Clone)]
pub struct Tile<'data> {
    offsets: Vec<usize>,
    view: TensorView<'data>,
}

impl<'data> Tile<'data> {
    /// A tile holding `view`, whose first element is at `offsets` in the whole tensor.
    pub fn new(offsets: Vec<usize>, view: TensorView<'data>) -> Self {
        Tile { offsets, view }
    }

    /// Where the tile starts in the whole tensor, per dimension.
    pub fn offsets(&self) -> &[usize] {
        &self.offsets
    }

    /// The tile's elements.
    pub fn view(&self) -> &TensorView<'data> {
        &self.view
    }

    fn end(&self, dim: usize) -> usize {
        let start = self.offsets.get(dim).copied().unwrap_or(0);
        start + self.view.shape().get(dim).copied().unwrap_or(0)
    }

    fn start(&self, dim: usize) -> usize {
        self.offsets.get(dim).copied().unwrap_or(0)
    }
}

/// The tiles of a tensor, checked to cover it exactly, and the plan to read them in order.
#[derive(Debug)]
pub(crate) struct Tiling<'data> {
    tiles: Vec<Tile<'data>>,
    plan: Plan,
}

#[derive(Debug)]
enum Plan {
    /// The tensor has no elements.
    Empty,
    /// One tile is the whole tensor (a 0-d tensor).
    Whole(usize),
    /// Pieces along the first dimension.
    Split(Node),
}

/// Pieces along one dimension, in order, covering it.
#[derive(Debug)]
struct Node {
    pieces: Vec<Piece>,
}

#[derive(Debug)]
struct Piece {
    start: usize,
    end: usize,
    within: Within,
}

#[derive(Debug)]
enum Within {
    /// For every index of the piece, the rest of the tensor lies in this tile, which spans
    /// its full extent in every later dimension: one strided block per piece.
    Tile(usize),
    /// For every index of the piece, these pieces along the next dimension.
    Split(Node),
}

impl<'data> Tiling<'data> {
    /// Checks that `tiles` (of `dtype`) cover a tensor of `shape` exactly, and plans reading
    /// them.
    /// Checking costs up to the square of the number of tiles, which `limits.tiles`
    /// bounds (real sharded saves have one tile per rank: a few thousand at most).
    pub(crate) fn new(
        dtype: Dtype,
        shape: &[usize],
        tiles: Vec<Tile<'data>>,
        limits: &Limits,
    ) -> Result<Self> {
        if tiles.len() > limits.tiles {
            return Err(crate::limits::exceeded(
                "tiles",
                limits.tiles as u64,
                format_args!("the tensor is stored in {} chunks", tiles.len()),
            ));
        }
        if shape.len() > limits.rank {
            return Err(crate::limits::exceeded(
                "rank",
                limits.rank as u64,
                format_args!(
                    "a tensor assembled from chunks has {} dimensions",
                    shape.len()
                ),
            ));
        }
        if dtype.byte_size().is_none() {
            return Err(Error::unsupported(format!(
                "a {dtype} tensor stored in chunks cannot be assembled (its elements are smaller than a byte)"
            )));
        }
        for tile in &tiles {
            check_tile(dtype, shape, tile)?;
        }
        let numel = super::shape::numel(shape)
            .map_err(|_| Error::malformed(format!("shape {shape:?} is too large to be real")))?;
        let plan = if numel == 0 {
            Plan::Empty
        } else {
            // Tiles without elements hold nothing to read (a rank's empty shard).
            let ids: Vec<usize> = (0..tiles.len())
                .filter(|&i| tiles.get(i).is_some_and(|t| t.view.numel() > 0))
                .collect();
            if shape.is_empty() {
                match ids.as_slice() {
                    [id] => Plan::Whole(*id),
                    [] => return Err(Error::malformed("no chunk holds the 0-d tensor's value")),
                    _ => {
                        return Err(Error::malformed(
                            "several chunks hold the 0-d tensor's value",
                        ));
                    }
                }
            } else {
                let mut region = Vec::with_capacity(shape.len());
                Plan::Split(plan_node(shape, &tiles, 0, &ids, &mut region)?)
            }
        };
        Ok(Tiling { tiles, plan })
    }

    /// The tiles, in the order given.
    pub(crate) fn tiles(&self) -> &[Tile<'data>] {
        &self.tiles
    }

    /// The tiles of the elements `start..start + len` along `dim`: each tile that holds
    /// some of them, narrowed to those, at its offset in the narrowed tensor.
    pub(crate) fn narrow(&self, dim: usize, start: usize, len: usize) -> Result<Vec<Tile<'data>>> {
        let end = start + len;
        let mut tiles = Vec::new();
        for tile in &self.tiles {
            let (from, to) = (tile.start(dim).max(start), tile.end(dim).min(end));
            if from >= to || tile.view.numel() == 0 {
                continue;
            }
            let view = tile.view.narrow(dim, from - tile.start(dim), to - from)?;
            let mut offsets = tile.offsets.clone();
            if let Some(offset) = offsets.get_mut(dim) {
                *offset = from - start;
            }
            tiles.push(Tile::new(offsets, view));
        }
        Ok(tiles)
    }

    /// Hands the elements of the whole tensor to `emit`, row-major, packed little-endian, in
    /// pieces of about 1 MiB at most; memory use does not grow with the tensor.
    pub(crate) fn for_each_chunk(
        &self,
        nbytes: usize,
        emit: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        let mut sink = Sink {
            buffer: Vec::with_capacity(CHUNK_LEN.min(nbytes)),
            emit,
        };
        match &self.plan {
            Plan::Empty => {}
            Plan::Whole(id) => {
                if let Some(tile) = self.tiles.get(*id) {
                    tile.view.for_each_chunk(|bytes| sink.push(bytes))?;
                }
            }
            Plan::Split(node) => {
                let mut prefix = Vec::new();
                self.walk(node, 0, &mut prefix, &mut sink)?;
            }
        }
        sink.finish()
    }

    fn walk(
        &self,
        node: &Node,
        dim: usize,
        prefix: &mut Vec<usize>,
        sink: &mut Sink<'_>,
    ) -> Result<()> {
        for piece in &node.pieces {
            match &piece.within {
                Within::Tile(id) => self.block(*id, dim, prefix, piece, sink)?,
                Within::Split(inner) => {
                    for index in piece.start..piece.end {
                        prefix.push(index);
                        let result = self.walk(inner, dim + 1, prefix, sink);
                        prefix.pop();
                        result?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Emits the block of tile `id` at `prefix` (the indices of the dimensions before `dim`),
    /// from `piece.start` to `piece.end` along `dim`, and whole along the later dimensions.
    fn block(
        &self,
        id: usize,
        dim: usize,
        prefix: &[usize],
        piece: &Piece,
        sink: &mut Sink<'_>,
    ) -> Result<()> {
        let Some(tile) = self.tiles.get(id) else {
            return Ok(());
        };
        let view = &tile.view;
        if dim == 0 && piece.start == tile.start(0) && piece.end == tile.end(0) {
            return view.for_each_chunk(|bytes| sink.push(bytes));
        }
        let strides = view.strides();
        let mut offset = view.storage_offset();
        for ((&index, &start), &stride) in prefix.iter().zip(&tile.offsets).zip(strides) {
            offset += (index - start) * stride;
        }
        let stride = strides.get(dim).copied().unwrap_or(0);
        offset += (piece.start - tile.start(dim)) * stride;
        let mut shape = vec![piece.end - piece.start];
        shape.extend_from_slice(view.shape().get(dim + 1..).unwrap_or_default());
        let sub = TensorView::strided(
            view.dtype(),
            shape,
            strides.get(dim..).unwrap_or_default().to_vec(),
            offset,
            view.storage().clone(),
        )?
        .with_conj(view.is_conj())
        .with_neg(view.is_neg());
        sub.for_each_chunk(|bytes| sink.push(bytes))
    }
}

/// Checks one tile against the whole tensor: same dtype and rank, inside its bounds, and a
/// plain view (no quantization).
fn check_tile(dtype: Dtype, shape: &[usize], tile: &Tile<'_>) -> Result<()> {
    let view = &tile.view;
    if view.dtype() != dtype {
        return Err(Error::malformed(format!(
            "the chunk at offsets {:?} holds {} elements, but the tensor is {dtype}",
            tile.offsets,
            view.dtype()
        )));
    }
    if view.quantization().is_some() || view.tiles().is_some() {
        return Err(Error::unsupported(format!(
            "the chunk at offsets {:?} is a quantized or assembled tensor, which ckpt cannot \
             place in a larger one",
            tile.offsets
        )));
    }
    if tile.offsets.len() != shape.len() || view.shape().len() != shape.len() {
        return Err(Error::malformed(format!(
            "the chunk at offsets {:?} with shape {:?} does not have the {} dimensions of the \
             tensor's shape {shape:?}",
            tile.offsets,
            view.shape(),
            shape.len()
        )));
    }
    for ((&start, &size), &dim) in tile.offsets.iter().zip(view.shape()).zip(shape) {
        if start.checked_add(size).is_none_or(|end| end > dim) {
            return Err(Error::malformed(format!(
                "the chunk at offsets {:?} with shape {:?} reaches past the tensor's shape \
                 {shape:?}",
                tile.offsets,
                view.shape()
            )));
        }
    }
    Ok(())
}

/// Plans dimension `dim` for the tiles `ids`, which all contain the region of the earlier
/// dimensions (`region`, for messages), and must cover the rest of the tensor exactly.
fn plan_node(
    shape: &[usize],
    tiles: &[Tile<'_>],
    dim: usize,
    ids: &[usize],
    region: &mut Vec<(usize, usize)>,
) -> Result<Node> {
    let size = shape.get(dim).copied().unwrap_or(0);
    let tile = |id: usize| tiles.get(id);
    let mut cuts: Vec<usize> = vec![0, size];
    for &id in ids {
        if let Some(t) = tile(id) {
            cuts.push(t.start(dim));
            cuts.push(t.end(dim));
        }
    }
    cuts.sort_unstable();
    cuts.dedup();
    let last = dim + 1 == shape.len();
    let mut pieces = Vec::with_capacity(cuts.len());
    for window in cuts.windows(2) {
        let &[start, end] = window else { continue };
        let inside: Vec<usize> = ids
            .iter()
            .copied()
            .filter(|&id| tile(id).is_some_and(|t| t.start(dim) <= start && start < t.end(dim)))
            .collect();
        region.push((start, end));
        let within = match inside.as_slice() {
            [] => {
                return Err(Error::malformed(format!(
                    "the chunks leave a gap: no chunk holds the elements {}",
                    describe(region, shape)
                )));
            }
            [id] if covers_rest(tile(*id), shape, dim) => Within::Tile(*id),
            [a, b, ..] if last => {
                let offsets = |id: usize| tile(id).map(|t| t.offsets.clone()).unwrap_or_default();
                return Err(Error::malformed(format!(
                    "the chunks at offsets {:?} and {:?} overlap: both hold the elements {}",
                    offsets(*a),
                    offsets(*b),
                    describe(region, shape)
                )));
            }
            _ => Within::Split(plan_node(shape, tiles, dim + 1, &inside, region)?),
        };
        region.pop();
        pieces.push(Piece { start, end, within });
    }
    Ok(Node { pieces })
}

/// Whether `tile` spans the tensor's full extent in every dimension after `dim`.
fn covers_rest(tile: Option<&Tile<'_>>, shape: &[usize], dim: usize) -> bool {
    tile.is_some_and(|t| {
        (dim + 1..shape.len()).all(|k| t.start(k) == 0 && Some(t.end(k)) == shape.get(k).copied())
    })
}

/// `[a:b, c:d, :]`: the region, in Python slice notation, whole in the later dimensions.
fn describe(region: &[(usize, usize)], shape: &[usize]) -> String {
    let parts: Vec<String> = (0..shape.len())
        .map(|k| match region.get(k) {
            Some((a, b)) if b - a == 1 => a.to_string(),
            Some((a, b)) => format!("{a}:{b}"),
            None => ":".to_owned(),
        })
        .collect();
    format!("[{}]", parts.join(", "))
}

/// Gathers small pieces into buffers of about [`CHUNK_LEN`]; large ones pass through.
struct Sink<'e> {
    buffer: Vec<u8>,
    emit: &'e mut dyn FnMut(&[u8]) -> Result<()>,
}

impl Sink<'_> {
    fn push(&mut self, bytes: &[u8]) -> Result<()> {
        if bytes.len() >= CHUNK_LEN {
            self.flush()?;
            return (self.emit)(bytes);
        }
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= CHUNK_LEN {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if !self.buffer.is_empty() {
            (self.emit)(&self.buffer)?;
            self.buffer.clear();
        }
        Ok(())
    }

    fn finish(mut self) -> Result<()> {
        self.flush()
    }
}

/// A tiling shared by the clones of a view.
pub(crate) type SharedTiling<'data> = Arc<Tiling<'data>>;
