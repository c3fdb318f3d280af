//! The commands of the CLI as functions: `ckpt.convert`, `ckpt.inspect`, `ckpt.scan`,
//! `ckpt.diff`, `ckpt.verify` and `ckpt.stats` call the library as `ckpt convert` and the
//! `--json` reports of `ckpt inspect`, `scan`, `diff`, `verify` and `stats` do.

use std::path::PathBuf;

use ckpt::{ConvertOptions, Dtype, KeyMap, Target};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors;

/// The key map of include and exclude patterns, prefixes to strip and renames.
pub(crate) fn key_map(
    include: &[String],
    exclude: &[String],
    strip_prefix: &[String],
    rename: &[String],
) -> ckpt::Result<KeyMap> {
    let mut keys = KeyMap::new();
    for pattern in include {
        keys = keys.include(pattern)?;
    }
    for pattern in exclude {
        keys = keys.exclude(pattern)?;
    }
    for prefix in strip_prefix {
        keys = keys.strip_prefix(prefix)?;
    }
    for spec in rename {
        keys = keys.rename(spec)?;
    }
    Ok(keys)
}

/// A report as JSON text, for the Python half to turn into a dict.
fn json(report: &impl serde::Serialize) -> ckpt::Result<String> {
    serde_json::to_string(report)
        .map_err(|e| ckpt::Error::invalid(format!("the report cannot be written as JSON: {e}")))
}

/// A shard size given as a number of bytes or as text (`"2GB"`), as `--max-shard-size`
/// takes it.
pub(crate) fn shard_size(py: Python<'_>, size: Option<Bound<'_, PyAny>>) -> PyResult<Option<u64>> {
    let Some(size) = size else {
        return Ok(None);
    };
    let text = size.str()?.to_string();
    Ok(Some(errors::check(py, ckpt::convert::parse_size(&text))?))
}

/// Converts the checkpoint at `input` into `output` (see `ckpt.convert`); returns what
/// was written.
#[pyfunction]
#[pyo3(signature = (
    input, output, *, to=None, key=None, include=vec![], exclude=vec![], strip_prefix=vec![],
    rename=vec![], dedupe=false, max_shard_size=None, dtype=None, overwrite=false, sync=true,
    limits=None
))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn convert<'py>(
    py: Python<'py>,
    input: PathBuf,
    output: PathBuf,
    to: Option<String>,
    key: Option<String>,
    include: Vec<String>,
    exclude: Vec<String>,
    strip_prefix: Vec<String>,
    rename: Vec<String>,
    dedupe: bool,
    max_shard_size: Option<Bound<'py, PyAny>>,
    dtype: Option<String>,
    overwrite: bool,
    sync: bool,
    limits: Option<std::collections::HashMap<String, Bound<'py, PyAny>>>,
) -> PyResult<Bound<'py, PyDict>> {
    let target = match to.as_deref() {
        Some("safetensors") => Target::Safetensors,
        Some("pth" | "pt" | "torch") => Target::Torch,
        Some(other) => {
            return Err(errors::InvalidError::new_err(format!(
                "`to` is safetensors or pth, not {other:?}"
            )));
        }
        None => Target::from_path(&output).ok_or_else(|| {
            errors::InvalidError::new_err(format!(
                "cannot tell the format from the name {}: end it in .safetensors or \
                 .pt/.pth/.bin, or give to='safetensors' or to='pth'",
                output.display()
            ))
        })?,
    };
    let mut options = ConvertOptions::new(target);
    options.overwrite = overwrite;
    options.key = key;
    options.dedupe = dedupe;
    options.sync = sync;
    options.limits = crate::handle::limits_from(py, limits)?;
    options.keys = errors::check(py, key_map(&include, &exclude, &strip_prefix, &rename))?;
    options.max_shard_size = shard_size(py, max_shard_size)?;
    if let Some(name) = dtype {
        let dtype = Dtype::from_name(&name).ok_or_else(|| {
            errors::InvalidError::new_err(format!("{name:?} is not a dtype ckpt knows"))
        })?;
        options.dtype = Some(dtype);
    }
    let converted = py.detach(|| ckpt::convert(&input, &output, &options, &()));
    let converted = errors::check(py, converted)?;
    let report = PyDict::new(py);
    report.set_item("tensors", converted.tensors)?;
    report.set_item("parameters", converted.parameters)?;
    report.set_item("bytes", converted.bytes)?;
    report.set_item("files", converted.files)?;
    report.set_item("skipped_values", converted.skipped_values)?;
    report.set_item("deduplicated", converted.deduplicated)?;
    report.set_item("renamed", converted.renamed)?;
    report.set_item("excluded", converted.excluded)?;
    report.set_item("notes", converted.notes)?;
    let kept: Vec<(String, &str)> = converted
        .kept
        .iter()
        .map(|(name, dtype)| (name.clone(), dtype.name()))
        .collect();
    report.set_item("kept", kept)?;
    Ok(report)
}

