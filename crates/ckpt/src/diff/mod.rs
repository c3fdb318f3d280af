//! Comparing two checkpoints: which names each has, and whether their tensors hold the same
//! elements, exactly or within tolerances (`ckpt diff`).
//!
//! Tensors are matched by name, after each side's [`KeyMap`] (filters, prefixes stripped,
//! renames), and then filtered by [`DiffOptions::filter`]. For every name on both sides, dtypes and shapes are compared, and when the
//! shapes agree, the elements, as packed row-major little-endian bytes whatever the
//! container (a strided view, a big-endian file, chunks of a sharded save): the same weights
//! in a `.pth`, a legacy file, a safetensors file, a shard folder or a DCP folder compare
//! equal.
//!
//! # Equality
//!
//! - **Exact** ([`Tolerance::Exact`], the default): elements are equal when their bits are,
//!   except that a NaN equals a NaN at the same place, whatever their payloads and signs.
//!   `+0.0` and `-0.0` differ (their bits do): a conversion that flips the sign of a zero
//!   changed the file. Use a tolerance (even `atol = rtol = 0`) to compare values as numbers,
//!   where `-0.0 == 0.0`.
//! - **Within tolerances** ([`Tolerance::Close`]): torch's
//!   `isclose(a, b, rtol, atol, equal_nan=True)`: `a == b`, or both NaN, or
//!   `|a - b| <= atol + rtol * |b|` with the difference finite. B is the reference (torch's
//!   `other`): the rule is not symmetric. An infinity is close only to the same infinity.
//!   Complex numbers compare by complex magnitudes, and a complex number with a NaN part is
//!   NaN. As in torch, the arithmetic is the dtype's: float32 for float32 and complex64,
//!   float32 rounded to the dtype after every operation for float16 and bfloat16, float64
//!   otherwise (float64, the float8 kinds, integers, bool). Unlike torch, integer
//!   differences never wrap.
//!
//! Tensors of different dtypes are reported as a mismatch, and their values still compared
//! as float64 numbers (exact: the same number, NaN equal to NaN; a float32 and a bfloat16
//! tensor are then equal only where the float32 values are bfloat16 values), unless one of
//! them cannot be read as numbers or they differ in being complex. (A `float4_e2m1fn`
//! tensor of shape `[..., 2n]`, safetensors' `F4`, facing a `float4_e2m1fn_x2` one of shape
//! `[..., n]`, torch's, is read as the latter: the same bytes.) Tensors of different
//! shapes are a mismatch and their values are not compared. Quantized tensors compare their
//! stored integers, and their quantization parameters.
//!
//! The size of a difference is reported in float64 whatever the mode: the largest
//! `|a - b|` (complex: the magnitude) and the first element that has it, and the largest
//! `|a - b| / |b|`. A difference that is not a number (NaN against a number) counts as
//! infinite, and so does any difference relative to zero.
//!
//! # Plain values
//!
//! When neither side is a safetensors file (which holds tensors only), the plain values of
//! the tree (`epoch`, config dicts' entries, optimizer hyperparameters) are compared too, by
//! dotted name after the same key maps, as Python prints them and by type.
//!
//! # Work
//!
//! Tensors are cut into pieces of at most 4 MiB ([`TensorView::pieces`]); pieces are
//! compared on all cores, dense little-endian data straight from the mapped files (a
//! `memcmp` first), other layouts through a buffer of one piece. Memory does not grow with
//! the checkpoints.

mod compare;
mod report;

pub use report::{
    DifferencesReport, Operand, Report, Side, TensorReport, ToleranceReport, ValueDifference,
    ValuesReport, compare_paths, compare_sources, unravel,
};

use std::collections::HashMap;

use rayon::prelude::*;

use crate::convert::KeyMap;
use crate::error::{Error, Result};
use crate::format::Format;
use crate::model::{Checkpoint, Dtype, TensorView, Value};
use crate::progress::Progress;

use compare::{Found, Plan};

/// The most bytes of one side a piece of work holds.
const PIECE_BYTES: usize = 4 << 20;

