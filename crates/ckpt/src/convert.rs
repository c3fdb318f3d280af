//! Converting a checkpoint from one file to another.

use std::io::{BufWriter, Write};
use std::path::Path;

use crate::error::{Error, Result};
use crate::output::AtomicOutput;
use crate::progress::Progress;
use crate::safetensors::Plan;
use crate::source::Source;

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Target {
    /// A safetensors file.
    Safetensors,
    /// A PyTorch zip checkpoint (`torch.save`).
    Torch,
}

impl Target {
    /// The target a file name asks for: `.safetensors`, or `.pt`/`.pth`/`.bin`/`.ckpt` for
    /// PyTorch (case-insensitive). `None` for other names.
    pub fn from_path(path: &Path) -> Option<Target> {
        let extension = path.extension()?.to_str()?.to_ascii_lowercase();
        match extension.as_str() {
            "safetensors" => Some(Target::Safetensors),
            "pt" | "pth" | "bin" | "ckpt" => Some(Target::Torch),
            _ => None,
        }
    }

    /// The target's name (`"safetensors"`, `"pth"`).
    pub fn name(self) -> &'static str {
        match self {
            Target::Safetensors => "safetensors",
            Target::Torch => "pth",
        }
    }
}

/// What [`convert`] should do.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConvertOptions {
    /// The output format.
    pub target: Target,
    /// Replace the output if it exists (never when it is the input).
    pub overwrite: bool,
}

impl ConvertOptions {
    /// Options to write `target`, refusing to replace an existing output.
    pub fn new(target: Target) -> Self {
        ConvertOptions {
            target,
            overwrite: false,
        }
    }

    /// Sets whether an existing output may be replaced.
    #[must_use]
    pub fn overwrite(mut self, overwrite: bool) -> Self {
        self.overwrite = overwrite;
        self
    }
}

/// What [`convert`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Converted {
    /// The number of tensors written.
    pub tensors: usize,
    /// The number of tensor elements written.
    pub parameters: u64,
    /// The size of the output file.
    pub bytes: u64,
}

/// Converts the checkpoint at `input` into a new file at `output`.
///
/// The output appears complete or not at all (see [`AtomicOutput`]); memory use does not
/// grow with the checkpoint, because tensors are streamed from the input's memory map in
/// bounded chunks. `progress` hears about every chunk and can cancel the work.
pub fn convert(
    input: &Path,
    output: &Path,
    options: &ConvertOptions,
    progress: &dyn Progress,
) -> Result<Converted> {
    if options.target == Target::Torch {
        return Err(
            Error::unsupported("writing PyTorch files is not supported yet")
                .with_path(output)
                .with_hint("write a .safetensors file"),
        );
    }
    let source = Source::open(input)?;
    let checkpoint = source.checkpoint()?;
    let tensors = checkpoint.tensors();
    let plan = Plan::new(&tensors, checkpoint.metadata()).map_err(|e| e.with_path(input))?;
    let mut out = AtomicOutput::create(output, options.overwrite, &[input])?;
    {
        let mut writer = BufWriter::with_capacity(1 << 20, out.file());
        plan.write_to(&mut writer, progress)
            .and_then(|()| {
                writer
                    .flush()
                    .map_err(|e| Error::from_io("failed to write", e))
            })
            .map_err(|e| e.with_path(output))?;
    }
    out.commit()?;
    Ok(Converted {
        tensors: tensors.len(),
        parameters: tensors.iter().map(|(_, t)| t.numel() as u64).sum(),
        bytes: plan.file_len(),
    })
}
