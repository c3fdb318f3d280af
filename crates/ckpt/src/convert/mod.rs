//! Converting a checkpoint from one file to another.

mod keys;

use std::io::{BufWriter, Write};
use std::path::Path;

pub use keys::{KeyMap, Mapped, common_wrapper_prefix};

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
    /// Convert only the subtree at this dotted path of dict keys (`model`, `state_dict`).
    pub key: Option<String>,
    /// Write tensors that are the same view of the same storage (tied weights) once, under
    /// the lexicographically smallest name, and record each dropped name in the metadata
    /// (`{dropped: kept}`, as HF's converter does). By default every name is written.
    pub dedupe: bool,
    /// Which tensors to write and under which names (applied after `key`).
    pub keys: KeyMap,
}

impl ConvertOptions {
    /// Options to write `target`, refusing to replace an existing output.
    pub fn new(target: Target) -> Self {
        ConvertOptions {
            target,
            overwrite: false,
            key: None,
            dedupe: false,
            keys: KeyMap::new(),
        }
    }

    /// Sets whether an existing output may be replaced.
    #[must_use]
    pub fn overwrite(mut self, overwrite: bool) -> Self {
        self.overwrite = overwrite;
        self
    }

    /// Converts only the subtree at `key`.
    #[must_use]
    pub fn key(mut self, key: Option<String>) -> Self {
        self.key = key;
        self
    }

    /// Filters and renames tensors (see [`KeyMap`]).
    #[must_use]
    pub fn keys(mut self, keys: KeyMap) -> Self {
        self.keys = keys;
        self
    }

    /// Writes tied tensors once (see [`ConvertOptions::dedupe`]).
    #[must_use]
    pub fn dedupe(mut self, dedupe: bool) -> Self {
        self.dedupe = dedupe;
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
    /// Plain values of the source that the target cannot hold (safetensors holds only
    /// tensors), by dotted name: not written.
    pub skipped_values: Vec<String>,
    /// Names dropped by `dedupe`, with the name kept for the same tensor (output names).
    pub deduplicated: Vec<(String, String)>,
    /// `(source name, output name)` of every tensor renamed by the key map.
    pub renamed: Vec<(String, String)>,
    /// Source names of the tensors the key map's filters left out.
    pub excluded: Vec<String>,
    /// A prefix every written name has that looks added by a training wrapper (`module.`
    /// from `DataParallel`): `--strip-prefix` would remove it. Only when nothing was renamed.
    pub wrapper_prefix: Option<&'static str>,
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
    source.advise(crate::Access::Sequential);
    let checkpoint = source.checkpoint()?;
    let root = match &options.key {
        Some(key) => checkpoint.subtree(key).ok_or_else(|| {
            Error::invalid(format!("the checkpoint has no key `{key}`"))
                .with_path(input)
                .with_hint(match checkpoint.top_level_keys().as_slice() {
                    [] => "the checkpoint is not a dict".to_owned(),
                    keys => format!("its top-level keys are: {}", keys.join(", ")),
                })
        })?,
        None => checkpoint.root(),
    };
    let Mapped {
        kept: mut tensors,
        renamed,
        dropped: excluded,
    } = options
        .keys
        .apply(root.tensors())
        .map_err(|e| e.with_path(input))?;
    if tensors.is_empty() && !excluded.is_empty() {
        return Err(Error::invalid(format!(
            "the filters leave no tensor to write (all {} were excluded)",
            excluded.len()
        ))
        .with_path(input)
        .with_hint("check --include/--exclude against the names `ckpt inspect` shows"));
    }
    // Suggested only for names as the source has them, not for names chosen by renames.
    let wrapper_prefix = if renamed.is_empty() {
        common_wrapper_prefix(tensors.iter().map(|(n, _)| n.as_str()))
    } else {
        None
    };
    let skipped_values: Vec<String> = root.values().into_iter().map(|(name, _)| name).collect();
    let mut metadata = checkpoint.metadata().clone();
    if checkpoint.format() != crate::Format::Safetensors {
        // What transformers expects of a PyTorch-origin safetensors file.
        metadata.insert("format".to_owned(), "pt".to_owned());
    }
    let deduplicated = if options.dedupe {
        let dropped = tied_duplicates(&tensors);
        let names: std::collections::HashSet<&str> =
            dropped.iter().map(|(d, _)| d.as_str()).collect();
        tensors.retain(|(name, _)| !names.contains(name.as_str()));
        for (dropped, kept) in &dropped {
            metadata
                .entry(dropped.clone())
                .or_insert_with(|| kept.clone());
        }
        dropped
    } else {
        Vec::new()
    };
    let plan = Plan::new(&tensors, &metadata).map_err(|e| e.with_path(input))?;
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
        parameters: tensors
            .iter()
            .map(|(_, t)| t.numel() as u64 * t.dtype().values_per_element())
            .sum(),
        bytes: plan.file_len(),
        skipped_values,
        deduplicated,
        renamed,
        excluded,
        wrapper_prefix,
    })
}

/// Tensors that are the same view (dtype, shape, strides, offset, conj/neg bits) of the same
/// storage as another: `(dropped, kept)`, keeping the lexicographically smallest name.
fn tied_duplicates(tensors: &[(String, &crate::TensorView<'_>)]) -> Vec<(String, String)> {
    type ViewKey<'v> = (
        usize,
        usize,
        crate::Dtype,
        &'v [usize],
        &'v [usize],
        usize,
        bool,
        bool,
    );
    let mut groups: std::collections::HashMap<ViewKey<'_>, Vec<&str>> =
        std::collections::HashMap::new();
    for (name, view) in tensors {
        if view.numel() == 0 {
            continue;
        }
        let bytes = view.storage().bytes();
        let key = (
            bytes.as_ptr() as usize,
            bytes.len(),
            view.dtype(),
            view.shape(),
            view.strides(),
            view.storage_offset(),
            view.is_conj(),
            view.is_neg(),
        );
        groups.entry(key).or_default().push(name);
    }
    let mut dropped = Vec::new();
    for names in groups.into_values() {
        let Some(kept) = names.iter().min().copied() else {
            continue;
        };
        for name in names {
            if name != kept {
                dropped.push((name.to_owned(), kept.to_owned()));
            }
        }
    }
    dropped.sort();
    dropped
}
