//! `ckpt convert`: write a checkpoint into a new file.

use std::time::Instant;

use ckpt::cast::CastStats;
use ckpt::{ConvertOptions, Dtype, KeyMap, Target};
use serde::Serialize;

use crate::args::{ConvertArgs, DtypeArg, TargetArg};
use crate::exit::{Hinted, Outcome};
use crate::output;
use crate::term::Progress;

/// What `convert` reports, as printed by `--json`.
#[derive(Debug, Serialize)]
pub(crate) struct ConvertReport {
    pub(crate) input: String,
    pub(crate) output: String,
    pub(crate) format: &'static str,
    pub(crate) tensors: usize,
    pub(crate) parameters: u64,
    pub(crate) bytes: u64,
    /// Every file written: the output, or the shards and the index.
    pub(crate) files: Vec<WrittenFile>,
    pub(crate) seconds: f64,
    /// Plain values of the source that were not written (the target holds tensors only).
    pub(crate) skipped_values: Vec<String>,
    /// What opening the input chose (the weights file of a model folder holding two).
    pub(crate) notes: Vec<String>,
    /// Tied names dropped by --dedupe: `[dropped, kept]`.
    pub(crate) deduplicated: Vec<(String, String)>,
    /// Tensors renamed by --strip-prefix/--rename: `[source name, output name]`.
    pub(crate) renamed: Vec<(String, String)>,
    /// Tensors left out by --include/--exclude, by source name.
    pub(crate) excluded: Vec<String>,
    /// A wrapper prefix every written name has (`module.`), when --strip-prefix was not given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) wrapper_prefix: Option<&'static str>,
    /// What --dtype did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) cast: Option<CastReport>,
}

