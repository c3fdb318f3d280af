//! The element kernel: two pieces of packed little-endian elements compared side by side.

use std::borrow::Cow;

use crate::cast::{self, Decoder};
use crate::error::{Error, Result};
use crate::model::{Dtype, DtypeClass, TensorView, shape};

use super::Tolerance;

/// Elements compared at once within a piece (a multiple of 8, so that windows of packed
/// sub-byte elements start on a byte).
const WINDOW: usize = 1 << 14;

/// How the elements of one pair of tensors (of one shape) are compared.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    pub(crate) dtype_a: Dtype,
    pub(crate) dtype_b: Dtype,
    /// Elements are equal when their bytes are (same dtype: integers, bool and quantized in
    /// exact mode, and dtypes ckpt cannot read as numbers), in units of this many bytes.
    pub(crate) bytewise: Option<usize>,
    /// Whether the elements are read as numbers (for tolerances and the size of a difference).
    pub(crate) numeric: bool,
    /// Numbers per element (2 for complex and `float4_e2m1fn_x2`).
    pub(crate) values: usize,
    pub(crate) complex: bool,
    pub(crate) tolerance: Tolerance,
    pub(crate) arith: Arith,
}

/// The arithmetic torch's `isclose` does for a dtype: in float64, float32, or float32 with
/// every result rounded to float16 or bfloat16 (what torch's CPU kernels for those do).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arith {
    F64,
    F32,
    F16,
    BF16,
}

impl Plan {
    /// The plan for tensors of `dtype_a` and `dtype_b`, or why their values cannot be
    /// compared.
    pub(crate) fn new(
        dtype_a: Dtype,
        dtype_b: Dtype,
        tolerance: Tolerance,
    ) -> std::result::Result<Plan, String> {
        let complex = dtype_a.class() == DtypeClass::Complex;
        let values = |dtype: Dtype| {
            let parts = if dtype.class() == DtypeClass::Complex {
                2
            } else {
                1
            };
            usize::try_from(dtype.values_per_element()).unwrap_or(1) * parts
        };
        let numeric = cast::decodes(dtype_a) && cast::decodes(dtype_b);
        if dtype_a == dtype_b {
            let exact_bytes = matches!(tolerance, Tolerance::Exact)
                && !matches!(dtype_a.class(), DtypeClass::Float | DtypeClass::Complex);
            let bytewise = (exact_bytes || !numeric).then(|| dtype_a.byte_size().unwrap_or(1));
            let arith = match dtype_a {
                Dtype::Float32 | Dtype::Complex64 => Arith::F32,
                Dtype::Float16 => Arith::F16,
                Dtype::BFloat16 => Arith::BF16,
                _ => Arith::F64,
            };
            return Ok(Plan {
                dtype_a,
                dtype_b,
                bytewise,
                numeric,
                values: values(dtype_a),
                complex,
                tolerance,
                arith,
            });
        }
        if !numeric {
            let unreadable = if cast::decodes(dtype_a) {
                dtype_b
            } else {
                dtype_a
            };
            return Err(format!(
                "{unreadable} elements cannot be read as numbers to compare with {}",
                if unreadable == dtype_a {
                    dtype_b
                } else {
                    dtype_a
                }
            ));
        }
        if complex != (dtype_b.class() == DtypeClass::Complex) || values(dtype_a) != values(dtype_b)
        {
            return Err(format!(
                "{dtype_a} and {dtype_b} elements are not comparable number by number"
            ));
        }
        Ok(Plan {
            dtype_a,
            dtype_b,
            bytewise: None,
            numeric,
            values: values(dtype_a),
            complex,
            tolerance,
            arith: Arith::F64,
        })
    }
}

/// What was found in some elements: the differing ones, counted, with the first and the
/// largest differences.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Found {
    pub(crate) count: u64,
    pub(crate) first: Option<u64>,
    /// The largest absolute difference and the index of the first element that has it.
    pub(crate) max_abs: Option<(f64, u64)>,
    pub(crate) max_rel: Option<f64>,
}

