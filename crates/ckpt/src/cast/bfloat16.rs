//! bfloat16 <-> float32, as torch's CPU kernels convert it.
//!
//! To float32: the 16 bits become the top half (`c10::detail::f32_from_bits`), exactly, with
//! no quieting: a signalling NaN stays signalling.
//!
//! From float32: round to nearest even by adding `0x7FFF + lsb` and keeping the top half
//! (`c10::detail::round_to_nearest_even`), so overflow gives ±inf and subnormals are kept.
//! NaNs are where torch's kernels differ. The scalar `round_to_nearest_even` returns `0x7FC0`,
//! and that is what torch writes when it converts float16 or a float8 kind to bfloat16. The
//! AVX2 and AVX512 kernels that convert contiguous float32 and float64 on x86
//! (`cvtfp32_bf16` in `ATen/cpu/vec/vec256/vec256_16bit_float.h`: `_mm256_set1_epi32(0xffff)`
//! blended in where `_CMP_ORD_Q` is false) write `0xFFFF`. Hence two targets:
//! [`BFloat16Vector`] for float32 and float64 sources, [`BFloat16`] for the others.

use super::kernel::{Kind, Source, Target};

/// The NaN c10's scalar conversion writes for every NaN.
pub(super) const SCALAR_NAN: u16 = 0x7FC0;

/// The NaN torch's vectorized x86 kernels write for every NaN.
pub(super) const VECTOR_NAN: u16 = 0xFFFF;

/// The float32 bits of the bfloat16 with bits `b` (exact, NaN bits kept).
#[inline(always)]
pub(super) fn to_f32(b: u16) -> u32 {
    u32::from(b) << 16
}

/// The bfloat16 torch makes of the float32 with bits `w`, NaNs becoming `nan`.
#[inline(always)]
pub(super) fn from_f32(w: u32, nan: u16) -> u16 {
    if w & 0x7FFF_FFFF > 0x7F80_0000 {
        return nan;
    }
    // No overflow out of 32 bits: the largest non-NaN input is 0xFF80_0000 (-inf).
    let rounded = w + 0x7FFF + ((w >> 16) & 1);
    let [_, _, low, high] = rounded.to_le_bytes();
    u16::from_le_bytes([low, high])
}

/// `torch.bfloat16`, as a source, and as the target of float16 and the float8 kinds (NaNs
/// become `0x7FC0`).
pub(super) struct BFloat16;

/// `torch.bfloat16` as the target of float32 and float64 (NaNs become `0xFFFF`).
pub(super) struct BFloat16Vector;

impl Source<2> for BFloat16 {
    #[inline(always)]
    fn decode(bytes: [u8; 2]) -> (u32, Kind) {
        let w = to_f32(u16::from_le_bytes(bytes));
        (w, Kind::of_f32(w))
    }
}

impl Target<2> for BFloat16 {
    #[inline(always)]
    fn encode(w: u32) -> [u8; 2] {
        from_f32(w, SCALAR_NAN).to_le_bytes()
    }

    #[inline(always)]
    fn is_inf(out: [u8; 2]) -> bool {
        is_inf(out)
    }

    #[inline(always)]
    fn is_zero(out: [u8; 2]) -> bool {
        is_zero(out)
    }
}

impl Target<2> for BFloat16Vector {
    #[inline(always)]
    fn encode(w: u32) -> [u8; 2] {
        from_f32(w, VECTOR_NAN).to_le_bytes()
    }

    #[inline(always)]
    fn is_inf(out: [u8; 2]) -> bool {
        is_inf(out)
    }

    #[inline(always)]
    fn is_zero(out: [u8; 2]) -> bool {
        is_zero(out)
    }
}

#[inline(always)]
fn is_inf(out: [u8; 2]) -> bool {
    u16::from_le_bytes(out) & 0x7FFF == 0x7F80
}

#[inline(always)]
fn is_zero(out: [u8; 2]) -> bool {
    u16::from_le_bytes(out) & 0x7FFF == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_f32(w: u32) -> u16 {
        super::from_f32(w, VECTOR_NAN)
    }

    #[test]
    fn rounding() {
        assert_eq!(from_f32(1.0f32.to_bits()), 0x3F80);
        assert_eq!(from_f32(0x3F80_8000), 0x3F80); // tie, even mantissa: down
        assert_eq!(from_f32(0x3F81_8000), 0x3F82); // tie, odd mantissa: up
        assert_eq!(from_f32(0x3F80_8001), 0x3F81);
        assert_eq!(from_f32(0x7F7F_FFFF), 0x7F80); // max float32 overflows
        assert_eq!(from_f32(0xFF7F_8000), 0xFF80); // tie at the top: to even, -inf
        assert_eq!(from_f32(0xFF7F_7FFF), 0xFF7F);
        assert_eq!(from_f32(0x0000_8000), 0x0000); // subnormal tie: to even
        assert_eq!(from_f32(0x0001_8000), 0x0002);
        assert_eq!(from_f32(0xFF80_0000), 0xFF80);
    }

    #[test]
    fn nans() {
        for w in [0x7FC0_0000, 0xFFC0_0000, 0x7F80_0001, 0xFFFF_FFFF] {
            assert_eq!(super::from_f32(w, VECTOR_NAN), 0xFFFF, "{w:#010x}");
            assert_eq!(super::from_f32(w, SCALAR_NAN), 0x7FC0, "{w:#010x}");
        }
        assert_eq!(to_f32(0x7F81), 0x7F81_0000);
    }
}
