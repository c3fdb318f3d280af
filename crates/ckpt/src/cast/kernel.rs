//! The loop every cast runs: decode a source element to float32 bits, encode them in the
//! target, count what happened. Sources and targets are zero-sized types, so each
//! (source, target) pair compiles to its own tight loop with everything inlined.

use super::CastStats;

/// What a source value was, for [`CastStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Kind {
    /// Neither infinite nor NaN.
    pub(super) finite: bool,
    /// ±0.
    pub(super) zero: bool,
    /// Any NaN.
    pub(super) nan: bool,
}

impl Kind {
    /// The kind of the float32 with bits `w`.
    #[inline(always)]
    pub(super) fn of_f32(w: u32) -> Kind {
        let abs = w & 0x7FFF_FFFF;
        Kind {
            finite: abs < 0x7F80_0000,
            zero: abs == 0,
            nan: abs > 0x7F80_0000,
        }
    }

    /// The kind of the float64 with bits `x`.
    #[inline(always)]
    pub(super) fn of_f64(x: u64) -> Kind {
        let abs = x & 0x7FFF_FFFF_FFFF_FFFF;
        Kind {
            finite: abs < 0x7FF0_0000_0000_0000,
            zero: abs == 0,
            nan: abs > 0x7FF0_0000_0000_0000,
        }
    }
}

/// A dtype cast from: how torch turns its `N` little-endian bytes into a float32.
///
/// Every source but float64 is exact in float32, and torch converts all of them through
/// float32 (`static_cast<float>`), float64 included (see the module docs).
pub(super) trait Source<const N: usize> {
    /// The float32 bits torch computes for the element, and what the element was.
    fn decode(bytes: [u8; N]) -> (u32, Kind);
}

/// A dtype cast to: how torch turns a float32 into its `N` little-endian bytes.
pub(super) trait Target<const N: usize> {
    /// Whether values too large for the target become its largest finite value instead of
    /// infinity (float8_e4m3fn, which has no infinity).
    const SATURATES: bool = false;

    /// The element torch computes for the float32 with bits `w`.
    fn encode(w: u32) -> [u8; N];

    /// Whether `out` is ±infinity.
    fn is_inf(out: [u8; N]) -> bool;

    /// Whether `out` is ±0.
    fn is_zero(out: [u8; N]) -> bool;
}

/// The float32 bits of 464.0: float8_e4m3fn values beyond it would round past 448, its
/// largest finite value (to 480, where an e4m3 with infinities would overflow).
const E4M3_OVERFLOW_TIE: u32 = 0x43E8_0000;

/// The counts of one run, kept in registers and added to the caller's stats at the end.
#[derive(Default)]
struct Counts {
    nan: u64,
    overflowed_to_inf: u64,
    saturated: u64,
    inf_saturated: u64,
    flushed_to_zero: u64,
}

/// Elements cast between two checks for values out of range.
const BLOCK: usize = 4096;

/// Casts every element of `input` (whole `I`-byte elements) into `output` (as many `O`-byte
/// elements). The caller has checked both lengths.
///
/// Blocks are converted by a loop that only notes whether anything is to be counted (which
/// the compiler vectorises); the few blocks where something is are counted again exactly.
pub(super) fn run<const I: usize, const O: usize, S: Source<I>, T: Target<O>>(
    input: &[u8],
    output: &mut [u8],
    stats: &mut CastStats,
) {
    let (src, _) = input.as_chunks::<I>();
    let (dst, _) = output.as_chunks_mut::<O>();
    let mut counts = Counts::default();
    for (src, dst) in src.chunks(BLOCK).zip(dst.chunks_mut(BLOCK)) {
        let mut eventful = false;
        for (element, out) in src.iter().zip(dst.iter_mut()) {
            let (w, kind) = S::decode(*element);
            let bytes = T::encode(w);
            *out = bytes;
            eventful |= event::<O, T>(w, kind, bytes);
        }
        if eventful {
            for (element, out) in src.iter().zip(dst.iter()) {
                let (w, kind) = S::decode(*element);
                counts.add::<O, T>(w, kind, *out);
            }
        }
    }
    stats.add_run(
        src.len(),
        counts.nan,
        counts.overflowed_to_inf,
        counts.saturated,
        counts.inf_saturated,
        counts.flushed_to_zero,
    );
}

