//! `ckpt diff`: compare two checkpoints.

use std::time::Instant;

use ckpt::diff::{DiffOptions, Summary, Tolerance, Values};
use ckpt::{Access, KeyMap, Source};
use serde::Serialize;

use super::add_rules;
use crate::args::DiffArgs;
use crate::exit::{Outcome, flag};
use crate::output;
use crate::term::Progress;

/// What `diff` reports, as printed by `--json`.
#[derive(Debug, Serialize)]
pub(crate) struct DiffReport {
    pub(crate) a: Side,
    pub(crate) b: Side,
    pub(crate) tolerance: ToleranceRow,
    /// Whether A and B are equal (exit code 0).
    pub(crate) equal: bool,
    /// Tensor names only A has (after A's renaming).
    pub(crate) only_in_a: Vec<String>,
    /// Tensor names only B has (after B's renaming).
    pub(crate) only_in_b: Vec<String>,
    /// Every tensor name both have, in A's order.
    pub(crate) tensors: Vec<TensorRow>,
    /// Plain values, when both sides can hold them (null when one is safetensors).
    pub(crate) values: Option<ValuesRow>,
    pub(crate) summary: SummaryRow,
    pub(crate) seconds: f64,
}

/// One of the two checkpoints.
#[derive(Debug, Serialize)]
pub(crate) struct Side {
    pub(crate) path: String,
    pub(crate) format: &'static str,
    pub(crate) tensors: usize,
}

/// The rule elements were compared with.
#[derive(Debug, Serialize)]
pub(crate) struct ToleranceRow {
    /// `exact` (bitwise, NaN equal to NaN) or `allclose`.
    pub(crate) mode: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) atol: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) rtol: Option<f64>,
    /// --ignore-dtype: tensors of different dtypes compared by value, not mismatches.
    pub(crate) ignore_dtype: bool,
}

/// One tensor name both sides have.
#[derive(Debug, Serialize)]
pub(crate) struct TensorRow {
    pub(crate) name: String,
    /// `equal`, `differ` (elements differ), `not-compared` (shapes differ, or elements not
    /// comparable as numbers), or `mismatch` (elements equal, but dtypes or quantization
    /// differ).
    pub(crate) status: &'static str,
    pub(crate) equal: bool,
    /// The name in A before renaming, when it differs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) name_a: Option<String>,
    /// The name in B before renaming, when it differs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) name_b: Option<String>,
    pub(crate) dtype_a: &'static str,
    pub(crate) dtype_b: &'static str,
    pub(crate) shape_a: Vec<usize>,
    pub(crate) shape_b: Vec<usize>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(crate) quantization_differs: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) differences: Option<DifferencesRow>,
    /// Why the elements were not compared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
}

/// The elements of one tensor that differ.
#[derive(Debug, Serialize)]
pub(crate) struct DifferencesRow {
    pub(crate) count: u64,
    pub(crate) elements: u64,
    /// The first differing element: its index per dimension, and flat.
    pub(crate) first_index: Vec<u64>,
    pub(crate) first_flat: u64,
    /// The largest |a - b| (`"inf"` when infinite, as for NaN against a number).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_abs: Option<serde_json::Value>,
    /// Where the largest |a - b| first occurs, per dimension.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_abs_index: Option<Vec<u64>>,
    /// The largest |a - b| / |b| (`"inf"` where b is 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_rel: Option<serde_json::Value>,
}

/// Plain values.
#[derive(Debug, Serialize)]
pub(crate) struct ValuesRow {
    pub(crate) compared: usize,
    pub(crate) only_in_a: Vec<String>,
    pub(crate) only_in_b: Vec<String>,
    pub(crate) differ: Vec<ValueDifference>,
}

/// A plain value that differs, as `type: value` the way Python prints it.
#[derive(Debug, Serialize)]
pub(crate) struct ValueDifference {
    pub(crate) name: String,
    pub(crate) a: String,
    pub(crate) b: String,
}

