//! `ckpt inspect`: what is in a checkpoint.

use std::collections::BTreeMap;

use ckpt::{Checkpoint, Source, TensorView};
use serde::Serialize;

use crate::args::InspectArgs;
use crate::exit::Outcome;
use crate::output;
use crate::term::Progress;

/// Everything `inspect` reports, as printed by `--json`.
#[derive(Debug, Serialize)]
pub(crate) struct InspectReport {
    pub(crate) path: String,
    pub(crate) format: &'static str,
    pub(crate) file_size: u64,
    pub(crate) metadata: BTreeMap<String, String>,
    pub(crate) tensors: Vec<TensorRow>,
    pub(crate) totals: Totals,
}

/// One tensor.
#[derive(Debug, Serialize)]
pub(crate) struct TensorRow {
    pub(crate) name: String,
    pub(crate) dtype: &'static str,
    pub(crate) shape: Vec<usize>,
    pub(crate) parameters: u64,
    pub(crate) bytes: u64,
    /// Where the tensor's bytes lie in the file, `[start, end)`, when they are contiguous.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) offsets: Option<[u64; 2]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) sha256: Option<String>,
}

/// Sums over all tensors, and per dtype.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Totals {
    pub(crate) tensors: usize,
    pub(crate) parameters: u64,
    pub(crate) bytes: u64,
    pub(crate) by_dtype: BTreeMap<&'static str, DtypeTotals>,
}

/// Sums over the tensors of one dtype.
#[derive(Debug, Default, Serialize)]
pub(crate) struct DtypeTotals {
    pub(crate) tensors: usize,
    pub(crate) parameters: u64,
    pub(crate) bytes: u64,
}

pub(crate) fn run(args: &InspectArgs) -> anyhow::Result<Outcome> {
    let source = Source::open(&args.file)?;
    let checkpoint = source.checkpoint()?;
    let tensors = checkpoint.tensors();
    let hashes = if args.hash {
        let views: Vec<&TensorView<'_>> = tensors.iter().map(|(_, view)| *view).collect();
        let progress = Progress::new("hashing");
        Some(ckpt::sha256_all(&views, &progress).map_err(|e| e.with_path(source.path()))?)
    } else {
        None
    };
    let report = report(&source, &checkpoint, &tensors, hashes.as_deref());
    if args.json {
        output::json(&report)?;
    } else {
        output::inspect::render(&report)?;
    }
    Ok(Outcome::Success)
}

fn report(
    source: &Source,
    checkpoint: &Checkpoint<'_>,
    tensors: &[(String, &TensorView<'_>)],
    hashes: Option<&[[u8; 32]]>,
) -> InspectReport {
    let mut totals = Totals::default();
    let rows = tensors
        .iter()
        .enumerate()
        .map(|(i, (name, view))| {
            let parameters = view.numel() as u64;
            let bytes = view.nbytes() as u64;
            totals.tensors += 1;
            totals.parameters += parameters;
            totals.bytes += bytes;
            let by_dtype = totals.by_dtype.entry(view.dtype().name()).or_default();
            by_dtype.tensors += 1;
            by_dtype.parameters += parameters;
            by_dtype.bytes += bytes;
            TensorRow {
                name: name.clone(),
                dtype: view.dtype().name(),
                shape: view.shape().to_vec(),
                parameters,
                bytes,
                offsets: view.file_range().map(|(start, end)| [start, end]),
                sha256: hashes
                    .and_then(|h| h.get(i))
                    .map(|digest| output::hex(digest)),
            }
        })
        .collect();
    InspectReport {
        path: source.path().display().to_string(),
        format: checkpoint.format().name(),
        file_size: source.bytes().len() as u64,
        metadata: checkpoint.metadata().clone(),
        tensors: rows,
        totals,
    }
}