impl Found {
    fn record(&mut self, index: u64, sizes: Option<(f64, f64)>) {
        self.count += 1;
        if self.first.is_none() {
            self.first = Some(index);
        }
        if let Some((abs, rel)) = sizes {
            if self.max_abs.is_none_or(|(max, _)| abs > max) {
                self.max_abs = Some((abs, index));
            }
            if self.max_rel.is_none_or(|max| rel > max) {
                self.max_rel = Some(rel);
            }
        }
    }

    /// Adds what was found in later elements.
    pub(crate) fn merge(&mut self, later: &Found) {
        self.count += later.count;
        self.first = self.first.or(later.first);
        if let Some((abs, at)) = later.max_abs
            && self.max_abs.is_none_or(|(max, _)| abs > max)
        {
            self.max_abs = Some((abs, at));
        }
        if let Some(rel) = later.max_rel
            && self.max_rel.is_none_or(|max| rel > max)
        {
            self.max_rel = Some(rel);
        }
    }
}

/// The packed little-endian bytes of a view: borrowed when it has them as they are.
fn packed<'v>(view: &'v TensorView<'_>) -> Result<Cow<'v, [u8]>> {
    match view.data() {
        Some(bytes) => Ok(Cow::Borrowed(bytes)),
        None => Ok(Cow::Owned(view.to_le_bytes()?)),
    }
}

fn packed_len(dtype: Dtype, elements: usize) -> Result<usize> {
    shape::packed_len(dtype, elements)
        .map_err(|_| Error::malformed(format!("{elements} {dtype} elements are not whole bytes")))
}

/// The bytes of elements `start..end` in packed `bytes` of `dtype`.
fn window(bytes: &[u8], dtype: Dtype, start: usize, end: usize) -> Result<&[u8]> {
    let (from, to) = (packed_len(dtype, start)?, packed_len(dtype, end)?);
    bytes
        .get(from..to)
        .ok_or_else(|| Error::malformed("a piece of a tensor is shorter than its shape"))
}

/// Compares two pieces of one shape, whose first element is element `first` of their
/// tensors.
pub(crate) fn piece(
    plan: &Plan,
    a: &TensorView<'_>,
    b: &TensorView<'_>,
    first: usize,
) -> Result<Found> {
    let (bytes_a, bytes_b) = (packed(a)?, packed(b)?);
    let mut found = Found::default();
    let same_dtype = plan.dtype_a == plan.dtype_b;
    if same_dtype && bytes_a == bytes_b {
        return Ok(found);
    }
    let mut decoders = if plan.numeric {
        Some((Decoder::new(plan.dtype_a)?, Decoder::new(plan.dtype_b)?))
    } else {
        None
    };
    let (mut values_a, mut values_b) = (Vec::new(), Vec::new());
    let n = a.numel();
    let mut start = 0;
    while start < n {
        let end = n.min(start + WINDOW);
        let wa = window(&bytes_a, plan.dtype_a, start, end)?;
        let wb = window(&bytes_b, plan.dtype_b, start, end)?;
        let index = (first + start) as u64;
        start = end;
        if same_dtype && wa == wb {
            continue;
        }
        if let Some((decoder_a, decoder_b)) = decoders.as_mut() {
            values_a.clear();
            values_b.clear();
            decoder_a.push(wa, |v| values_a.extend_from_slice(v))?;
            decoder_b.push(wb, |v| values_b.extend_from_slice(v))?;
            decoder_a.finish()?;
            decoder_b.finish()?;
        }
        window_into(plan, (wa, wb), (&values_a, &values_b), index, &mut found);
    }
    Ok(found)
}

