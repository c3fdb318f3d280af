//! `ckpt convert`: write a checkpoint into a new file.

use std::time::Instant;

use ckpt::{ConvertOptions, Target};
use serde::Serialize;

use crate::args::{ConvertArgs, TargetArg};
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
    pub(crate) seconds: f64,
    /// Plain values of the source that were not written (the target holds tensors only).
    pub(crate) skipped_values: Vec<String>,
    /// Tied names dropped by --dedupe: `[dropped, kept]`.
    pub(crate) deduplicated: Vec<(String, String)>,
}

pub(crate) fn run(args: &ConvertArgs) -> anyhow::Result<Outcome> {
    let target = match args.to {
        Some(TargetArg::Safetensors) => Target::Safetensors,
        Some(TargetArg::Pth) => Target::Torch,
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
        .key(args.key.clone())
        .dedupe(args.dedupe);
    let started = Instant::now();
    let progress = Progress::new("writing");
    let converted = ckpt::convert(&args.input, &args.output, &options, &progress)?;
    drop(progress);
    let report = ConvertReport {
        input: args.input.display().to_string(),
        output: args.output.display().to_string(),
        format: target.name(),
        tensors: converted.tensors,
        parameters: converted.parameters,
        bytes: converted.bytes,
        seconds: started.elapsed().as_secs_f64(),
        skipped_values: converted.skipped_values,
        deduplicated: converted.deduplicated,
    };
    output::convert::warn(&report)?;
    if args.json {
        output::json(&report)?;
    } else {
        output::convert::render(&report)?;
    }
    Ok(Outcome::Success)
}