/// torch.allclose's default absolute tolerance.
pub const DEFAULT_ATOL: f64 = 1e-8;
/// torch.allclose's default relative tolerance.
pub const DEFAULT_RTOL: f64 = 1e-5;

/// When two elements count as equal.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Tolerance {
    /// The same bits, with NaN equal to NaN at the same place.
    #[default]
    Exact,
    /// torch's `isclose(a, b, rtol, atol, equal_nan=True)`.
    Close {
        /// The absolute tolerance.
        atol: f64,
        /// The relative tolerance, times `|b|`.
        rtol: f64,
    },
}

impl Tolerance {
    /// The tolerance of `torch.allclose(a, b, rtol=..., atol=...)` called with the given
    /// arguments: one left out keeps torch's default (`atol = 1e-8`, `rtol = 1e-5`). Fails
    /// for a negative or non-finite tolerance.
    pub fn allclose(atol: Option<f64>, rtol: Option<f64>) -> Result<Tolerance> {
        let check = |value: f64, which: &str| {
            if value.is_finite() && value >= 0.0 {
                Ok(value)
            } else {
                Err(Error::invalid(format!(
                    "the {which} tolerance must be a finite number >= 0, not {value}"
                )))
            }
        };
        Ok(Tolerance::Close {
            atol: check(atol.unwrap_or(DEFAULT_ATOL), "absolute")?,
            rtol: check(rtol.unwrap_or(DEFAULT_RTOL), "relative")?,
        })
    }
}

/// What to compare, and how.
#[derive(Debug, Clone, Default)]
pub struct DiffOptions {
    /// When elements count as equal.
    pub tolerance: Tolerance,
    /// How A's names are matched: filters, prefixes stripped, renames.
    pub keys_a: KeyMap,
    /// How B's names are matched.
    pub keys_b: KeyMap,
    /// Which names are compared: the filters of this map (its `include` and `exclude`
    /// globs) look at the names after each side's map, so one filter serves both sides.
    pub filter: KeyMap,
    /// Whether tensors that differ in dtype only (their values being equal under the
    /// tolerance) count as equal.
    pub ignore_dtype: bool,
}

/// The comparison of two checkpoints.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Diff {
    /// Tensor names (after A's key map) that only A has, in A's order.
    pub only_in_a: Vec<String>,
    /// Tensor names (after B's key map) that only B has, in B's order.
    pub only_in_b: Vec<String>,
    /// Every tensor name both have, in A's order.
    pub tensors: Vec<TensorDiff>,
    /// The comparison of plain values, when both sides can hold them.
    pub values: Option<ValuesDiff>,
    /// The tolerance used.
    pub tolerance: Tolerance,
}

/// One tensor name both checkpoints have.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TensorDiff {
    /// The matched name.
    pub name: String,
    /// The name in A, before its key map.
    pub name_a: String,
    /// The name in B, before its key map.
    pub name_b: String,
    /// A's dtype.
    pub dtype_a: Dtype,
    /// B's dtype.
    pub dtype_b: Dtype,
    /// A's shape.
    pub shape_a: Vec<usize>,
    /// B's shape.
    pub shape_b: Vec<usize>,
    /// Whether both are quantized tensors with different parameters, or only one is.
    pub quantization_differs: bool,
    /// What the elements showed.
    pub values: Values,
    /// Whether the tensors count as equal: same shape, same dtype (unless ignored), same
    /// quantization and equal values.
    pub equal: bool,
}

impl TensorDiff {
    /// Whether the dtypes differ.
    pub fn dtype_differs(&self) -> bool {
        self.dtype_a != self.dtype_b
    }

    /// Whether the shapes differ.
    pub fn shape_differs(&self) -> bool {
        self.shape_a != self.shape_b
    }
}

/// What comparing the elements of two tensors showed.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// Every element is equal (under the tolerance).
    Equal,
    /// Some elements differ.
    Differ(Differences),
    /// The elements were not compared: the shapes differ, or the elements cannot be
    /// compared as numbers (the reason).
    NotCompared(String),
}

