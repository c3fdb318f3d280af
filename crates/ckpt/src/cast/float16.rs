//! IEEE half (float16) <-> float32, as torch's x86 builds convert it: with the F16C
//! instructions (`_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT)` / `_cvtsh_ss`, chosen by
//! `c10::Half` when compiled with F16C, and by the AVX2/AVX512 vectorized kernels).
//!
//! Both are IEEE conversions: round to nearest even, subnormals kept, overflow to ±inf. A
//! NaN keeps its sign and the top of its payload and comes out quiet. (c10's portable
//! fallback, `fp16_ieee_from_fp32_value`, would give `0x7E00 | sign` for every NaN; torch's
//! x86 wheels do not use it.)

use super::kernel::{Kind, Source, Target};

/// The float32 bits of the half with bits `h` (exact; a NaN is quieted).
#[inline(always)]
pub(super) fn to_f32(h: u16) -> u32 {
    let sign = u32::from(h & 0x8000) << 16;
    let exponent = u32::from((h >> 10) & 0x1F);
    let mantissa = u32::from(h & 0x03FF);
    let magnitude = match exponent {
        // Zero or subnormal: mantissa * 2^-24, exact in float32 (the product stays normal).
        0 => (f32::from(h & 0x03FF) * f32::from_bits(0x3380_0000)).to_bits(),
        0x1F if mantissa == 0 => 0x7F80_0000,
        0x1F => 0x7FC0_0000 | (mantissa << 13),
        _ => ((exponent + 112) << 23) | (mantissa << 13),
    };
    sign | magnitude
}

/// The half torch makes of the float32 with bits `w`.
///
/// Branch-free IEEE rounding (Maratos' method, as in `fp16_ieee_from_fp32_value`): scaling
/// `|x|` up by 2^112 and down by 2^-110 overflows what half cannot hold to infinity; adding a
/// power of two chosen from the exponent (at least 2^-14's) makes float32's own
/// round-to-nearest-even addition round the mantissa at half's precision, subnormals
/// included. NaNs are handled apart: quiet, with the top 9 bits of the payload.
#[inline(always)]
pub(super) fn from_f32(w: u32) -> u16 {
    let sign = (w >> 16) & 0x8000;
    let abs = w & 0x7FFF_FFFF;
    let scaled = (f32::from_bits(abs) * f32::from_bits(0x7780_0000)) * f32::from_bits(0x0880_0000);
    let bias = (abs << 1 & 0xFF00_0000).max(0x7100_0000);
    let rounded = (f32::from_bits((bias >> 1) + 0x0780_0000) + scaled).to_bits();
    let number = ((rounded >> 13) & 0x7C00) + (rounded & 0x0FFF);
    let nan = 0x7E00 | ((abs >> 13) & 0x03FF);
    let magnitude = if abs > 0x7F80_0000 { nan } else { number };
    low_u16(sign | magnitude)
}

/// The low 16 bits of `x`, which the callers have already masked.
#[inline(always)]
fn low_u16(x: u32) -> u16 {
    let [a, b, _, _] = x.to_le_bytes();
    u16::from_le_bytes([a, b])
}

/// `torch.float16`.
pub(super) struct Float16;

impl Source<2> for Float16 {
    #[inline(always)]
    fn decode(bytes: [u8; 2]) -> (u32, Kind) {
        let w = to_f32(u16::from_le_bytes(bytes));
        (w, Kind::of_f32(w))
    }
}

impl Target<2> for Float16 {
    #[inline(always)]
    fn encode(w: u32) -> [u8; 2] {
        from_f32(w).to_le_bytes()
    }

    #[inline(always)]
    fn is_inf(out: [u8; 2]) -> bool {
        u16::from_le_bytes(out) & 0x7FFF == 0x7C00
    }