/// Whether casting the value (float32 bits `w`, of kind `kind`) to `out` is counted.
#[inline(always)]
fn event<const O: usize, T: Target<O>>(w: u32, kind: Kind, out: [u8; O]) -> bool {
    let beyond = if T::SATURATES {
        !kind.finite | ((w & 0x7FFF_FFFF) > E4M3_OVERFLOW_TIE)
    } else {
        false
    };
    kind.nan | beyond | (kind.finite & (T::is_inf(out) | (!kind.zero & T::is_zero(out))))
}

impl Counts {
    /// Counts what happened to one value.
    #[inline(always)]
    fn add<const O: usize, T: Target<O>>(&mut self, w: u32, kind: Kind, out: [u8; O]) {
        self.nan += u64::from(kind.nan);
        self.overflowed_to_inf += u64::from(kind.finite & T::is_inf(out));
        self.flushed_to_zero += u64::from(kind.finite & !kind.zero & T::is_zero(out));
        if T::SATURATES {
            self.saturated += u64::from(kind.finite & ((w & 0x7FFF_FFFF) > E4M3_OVERFLOW_TIE));
            self.inf_saturated += u64::from(!kind.finite & !kind.nan);
        }
    }
}

/// A cast to the same dtype: torch returns the tensor itself, so the bits are copied as
/// they are (signalling NaNs included). Only NaNs are counted.
pub(super) fn identity<const N: usize, S: Source<N>>(
    input: &[u8],
    output: &mut [u8],
    stats: &mut CastStats,
) {
    let (src, _) = input.as_chunks::<N>();
    let (dst, _) = output.as_chunks_mut::<N>();
    let mut nan = 0u64;
    for (element, out) in src.iter().zip(dst.iter_mut()) {
        *out = *element;
        nan += u64::from(S::decode(*element).1.nan);
    }
    stats.add_run(src.len(), nan, 0, 0, 0, 0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cast::Cast;
    use crate::model::Dtype;

    /// Events alone in otherwise clean blocks, and at block edges, are all counted.
    #[test]
    fn lone_events_are_counted() {
        let mut values = vec![1.0f32; 3 * BLOCK + 5];
        values[0] = 1e30; // overflow
        values[BLOCK - 1] = f32::NAN;
        values[BLOCK + 700] = 1e-30; // flushed
        values[3 * BLOCK + 4] = -1e30;
        let input: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut out = Vec::new();
        let mut stats = CastStats::default();
        Cast::new(Dtype::Float32, Dtype::Float16)
            .unwrap()
            .apply(&input, &mut out, &mut stats)
            .unwrap();
        assert_eq!(
            (
                stats.elements,
                stats.nan,
                stats.overflowed_to_inf,
                stats.flushed_to_zero
            ),
            (values.len() as u64, 1, 2, 1)
        );
        let mut stats = CastStats::default();
        Cast::new(Dtype::Float32, Dtype::Float8E4M3Fn)
            .unwrap()
            .apply(&input, &mut out, &mut stats)
            .unwrap();
        assert_eq!(
            (stats.saturated, stats.nan, stats.flushed_to_zero),
            (2, 1, 1)
        );
    }

    #[test]
    fn kinds() {
        assert_eq!(
            Kind::of_f32(0x8000_0000),
            Kind {
                finite: true,
                zero: true,
                nan: false
            }
        );
        assert_eq!(
            Kind::of_f32(0xFF80_0000),
            Kind {
                finite: false,
                zero: false,
                nan: false
            }
        );
        assert!(Kind::of_f32(0x7F80_0001).nan);
        assert!(Kind::of_f32(0x7F7F_FFFF).finite);
        assert!(Kind::of_f64(0xFFF0_0000_0000_0001).nan);
        assert!(!Kind::of_f64(0xFFF0_0000_0000_0000).finite);
        assert!(Kind::of_f64(1).finite && !Kind::of_f64(1).zero);
        assert_eq!(f32::from_bits(E4M3_OVERFLOW_TIE), 464.0);
    }
}