/// What `--dtype` did.
#[derive(Debug, Serialize)]
pub(crate) struct CastReport {
    /// The dtype asked for.
    pub(crate) dtype: &'static str,
    /// The counts over all cast tensors.
    pub(crate) totals: CastStats,
    /// Every tensor cast, by output name.
    pub(crate) tensors: Vec<CastEntry>,
    /// How many floating tensors were already of the dtype (written as they are).
    pub(crate) already: usize,
    /// Tensors that kept their dtype (not floating point): `[name, dtype]`.
    pub(crate) kept: Vec<(String, &'static str)>,
}

/// What `--dtype` did to one tensor.
#[derive(Debug, Serialize)]
pub(crate) struct CastEntry {
    pub(crate) name: String,
    pub(crate) from: &'static str,
    pub(crate) to: &'static str,
    #[serde(flatten)]
    pub(crate) stats: CastStats,
}

/// A file `convert` wrote.
#[derive(Debug, Serialize)]
pub(crate) struct WrittenFile {
    pub(crate) path: String,
    pub(crate) bytes: u64,
}

pub(crate) fn run(args: &ConvertArgs, limits: &ckpt::Limits) -> anyhow::Result<Outcome> {
    let to_stdout = args.output.as_os_str() == "-";
    if to_stdout && (args.max_shard_size.is_some() || args.json || args.to.is_none()) {
        return Err(Hinted::new(
            "`-` writes one file to standard output: it needs --to, and takes neither \
             --max-shard-size nor --json (whose report would share standard output)"
                .to_owned(),
            "ckpt convert --to safetensors model.pt - > model.safetensors",
        )
        .into());
    }
    // A folder output is sharded: asked for, an existing folder, or a name ending in `/`.
    let folder = !to_stdout && args.max_shard_size.is_some()
        || args.output.is_dir()
        || args
            .output
            .as_os_str()
            .to_string_lossy()
            .ends_with(std::path::MAIN_SEPARATOR);
    let max_shard_size = match &args.max_shard_size {
        Some(size) => Some(
            ckpt::convert::parse_size(size)
                .map_err(|e| anyhow::Error::new(e).context("--max-shard-size"))?,
        ),
        None if folder => Some(ckpt::convert::DEFAULT_MAX_SHARD_SIZE),
        None => None,
    };
    let target = match args.to {
        Some(TargetArg::Safetensors) => Target::Safetensors,
        Some(TargetArg::Pth) => Target::Torch,
        None if folder => Target::Safetensors,
        None => Target::from_path(&args.output).ok_or_else(|| {
            Hinted::new(
                format!(
                    "cannot tell the output format from the name `{}`",
                    args.output.display()
                ),
                "name it *.safetensors (or *.pt, *.pth, *.bin), or pass --to safetensors",
            )
        })?,
    };
    let options = ConvertOptions::new(target)
        .overwrite(args.force)
        .sync(!args.no_sync)
        .key(args.key.clone())
        .dedupe(args.dedupe)
        .keys(key_map(args)?)
        .max_shard_size(max_shard_size)
        .dtype(args.dtype.map(dtype))
        .limits(limits.clone());
    let started = Instant::now();
    let progress = Progress::new("writing");
    // `-` in: standard input, read to its end first. `-` out: a temporary file, then
    // copied to standard output once complete.
    let (inputs, spool) = super::with_stdin(std::slice::from_ref(&args.input))?;
    let input = inputs.first().cloned().unwrap_or_default();
    let staging = if to_stdout {
        Some(tempfile::Builder::new().prefix(".ckpt-stdout-").tempdir()?)
    } else {
        None
    };
    let output = match &staging {
        Some(dir) => dir.path().join(match target {
            Target::Safetensors => "out.safetensors",
            _ => "out.pt",
        }),
        None => args.output.clone(),
    };
    let converted = ckpt::convert(&input, &output, &options, &progress)
        .map_err(|e| super::stdin_named(e, spool.as_ref()))?;
    drop(progress);
    if to_stdout {
        let mut file = std::fs::File::open(&output)?;
        let mut stdout = std::io::stdout().lock();
        std::io::copy(&mut file, &mut stdout)?;
        std::io::Write::flush(&mut stdout)?;
    }
    let cast = args.dtype.map(|asked| {
        let mut totals = CastStats::default();
        for tensor in &converted.casts {
            totals.merge(&tensor.stats);
        }
        CastReport {
            dtype: dtype(asked).name(),
            totals,
            already: converted
                .tensors
                .saturating_sub(converted.casts.len() + converted.kept.len()),
            tensors: converted
                .casts
                .iter()
                .map(|t| CastEntry {
                    name: t.name.clone(),
                    from: t.from.name(),
                    to: t.to.name(),
                    stats: t.stats,
                })
                .collect(),
            kept: converted
                .kept
                .iter()
                .map(|(name, dtype)| (name.clone(), dtype.name()))
                .collect(),
        }
    });
    let report = ConvertReport {
        input: args.input.display().to_string(),
        output: args.output.display().to_string(),
        format: target.name(),
        tensors: converted.tensors,
        parameters: converted.parameters,
        bytes: converted.bytes,
        files: converted
            .files
            .iter()
            .map(|(path, bytes)| WrittenFile {
                path: path.display().to_string(),
                bytes: *bytes,
            })
            .collect(),
        seconds: started.elapsed().as_secs_f64(),
        skipped_values: converted.skipped_values,
        notes: converted.notes,
        deduplicated: converted.deduplicated,
        renamed: converted.renamed,
        excluded: converted.excluded,
        wrapper_prefix: converted
            .wrapper_prefix
            .filter(|_| args.strip_prefix.is_empty()),
        cast,
    };
    output::convert::warn(&report)?;
    if to_stdout {
        // Standard output holds the file.
        return Ok(Outcome::Success);
    }
    if args.json {
        output::json(&report)?;
    } else {
        output::convert::render(&report)?;
    }
    Ok(Outcome::Success)
}

fn dtype(arg: DtypeArg) -> Dtype {
    match arg {
        DtypeArg::BFloat16 => Dtype::BFloat16,
        DtypeArg::Float16 => Dtype::Float16,
        DtypeArg::Float32 => Dtype::Float32,
        DtypeArg::Float64 => Dtype::Float64,
        DtypeArg::Float8E4M3Fn => Dtype::Float8E4M3Fn,
        DtypeArg::Float8E5M2 => Dtype::Float8E5M2,
    }
}

fn key_map(args: &ConvertArgs) -> anyhow::Result<KeyMap> {
    let map = super::name_filter(&args.include, &args.exclude)?;
    let map = super::add_rules(
        map,
        "--strip-prefix",
        &args.strip_prefix,
        KeyMap::strip_prefix,
    )?;
    super::add_rules(map, "--rename", &args.rename, KeyMap::rename)
}