    #[inline(always)]
    fn is_zero(out: [u8; 2]) -> bool {
        u16::from_le_bytes(out) & 0x7FFF == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        let cases: &[(f32, u16)] = &[
            (0.0, 0x0000),
            (-0.0, 0x8000),
            (1.0, 0x3C00),
            (-2.0, 0xC000),
            (65504.0, 0x7BFF),
            (65519.996, 0x7BFF),
            (65520.0, 0x7C00), // the overflow tie rounds to even: infinity
            (f32::INFINITY, 0x7C00),
            (6.103_515_6e-5, 0x0400),     // smallest normal
            (5.960_464_5e-8, 0x0001),     // smallest subnormal, 2^-24
            (2.980_232_2e-8, 0x0000),     // 2^-25: a tie, to even (zero)
            (2.980_232_6e-8, 0x0001),     // just above
            (8.940_697e-8, 0x0002),       // 1.5 * 2^-24: a tie, to even (2)
            (1.0 + 1.0 / 2048.0, 0x3C00), // a tie between 1 and its neighbour: to even
            (1.0 + 3.0 / 2048.0, 0x3C02), // a tie above an odd mantissa: up
        ];
        for &(value, half) in cases {
            assert_eq!(from_f32(value.to_bits()), half, "{value:e}");
        }
    }

    #[test]
    fn nans_keep_sign_and_top_payload() {
        assert_eq!(from_f32(0x7FC0_0000), 0x7E00);
        assert_eq!(from_f32(0xFFC0_0000), 0xFE00);
        assert_eq!(from_f32(0x7F80_0001), 0x7E00); // signalling, payload below half's: quieted
        assert_eq!(from_f32(0x7FA5_A5A5), 0x7F2D);
        assert_eq!(from_f32(0x7F80_2000), 0x7E01);
        assert_eq!(to_f32(0x7C01), 0x7FC0_2000);
        assert_eq!(to_f32(0xFD00), 0xFFE0_0000);
    }

    #[test]
    fn every_half_round_trips() {
        for h in 0..=u16::MAX {
            let w = to_f32(h);
            let is_nan = h & 0x7C00 == 0x7C00 && h & 0x03FF != 0;
            if is_nan {
                assert_eq!(from_f32(w), h | 0x0200, "{h:#06x}");
            } else {
                assert_eq!(from_f32(w), h, "{h:#06x}");
                assert_eq!(
                    f32::from_bits(w),
                    half::f16::from_bits(h).to_f32(),
                    "{h:#06x}"
                );
            }
        }
    }

    /// Every float32 against the `half` crate (2^32 values: `cargo test --release -p ckpt
    /// --lib every_float32 -- --ignored`, a few seconds).
    #[test]
    #[ignore = "2^32 values: run in release"]
    fn every_float32_matches_ieee() {
        for w in 0..=u32::MAX {
            let want = if w & 0x7FFF_FFFF > 0x7F80_0000 {
                low_u16(((w >> 16) & 0x8000) | 0x7E00 | ((w >> 13) & 0x03FF))
            } else {
                half::f16::from_f32(f32::from_bits(w)).to_bits()
            };
            assert_eq!(from_f32(w), want, "{w:#010x}");
        }
    }

    /// Against the `half` crate (IEEE round to nearest even) on float32 values all over
    /// half's range and beyond: every exponent, mantissas with tie-shaped low bits.
    #[test]
    fn rounding_matches_ieee() {
        let lows = [
            0, 1, 0x0FFF, 0x1000, 0x1001, 0x1FFF, 0x2000, 0x3000, 0x0FFE, 0x1002,
        ];
        for exponent in 90u32..160 {
            for high in (0..0x400u32).step_by(7).chain([0, 1, 0x3FE, 0x3FF]) {
                for &low in &lows {
                    for sign in [0, 0x8000_0000] {
                        let w = sign | (exponent << 23) | (high << 13) | low;
                        let want = half::f16::from_f32(f32::from_bits(w)).to_bits();
                        assert_eq!(from_f32(w), want, "{w:#010x}");
                    }
                }
            }
        }
        // Subnormal exponents of half use the low bits differently: sweep them densely.
        for w in (0x3300_0000u32..0x3880_0000).step_by(997) {
            let want = half::f16::from_f32(f32::from_bits(w)).to_bits();
            assert_eq!(from_f32(w), want, "{w:#010x}");
        }
    }
}