/// The elements of two tensors that differ.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Differences {
    /// How many elements differ (elements as the shape counts them).
    pub count: u64,
    /// How many elements each tensor has.
    pub elements: u64,
    /// The flat row-major index of the first differing element.
    pub first: u64,
    /// The largest `|a - b|` in float64 (infinite for NaN against a number), and the flat
    /// index of the first element that has it; `None` when the elements are not numbers
    /// ckpt reads (compared as bytes).
    pub max_abs: Option<(f64, u64)>,
    /// The largest `|a - b| / |b|` (infinite where `b` is zero).
    pub max_rel: Option<f64>,
}

/// The comparison of plain values (everything in the tree but tensors and non-empty
/// containers).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ValuesDiff {
    /// How many names both have.
    pub compared: usize,
    /// Names only A has.
    pub only_in_a: Vec<String>,
    /// Names only B has.
    pub only_in_b: Vec<String>,
    /// Values that differ: name, A's value and B's, as Python prints them.
    pub differ: Vec<(String, String, String)>,
}

/// Counts over a [`Diff`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Summary {
    /// Names both have.
    pub compared: usize,
    /// Of those, the equal tensors.
    pub equal: usize,
    /// Tensors whose elements differ.
    pub differ: usize,
    /// Tensors whose dtypes differ.
    pub dtype_mismatch: usize,
    /// Tensors whose shapes differ.
    pub shape_mismatch: usize,
    /// Tensors whose elements could not be compared.
    pub not_compared: usize,
    /// Names only A has.
    pub only_in_a: usize,
    /// Names only B has.
    pub only_in_b: usize,
    /// Plain values that differ or that only one side has.
    pub values_differ: usize,
}

impl Diff {
    /// The counts.
    pub fn summary(&self) -> Summary {
        let mut summary = Summary {
            compared: self.tensors.len(),
            only_in_a: self.only_in_a.len(),
            only_in_b: self.only_in_b.len(),
            ..Summary::default()
        };
        for tensor in &self.tensors {
            summary.equal += usize::from(tensor.equal);
            summary.dtype_mismatch += usize::from(tensor.dtype_differs());
            summary.shape_mismatch += usize::from(tensor.shape_differs());
            match &tensor.values {
                Values::Equal => {}
                Values::Differ(_) => summary.differ += 1,
                Values::NotCompared(_) => {
                    summary.not_compared += usize::from(!tensor.shape_differs());
                }
            }
        }
        if let Some(values) = &self.values {
            summary.values_differ =
                values.differ.len() + values.only_in_a.len() + values.only_in_b.len();
        }
        summary
    }

    /// Whether the checkpoints are equal: the same names, every tensor equal, and the same
    /// plain values where those were compared.
    pub fn is_equal(&self) -> bool {
        let summary = self.summary();
        summary.equal == summary.compared
            && summary.only_in_a == 0
            && summary.only_in_b == 0
            && summary.values_differ == 0
    }
}

