//! Python's arbitrary-size integers, as far as a `.npy` header needs them: exact values for
//! equality (`{2**70: ..., 0x400000000000000000: ...}` is one key) and range checks, and
//! Python's correctly rounded conversions to and from `float`.

use std::cmp::Ordering;

/// A Python `int`. `Small` holds every value that fits an `i64`; `Big` holds only values that
/// do not, so that equal values have one representation (and derived `Eq`/`Hash` are exact).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Int {
    Small(i64),
    Big(Box<Big>),
}

/// A magnitude beyond `i64`, as little-endian 32-bit limbs without high zero limbs.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Big {
    negative: bool,
    limbs: Box<[u32]>,
}

impl Int {
    pub(crate) const ZERO: Int = Int::Small(0);

    /// The value of ASCII `digits` (no sign, no underscores) in `radix` (2, 8, 10 or 16).
    /// Decimal conversion is quadratic: callers bound the digits first.
    pub(crate) fn from_digits(digits: &[u8], radix: u32) -> Int {
        let value = |d: u8| char::from(d).to_digit(radix).unwrap_or(0);
        let mut limbs: Vec<u32> = Vec::new();
        if radix == 10 {
            // Nine digits at a time: limbs = limbs * 10^k + chunk.
            for chunk in digits.chunks(9) {
                let mut scale: u64 = 1;
                let mut add: u64 = 0;
                for &d in chunk {
                    scale *= 10;
                    add = add * 10 + u64::from(value(d));
                }
                mul_add(&mut limbs, scale, add);
            }
        } else {
            let bits = radix.trailing_zeros();
            let mut acc: u64 = 0;
            let mut filled = 0;
            for &d in digits.iter().rev() {
                acc |= u64::from(value(d)) << filled;
                filled += bits;
                if filled >= 32 {
                    limbs.push(low32(acc));
                    acc >>= 32;
                    filled -= 32;
                }
            }
            if filled > 0 {
                limbs.push(low32(acc));
            }
        }
        Int::from_limbs(false, limbs)
    }

    /// The integer of sign `negative` and magnitude `limbs` (little-endian).
    fn from_limbs(negative: bool, mut limbs: Vec<u32>) -> Int {
        while limbs.last() == Some(&0) {
            limbs.pop();
        }
        if limbs.len() <= 2 {
            let magnitude = limbs
                .iter()
                .rev()
                .fold(0u64, |acc, &l| (acc << 32) | u64::from(l));
            let small = if negative {
                0i64.checked_sub_unsigned(magnitude)
            } else {
                i64::try_from(magnitude).ok()
            };
            if let Some(small) = small {
                return Int::Small(small);
            }
        }
        Int::Big(Box::new(Big {
            negative,
            limbs: limbs.into_boxed_slice(),
        }))
    }

    /// The magnitude as little-endian limbs, and the sign.
    fn to_limbs(&self) -> (bool, Vec<u32>) {
        match self {
            Int::Small(v) => {
                let m = v.unsigned_abs();
                (*v < 0, vec![low32(m), low32(m >> 32)])
            }
            Int::Big(b) => (b.negative, b.limbs.to_vec()),
        }
    }

    /// `-self`.
    pub(crate) fn neg(&self) -> Int {
        match self {
            Int::Small(v) => match v.checked_neg() {
                Some(n) => Int::Small(n),
                None => Int::from_limbs(false, vec![0, 1 << 31]),
            },
            Int::Big(b) => Int::from_limbs(!b.negative, b.limbs.to_vec()),
        }
    }

    pub(crate) fn is_negative(&self) -> bool {
        match self {
            Int::Small(v) => *v < 0,
            Int::Big(b) => b.negative,
        }
    }

    pub(crate) fn to_i64(&self) -> Option<i64> {
        match self {
            Int::Small(v) => Some(*v),
            Int::Big(_) => None,
        }
    }

    /// The value, if it lies in `[-2^63, 2^64)` (what numpy's shape product accepts).
    pub(crate) fn to_i128(&self) -> Option<i128> {
        match self {
            Int::Small(v) => Some(i128::from(*v)),
            Int::Big(b) if !b.negative && b.limbs.len() <= 2 => Some(i128::from(
                b.limbs
                    .iter()
                    .rev()
                    .fold(0u64, |acc, &l| (acc << 32) | u64::from(l)),
            )),
            Int::Big(_) => None,
        }
    }

