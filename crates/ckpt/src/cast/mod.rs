//! Casts of floating-point tensors that give, bit for bit, what torch's CPU
//! `tensor.to(dtype)` gives (`ckpt convert --dtype`).
//!
//! A [`Cast`] converts packed little-endian elements of one dtype into another, a chunk at
//! a time (the pieces [`TensorView::for_each_chunk`](crate::TensorView::for_each_chunk)
//! hands out), and counts in [`CastStats`] the values that did not fit the target. Writers
//! use [`CastView`]s ([`cast_all`]): a tensor's output dtype, size and bytes, chunk by chunk.
//!
//! - Sources: every real floating dtype torch can convert: float64, float32, float16,
//!   bfloat16 and the float8 kinds (e4m3fn, e5m2, e4m3fnuz, e5m2fnuz, e8m0fnu); see
//!   [`applies`].
//! - Targets ([`TARGETS`]): bfloat16, float16, float32, float64, float8_e4m3fn, float8_e5m2.
//! - Everything else is **kept as it is**: integers, bool, quantized tensors, the packed
//!   float4 / float6 kinds (torch cannot convert them either: "copy_kernel not implemented
//!   for 'Float4_e2m1fn_x2'"), and **complex** tensors. torch's `module.to(float16)` would
//!   cast a complex tensor to a real dtype and drop its imaginary part (with a warning);
//!   ckpt never discards data silently, so complex tensors keep their dtype and writers list
//!   them among the kept tensors.
//!
//! # What torch does (torch 2.15, x86-64; checked against `tests/fixtures/cast/`)
//!
//! - **Everything goes through float32.** torch's copy kernel converts with `static_cast`
//!   through `float` (`c10::Half`, `c10::BFloat16` and the `Float8_*` types only convert from
//!   and to `float`), so float64 to a 16- or 8-bit type rounds twice: to float32 first (round
//!   to nearest even), then to the target. `1 + 2^-8 + 2^-30` becomes bfloat16 `1.0`, not the
//!   nearer `1 + 2^-7`. Every other source is exact in float32.
//! - **Rounding** is to nearest, ties to even, with subnormals kept (torch does not flush
//!   denormals unless `torch.set_flush_denormal(True)` is set, which ckpt does not model).
//! - **Overflow**: float16, bfloat16, float32 and float8_e5m2 overflow to ±inf (from the tie
//!   above their largest finite value: 65520, 2^128 - 2^119, 2^128 - 2^103, 61440).
//!   float8_e4m3fn has no infinity: torch 2.15 saturates, so values from 464 (the tie above
//!   448) and ±inf become ±448 (`fp8e4m3fn_from_fp32_value`; older torch releases wrote NaN
//!   there). No finite value ever becomes NaN.
//! - **NaNs** stay NaN, but their bits change: float16 and float64 keep the sign and the top
//!   of the payload and set the quiet bit (the F16C / SSE conversions); bfloat16 becomes
//!   `0xFFFF` from float32 and float64 (torch's AVX2/AVX512 kernels; its scalar path, used for
//!   0-d tensors, some strided views or under `ATEN_CPU_CAPABILITY=default`, writes `0x7FC0`
//!   instead: ckpt writes what torch gives for the contiguous tensor that the output holds)
//!   and `0x7FC0` from the others;
//!   float8_e4m3fn and float8_e5m2 become `0x7F` with the input's sign. The fnuz and e8m0
//!   NaNs read as the float32 `0x7F800001`.
//! - **Same dtype**: `tensor.to(tensor.dtype)` is the tensor itself; the bits are copied.
//!
//! # Example
//!
//! ```
//! use ckpt::cast::{Cast, CastStats};
//! use ckpt::Dtype;
//!
//! let cast = Cast::new(Dtype::Float32, Dtype::BFloat16)?;
//! let input: Vec<u8> = [1.0f32, 3.0e38, 1.0e-40].iter().flat_map(|x| x.to_le_bytes()).collect();
//! let mut out = Vec::new();
//! let mut stats = CastStats::default();
//! cast.apply(&input, &mut out, &mut stats)?;
//! assert_eq!(out, [0x80, 0x3F, 0x62, 0x7F, 0x01, 0x00]); // 1.0, 2.99e38, 9.2e-41 (subnormal)
//! assert_eq!(stats.elements, 3);
//! assert_eq!(stats.out_of_range(), 0);
//! # Ok::<(), ckpt::Error>(())
//! ```