/// Compares the tensors (and plain values) of `a` and `b` under `options`, on all cores.
/// `progress` hears about the bytes read on both sides and can cancel the work. Errors
/// (a key map that gives two tensors one name, a tensor that cannot be read) name the
/// tensor.
pub fn compare(
    a: &Checkpoint<'_>,
    b: &Checkpoint<'_>,
    options: &DiffOptions,
    progress: &dyn Progress,
) -> Result<Diff> {
    let mut side_a = options.keys_a.apply(a.tensors())?.kept;
    let mut side_b = options.keys_b.apply(b.tensors())?.kept;
    side_a.retain(|(name, _)| options.filter.keeps(name));
    side_b.retain(|(name, _)| options.filter.keeps(name));
    let names_a: HashMap<&str, usize> = side_a
        .iter()
        .enumerate()
        .map(|(i, (name, _))| (name.as_str(), i))
        .collect();
    let by_name_b: HashMap<&str, usize> = side_b
        .iter()
        .enumerate()
        .map(|(i, (name, _))| (name.as_str(), i))
        .collect();
    let source_a = source_names(a, &options.keys_a);
    let source_b = source_names(b, &options.keys_b);
    let only_in_b = side_b
        .iter()
        .filter(|(name, _)| !names_a.contains_key(name.as_str()))
        .map(|(name, _)| name.clone())
        .collect();
    let mut only_in_a = Vec::new();
    let mut pairs: Vec<(String, TensorView<'_>, TensorView<'_>)> = Vec::new();
    for (name, view_a) in &side_a {
        match by_name_b.get(name.as_str()).and_then(|&i| side_b.get(i)) {
            Some((_, view_b)) => {
                let (view_a, view_b) = as_packed_float4(view_a, view_b);
                pairs.push((name.clone(), view_a, view_b));
            }
            None => only_in_a.push(name.clone()),
        }
    }

    // Plan each pair, then cut the comparable ones in pieces.
    let mut tensors = Vec::with_capacity(pairs.len());
    let mut plans: Vec<Option<Plan>> = Vec::with_capacity(pairs.len());
    for (name, view_a, view_b) in &pairs {
        let plan = if view_a.shape() == view_b.shape() {
            Plan::new(view_a.dtype(), view_b.dtype(), options.tolerance)
        } else {
            Err("the shapes differ".to_owned())
        };
        let (values, plan) = match plan {
            Ok(plan) => (Values::Equal, Some(plan)),
            Err(reason) => (Values::NotCompared(reason), None),
        };
        plans.push(plan);
        tensors.push(TensorDiff {
            name: name.clone(),
            name_a: source_a.get(name).cloned().unwrap_or_else(|| name.clone()),
            name_b: source_b.get(name).cloned().unwrap_or_else(|| name.clone()),
            dtype_a: view_a.dtype(),
            dtype_b: view_b.dtype(),
            shape_a: view_a.shape().to_vec(),
            shape_b: view_b.shape().to_vec(),
            quantization_differs: view_a.quantization() != view_b.quantization(),
            values,
            equal: false,
        });
    }
    let mut work = Vec::new();
    let mut total = 0u64;
    for (index, ((name, view_a, view_b), plan)) in pairs.iter().zip(&plans).enumerate() {
        let Some(plan) = plan else { continue };
        let widest = [view_a.dtype(), view_b.dtype()]
            .iter()
            .map(|d| d.byte_size().unwrap_or(1))
            .max()
            .unwrap_or(1);
        let max_elements = PIECE_BYTES / widest;
        let pieces_a = view_a
            .pieces(max_elements)
            .map_err(|e| e.with_tensor(name.clone()))?;
        let pieces_b = view_b
            .pieces(max_elements)
            .map_err(|e| e.with_tensor(name.clone()))?;
        if pieces_a.len() != pieces_b.len() {
            return Err(
                Error::malformed("two tensors of one shape were cut differently")
                    .with_tensor(name.clone()),
            );
        }
        total += (view_a.nbytes() + view_b.nbytes()) as u64;
        for ((first, piece_a), (_, piece_b)) in pieces_a.into_iter().zip(pieces_b) {
            work.push((index, *plan, first, piece_a, piece_b));
        }
    }
    progress.start(total);
    let found: Vec<(usize, Found)> = work
        .par_iter()
        .map(|(index, plan, first, piece_a, piece_b)| {
            if progress.is_cancelled() {
                return Err(Error::interrupted());
            }
            let found = compare::piece(plan, piece_a, piece_b, *first).map_err(|e| {
                let name = pairs.get(*index).map(|p| p.0.clone()).unwrap_or_default();
                e.with_tensor(name)
            })?;
            progress.advance((piece_a.nbytes() + piece_b.nbytes()) as u64);
            Ok((*index, found))
        })
        .collect::<Result<_>>()?;
    drop(work);
    let mut merged: Vec<Found> = vec![Found::default(); tensors.len()];
    for (index, piece) in &found {
        if let Some(sum) = merged.get_mut(*index) {
            sum.merge(piece);
        }
    }
    for (tensor, found) in tensors.iter_mut().zip(&merged) {
        if matches!(tensor.values, Values::Equal)
            && let Some(first) = found.first
        {
            tensor.values = Values::Differ(Differences {
                count: found.count,
                elements: shape_numel(&tensor.shape_a),
                first,
                max_abs: found.max_abs,
                max_rel: found.max_rel,
            });
        }
        tensor.equal = tensor.values == Values::Equal
            && (options.ignore_dtype || !tensor.dtype_differs())
            && !tensor.quantization_differs;
    }

    let values = (a.format() != Format::Safetensors && b.format() != Format::Safetensors)
        .then(|| compare_values(a, b, options))
        .transpose()?;
    Ok(Diff {
        only_in_a,
        only_in_b,
        tensors,
        values,
        tolerance: options.tolerance,
    })
}