/// What `ckpt inspect --json` prints of the checkpoint at `path`, as JSON text.
#[pyfunction]
#[pyo3(signature = (path, *, hashes=false, limits=None))]
pub(crate) fn inspect<'py>(
    py: Python<'py>,
    path: PathBuf,
    hashes: bool,
    limits: Option<std::collections::HashMap<String, Bound<'py, PyAny>>>,
) -> PyResult<String> {
    let limits = crate::handle::limits_from(py, limits)?;
    let json = py.detach(|| {
        let source = ckpt::Source::open_with(&path, &limits)?;
        let checkpoint = source.checkpoint()?;
        let options = ckpt::inspect::InspectOptions::default().with_hashes(hashes);
        let inspection = ckpt::inspect::inspect(&source, &checkpoint, &options, &())?;
        json(&inspection)
    });
    errors::check(py, json)
}

/// What `ckpt scan --json` prints of `paths` (files and folders), as JSON text.
#[pyfunction]
#[pyo3(signature = (paths, *, allow=vec![], limits=None))]
pub(crate) fn scan<'py>(
    py: Python<'py>,
    paths: Vec<PathBuf>,
    allow: Vec<String>,
    limits: Option<std::collections::HashMap<String, Bound<'py, PyAny>>>,
) -> PyResult<String> {
    let mut options =
        ckpt::scan::ScanOptions::default().with_limits(crate::handle::limits_from(py, limits)?);
    options.allow = allow;
    let json = py.detach(|| {
        let scan = ckpt::scan::scan_paths(&paths, &options);
        json(&scan)
    });
    errors::check(py, json)
}

/// What `ckpt diff --json` prints of the checkpoints at `a` and `b`, as JSON text.
#[pyfunction]
#[pyo3(signature = (
    a, b, *, key=None, key_a=None, key_b=None, include=vec![], exclude=vec![],
    strip_prefix=vec![], strip_prefix_a=vec![], strip_prefix_b=vec![], rename=vec![],
    rename_a=vec![], rename_b=vec![], atol=None, rtol=None, ignore_dtype=false, limits=None
))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn diff<'py>(
    py: Python<'py>,
    a: PathBuf,
    b: PathBuf,
    key: Option<String>,
    key_a: Option<String>,
    key_b: Option<String>,
    include: Vec<String>,
    exclude: Vec<String>,
    strip_prefix: Vec<String>,
    strip_prefix_a: Vec<String>,
    strip_prefix_b: Vec<String>,
    rename: Vec<String>,
    rename_a: Vec<String>,
    rename_b: Vec<String>,
    atol: Option<f64>,
    rtol: Option<f64>,
    ignore_dtype: bool,
    limits: Option<std::collections::HashMap<String, Bound<'py, PyAny>>>,
) -> PyResult<String> {
    let limits = crate::handle::limits_from(py, limits)?;
    let tolerance = if atol.is_some() || rtol.is_some() {
        errors::check(py, ckpt::diff::Tolerance::allclose(atol, rtol))?
    } else {
        ckpt::diff::Tolerance::Exact
    };
    // Both sides' rules first, then one side's, as `ckpt diff` applies them.
    let side = |strip: &[String], renames: &[String]| {
        let strip: Vec<String> = strip_prefix.iter().chain(strip).cloned().collect();
        let renames: Vec<String> = rename.iter().chain(renames).cloned().collect();
        key_map(&[], &[], &strip, &renames)
    };
    let options = ckpt::diff::DiffOptions {
        tolerance,
        keys_a: errors::check(py, side(&strip_prefix_a, &rename_a))?,
        keys_b: errors::check(py, side(&strip_prefix_b, &rename_b))?,
        filter: errors::check(py, key_map(&include, &exclude, &[], &[]))?,
        ignore_dtype,
    };
    let json = py.detach(|| {
        let report = ckpt::diff::compare_paths(
            (&a, key_a.as_deref().or(key.as_deref())),
            (&b, key_b.as_deref().or(key.as_deref())),
            &options,
            &limits,
            &(),
        )?;
        json(&report)
    });
    errors::check(py, json)
}