mod bfloat16;
mod decode;
mod float16;
mod float8;
mod kernel;
mod view;
mod wide;

use std::fmt;

use rayon::prelude::*;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::model::{Dtype, DtypeClass};

use bfloat16::{BFloat16, BFloat16Vector};
use float8::{Float8E4M3Fn, Float8E4M3Fnuz, Float8E5M2, Float8E5M2Fnuz, Float8E8M0Fnu};
use float16::Float16;
use kernel::{identity, run};
use wide::{Float32, Float64};

pub use decode::{Decoder, decodes};
pub use view::{CastView, cast_all};

/// `x` rounded to the nearest float16 (as torch's CPU kernels store a float16 result
/// computed in float32), as float32.
pub(crate) fn round_to_float16(x: f32) -> f32 {
    f32::from_bits(float16::to_f32(float16::from_f32(x.to_bits())))
}

/// `x` rounded to the nearest bfloat16 (as torch's CPU kernels store a bfloat16 result
/// computed in float32), as float32.
pub(crate) fn round_to_bfloat16(x: f32) -> f32 {
    f32::from_bits(bfloat16::to_f32(bfloat16::from_f32(
        x.to_bits(),
        bfloat16::SCALAR_NAN,
    )))
}

/// Inputs of more than this many elements are cast in pieces of this size on all cores.
const PARALLEL_PIECE: usize = 1 << 15;

/// The dtypes a [`Cast`] can produce, as `ckpt convert --dtype` offers them.
pub const TARGETS: &[Dtype] = &[
    Dtype::BFloat16,
    Dtype::Float16,
    Dtype::Float32,
    Dtype::Float64,
    Dtype::Float8E4M3Fn,
    Dtype::Float8E5M2,
];

/// Whether tensors of dtype `from` are cast when a checkpoint is converted to a floating
/// dtype: true for every real floating dtype torch can convert (float64, float32, float16,
/// bfloat16 and the five float8 kinds).
///
/// False for integers, bool, complex and quantized tensors, which keep their dtype (as in
/// torch's `module.to(dtype)`, which casts floating point tensors only), and for the packed
/// float4 / float6 kinds: torch cannot convert them either ("copy_kernel not implemented for
/// 'Float4_e2m1fn_x2'"), they hold already quantized data, and ckpt keeps them as they are.
pub fn applies(from: Dtype) -> bool {
    matches!(
        from,
        Dtype::Float64
            | Dtype::Float32
            | Dtype::Float16
            | Dtype::BFloat16
            | Dtype::Float8E4M3Fn
            | Dtype::Float8E5M2
            | Dtype::Float8E4M3Fnuz
            | Dtype::Float8E5M2Fnuz
            | Dtype::Float8E8M0Fnu
    )
}

/// Converts elements of one floating dtype into another, as torch's `tensor.to(dtype)` does.
///
/// Cheap to create and to copy; holds no buffer. See the [module docs](self) for what torch
/// does with rounding, overflow and NaNs.
#[derive(Clone, Copy)]
pub struct Cast {
    from: Dtype,
    to: Dtype,
    input_size: usize,
    output_size: usize,
    kernel: Kernel,
}

/// The monomorphized loop of one (source, target) pair. Lengths are checked by the caller.
type Kernel = fn(&[u8], &mut [u8], &mut CastStats);

impl Cast {
    /// The cast of `from` elements to `to`.
    ///
    /// Fails with [`ErrorKind::Invalid`](crate::ErrorKind::Invalid) when `from` is not a
    /// dtype that is cast ([`applies`] is false) and with
    /// [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported) when `to` is not one of
    /// [`TARGETS`].
    pub fn new(from: Dtype, to: Dtype) -> Result<Cast> {
        if !TARGETS.contains(&to) {
            return Err(Error::unsupported(format!(
                "cannot cast to {to}: the dtypes ckpt casts to are {}",
                names(TARGETS)
            )));
        }
        let (Some(input_size), Some(output_size), Some(kernel)) =
            (from.byte_size(), to.byte_size(), kernel(from, to))
        else {
            let why = match from.class() {
                DtypeClass::Float => "torch cannot convert it either",
                _ => "only floating point tensors are cast",
            };
            return Err(
                Error::invalid(format!("cannot cast {from} elements to {to}: {why}")).with_hint(
                    "leave this tensor in its dtype, as a conversion to a dtype leaves \
                         every tensor it cannot cast",
                ),
            );
        };
        Ok(Cast {
            from,
            to,
            input_size,
            output_size,
            kernel,
        })
    }

