//! The float8 kinds, as torch's c10 converts them (`torch/headeronly/util/Float8_*.h`).
//!
//! Targets (from float32):
//!
//! - `float8_e4m3fn` (`fp8e4m3fn_from_fp32_value`): round to nearest even; it has no
//!   infinity, and torch *saturates*: finite values from 464 up (those that would round past
//!   448, the largest finite value) and ±inf become ±448 (`0x7E`); NaN becomes `0x7F` with
//!   the input's sign.
//! - `float8_e5m2` (`fp8e5m2_from_fp32_value`): round to nearest even, ±inf from 61440 (the
//!   tie above 57344) up, NaN becomes `0x7F` with the sign.
//!
//! Both round subnormals by adding a power of two in float32 arithmetic, as c10 does.
//!
//! Sources (to float32), all exact:
//!
//! - `float8_e4m3fn`: `fp8e4m3fn_to_fp32_value`; its NaN (`0x7F`/`0xFF`) becomes `0x7FF00000`
//!   with the sign.
//! - `float8_e5m2`: the top byte of a half (`fp8e5m2_to_fp32_value`), so NaNs are quieted.
//! - `float8_e4m3fnuz`, `float8_e5m2fnuz`: `fp8_fnuz_to_fp32_value`; the only NaN, `0x80`,
//!   becomes `0x7F800001` (a signalling NaN).
//! - `float8_e8m0fnu` (powers of two 2^-127..2^127): `0x00` is 2^-127 (a float32 subnormal),
//!   the NaN `0xFF` becomes `0x7F800001`.

use super::float16;
use super::kernel::{Kind, Source, Target};

/// The low byte of `x`; callers have made sure the value fits.
#[inline(always)]
fn low_u8(x: u32) -> u8 {
    let [low, _, _, _] = x.to_le_bytes();
    low
}

/// The subnormal rounding of c10: `|x| + 2^k` in float32 leaves the value rounded to the
/// target's smallest subnormal in the low mantissa bits (float32 addition rounds to nearest
/// even, and float32 subnormals are not flushed).
#[inline(always)]
fn round_subnormal(abs: u32, magic: u32) -> u32 {
    (f32::from_bits(abs) + f32::from_bits(magic))
        .to_bits()
        .wrapping_sub(magic)
}

/// `fp8e4m3fn_from_fp32_value`.
#[inline(always)]
pub(super) fn e4m3fn_from_f32(w: u32) -> u8 {
    // 480.0, the first value past the range; 2^14, whose ulp is e4m3fn's smallest
    // subnormal (2^-9); 2^-6, the smallest normal.
    const OVERFLOW: u32 = 1087 << 20;
    const DENORMAL_MAGIC: u32 = 141 << 23;
    const MIN_NORMAL: u32 = 121 << 23;
    let sign = w & 0x8000_0000;
    let abs = w ^ sign;
    let magnitude = if abs >= OVERFLOW {
        if abs > 0x7F80_0000 { 0x7F } else { 0x7E }
    } else if abs < MIN_NORMAL {
        round_subnormal(abs, DENORMAL_MAGIC)
    } else {
        // Rebias the exponent (127 -> 7) and round 20 bits away, ties to even. A carry into
        // 0x7F (the NaN pattern, from 464 up) saturates to 0x7E.
        let odd = (abs >> 20) & 1;
        let rounded = abs.wrapping_add((7u32.wrapping_sub(127) << 23) + 0x7FFFF) + odd;
        let r = rounded >> 20;
        if r == 0x7F { 0x7E } else { r }
    };
    low_u8(magnitude | (sign >> 24))
}

/// `fp8e5m2_from_fp32_value`.
#[inline(always)]
pub(super) fn e5m2_from_f32(w: u32) -> u8 {
    // 65536.0, the first value past the range; 2^7, whose ulp is e5m2's smallest subnormal
    // (2^-16); 2^-14, the smallest normal.
    const OVERFLOW: u32 = 143 << 23;
    const DENORMAL_MAGIC: u32 = 134 << 23;
    const MIN_NORMAL: u32 = 113 << 23;
    let sign = w & 0x8000_0000;
    let abs = w ^ sign;
    let magnitude = if abs >= OVERFLOW {
        if abs > 0x7F80_0000 { 0x7F } else { 0x7C }
    } else if abs < MIN_NORMAL {
        round_subnormal(abs, DENORMAL_MAGIC)
    } else {
        // Rebias (127 -> 15) and round 21 bits away, ties to even; from 61440 the carry
        // reaches 0x7C, infinity.
        let odd = (abs >> 21) & 1;
        let rounded = abs.wrapping_add((15u32.wrapping_sub(127) << 23) + 0xFFFFF) + odd;
        rounded >> 21
    };
    low_u8(magnitude | (sign >> 24))
}

