//! ckpt reads, writes, converts and inspects machine-learning checkpoints (PyTorch and
//! safetensors files) without Python and without ever running code from them.
//!
//! # Layers
//!
//! ```text
//!  Source::open(path)          the edge: opens and memory-maps a file (the only I/O on input)
//!        │ &[u8]
//!  format::detect(bytes)       what is this file? (by content, never by name)
//!        │ Format
//!  safetensors::read(bytes)    one folder per format: parse → validate → interpret
//!        │ Checkpoint<'data>   format-neutral model; tensors borrow the mapped bytes
//!  safetensors::Plan           writers: plan the layout, then stream bytes
//!        │
//!  output::AtomicOutput        the edge again: temp file, fsync, rename
//! ```
//!
//! # Example
//!
//! ```
//! use std::collections::BTreeMap;
//! use ckpt::model::{ByteOrder, Dtype, Storage, TensorView};
//!
//! // Write a one-tensor safetensors file in memory...
//! let data: Vec<u8> = [1.0f32, 2.0, 3.0].iter().flat_map(|x| x.to_le_bytes()).collect();
//! let view = TensorView::contiguous(Dtype::Float32, vec![3], Storage::new(&data, ByteOrder::Little))?;
//! let tensors = vec![("w".to_string(), &view)];
//! let metadata = BTreeMap::from([("format".to_string(), "pt".to_string())]);
//! let plan = ckpt::safetensors::Plan::new(&tensors, &metadata)?;
//! let mut file = Vec::new();
//! plan.write_to(&mut file, &())?;
//!
//! // ...and read it back: the format is detected from the bytes, the tensor borrows them.
//! let checkpoint = ckpt::read(&file)?;
//! assert_eq!(checkpoint.format(), ckpt::Format::Safetensors);
//! let tensors = checkpoint.tensors();
//! let (name, w) = &tensors[0];
//! assert_eq!((name.as_str(), w.dtype(), w.shape()), ("w", Dtype::Float32, &[3][..]));
//! assert_eq!(w.data(), Some(&data[..]));
//! # Ok::<(), ckpt::Error>(())
//! ```

pub mod cast;
pub mod convert;
mod dcp;
pub mod diff;
mod digest;
mod error;
pub mod format;
mod hf;
mod input;
pub mod inspect;
mod joblib;
pub mod limits;
pub mod model;
pub mod npy;
pub mod output;
mod progress;
pub mod safetensors;
pub mod scan;
mod size;
mod source;
pub mod stats;
pub mod torch;
pub mod verify;
mod walk;

pub use convert::{ConvertOptions, Converted, KeyMap, Target, convert, write};
pub use digest::sha256_all;
pub use error::{Error, ErrorKind, Location, Result};
pub use format::{Format, detect};
pub use limits::Limits;
pub use model::{Checkpoint, Details, Dtype, Kind, TensorView, Value};
pub use progress::Progress;
pub use source::{Access, Source, Stored};

/// The safe pickle reader ckpt uses, re-exported for listings and scanners.
pub use ckpt_pickle as pickle;

/// Reads the checkpoint held in `bytes`, whatever its format; its tensors borrow `bytes`.
///
/// The format is detected from the content ([`detect`]). Formats that ckpt recognises but
/// does not read yet give an [`ErrorKind::Unsupported`] error.
pub fn read(bytes: &[u8]) -> Result<Checkpoint<'_>> {
    read_with(bytes, &Limits::default())
}

/// [`read`] within `limits` (see [`limits`]).
pub fn read_with<'data>(bytes: &'data [u8], limits: &Limits) -> Result<Checkpoint<'data>> {
    read_from(bytes, None, limits)
}

/// [`read_with`] of the bytes of `file` (mapped), which readers may also read at offsets
/// (see `Source::checkpoint`).
pub(crate) fn read_from<'data>(
    bytes: &'data [u8],
    file: Option<&'data std::fs::File>,
    limits: &Limits,
) -> Result<Checkpoint<'data>> {
    let format = match detect(bytes) {
        Ok(format) => format,
        // A file no reader reads may still be what the scanner calls dangerous: say that.
        Err(error) => {
            return Err(
                match scan::first_dangerous(input::Input::mapped(bytes, file), limits) {
                    Some(finding) => scan::refusal(&finding),
                    None => error,
                },
            );
        }
    };
    // Whatever the scanner calls dangerous, no reader reads: they would disagree on the file.
    // A safetensors file holds no pickle, and one its reader accepts has no byte outside its
    // header and data where one could hide (nor can its first bytes, the header length, be a
    // pickle that imports anything); the others are judged first.
    if format != Format::Safetensors
        && let Some(finding) = scan::first_dangerous(input::Input::mapped(bytes, file), limits)
    {
        return Err(scan::refusal(&finding));
    }
    match format {
        Format::Safetensors => safetensors::read_with(bytes, limits),
        Format::TorchZip | Format::TorchScript => torch::read_zip_from(bytes, file, limits),
        Format::TorchLegacy => torch::legacy::read_legacy_from(bytes, file, limits),
        Format::TorchTar => torch::read_tar_with(bytes, limits),
        Format::Pickle => torch::read_pickle_with(bytes, limits),
        // `detect` never says so of bytes: DCP is a folder, read through `Source::open`.
        Format::DistributedCheckpoint => Err(Error::unsupported(
            "a torch.distributed.checkpoint is a folder; open it with Source::open",
        )),
    }
}