    /// Python's `float(self)`: correctly rounded, `None` where Python raises `OverflowError`.
    pub(crate) fn to_f64(&self) -> Option<f64> {
        let (negative, limbs) = match self {
            // An i64 converts exactly or with one correct rounding.
            #[allow(clippy::cast_precision_loss)]
            Int::Small(v) => return Some(*v as f64),
            Int::Big(b) => (b.negative, &b.limbs),
        };
        let top = limbs.len().checked_sub(1)?;
        let high = *limbs.get(top)?;
        let bits = top * 32 + (32 - high.leading_zeros() as usize);
        if bits > 1024 {
            return None;
        }
        // The 64 most significant bits, and whether any bit below them is set.
        let mut window: u64 = 0;
        let mut sticky = false;
        for i in (0..limbs.len()).rev() {
            let limb = u64::from(*limbs.get(i)?);
            let lowest = i * 32; // value of this limb's bit 0
            if lowest + 32 <= bits.saturating_sub(64) {
                sticky |= limb != 0;
                continue;
            }
            let shift = i64::try_from(lowest).ok()? - i64::try_from(bits).ok()? + 64;
            if shift >= 0 {
                window |= limb << shift;
            } else {
                let s = u32::try_from(-shift).ok()?;
                window |= limb >> s;
                sticky |= limb & ((1u64 << s) - 1) != 0;
            }
        }
        // Round the 64-bit window to 53 bits, to nearest, ties to even.
        let mut mantissa = window >> 11;
        let rest = window & 0x7FF;
        let half = 0x400;
        if rest > half || (rest == half && (sticky || mantissa & 1 == 1)) {
            mantissa += 1;
        }
        let mut exponent = bits - 53; // value = mantissa * 2^exponent
        if mantissa == 1 << 53 {
            mantissa >>= 1;
            exponent += 1;
        }
        if exponent + 53 > 1024 {
            return None;
        }
        let biased = u64::try_from(exponent + 52 + 1023).ok()?;
        let magnitude = f64::from_bits((biased << 52) | (mantissa & ((1 << 52) - 1)));
        Some(if negative { -magnitude } else { magnitude })
    }

    /// The exact value of `x`, which must be finite and integral.
    pub(crate) fn from_integral_f64(x: f64) -> Int {
        let bits = x.to_bits();
        let negative = bits >> 63 == 1;
        let biased = (bits >> 52) & 0x7FF;
        let fraction = bits & ((1 << 52) - 1);
        if biased == 0 {
            return Int::ZERO; // zero (subnormals are not integral)
        }
        let mantissa = fraction | (1 << 52);
        let exponent = i64::try_from(biased).unwrap_or(0) - 1075;
        if exponent <= 0 {
            let shift = u32::try_from(-exponent).unwrap_or(0).min(63);
            let m = mantissa >> shift;
            let v = i64::try_from(m).unwrap_or(0);
            return Int::Small(if negative { -v } else { v });
        }
        let shift = usize::try_from(exponent).unwrap_or(0);
        let mut limbs = vec![0u32; shift / 32 + 3];
        let wide = u128::from(mantissa) << (shift % 32);
        for (i, slot) in limbs.iter_mut().skip(shift / 32).take(3).enumerate() {
            *slot = u32::try_from((wide >> (32 * i)) & 0xFFFF_FFFF).unwrap_or(0);
        }
        Int::from_limbs(negative, limbs)
    }

    /// Python's `int(x)` of a finite float: truncation toward zero.
    pub(crate) fn from_f64_trunc(x: f64) -> Int {
        Int::from_integral_f64(x.trunc())
    }

    /// Python's comparison of two ints.
    pub(crate) fn cmp_int(&self, other: &Int) -> Ordering {
        if let (Int::Small(a), Int::Small(b)) = (self, other) {
            return a.cmp(b);
        }
        let (na, la) = self.to_limbs();
        let (nb, lb) = other.to_limbs();
        let (la, lb) = (trim(la), trim(lb));
        let zero_a = la.is_empty();
        let zero_b = lb.is_empty();
        let sign = |neg: bool, zero: bool| {
            if zero {
                0
            } else if neg {
                -1
            } else {
                1
            }
        };
        match sign(na, zero_a).cmp(&sign(nb, zero_b)) {
            Ordering::Equal => {}
            other => return other,
        }
        let magnitude = la
            .len()
            .cmp(&lb.len())
            .then_with(|| la.iter().rev().cmp(lb.iter().rev()));
        if na { magnitude.reverse() } else { magnitude }
    }
}