/// Compares one window of elements (bytes, and their numbers when read), recording the
/// differing ones from element `index` on.
fn window_into(
    plan: &Plan,
    (wa, wb): (&[u8], &[u8]),
    (va, vb): (&[f64], &[f64]),
    index: u64,
    found: &mut Found,
) {
    let v = plan.values.max(1);
    let numbers = va.chunks_exact(v).zip(vb.chunks_exact(v));
    match (plan.bytewise, plan.numeric) {
        (Some(unit), false) => {
            for (i, (ea, eb)) in wa.chunks_exact(unit).zip(wb.chunks_exact(unit)).enumerate() {
                if ea != eb {
                    found.record(index + i as u64, None);
                }
            }
        }
        (Some(unit), true) => {
            let bytes = wa.chunks_exact(unit).zip(wb.chunks_exact(unit));
            for (i, ((ea, eb), (xa, xb))) in bytes.zip(numbers).enumerate() {
                if ea != eb {
                    found.record(index + i as u64, Some(sizes(plan, xa, xb)));
                }
            }
        }
        // One real number per element (the common case): a plain loop over the numbers.
        (None, _) if v == 1 && !plan.complex => {
            for (i, (&x, &y)) in va.iter().zip(vb).enumerate() {
                let same = match plan.tolerance {
                    Tolerance::Exact => same_bits(x, y),
                    Tolerance::Close { atol, rtol } => close_real(plan.arith, atol, rtol, x, y),
                };
                if !same {
                    found.record(index + i as u64, Some(sizes(plan, &[x], &[y])));
                }
            }
        }
        (None, _) => {
            for (i, (xa, xb)) in numbers.enumerate() {
                let same = match plan.tolerance {
                    Tolerance::Exact => xa.iter().zip(xb).all(|(&x, &y)| same_bits(x, y)),
                    Tolerance::Close { atol, rtol } => close(plan, atol, rtol, xa, xb),
                };
                if !same {
                    found.record(index + i as u64, Some(sizes(plan, xa, xb)));
                }
            }
        }
    }
}

/// Exact equality of two numbers read from elements: the same bits, or both NaN. (Reading
/// keeps every bit of every float dtype except NaN payloads, so this is bitwise equality of
/// the elements with all NaNs equal.)
fn same_bits(x: f64, y: f64) -> bool {
    x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan())
}

/// `torch.isclose(a, b, rtol, atol, equal_nan=True)` for one element (its numbers).
fn close(plan: &Plan, atol: f64, rtol: f64, a: &[f64], b: &[f64]) -> bool {
    if plan.complex {
        match (a, b) {
            (&[ar, ai], &[br, bi]) => close_complex(plan.arith, atol, rtol, (ar, ai), (br, bi)),
            _ => false,
        }
    } else {
        a.iter()
            .zip(b)
            .all(|(&x, &y)| close_real(plan.arith, atol, rtol, x, y))
    }
}

/// `x` rounded as torch stores the result of an operation in the arithmetic's dtype.
fn round(arith: Arith, x: f32) -> f32 {
    match arith {
        Arith::F16 => cast::round_to_float16(x),
        Arith::BF16 => cast::round_to_bfloat16(x),
        Arith::F32 | Arith::F64 => x,
    }
}

/// torch's `isclose` rule for real numbers (`other` is `y`):
/// `a == b or both NaN or (isfinite(|a - b|) and |a - b| <= atol + |rtol * b|)`, each
/// operation in the dtype's arithmetic (float32 for float32, float32 rounded to the dtype
/// after each operation for float16 and bfloat16, else float64).
#[allow(clippy::cast_possible_truncation)] // float32 arithmetic on values read from float32 or narrower
fn close_real(arith: Arith, atol: f64, rtol: f64, x: f64, y: f64) -> bool {
    if x == y || (x.is_nan() && y.is_nan()) {
        return true;
    }
    if atol == 0.0 && rtol == 0.0 {
        return false;
    }
    if arith == Arith::F64 {
        let actual = (x - y).abs();
        return actual.is_finite() && actual <= atol + (rtol * y).abs();
    }
    let (x, y, atol, rtol) = (x as f32, y as f32, atol as f32, rtol as f32);
    let actual = round(arith, x - y).abs();
    let allowed = round(arith, atol + round(arith, rtol * y).abs());
    actual.is_finite() && actual <= allowed
}

