//! float64 <-> float32, as the hardware converts them (`static_cast` in torch's kernels;
//! `cvtsd2ss` / `cvtss2sd` on x86).
//!
//! float64 -> float32 rounds to nearest even, keeps subnormals and overflows to ±inf; a NaN
//! keeps its sign and the top 22 bits of its payload and comes out quiet. float32 -> float64
//! is exact; a NaN keeps its sign and payload and comes out quiet.
//!
//! Rust's `as` casts give the same rounding for numbers; NaN bits are left unspecified by
//! Rust, so NaNs are converted by hand.

use super::kernel::{Kind, Source, Target};

/// The float32 bits the hardware makes of the float64 with bits `x`.
#[inline(always)]
pub(super) fn f64_to_f32(x: u64) -> u32 {
    if x & 0x7FFF_FFFF_FFFF_FFFF > 0x7FF0_0000_0000_0000 {
        return low_u32((x >> 32) & 0x8000_0000) | 0x7FC0_0000 | low_u32((x >> 29) & 0x003F_FFFF);
    }
    #[allow(
        clippy::cast_possible_truncation,
        reason = "float64 -> float32 `as` rounds to nearest even, as torch's static_cast does"
    )]
    let narrow = f64::from_bits(x) as f32;
    narrow.to_bits()
}

/// The low 32 bits of `x`, which callers have masked.
#[inline(always)]
fn low_u32(x: u64) -> u32 {
    let [a, b, c, d, _, _, _, _] = x.to_le_bytes();
    u32::from_le_bytes([a, b, c, d])
}

/// The float64 bits the hardware makes of the float32 with bits `w`.
#[inline(always)]
pub(super) fn f32_to_f64(w: u32) -> u64 {
    if w & 0x7FFF_FFFF > 0x7F80_0000 {
        let w = u64::from(w);
        return ((w & 0x8000_0000) << 32) | 0x7FF8_0000_0000_0000 | ((w & 0x007F_FFFF) << 29);
    }
    f64::from(f32::from_bits(w)).to_bits()
}

/// `torch.float32`.
pub(super) struct Float32;

impl Source<4> for Float32 {
    #[inline(always)]
    fn decode(bytes: [u8; 4]) -> (u32, Kind) {
        let w = u32::from_le_bytes(bytes);
        (w, Kind::of_f32(w))
    }
}

impl Target<4> for Float32 {
    #[inline(always)]
    fn encode(w: u32) -> [u8; 4] {
        w.to_le_bytes()
    }

    #[inline(always)]
    fn is_inf(out: [u8; 4]) -> bool {
        u32::from_le_bytes(out) & 0x7FFF_FFFF == 0x7F80_0000
    }

    #[inline(always)]
    fn is_zero(out: [u8; 4]) -> bool {
        u32::from_le_bytes(out) & 0x7FFF_FFFF == 0
    }
}

/// `torch.float64`. As a source it goes through float32, as in torch: a value can round
/// twice (to float32, then to the target), and the counts follow the float64 value.
pub(super) struct Float64;

impl Source<8> for Float64 {
    #[inline(always)]
    fn decode(bytes: [u8; 8]) -> (u32, Kind) {
        let x = u64::from_le_bytes(bytes);
        (f64_to_f32(x), Kind::of_f64(x))
    }
}

impl Target<8> for Float64 {
    #[inline(always)]
    fn encode(w: u32) -> [u8; 8] {
        f32_to_f64(w).to_le_bytes()
    }

    #[inline(always)]
    fn is_inf(out: [u8; 8]) -> bool {
        u64::from_le_bytes(out) & 0x7FFF_FFFF_FFFF_FFFF == 0x7FF0_0000_0000_0000
    }

    #[inline(always)]
    fn is_zero(out: [u8; 8]) -> bool {
        u64::from_le_bytes(out) & 0x7FFF_FFFF_FFFF_FFFF == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_to_nearest_even() {
        let one = 1.0f64.to_bits();
        assert_eq!(f64_to_f32(one), 1.0f32.to_bits());
        assert_eq!(f64_to_f32(one + (1 << 28)), 1.0f32.to_bits()); // tie: to even
        assert_eq!(f64_to_f32(one + (1 << 28) + 1), 0x3F80_0001);
        assert_eq!(f64_to_f32(one + (3 << 28)), 0x3F80_0002); // tie above odd: up
        assert_eq!(f64_to_f32(1e300f64.to_bits()), 0x7F80_0000);
        assert_eq!(f64_to_f32((-1e-50f64).to_bits()), 0x8000_0000);
        assert_eq!(f64_to_f32(1e-45f64.to_bits()), 0x0000_0001); // float32 subnormal
        assert_eq!(
            f32_to_f64(0x0000_0001),
            1.401_298_464_324_817e-45f64.to_bits()
        );
    }

    #[test]
    fn nans_are_quieted_and_keep_sign_and_payload() {
        assert_eq!(f64_to_f32(0x7FF0_0000_0000_0001), 0x7FC0_0000);
        assert_eq!(f64_to_f32(0xFFF8_0000_0000_0000), 0xFFC0_0000);
        assert_eq!(f64_to_f32(0x7FFF_FFFF_FFFF_FFFF), 0x7FFF_FFFF);
        assert_eq!(f64_to_f32(0x7FF0_0000_2000_0000), 0x7FC0_0001);
        assert_eq!(f32_to_f64(0x7F80_0001), 0x7FF8_0000_2000_0000);
        assert_eq!(f32_to_f64(0xFFB5_A5A5), 0xFFFE_B4B4_A000_0000);
    }
}