/// A `float4_e2m1fn` tensor of shape `[..., 2n]` (how safetensors stores float4, `F4`)
/// facing a `float4_e2m1fn_x2` tensor of shape `[..., n]` (how torch does) is read as the
/// latter: the same bytes, which torch loads as such.
fn as_packed_float4<'v, 'd>(
    a: &'v TensorView<'d>,
    b: &'v TensorView<'d>,
) -> (TensorView<'d>, TensorView<'d>) {
    let packed = |single: &TensorView<'d>, pair: &TensorView<'d>| -> Option<TensorView<'d>> {
        if single.dtype() != Dtype::Float4E2M1Fn || pair.dtype() != Dtype::Float4E2M1FnX2 {
            return None;
        }
        let mut shape = single.shape().to_vec();
        let last = shape.last_mut()?;
        if *last % 2 != 0 {
            return None;
        }
        *last /= 2;
        single.data()?;
        TensorView::contiguous(Dtype::Float4E2M1FnX2, shape, single.storage().clone()).ok()
    };
    match (packed(a, b), packed(b, a)) {
        (Some(a), _) => (a, b.clone()),
        (_, Some(b)) => (a.clone(), b),
        _ => (a.clone(), b.clone()),
    }
}

fn shape_numel(shape: &[usize]) -> u64 {
    shape.iter().map(|&d| d as u64).product()
}

/// Output name -> source name, for the names a key map changed.
fn source_names(checkpoint: &Checkpoint<'_>, keys: &KeyMap) -> HashMap<String, String> {
    checkpoint
        .tensors()
        .into_iter()
        .filter(|(name, _)| keys.keeps(name))
        .map(|(name, _)| (keys.rename_one(&name), name))
        .collect()
}