/// What `ckpt verify --json` prints of `paths` (files and folders), checked against the
/// manifest at `manifest` when given, as JSON text.
#[pyfunction]
#[pyo3(signature = (
    paths, *, manifest=None, key=None, include=vec![], exclude=vec![], strip_prefix=vec![],
    rename=vec![], limits=None
))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn verify<'py>(
    py: Python<'py>,
    paths: Vec<PathBuf>,
    manifest: Option<PathBuf>,
    key: Option<String>,
    include: Vec<String>,
    exclude: Vec<String>,
    strip_prefix: Vec<String>,
    rename: Vec<String>,
    limits: Option<std::collections::HashMap<String, Bound<'py, PyAny>>>,
) -> PyResult<String> {
    let limits = crate::handle::limits_from(py, limits)?;
    let keys = errors::check(py, key_map(&include, &exclude, &strip_prefix, &rename))?;
    let json = py.detach(|| {
        let manifest = match &manifest {
            Some(path) => {
                let bytes = std::fs::read(path)
                    .map_err(|e| ckpt::Error::io("cannot read the manifest", path, e))?;
                let parsed = ckpt::verify::Manifest::parse(&bytes)
                    .and_then(|m| m.mapped(key.as_deref(), &keys))
                    .map_err(|e| e.with_path(path))?;
                Some((path.as_path(), parsed))
            }
            None => None,
        };
        let manifest = manifest.as_ref().map(|(path, m)| (*path, m));
        let verification = ckpt::verify::verify_paths(&paths, manifest, &limits, &())?;
        json(&verification)
    });
    errors::check(py, json)
}

/// What `ckpt stats --json` prints of the checkpoint at `path`, as JSON text.
#[pyfunction]
#[pyo3(signature = (
    path, *, include=vec![], exclude=vec![], bins=None, flag_zero="float", limits=None
))]
pub(crate) fn stats<'py>(
    py: Python<'py>,
    path: PathBuf,
    include: Vec<String>,
    exclude: Vec<String>,
    bins: Option<usize>,
    flag_zero: &str,
    limits: Option<std::collections::HashMap<String, Bound<'py, PyAny>>>,
) -> PyResult<String> {
    let limits = crate::handle::limits_from(py, limits)?;
    let keys = errors::check(py, key_map(&include, &exclude, &[], &[]))?;
    let zero = match flag_zero {
        "float" => ckpt::stats::ZeroPolicy::Float,
        "any" => ckpt::stats::ZeroPolicy::Any,
        "none" => ckpt::stats::ZeroPolicy::None,
        other => {
            return Err(errors::InvalidError::new_err(format!(
                "flag_zero is 'float', 'any' or 'none', not {other:?}"
            )));
        }
    };
    let options = ckpt::stats::StatsOptions {
        histogram_bins: bins,
    };
    let json = py.detach(|| {
        let source = ckpt::Source::open_with(&path, &limits)?;
        let checkpoint = source.checkpoint()?;
        let report = ckpt::stats::report(&source, &checkpoint, &keys, &options, zero, &())?;
        json(&report)
    });
    errors::check(py, json)
}
