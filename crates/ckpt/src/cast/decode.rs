//! Elements as numbers: packed little-endian bytes of any numeric dtype read as `f64`, for
//! the commands that compute with values (`ckpt stats`, `ckpt diff --atol/--rtol`).
//!
//! Every value of every dtype ckpt decodes is exact in `f64` except 64-bit integers beyond
//! 2^53, which round to the nearest `f64` (as `tensor.double()` does in torch). NaN stays NaN
//! and infinities stay infinite; the NaN payload is not kept.

use crate::error::{Error, Result};
use crate::model::{Dtype, DtypeClass};

use super::{bfloat16, float8, float16};

/// How many elements a [`Decoder`] hands over at once, at most.
const BATCH: usize = 1 << 14;

/// Reads packed little-endian elements of one dtype as `f64`, across chunk boundaries that
/// may fall inside an element (or inside a packed byte group of sub-byte dtypes).
///
/// Real dtypes give one `f64` per value; complex dtypes give two (real part, then imaginary
/// part) per element, see [`Decoder::parts`]. `float4_e2m1fn_x2` and `float4_e2m1fn` give
/// one value per nibble, the low nibble first. Quantized tensors give their stored integers
/// (not dequantized).
///
/// ```
/// use ckpt::cast::Decoder;
/// use ckpt::Dtype;
///
/// let mut decoder = Decoder::new(Dtype::BFloat16)?;
/// let mut seen = Vec::new();
/// // 1.0 and -2.5 in bfloat16, split in the middle of the second element.
/// decoder.push(&[0x80, 0x3F, 0x20], |values| seen.extend_from_slice(values))?;
/// decoder.push(&[0xC0], |values| seen.extend_from_slice(values))?;
/// decoder.finish()?;
/// assert_eq!(seen, [1.0, -2.5]);
/// # Ok::<(), ckpt::Error>(())
/// ```
pub struct Decoder {
    dtype: Dtype,
    /// Bytes of one decoding unit (an element, or a packed group).
    unit: usize,
    kernel: fn(&[u8], &mut Vec<f64>),
    carry: Vec<u8>,
    values: Vec<f64>,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("dtype", &self.dtype)
            .field("carry", &self.carry.len())
            .finish_non_exhaustive()
    }
}

/// Whether ckpt can read elements of this dtype as numbers ([`Decoder::new`] succeeds).
pub fn decodes(dtype: Dtype) -> bool {
    kernel(dtype).is_some()
}

impl Decoder {
    /// A decoder for `dtype`. Fails with [`ErrorKind::Unsupported`](crate::ErrorKind) for
    /// the opaque `bits*` dtypes, the sub-byte integers torch cannot save, the packed
    /// `quint4x2`/`quint2x4` and the float6 kinds, whose packing no reference fixes.
    pub fn new(dtype: Dtype) -> Result<Decoder> {
        let (unit, kernel) = kernel(dtype).ok_or_else(|| {
            Error::unsupported(format!("{dtype} elements have no numeric reading in ckpt"))
        })?;
        Ok(Decoder {
            dtype,
            unit,
            kernel,
            carry: Vec::new(),
            values: Vec::with_capacity(BATCH * 2),
        })
    }

    /// The dtype decoded.
    pub fn dtype(&self) -> Dtype {
        self.dtype
    }

    /// How many `f64` each element gives: 2 for complex dtypes (real, imaginary), else 1
    /// (for `float4_e2m1fn_x2`, whose element is a byte of two values, see
    /// [`Dtype::values_per_element`]).
    pub fn parts(&self) -> usize {
        match self.dtype.class() {
            DtypeClass::Complex => 2,
            _ => 1,
        }
    }

    /// Decodes `bytes`, the next piece of the packed elements, handing the values to `emit`
    /// in batches. A partial element at the end is kept for the next call.
    pub fn push(&mut self, mut bytes: &[u8], mut emit: impl FnMut(&[f64])) -> Result<()> {
        if !self.carry.is_empty() {
            let need = self.unit - self.carry.len();
            let (head, rest) = bytes.split_at(need.min(bytes.len()));
            self.carry.extend_from_slice(head);
            bytes = rest;
            if self.carry.len() < self.unit {
                return Ok(());
            }
            self.values.clear();
            (self.kernel)(&self.carry, &mut self.values);
            emit(&self.values);
            self.carry.clear();
        }
        let whole = bytes.len() - bytes.len() % self.unit;
        let (body, tail) = bytes.split_at(whole);
        for batch in body.chunks(BATCH * self.unit) {
            self.values.clear();
            (self.kernel)(batch, &mut self.values);
            emit(&self.values);
        }
        self.carry.extend_from_slice(tail);
        Ok(())
    }