/// torch's `isclose` rule for complex numbers: equal parts, or both with a NaN part, or
/// `|a - b| <= atol + |rtol * b|` with complex magnitudes.
#[allow(clippy::cast_possible_truncation)] // complex64's float32 parts
fn close_complex(arith: Arith, atol: f64, rtol: f64, a: (f64, f64), b: (f64, f64)) -> bool {
    let nan = |(re, im): (f64, f64)| re.is_nan() || im.is_nan();
    if a == b || (nan(a) && nan(b)) {
        return true;
    }
    if atol == 0.0 && rtol == 0.0 {
        return false;
    }
    if arith == Arith::F32 {
        let (atol, rtol) = (atol as f32, rtol as f32);
        let (ar, ai, br, bi) = (a.0 as f32, a.1 as f32, b.0 as f32, b.1 as f32);
        let actual = (ar - br).hypot(ai - bi);
        return actual.is_finite() && actual <= atol + (rtol * br).hypot(rtol * bi);
    }
    let actual = (a.0 - b.0).hypot(a.1 - b.1);
    actual.is_finite() && actual <= atol + (rtol * b.0).hypot(rtol * b.1)
}

/// The absolute and relative difference of two elements, in float64 (complex: magnitudes;
/// several numbers per element: the largest). A difference that is not a number (NaN
/// against a number, inf against inf of the other sign) counts as infinite; relative to
/// zero, any difference is infinite.
fn sizes(plan: &Plan, a: &[f64], b: &[f64]) -> (f64, f64) {
    let one = |abs: f64, reference: f64| {
        let abs = if abs.is_nan() { f64::INFINITY } else { abs };
        let rel = if abs == 0.0 {
            0.0
        } else if reference == 0.0 || reference.is_nan() {
            f64::INFINITY
        } else {
            abs / reference
        };
        (abs, rel)
    };
    if plan.complex
        && let (&[ar, ai], &[br, bi]) = (a, b)
    {
        return one((ar - br).hypot(ai - bi), br.hypot(bi));
    }
    a.iter()
        .zip(b)
        .map(|(&x, &y)| {
            let abs = if x == y { 0.0 } else { (x - y).abs() };
            one(abs, y.abs())
        })
        .fold((0.0, 0.0), |(m, r), (abs, rel)| (m.max(abs), r.max(rel)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact(dtype: Dtype) -> Plan {
        Plan::new(dtype, dtype, Tolerance::Exact).unwrap()
    }

    fn closeness(dtype: Dtype, atol: f64, rtol: f64) -> Plan {
        Plan::new(dtype, dtype, Tolerance::Close { atol, rtol }).unwrap()
    }

    #[test]
    fn exact_is_bitwise_with_nans_equal() {
        assert!(same_bits(f64::NAN, -f64::NAN));
        assert!(same_bits(1.5, 1.5));
        assert!(!same_bits(0.0, -0.0));
        assert!(!same_bits(f64::INFINITY, f64::NEG_INFINITY));
        let plan = exact(Dtype::Float32);
        assert!(plan.bytewise.is_none());
        let ints = exact(Dtype::Int64);
        assert_eq!(ints.bytewise, Some(8));
        // Numbers past 2^53 read alike as float64, but their bytes differ.
        let (a, b) = (
            (1i64 << 60).to_le_bytes().to_vec(),
            ((1i64 << 60) + 1).to_le_bytes().to_vec(),
        );
        let mut found = Found::default();
        let (x, y) = ([(1i64 << 60) as f64], [((1i64 << 60) + 1) as f64]);
        window_into(&ints, (&a, &b), (&x, &y), 7, &mut found);
        assert_eq!(found.count, 1);
        assert_eq!(found.first, Some(7));
    }

    #[test]
    fn isclose_rule_in_each_arithmetic() {
        let (atol, rtol) = (1e-8, 1e-5);
        for arith in [Arith::F64, Arith::F32, Arith::F16, Arith::BF16] {
            assert!(close_real(arith, atol, rtol, 1.0, 1.0));
            assert!(close_real(arith, atol, rtol, f64::NAN, f64::NAN));
            assert!(!close_real(arith, atol, rtol, f64::NAN, 1.0));
            assert!(close_real(arith, atol, rtol, f64::INFINITY, f64::INFINITY));
            assert!(!close_real(
                arith,
                atol,
                rtol,
                f64::INFINITY,
                f64::NEG_INFINITY
            ));
            assert!(!close_real(arith, atol, rtol, 1e30, f64::INFINITY));
            assert!(close_real(arith, atol, rtol, 0.0, -0.0));
            assert!(!close_real(arith, 0.0, 0.0, 1.0, 1.0 + 1.0 / 64.0));
        }
        // B is the reference: |a - b| <= atol + rtol * |b|.
        assert!(close_real(Arith::F64, 0.0, 0.4, 2.0, 3.0));
        assert!(!close_real(Arith::F64, 0.0, 0.4, 3.0, 2.0));
        // In float16, atol 4e-8 rounds to the smallest subnormal (2^-24), which is then
        // close to 0; in float64 it is not.
        let tiny = 2f64.powi(-24);
        assert!(close_real(Arith::F16, 4e-8, 0.0, tiny, 0.0));
        assert!(!close_real(Arith::F64, 4e-8, 0.0, tiny, 0.0));
        // In bfloat16, rtol * b rounds to bfloat16: 0.01 * 1.0 is 0.010009765625.
        assert!(close_real(Arith::BF16, 0.0, 0.01, 1.0078125, 1.0));
        assert!(!close_real(Arith::BF16, 0.0, 0.001, 1.0078125, 1.0));
    }

    #[test]
    fn complex_closeness_uses_magnitudes() {
        let plan = closeness(Dtype::Complex128, 0.0, 0.1);
        assert!(close(&plan, 0.0, 0.1, &[3.0, 4.0], &[3.0, 4.4]));
        assert!(!close(&plan, 0.0, 0.1, &[3.0, 4.0], &[3.0, 4.6]));
        // A NaN in either part is NaN; two NaNs are close.
        assert!(close(&plan, 0.0, 0.1, &[f64::NAN, 1.0], &[2.0, f64::NAN]));
        assert_eq!(sizes(&plan, &[3.0, 4.0], &[0.0, 0.0]), (5.0, f64::INFINITY));
    }

    #[test]
    fn sizes_count_nan_as_infinite() {
        let plan = exact(Dtype::Float64);
        assert_eq!(
            sizes(&plan, &[f64::NAN], &[1.0]),
            (f64::INFINITY, f64::INFINITY)
        );
        assert_eq!(sizes(&plan, &[3.0], &[2.0]), (1.0, 0.5));
        assert_eq!(sizes(&plan, &[0.0], &[-0.0]), (0.0, 0.0));
    }

    #[test]
    fn plans_for_mixed_dtypes() {
        let plan = Plan::new(Dtype::Float32, Dtype::BFloat16, Tolerance::Exact).unwrap();
        assert_eq!(plan.arith, Arith::F64);
        assert!(plan.bytewise.is_none());
        assert!(Plan::new(Dtype::Float32, Dtype::Complex64, Tolerance::Exact).is_err());
        assert!(Plan::new(Dtype::Bits8, Dtype::UInt8, Tolerance::Exact).is_err());
        let opaque = Plan::new(Dtype::Bits8, Dtype::Bits8, Tolerance::Exact).unwrap();
        assert_eq!(opaque.bytewise, Some(1));
        assert!(!opaque.numeric);
    }

    #[test]
    fn found_merges_in_order() {
        let mut a = Found::default();
        a.record(3, Some((2.0, 0.5)));
        let mut b = Found::default();
        b.record(10, Some((2.0, 0.7)));
        b.record(11, Some((1.0, 0.1)));
        a.merge(&b);
        assert_eq!(a.count, 3);
        assert_eq!(a.first, Some(3));
        assert_eq!(a.max_abs, Some((2.0, 3)));
        assert_eq!(a.max_rel, Some(0.7));
    }
}
