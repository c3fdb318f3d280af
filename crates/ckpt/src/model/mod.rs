//! The format-neutral model: what every reader produces and every writer consumes.
//!
//! A [`Checkpoint`] is an ordered tree of [`Value`]s (dicts, lists, plain values and
//! tensors) plus string metadata and the [`Format`](crate::Format) it was read from.
//! Tensors are [`TensorView`]s: a [`Dtype`], a shape and strides over bytes borrowed from
//! the source, usually a memory map, so reading a checkpoint copies no tensor data.

mod checkpoint;
mod dtype;
mod object;
pub mod shape;
mod tensor;
mod tiles;
mod value;

pub use checkpoint::{Checkpoint, Details, Kind, Tensors};
pub use dtype::{Dtype, DtypeClass, UnknownDtype};
pub use object::Object;
pub(crate) use object::children;
pub use tensor::{ByteOrder, Quantization, Storage, TensorView};
pub use tiles::Tile;
pub use value::{Dict, Value};