fn trim(mut limbs: Vec<u32>) -> Vec<u32> {
    while limbs.last() == Some(&0) {
        limbs.pop();
    }
    limbs
}

fn low32(x: u64) -> u32 {
    u32::try_from(x & 0xFFFF_FFFF).unwrap_or(0)
}

/// `limbs = limbs * scale + add`, for `scale, add < 2^32`.
fn mul_add(limbs: &mut Vec<u32>, scale: u64, add: u64) {
    let mut carry = add;
    for limb in limbs.iter_mut() {
        let v = u64::from(*limb) * scale + carry;
        *limb = low32(v);
        carry = v >> 32;
    }
    while carry > 0 {
        limbs.push(low32(carry));
        carry >>= 32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(text: &str) -> Int {
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (radix, digits) = match digits.get(..2) {
            Some("0x") => (16, &digits[2..]),
            Some("0o") => (8, &digits[2..]),
            Some("0b") => (2, &digits[2..]),
            _ => (10, digits),
        };
        let v = Int::from_digits(digits.as_bytes(), radix);
        if negative { v.neg() } else { v }
    }

    #[test]
    fn small_values_stay_small_and_big_ones_agree_across_bases() {
        assert_eq!(int("9223372036854775807"), Int::Small(i64::MAX));
        assert_eq!(int("-9223372036854775808"), Int::Small(i64::MIN));
        assert!(matches!(int("9223372036854775808"), Int::Big(_)));
        assert_eq!(int("0x8000000000000000"), int("9223372036854775808"));
        assert_eq!(int("0o1000000000000000000000"), int("0x8000000000000000"));
        assert_eq!(int("0b101"), Int::Small(5));
        let big = int("1180591620717411303424"); // 2^70
        assert_eq!(big, int("0x400000000000000000"));
        assert_eq!(big.neg().neg(), big);
        assert_eq!(Int::Small(i64::MIN).neg(), int("9223372036854775808"));
        assert_eq!(int("000"), Int::ZERO);
    }

    #[test]
    fn ranges_and_order() {
        assert_eq!(int("18446744073709551615").to_i128(), Some(u64::MAX.into()));
        assert_eq!(int("18446744073709551616").to_i128(), None);
        assert_eq!(int("-9223372036854775809").to_i128(), None);
        assert_eq!(int("-1").to_i128(), Some(-1));
        let a = int("-100000000000000000000");
        let b = int("-99999999999999999999");
        assert_eq!(a.cmp_int(&b), Ordering::Less);
        assert_eq!(b.cmp_int(&Int::Small(0)), Ordering::Less);
        assert_eq!(
            int("100000000000000000000").cmp_int(&Int::Small(5)),
            Ordering::Greater
        );
    }

    #[test]
    fn float_conversions_are_exact_and_correctly_rounded() {
        assert_eq!(
            Int::from_integral_f64(2f64.powi(70)),
            int("0x400000000000000000")
        );
        assert_eq!(Int::from_integral_f64(-3.0), Int::Small(-3));
        assert_eq!(Int::from_integral_f64(-0.0), Int::ZERO);
        assert_eq!(Int::from_integral_f64(1e300).to_f64(), Some(1e300));
        assert_eq!(Int::from_f64_trunc(-2.9), Int::Small(-2));
        // Near 2^64 floats are 4096 apart: ties go to the even neighbour, anything above a
        // tie goes up.
        let two_64 = 2f64.powi(64);
        assert_eq!(int("18446744073709551617").to_f64(), Some(two_64));
        assert_eq!(int("18446744073709553664").to_f64(), Some(two_64)); // + 2048: tie
        assert_eq!(int("18446744073709553665").to_f64(), Some(two_64 + 4096.0));
        assert_eq!(int("18446744073709557760").to_f64(), Some(two_64 + 8192.0)); // + 6144: tie
        assert_eq!(
            int("-18446744073709557760").to_f64(),
            Some(-two_64 - 8192.0)
        );
        // 2^1024 does not fit a float: Python raises OverflowError.
        let two_1024 = int(&format!("0x1{}", "0".repeat(256)));
        assert_eq!(two_1024.to_f64(), None);
        assert_eq!(two_1024.neg().to_f64(), None);
        // The largest float is exact.
        assert_eq!(Int::from_integral_f64(f64::MAX).to_f64(), Some(f64::MAX));
    }
}