/// The counts.
#[derive(Debug, Serialize)]
pub(crate) struct SummaryRow {
    pub(crate) compared: usize,
    pub(crate) equal: usize,
    pub(crate) differ: usize,
    pub(crate) dtype_mismatch: usize,
    pub(crate) shape_mismatch: usize,
    pub(crate) not_compared: usize,
    pub(crate) only_in_a: usize,
    pub(crate) only_in_b: usize,
    pub(crate) values_differ: usize,
}

pub(crate) fn run(args: &DiffArgs, limits: &ckpt::Limits) -> anyhow::Result<Outcome> {
    let tolerance = if args.atol.is_some() || args.rtol.is_some() {
        // With the default rtol, only atol can be wrong; then only rtol.
        Tolerance::allclose(args.atol, None).map_err(flag("--atol"))?;
        Tolerance::allclose(args.atol, args.rtol).map_err(flag("--rtol"))?
    } else {
        Tolerance::Exact
    };
    let options = DiffOptions {
        tolerance,
        keys_a: key_map(
            args,
            ("--strip-prefix-a", &args.strip_prefix_a),
            ("--rename-a", &args.rename_a),
        )?,
        keys_b: key_map(
            args,
            ("--strip-prefix-b", &args.strip_prefix_b),
            ("--rename-b", &args.rename_b),
        )?,
        // --include and --exclude, on the names after renaming.
        filter: super::name_filter(&args.include, &args.exclude)?,
        ignore_dtype: args.ignore_dtype,
    };
    let started = Instant::now();
    let source_a = super::open(&args.a, limits)?;
    let source_b = super::open(&args.b, limits)?;
    source_a.advise(Access::Sequential);
    source_b.advise(Access::Sequential);
    let a = at_key(&source_a, args.key_a.as_ref().or(args.key.as_ref()))?;
    let b = at_key(&source_b, args.key_b.as_ref().or(args.key.as_ref()))?;
    let progress = Progress::new("comparing");
    let diff = ckpt::diff::compare(&a, &b, &options, &progress)?;
    drop(progress);
    let side = |source: &Source, checkpoint: &ckpt::Checkpoint<'_>| Side {
        path: source.path().display().to_string(),
        format: checkpoint.format().name(),
        tensors: checkpoint.tensors().len(),
    };
    let summary = diff.summary();
    let report = DiffReport {
        a: side(&source_a, &a),
        b: side(&source_b, &b),
        tolerance: match tolerance {
            Tolerance::Close { atol, rtol } => ToleranceRow {
                mode: "allclose",
                atol: Some(atol),
                rtol: Some(rtol),
                ignore_dtype: args.ignore_dtype,
            },
            _ => ToleranceRow {
                mode: "exact",
                atol: None,
                rtol: None,
                ignore_dtype: args.ignore_dtype,
            },
        },
        equal: diff.is_equal(),
        only_in_a: diff.only_in_a.clone(),
        only_in_b: diff.only_in_b.clone(),
        tensors: diff.tensors.iter().map(tensor_row).collect(),
        values: diff.values.as_ref().map(|values| ValuesRow {
            compared: values.compared,
            only_in_a: values.only_in_a.clone(),
            only_in_b: values.only_in_b.clone(),
            differ: values
                .differ
                .iter()
                .map(|(name, a, b)| ValueDifference {
                    name: name.clone(),
                    a: a.clone(),
                    b: b.clone(),
                })
                .collect(),
        }),
        summary: summary_row(&summary),
        seconds: started.elapsed().as_secs_f64(),
    };
    if args.json {
        output::json(&report)?;
    } else {
        output::diff::render(&report)?;
    }
    Ok(if report.equal {
        Outcome::Success
    } else {
        Outcome::Found
    })
}