    /// Checks that the pieces ended on a whole element.
    pub fn finish(&mut self) -> Result<()> {
        if self.carry.is_empty() {
            return Ok(());
        }
        let left = self.carry.len();
        self.carry.clear();
        Err(Error::malformed(format!(
            "{} elements end {left} bytes into an element",
            self.dtype
        )))
    }
}

/// A loop over `N`-byte values, each read by `value`, monomorphized per dtype. A complex
/// element is two such values in a row (real, imaginary).
macro_rules! each {
    ($n:literal, $value:expr) => {{
        fn run(bytes: &[u8], out: &mut Vec<f64>) {
            let value: fn([u8; $n]) -> f64 = $value;
            out.extend(
                bytes
                    .chunks_exact($n)
                    // Every chunk has $n bytes; a map (not filter_map) keeps the exact
                    // length, so `extend` reserves once and the loop vectorizes.
                    .map(|c| <[u8; $n]>::try_from(c).unwrap_or([0; $n]))
                    .map(value),
            );
        }
        run as fn(&[u8], &mut Vec<f64>)
    }};
}

/// The decoding unit and loop of a dtype.
#[allow(clippy::type_complexity)]
fn kernel(dtype: Dtype) -> Option<(usize, fn(&[u8], &mut Vec<f64>))> {
    Some(match dtype {
        Dtype::Bool | Dtype::UInt8 | Dtype::QUInt8 => (1, each!(1, |[b]| f64::from(b))),
        Dtype::Int8 | Dtype::QInt8 => (1, each!(1, |[b]| f64::from(i8::from_le_bytes([b])))),
        Dtype::Int16 => (2, each!(2, |b| f64::from(i16::from_le_bytes(b)))),
        Dtype::UInt16 => (2, each!(2, |b| f64::from(u16::from_le_bytes(b)))),
        Dtype::Int32 | Dtype::QInt32 => (4, each!(4, |b| f64::from(i32::from_le_bytes(b)))),
        Dtype::UInt32 => (4, each!(4, |b| f64::from(u32::from_le_bytes(b)))),
        #[allow(clippy::cast_precision_loss)] // as torch's `.double()`
        Dtype::Int64 => (8, each!(8, |b| i64::from_le_bytes(b) as f64)),
        #[allow(clippy::cast_precision_loss)]
        Dtype::UInt64 => (8, each!(8, |b| u64::from_le_bytes(b) as f64)),
        Dtype::Float16 => (2, each!(2, |b| half(u16::from_le_bytes(b)))),
        Dtype::BFloat16 => (2, each!(2, |b| brain(u16::from_le_bytes(b)))),
        Dtype::Float32 => (4, each!(4, |b| f64::from(f32::from_le_bytes(b)))),
        Dtype::Float64 => (8, each!(8, f64::from_le_bytes)),
        Dtype::Complex32 => (4, each!(2, |b| half(u16::from_le_bytes(b)))),
        Dtype::BComplex32 => (4, each!(2, |b| brain(u16::from_le_bytes(b)))),
        Dtype::Complex64 => (8, each!(4, |b| f64::from(f32::from_le_bytes(b)))),
        Dtype::Complex128 => (16, each!(8, f64::from_le_bytes)),
        Dtype::Float8E5M2 => (1, each!(1, |[b]| bits(float8::e5m2_to_f32(b)))),
        Dtype::Float8E4M3Fn => (1, each!(1, |[b]| bits(float8::e4m3fn_to_f32(b)))),
        Dtype::Float8E5M2Fnuz => (1, each!(1, |[b]| bits(float8::fnuz_to_f32::<5, 2>(b)))),
        Dtype::Float8E4M3Fnuz => (1, each!(1, |[b]| bits(float8::fnuz_to_f32::<4, 3>(b)))),
        Dtype::Float8E8M0Fnu => (1, each!(1, |[b]| bits(float8::e8m0fnu_to_f32(b)))),
        Dtype::Float4E2M1FnX2 | Dtype::Float4E2M1Fn => (1, nibbles),
        _ => return None,
    })
}