    /// The dtype cast from.
    pub fn from(&self) -> Dtype {
        self.from
    }

    /// The dtype cast to.
    pub fn to(&self) -> Dtype {
        self.to
    }

    /// Whether the cast keeps the dtype (and so every bit, as torch does).
    pub fn is_identity(&self) -> bool {
        self.from == self.to
    }

    /// How many bytes the cast of `input_len` bytes of elements takes.
    ///
    /// Fails when `input_len` is not a whole number of elements, or the result would not fit
    /// in memory.
    pub fn output_len(&self, input_len: usize) -> Result<usize> {
        if !input_len.is_multiple_of(self.input_size) {
            return Err(Error::invalid(format!(
                "{input_len} bytes are not a whole number of {} elements ({} bytes each)",
                self.from, self.input_size
            )));
        }
        (input_len / self.input_size)
            .checked_mul(self.output_size)
            .ok_or_else(|| {
                Error::limit(format!(
                    "casting {input_len} bytes of {} to {} needs more memory than can be addressed",
                    self.from, self.to
                ))
            })
    }

    /// Casts the little-endian elements of `input` and appends them to `out`, adding what
    /// happened to `stats`.
    ///
    /// `input` must hold whole elements; any piece of
    /// [`TensorView::for_each_chunk`](crate::TensorView::for_each_chunk) does. `out` grows by
    /// [`Cast::output_len`] bytes and nothing else is allocated.
    pub fn apply(&self, input: &[u8], out: &mut Vec<u8>, stats: &mut CastStats) -> Result<()> {
        let len = self.output_len(input.len())?;
        let start = out.len();
        let end = start.checked_add(len).ok_or_else(|| {
            Error::limit("the cast output needs more memory than can be addressed")
        })?;
        out.resize(end, 0);
        let tail = out.get_mut(start..).unwrap_or_default();
        self.run(input, tail, stats);
        Ok(())
    }

    /// Casts the little-endian elements of `input` into `out`, which must be exactly
    /// [`Cast::output_len`] bytes long, adding what happened to `stats`.
    pub fn apply_to_slice(
        &self,
        input: &[u8],
        out: &mut [u8],
        stats: &mut CastStats,
    ) -> Result<()> {
        let len = self.output_len(input.len())?;
        if out.len() != len {
            return Err(Error::invalid(format!(
                "the cast of {} bytes of {} to {} takes {len} bytes, but the output holds {}",
                input.len(),
                self.from,
                self.to,
                out.len()
            )));
        }
        self.run(input, out, stats);
        Ok(())
    }

    /// Runs the kernel, on all cores for large inputs. Lengths are checked by the caller.
    fn run(&self, input: &[u8], out: &mut [u8], stats: &mut CastStats) {
        let kernel = self.kernel;
        if input.len() <= 2 * PARALLEL_PIECE * self.input_size || rayon::current_num_threads() < 2 {
            kernel(input, out, stats);
            return;
        }
        let total = input
            .par_chunks(PARALLEL_PIECE * self.input_size)
            .zip(out.par_chunks_mut(PARALLEL_PIECE * self.output_size))
            .map(|(input, out)| {
                let mut stats = CastStats::default();
                kernel(input, out, &mut stats);
                stats
            })
            .reduce(CastStats::default, |mut a, b| {
                a.merge(&b);
                a
            });
        stats.merge(&total);
    }
}

impl fmt::Debug for Cast {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cast")
            .field("from", &self.from)
            .field("to", &self.to)
            .finish()
    }
}

impl PartialEq for Cast {
    fn eq(&self, other: &Cast) -> bool {
        (self.from, self.to) == (other.from, other.to)
    }
}

impl Eq for Cast {}

