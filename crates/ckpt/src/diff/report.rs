//! What a comparison of two checkpoint files reports ([`Report`]): the shape `ckpt diff
//! --json` prints and the Python package returns, built from a [`Diff`].

use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use super::{Diff, DiffOptions, Summary, TensorDiff, Tolerance, Values, compare};
use crate::error::Result;
use crate::limits::Limits;
use crate::model::Checkpoint;
use crate::progress::Progress;
use crate::source::{Access, Source};

/// The comparison of two checkpoints, for people and programs.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Report {
    /// The first checkpoint (A).
    pub a: Side,
    /// The second checkpoint (B), the reference of `allclose`.
    pub b: Side,
    /// How elements were compared.
    pub tolerance: ToleranceReport,
    /// Whether A and B are equal.
    pub equal: bool,
    /// Tensor names only A has (after A's renaming).
    pub only_in_a: Vec<String>,
    /// Tensor names only B has (after B's renaming).
    pub only_in_b: Vec<String>,
    /// Every tensor name both have, in A's order.
    pub tensors: Vec<TensorReport>,
    /// Plain values, when both sides can hold them (null when one is safetensors).
    pub values: Option<ValuesReport>,
    /// The counts.
    pub summary: Summary,
    /// How long reading and comparing took.
    pub seconds: f64,
}

/// One of the two checkpoints.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Side {
    /// Its path, as given.
    pub path: String,
    /// Its container's format (`safetensors`, `torch-zip`...).
    pub format: &'static str,
    /// How many tensors it holds (before renaming and filters).
    pub tensors: usize,
}

impl Side {
    /// The checkpoint read from `path`.
    pub fn new(path: &Path, checkpoint: &Checkpoint<'_>) -> Side {
        Side {
            path: path.display().to_string(),
            format: checkpoint.format().name(),
            tensors: checkpoint.tensors().len(),
        }
    }
}

/// The rule elements were compared with.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct ToleranceReport {
    /// `exact` (bitwise, NaN equal to NaN) or `allclose`.
    pub mode: &'static str,
    /// The absolute tolerance, for `allclose`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub atol: Option<f64>,
    /// The relative tolerance (times |b|), for `allclose`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtol: Option<f64>,
    /// Whether tensors of different dtypes were compared by value, not as mismatches.
    pub ignore_dtype: bool,
}

/// One tensor name both sides have.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct TensorReport {
    /// The name both sides have (after renaming).
    pub name: String,
    /// `equal`, `differ` (elements differ), `not-compared` (shapes differ, or elements not
    /// comparable as numbers), or `mismatch` (elements equal, but dtypes or quantization
    /// differ).
    pub status: &'static str,
    /// Whether the tensors count as equal.
    pub equal: bool,
    /// The name in A before renaming, when it differs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name_a: Option<String>,
    /// The name in B before renaming, when it differs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name_b: Option<String>,
    /// A's dtype.
    pub dtype_a: &'static str,
    /// B's dtype.
    pub dtype_b: &'static str,
    /// A's shape.
    pub shape_a: Vec<usize>,
    /// B's shape.
    pub shape_b: Vec<usize>,
    /// Whether their quantization differs (one only is quantized, or with other parameters).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub quantization_differs: bool,
    /// The elements that differ, when some do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub differences: Option<DifferencesReport>,
    /// Why the elements were not compared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The elements of one tensor that differ.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct DifferencesReport {
    /// How many elements differ.
    pub count: u64,
    /// How many elements each tensor has.
    pub elements: u64,
    /// The first differing element: its index per dimension, and flat.
    pub first_index: Vec<u64>,
    /// The first differing element's flat row-major index.
    pub first_flat: u64,
    /// The largest |a - b| (`"inf"` when infinite, as for NaN against a number).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_abs: Option<serde_json::Value>,
    /// Where the largest |a - b| first occurs, per dimension.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_abs_index: Option<Vec<u64>>,
    /// The largest |a - b| / |b| (`"inf"` where b is 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_rel: Option<serde_json::Value>,
}

/// Plain values.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct ValuesReport {
    /// How many plain values both sides have.
    pub compared: usize,
    /// Names of plain values only A has.
    pub only_in_a: Vec<String>,
    /// Names of plain values only B has.
    pub only_in_b: Vec<String>,
    /// The plain values that differ.
    pub differ: Vec<ValueDifference>,
}