fn bits(w: u32) -> f64 {
    f64::from(f32::from_bits(w))
}

fn half(h: u16) -> f64 {
    bits(float16::to_f32(h))
}

fn brain(b: u16) -> f64 {
    bits(bfloat16::to_f32(b))
}

/// float4 e2m1 magnitudes by their three low bits.
const E2M1: [f64; 8] = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0];

fn nibbles(bytes: &[u8], out: &mut Vec<f64>) {
    let value = |n: u8| {
        let magnitude = E2M1.get(usize::from(n & 7)).copied().unwrap_or(0.0);
        if n & 8 == 0 { magnitude } else { -magnitude }
    };
    for &b in bytes {
        out.push(value(b & 0x0F));
        out.push(value(b >> 4));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(dtype: Dtype, bytes: &[u8]) -> Vec<f64> {
        let mut decoder = Decoder::new(dtype).unwrap();
        let mut out = Vec::new();
        // One byte at a time, so that every element straddles a boundary.
        for b in bytes {
            decoder
                .push(std::slice::from_ref(b), |v| out.extend_from_slice(v))
                .unwrap();
        }
        decoder.finish().unwrap();
        out
    }

    #[test]
    fn every_numeric_family() {
        assert_eq!(decode(Dtype::Bool, &[0, 1]), [0.0, 1.0]);
        assert_eq!(decode(Dtype::Int8, &[0xFF, 0x80]), [-1.0, -128.0]);
        assert_eq!(decode(Dtype::UInt8, &[0xFF]), [255.0]);
        assert_eq!(decode(Dtype::Int16, &(-300i16).to_le_bytes()), [-300.0]);
        assert_eq!(
            decode(Dtype::UInt32, &u32::MAX.to_le_bytes()),
            [4294967295.0]
        );
        assert_eq!(
            decode(Dtype::Int64, &i64::MIN.to_le_bytes()),
            [-9223372036854775808.0]
        );
        assert_eq!(
            decode(Dtype::Float16, &[0x00, 0x3C, 0x00, 0xFC]),
            [1.0, f64::NEG_INFINITY]
        );
        assert_eq!(decode(Dtype::BFloat16, &[0x80, 0x3F]), [1.0]);
        assert_eq!(
            decode(Dtype::Float32, &0.1f32.to_le_bytes()),
            [f64::from(0.1f32)]
        );
        assert_eq!(decode(Dtype::Float64, &0.1f64.to_le_bytes()), [0.1]);
        // e4m3fn: 0x7E is 448, 0x7F NaN, 0x01 the smallest subnormal 2^-9.
        let e4m3 = decode(Dtype::Float8E4M3Fn, &[0x7E, 0x01, 0x7F]);
        assert_eq!(e4m3[..2], [448.0, 2f64.powi(-9)]);
        assert!(e4m3[2].is_nan());
        assert_eq!(
            decode(Dtype::Float8E5M2, &[0x7C, 0x3C]),
            [f64::INFINITY, 1.0]
        );
        assert!(decode(Dtype::Float8E4M3Fnuz, &[0x80])[0].is_nan());
        assert_eq!(decode(Dtype::Float8E8M0Fnu, &[127, 128]), [1.0, 2.0]);
        let c64: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        assert_eq!(decode(Dtype::Complex64, &c64), [1.5, -2.0]);
        // Low nibble first: 0x2 is 1.0, 0xF is -6.0.
        assert_eq!(decode(Dtype::Float4E2M1FnX2, &[0xF2]), [1.0, -6.0]);
    }

    #[test]
    fn partial_elements_are_reported() {
        let mut decoder = Decoder::new(Dtype::Float32).unwrap();
        decoder.push(&[0, 0, 0x80, 0x3F, 0], |_| {}).unwrap();
        let error = decoder.finish().unwrap_err();
        assert!(
            error.to_string().contains("1 bytes into an element"),
            "{error}"
        );
    }

    #[test]
    fn opaque_dtypes_are_refused() {
        assert!(!decodes(Dtype::Bits8));
        assert!(!decodes(Dtype::Float6E2M3Fn));
        assert!(Decoder::new(Dtype::Bits16).is_err());
        assert!(decodes(Dtype::Complex128));
    }
}