/// What a cast did to the values, summed over the chunks (and tensors) it was given.
///
/// Rounding changes most values a little and is not counted; these are the values that left
/// the target's range. [`CastStats::merge`] adds up the stats of several chunks or tensors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct CastStats {
    /// Elements cast.
    pub elements: u64,
    /// NaN inputs. They stay NaN, with the bits torch gives them (see the module docs).
    pub nan: u64,
    /// Finite values too large for the target that became ±inf.
    pub overflowed_to_inf: u64,
    /// Finite values too large for float8_e4m3fn (from just above 464: those that would
    /// round past 448) that became ±448, its largest value: it has no infinity.
    pub saturated: u64,
    /// ±inf that became ±448 in float8_e4m3fn, which has no infinity.
    pub inf_saturated: u64,
    /// Nonzero finite values too small for the target that became ±0.
    pub flushed_to_zero: u64,
}

impl CastStats {
    /// Adds the counts of `other` to these.
    pub fn merge(&mut self, other: &CastStats) {
        self.add_run(
            other.elements,
            other.nan,
            other.overflowed_to_inf,
            other.saturated,
            other.inf_saturated,
            other.flushed_to_zero,
        );
    }

    /// How many finite values left the target's range: overflowed, saturated or flushed.
    pub fn out_of_range(&self) -> u64 {
        self.overflowed_to_inf
            .saturating_add(self.saturated)
            .saturating_add(self.flushed_to_zero)
    }

    /// Adds the counts of one kernel run (saturating: counts never wrap).
    fn add_run(
        &mut self,
        elements: impl TryInto<u64>,
        nan: u64,
        overflowed_to_inf: u64,
        saturated: u64,
        inf_saturated: u64,
        flushed_to_zero: u64,
    ) {
        let elements = elements.try_into().unwrap_or(u64::MAX);
        self.elements = self.elements.saturating_add(elements);
        self.nan = self.nan.saturating_add(nan);
        self.overflowed_to_inf = self.overflowed_to_inf.saturating_add(overflowed_to_inf);
        self.saturated = self.saturated.saturating_add(saturated);
        self.inf_saturated = self.inf_saturated.saturating_add(inf_saturated);
        self.flushed_to_zero = self.flushed_to_zero.saturating_add(flushed_to_zero);
    }
}

/// What a cast did to one tensor, as writers report it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TensorCast {
    /// The tensor's name in the output.
    pub name: String,
    /// Its dtype in the source.
    pub from: Dtype,
    /// Its dtype in the output.
    pub to: Dtype,
    /// What happened to its values.
    pub stats: CastStats,
}

fn names(dtypes: &[Dtype]) -> String {
    dtypes
        .iter()
        .map(|d| d.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The loop for `from` -> `to`, or `None` when `from` is not cast.
fn kernel(from: Dtype, to: Dtype) -> Option<Kernel> {
    /// The kernel from source `$source` (`$size` bytes) to `to`.
    macro_rules! to_target {
        ($source:ty, $size:literal, $bfloat16:ty) => {
            if from == to {
                identity::<$size, $source>
            } else {
                match to {
                    Dtype::BFloat16 => run::<$size, 2, $source, $bfloat16>,
                    Dtype::Float16 => run::<$size, 2, $source, Float16>,
                    Dtype::Float32 => run::<$size, 4, $source, Float32>,
                    Dtype::Float64 => run::<$size, 8, $source, Float64>,
                    Dtype::Float8E4M3Fn => run::<$size, 1, $source, Float8E4M3Fn>,
                    Dtype::Float8E5M2 => run::<$size, 1, $source, Float8E5M2>,
                    _ => return None,
                }
            }
        };
    }
    Some(match from {
        // torch converts float32 and float64 to bfloat16 with its vectorized kernels, the
        // others with the scalar conversion: their NaNs differ (see `bfloat16`).
        Dtype::Float64 => to_target!(Float64, 8, BFloat16Vector),
        Dtype::Float32 => to_target!(Float32, 4, BFloat16Vector),
        Dtype::Float16 => to_target!(Float16, 2, BFloat16),
        Dtype::BFloat16 => to_target!(BFloat16, 2, BFloat16),
        Dtype::Float8E4M3Fn => to_target!(Float8E4M3Fn, 1, BFloat16),
        Dtype::Float8E5M2 => to_target!(Float8E5M2, 1, BFloat16),
        Dtype::Float8E4M3Fnuz => to_target!(Float8E4M3Fnuz, 1, BFloat16),
        Dtype::Float8E5M2Fnuz => to_target!(Float8E5M2Fnuz, 1, BFloat16),
        Dtype::Float8E8M0Fnu => to_target!(Float8E8M0Fnu, 1, BFloat16),
        _ => return None,
    })
}