/// A plain value that differs, as `type: value` the way Python prints it.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct ValueDifference {
    /// The value's dotted name.
    pub name: String,
    /// A's value.
    pub a: String,
    /// B's value.
    pub b: String,
}

impl Diff {
    /// The report of this comparison of `a` and `b`, which took `seconds`.
    pub fn report(&self, a: Side, b: Side, options: &DiffOptions, seconds: f64) -> Report {
        let (mode, atol, rtol) = match self.tolerance {
            Tolerance::Close { atol, rtol } => ("allclose", Some(atol), Some(rtol)),
            Tolerance::Exact => ("exact", None, None),
        };
        Report {
            a,
            b,
            tolerance: ToleranceReport {
                mode,
                atol,
                rtol,
                ignore_dtype: options.ignore_dtype,
            },
            equal: self.is_equal(),
            only_in_a: self.only_in_a.clone(),
            only_in_b: self.only_in_b.clone(),
            tensors: self.tensors.iter().map(tensor_report).collect(),
            values: self.values.as_ref().map(|values| ValuesReport {
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
            summary: self.summary(),
            seconds,
        }
    }
}

/// One side of a comparison of files: a checkpoint opened, and the dotted key of the
/// subtree compared (`state_dict`), if not all of it.
#[derive(Debug, Clone, Copy)]
pub struct Operand<'a> {
    /// The checkpoint.
    pub source: &'a Source,
    /// The dotted key of the subtree compared, if not the whole.
    pub key: Option<&'a str>,
}

/// Compares the checkpoints of two opened sources (each at its key) under `options`, as
/// `ckpt diff` does: reads them front to back, on all cores, and reports.
pub fn compare_sources(
    a: Operand<'_>,
    b: Operand<'_>,
    options: &DiffOptions,
    progress: &dyn Progress,
) -> Result<Report> {
    let started = Instant::now();
    let checkpoint_a = read(a)?;
    let checkpoint_b = read(b)?;
    let diff = compare(&checkpoint_a, &checkpoint_b, options, progress)?;
    Ok(diff.report(
        Side::new(a.source.path(), &checkpoint_a),
        Side::new(b.source.path(), &checkpoint_b),
        options,
        started.elapsed().as_secs_f64(),
    ))
}

/// The checkpoint of `operand`, read front to back, at its key.
fn read<'s>(operand: Operand<'s>) -> Result<Checkpoint<'s>> {
    operand.source.advise(Access::Sequential);
    let checkpoint = operand.source.checkpoint()?;
    match operand.key {
        Some(key) => checkpoint
            .at_key(key)
            .map_err(|e| e.with_path(operand.source.path())),
        None => Ok(checkpoint),
    }
}

/// [`compare_sources`] of the checkpoints at two paths, opened within `limits`.
pub fn compare_paths(
    (a, key_a): (&Path, Option<&str>),
    (b, key_b): (&Path, Option<&str>),
    options: &DiffOptions,
    limits: &Limits,
    progress: &dyn Progress,
) -> Result<Report> {
    let source_a = Source::open_with(a, limits)?;
    let source_b = Source::open_with(b, limits)?;
    compare_sources(
        Operand {
            source: &source_a,
            key: key_a,
        },
        Operand {
            source: &source_b,
            key: key_b,
        },
        options,
        progress,
    )
}

fn tensor_report(tensor: &TensorDiff) -> TensorReport {
    let (differences, reason) = match &tensor.values {
        Values::Equal => (None, None),
        Values::Differ(d) => (
            Some(DifferencesReport {
                count: d.count,
                elements: d.elements,
                first_index: unravel(d.first, &tensor.shape_a),
                first_flat: d.first,
                max_abs: d.max_abs.map(|(x, _)| crate::inspect::json_float(x)),
                max_abs_index: d.max_abs.map(|(_, at)| unravel(at, &tensor.shape_a)),
                max_rel: d.max_rel.map(crate::inspect::json_float),
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
    TensorReport {
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

/// The index per dimension of the element at row-major position `flat` in `shape`.
pub fn unravel(mut flat: u64, shape: &[usize]) -> Vec<u64> {
    let mut index = vec![0; shape.len()];
    for (slot, &dim) in index.iter_mut().zip(shape).rev() {
        let dim = (dim as u64).max(1);
        *slot = flat % dim;
        flat /= dim;
    }
    index
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