/// `fp8e4m3fn_to_fp32_value`, written plainly: the same bits for every input.
#[inline(always)]
pub(super) fn e4m3fn_to_f32(x: u8) -> u32 {
    let x = u32::from(x);
    let sign = (x & 0x80) << 24;
    let exponent = (x >> 3) & 0x0F;
    let mantissa = x & 0x07;
    let magnitude = match (exponent, mantissa) {
        (0x0F, 0x07) => 0x7FF0_0000,
        // Zero or subnormal: mantissa * 2^-9, renormalized.
        (0, 0) => 0,
        (0, _) => {
            let shift = mantissa.leading_zeros() - 28; // 1..=3: brings the leading 1 to bit 3
            ((121 - shift) << 23) | (((mantissa << shift) & 0x07) << 20)
        }
        _ => ((exponent + 120) << 23) | (mantissa << 20),
    };
    sign | magnitude
}

/// `fp8e5m2_to_fp32_value`: the byte is the top half of a float16.
#[inline(always)]
pub(super) fn e5m2_to_f32(x: u8) -> u32 {
    float16::to_f32(u16::from(x) << 8)
}

/// `fp8_fnuz_to_fp32_value<EXPONENT_BITS, MANTISSA_BITS>`: no infinity, no -0, one NaN
/// (`0x80`), exponent bias 2^(EXPONENT_BITS - 1).
#[inline(always)]
pub(super) fn fnuz_to_f32<const EXPONENT_BITS: u32, const MANTISSA_BITS: u32>(x: u8) -> u32 {
    match x {
        0 => 0,
        0x80 => 0x7F80_0001,
        _ => {
            let x = u32::from(x);
            let sign = (x & 0x80) << 24;
            let mut exponent = (x & 0x7F) >> MANTISSA_BITS;
            let mut mantissa = x & ((1 << MANTISSA_BITS) - 1);
            if exponent == 0 {
                // Subnormal (mantissa != 0): shift the leading 1 out of the field and lower
                // the exponent to match; it goes below zero before the bias is added, so the
                // arithmetic wraps, as c10's unsigned arithmetic does.
                let shift = mantissa.leading_zeros() + MANTISSA_BITS + 1 - 32;
                mantissa = (mantissa << shift) & ((1 << MANTISSA_BITS) - 1);
                exponent = 1u32.wrapping_sub(shift);
            }
            // float32 bias 127 minus the float8 bias 2^(EXPONENT_BITS - 1).
            let exponent = exponent.wrapping_add(127 - (1 << (EXPONENT_BITS - 1)));
            sign | (exponent << 23) | (mantissa << (23 - MANTISSA_BITS))
        }
    }
}

/// `Float8_e8m0fnu::operator float`: 2^(x - 127); `0x00` is the float32 subnormal 2^-127.
#[inline(always)]
pub(super) fn e8m0fnu_to_f32(x: u8) -> u32 {
    match x {
        0 => 0x0040_0000,
        0xFF => 0x7F80_0001,
        _ => u32::from(x) << 23,
    }
}

/// `torch.float8_e4m3fn`.
pub(super) struct Float8E4M3Fn;

impl Source<1> for Float8E4M3Fn {
    #[inline(always)]
    fn decode([x]: [u8; 1]) -> (u32, Kind) {
        let w = e4m3fn_to_f32(x);
        (w, Kind::of_f32(w))
    }
}

impl Target<1> for Float8E4M3Fn {
    const SATURATES: bool = true;

    #[inline(always)]
    fn encode(w: u32) -> [u8; 1] {
        [e4m3fn_from_f32(w)]
    }

    #[inline(always)]
    fn is_inf(_: [u8; 1]) -> bool {
        false
    }

    #[inline(always)]
    fn is_zero([x]: [u8; 1]) -> bool {
        x & 0x7F == 0
    }
}

/// `torch.float8_e5m2`.
pub(super) struct Float8E5M2;

impl Source<1> for Float8E5M2 {
    #[inline(always)]
    fn decode([x]: [u8; 1]) -> (u32, Kind) {
        let w = e5m2_to_f32(x);
        (w, Kind::of_f32(w))
    }
}

impl Target<1> for Float8E5M2 {
    #[inline(always)]
    fn encode(w: u32) -> [u8; 1] {
        [e5m2_from_f32(w)]
    }

    #[inline(always)]
    fn is_inf([x]: [u8; 1]) -> bool {
        x & 0x7F == 0x7C
    }

    #[inline(always)]
    fn is_zero([x]: [u8; 1]) -> bool {
        x & 0x7F == 0
    }
}

/// `torch.float8_e4m3fnuz`.
pub(super) struct Float8E4M3Fnuz;

impl Source<1> for Float8E4M3Fnuz {
    #[inline(always)]
    fn decode([x]: [u8; 1]) -> (u32, Kind) {
        let w = fnuz_to_f32::<4, 3>(x);
        (w, Kind::of_f32(w))
    }
}

/// `torch.float8_e5m2fnuz`.
pub(super) struct Float8E5M2Fnuz;

impl Source<1> for Float8E5M2Fnuz {
    #[inline(always)]
    fn decode([x]: [u8; 1]) -> (u32, Kind) {
        let w = fnuz_to_f32::<5, 2>(x);
        (w, Kind::of_f32(w))
    }
}

/// `torch.float8_e8m0fnu`.
pub(super) struct Float8E8M0Fnu;

impl Source<1> for Float8E8M0Fnu {
    #[inline(always)]
    fn decode([x]: [u8; 1]) -> (u32, Kind) {
        let w = e8m0fnu_to_f32(x);
        (w, Kind::of_f32(w))
    }
}