fn tensor_row(tensor: &ckpt::diff::TensorDiff) -> TensorRow {
    let (differences, reason) = match &tensor.values {
        Values::Equal => (None, None),
        Values::Differ(d) => (
            Some(DifferencesRow {
                count: d.count,
                elements: d.elements,
                first_index: unravel(d.first, &tensor.shape_a),
                first_flat: d.first,
                max_abs: d.max_abs.map(|(x, _)| number(x)),
                max_abs_index: d.max_abs.map(|(_, at)| unravel(at, &tensor.shape_a)),
                max_rel: d.max_rel.map(number),
            }),
            None,
        ),
        Values::NotCompared(reason) => (None, Some(reason.clone())),
    };
    let status = match &tensor.values {
        _ if tensor.equal => "equal",
        Values::Differ(_) => "differ",
        Values::NotCompared(_) => "not-compared",
        _ => "mismatch",
    };
    let renamed = |source: &str| (source != tensor.name).then(|| source.to_owned());
    TensorRow {
        name: tensor.name.clone(),
        status,
        equal: tensor.equal,
        name_a: renamed(&tensor.name_a),
        name_b: renamed(&tensor.name_b),
        dtype_a: tensor.dtype_a.name(),
        dtype_b: tensor.dtype_b.name(),
        shape_a: tensor.shape_a.clone(),
        shape_b: tensor.shape_b.clone(),
        quantization_differs: tensor.quantization_differs,
        differences,
        reason,
    }
}

fn summary_row(summary: &Summary) -> SummaryRow {
    SummaryRow {
        compared: summary.compared,
        equal: summary.equal,
        differ: summary.differ,
        dtype_mismatch: summary.dtype_mismatch,
        shape_mismatch: summary.shape_mismatch,
        not_compared: summary.not_compared,
        only_in_a: summary.only_in_a,
        only_in_b: summary.only_in_b,
        values_differ: summary.values_differ,
    }
}

/// A float as JSON: a number when finite, else `"inf"` (or `"nan"`).
fn number(x: f64) -> serde_json::Value {
    if x.is_finite() {
        x.into()
    } else if x.is_nan() {
        "nan".into()
    } else {
        "inf".into()
    }
}

/// The index per dimension of the element at row-major position `flat` in `shape`.
pub(crate) fn unravel(mut flat: u64, shape: &[usize]) -> Vec<u64> {
    let mut index = vec![0; shape.len()];
    for (slot, &dim) in index.iter_mut().zip(shape).rev() {
        let dim = (dim as u64).max(1);
        *slot = flat % dim;
        flat /= dim;
    }
    index
}

/// Both sides' options first, then one side's (each with its flag's name).
fn key_map(
    args: &DiffArgs,
    (strip_flag, strip): (&'static str, &[String]),
    (rename_flag, rename): (&'static str, &[String]),
) -> anyhow::Result<KeyMap> {
    let map = KeyMap::new();
    let map = add_rules(
        map,
        "--strip-prefix",
        &args.strip_prefix,
        KeyMap::strip_prefix,
    )?;
    let map = add_rules(map, strip_flag, strip, KeyMap::strip_prefix)?;
    let map = add_rules(map, "--rename", &args.rename, KeyMap::rename)?;
    add_rules(map, rename_flag, rename, KeyMap::rename)
}

/// The checkpoint of `source`, or the subtree at `key` of it.
fn at_key<'s>(source: &'s Source, key: Option<&String>) -> anyhow::Result<ckpt::Checkpoint<'s>> {
    let checkpoint = source.checkpoint()?;
    Ok(match key {
        Some(key) => checkpoint
            .at_key(key)
            .map_err(|e| e.with_path(source.path()))?,
        None => checkpoint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_per_dimension() {
        assert_eq!(unravel(0, &[]), Vec::<u64>::new());
        assert_eq!(unravel(5, &[2, 3]), [1, 2]);
        assert_eq!(unravel(7, &[2, 3, 4]), [0, 1, 3]);
        assert_eq!(unravel(23, &[2, 3, 4]), [1, 2, 3]);
    }
}