/// Plain values by dotted name (after each side's key map), compared as Python prints
/// them, and by type.
fn compare_values(
    a: &Checkpoint<'_>,
    b: &Checkpoint<'_>,
    options: &DiffOptions,
) -> Result<ValuesDiff> {
    let printed = |values: Vec<(String, &Value<'_>)>| -> Vec<(String, String)> {
        values
            .into_iter()
            .map(|(name, value)| (name, format!("{}: {value}", value.type_name())))
            .collect()
    };
    let mut side_a = options.keys_a.apply(printed(a.values()))?.kept;
    let mut side_b = options.keys_b.apply(printed(b.values()))?.kept;
    side_a.retain(|(name, _)| options.filter.keeps(name));
    side_b.retain(|(name, _)| options.filter.keeps(name));
    let by_name_b: HashMap<&str, &str> = side_b
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    let names_a: std::collections::HashSet<&str> =
        side_a.iter().map(|(name, _)| name.as_str()).collect();
    let mut diff = ValuesDiff::default();
    for (name, value_a) in &side_a {
        match by_name_b.get(name.as_str()) {
            Some(value_b) => {
                diff.compared += 1;
                if value_a != value_b {
                    diff.differ
                        .push((name.clone(), value_a.clone(), (*value_b).to_owned()));
                }
            }
            None => diff.only_in_a.push(name.clone()),
        }
    }
    diff.only_in_b = side_b
        .iter()
        .filter(|(name, _)| !names_a.contains(name.as_str()))
        .map(|(name, _)| name.clone())
        .collect();
    Ok(diff)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ByteOrder, Dict, Storage};

    fn f32s(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    fn checkpoint<'d>(
        format: Format,
        tensors: Vec<(&str, TensorView<'d>)>,
        values: Vec<(&str, Value<'d>)>,
    ) -> Checkpoint<'d> {
        let entries = tensors
            .into_iter()
            .map(|(n, t)| (Value::Str(n.to_owned()), Value::Tensor(t)))
            .chain(
                values
                    .into_iter()
                    .map(|(n, v)| (Value::Str(n.to_owned()), v)),
            )
            .collect();
        Checkpoint::new(format, Default::default(), Value::Dict(Dict::new(entries)))
    }

    fn dense<'d>(dtype: Dtype, shape: Vec<usize>, bytes: &'d [u8]) -> TensorView<'d> {
        TensorView::contiguous(dtype, shape, Storage::new(bytes, ByteOrder::Little)).unwrap()
    }

    #[test]
    fn names_shapes_dtypes_and_values() {
        let x = f32s(&[1.0, 2.0, f32::NAN, 4.0]);
        let y = f32s(&[1.0, 2.5, f32::NAN, -4.0]);
        let z = f32s(&[0.0; 4]);
        let a = checkpoint(
            Format::TorchZip,
            vec![
                ("module.w", dense(Dtype::Float32, vec![2, 2], &x)),
                ("module.s", dense(Dtype::Float32, vec![4], &z)),
                ("module.gone", dense(Dtype::Float32, vec![4], &z)),
            ],
            vec![("epoch", Value::Int(3)), ("lr", Value::Float(0.1))],
        );
        let b = checkpoint(
            Format::TorchLegacy,
            vec![
                ("w", dense(Dtype::Float32, vec![2, 2], &y)),
                ("s", dense(Dtype::Float32, vec![2, 2], &z)),
                ("new", dense(Dtype::Float32, vec![4], &z)),
            ],
            vec![("epoch", Value::Int(4)), ("lr", Value::Float(0.1))],
        );
        let options = DiffOptions {
            keys_a: KeyMap::new().strip_prefix("module.").unwrap(),
            ..DiffOptions::default()
        };
        let diff = compare(&a, &b, &options, &()).unwrap();
        assert_eq!(diff.only_in_a, ["gone"]);
        assert_eq!(diff.only_in_b, ["new"]);
        let w = &diff.tensors[0];
        assert_eq!((w.name.as_str(), w.name_a.as_str()), ("w", "module.w"));
        let Values::Differ(d) = &w.values else {
            panic!("{w:?}")
        };
        assert_eq!((d.count, d.elements, d.first), (2, 4, 1));
        assert_eq!(d.max_abs, Some((8.0, 3)));
        assert_eq!(d.max_rel, Some(2.0));
        assert!(diff.tensors[1].shape_differs());
        assert!(matches!(diff.tensors[1].values, Values::NotCompared(_)));
        let values = diff.values.as_ref().unwrap();
        assert_eq!(values.compared, 2);
        assert_eq!(values.differ.len(), 1);
        assert_eq!(values.differ[0].0, "epoch");
        let summary = diff.summary();
        assert_eq!(
            (
                summary.compared,
                summary.equal,
                summary.differ,
                summary.shape_mismatch
            ),
            (2, 0, 1, 1)
        );
        assert!(!diff.is_equal());
        // The same checkpoint is equal to itself.
        assert!(
            compare(&a, &a, &DiffOptions::default(), &())
                .unwrap()
                .is_equal()
        );
    }

    #[test]
    fn tolerances_and_mixed_dtypes() {
        let x = f32s(&[1.0, 1.0 + 1e-6, 0.0]);
        let y = f32s(&[1.0, 1.0, -0.0]);
        let a = checkpoint(
            Format::Safetensors,
            vec![("t", dense(Dtype::Float32, vec![3], &x))],
            vec![],
        );
        let b = checkpoint(
            Format::Safetensors,
            vec![("t", dense(Dtype::Float32, vec![3], &y))],
            vec![],
        );
        let exact = compare(&a, &b, &DiffOptions::default(), &()).unwrap();
        let Values::Differ(d) = &exact.tensors[0].values else {
            panic!()
        };
        // 1+1e-6 vs 1, and 0.0 vs -0.0 (bitwise different, numerically equal).
        assert_eq!(d.count, 2);
        assert!(exact.values.is_none());
        let close = DiffOptions {
            tolerance: Tolerance::allclose(None, None).unwrap(),
            ..DiffOptions::default()
        };
        assert!(compare(&a, &b, &close, &()).unwrap().is_equal());
        let zero = DiffOptions {
            tolerance: Tolerance::allclose(Some(0.0), Some(0.0)).unwrap(),
            ..DiffOptions::default()
        };
        let Values::Differ(d) = &compare(&a, &b, &zero, &()).unwrap().tensors[0].values else {
            panic!()
        };
        assert_eq!((d.count, d.first), (1, 1));
        assert!(Tolerance::allclose(Some(-1.0), None).is_err());
        assert!(Tolerance::allclose(None, Some(f64::NAN)).is_err());

        // float32 against bfloat16 of the same values: a dtype mismatch, equal values.
        let bf: Vec<u8> = [0x3F80u16, 0x3F80, 0x8000]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let c = checkpoint(
            Format::Safetensors,
            vec![("t", dense(Dtype::BFloat16, vec![3], &bf))],
            vec![],
        );
        let mixed = compare(&b, &c, &DiffOptions::default(), &()).unwrap();
        assert!(mixed.tensors[0].dtype_differs());
        assert_eq!(mixed.tensors[0].values, Values::Equal);
        assert!(!mixed.is_equal());
        let ignoring = DiffOptions {
            ignore_dtype: true,
            ..DiffOptions::default()
        };
        assert!(compare(&b, &c, &ignoring, &()).unwrap().is_equal());
    }

    #[test]
    fn expanded_views_past_the_limit_are_refused() {
        // 4 bytes repeated into 2 GiB by a zero stride (a crafted file): an error naming the
        // tensor, before any work.
        let one = f32s(&[1.0]);
        let huge = || {
            TensorView::strided(
                Dtype::Float32,
                vec![1 << 29],
                vec![0],
                0,
                Storage::new(&one, ByteOrder::Little),
            )
            .unwrap()
        };
        let a = checkpoint(Format::TorchZip, vec![("x", huge())], vec![]);
        let b = checkpoint(Format::TorchZip, vec![("x", huge())], vec![]);
        let error = compare(&a, &b, &DiffOptions::default(), &()).unwrap_err();
        assert!(error.to_string().contains('x'), "{error}");
        assert_eq!(error.kind(), crate::ErrorKind::LimitExceeded);
    }

    #[test]
    fn big_tensors_are_compared_in_pieces() {
        // 3M float32 (12 MB: three pieces), one element changed in the last piece, and a
        // transposed big-endian copy that reads the same.
        let n = 3_000_000usize;
        let values: Vec<f32> = (0..n).map(|i| i as f32).collect();
        let a_bytes = f32s(&values);
        let mut changed = values.clone();
        changed[2_999_000] += 0.5;
        let b_bytes = f32s(&changed);
        let a = checkpoint(
            Format::Safetensors,
            vec![("t", dense(Dtype::Float32, vec![1000, 3000], &a_bytes))],
            vec![],
        );
        let b = checkpoint(
            Format::Safetensors,
            vec![("t", dense(Dtype::Float32, vec![1000, 3000], &b_bytes))],
            vec![],
        );
        let diff = compare(&a, &b, &DiffOptions::default(), &()).unwrap();
        let Values::Differ(d) = &diff.tensors[0].values else {
            panic!()
        };
        assert_eq!(
            (d.count, d.first, d.max_abs),
            (1, 2_999_000, Some((0.5, 2_999_000)))
        );
        // The transpose of a [3000, 1000] big-endian matrix holding the same elements.
        let mut transposed = vec![0f32; n];
        for r in 0..1000 {
            for c in 0..3000 {
                transposed[c * 1000 + r] = values[r * 3000 + c];
            }
        }
        let be: Vec<u8> = transposed.iter().flat_map(|v| v.to_be_bytes()).collect();
        let view = TensorView::strided(
            Dtype::Float32,
            vec![1000, 3000],
            vec![1, 1000],
            0,
            Storage::new(&be, ByteOrder::Big),
        )
        .unwrap();
        let t = checkpoint(Format::TorchLegacy, vec![("t", view)], vec![]);
        assert!(
            compare(&a, &t, &DiffOptions::default(), &())
                .unwrap()
                .is_equal()
        );
    }
}
