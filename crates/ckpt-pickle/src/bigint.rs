//! The one codec of big integers: pickle's little-endian two's complement bytes (`LONG1`,
//! `LONG4`, [`Object::BigInt`](crate::Object::BigInt)) to and from digits.
//!
//! The shortest form is Python's `pickle.encode_long`: no byte only repeats the sign of
//! the one below it, and 0 is no bytes at all. The reader ([`crate::Decoder`], `LONG` and
//! `INT` text) and ckpt's pickle writer both go through here.

/// The decimal text of a little-endian two's complement integer (`Object::BigInt`), or
/// `None` when it has more than `max_bytes` bytes (the conversion is quadratic).
pub fn bigint_to_decimal(le: &[u8], max_bytes: usize) -> Option<String> {
    if le.len() > max_bytes {
        return None;
    }
    let negative = le.last().is_some_and(|&b| b & 0x80 != 0);
    let mut bytes = le.to_vec();
    if negative {
        negate(&mut bytes);
    }
    // Magnitude as little-endian base-2^32 limbs, divided by 10^9 until nothing is left.
    let mut limbs: Vec<u32> = bytes
        .chunks(4)
        .map(|c| {
            c.iter()
                .rev()
                .fold(0u32, |acc, &b| (acc << 8) | u32::from(b))
        })
        .collect();
    let mut chunks = Vec::new();
    while limbs.iter().any(|&l| l != 0) {
        let mut rest = 0u64;
        for limb in limbs.iter_mut().rev() {
            let value = (rest << 32) | u64::from(*limb);
            *limb = u32::try_from(value / 1_000_000_000).unwrap_or(u32::MAX);
            rest = value % 1_000_000_000;
        }
        chunks.push(rest);
    }
    let mut text = String::new();
    if negative {
        text.push('-');
    }
    match chunks.split_last() {
        None => text.push('0'),
        Some((first, rest)) => {
            text.push_str(&first.to_string());
            for chunk in rest.iter().rev() {
                text.push_str(&format!("{chunk:09}"));
            }
        }
    }
    Some(text)
}

/// The value of little-endian two's complement bytes when it fits in 64 bits, however many
/// redundant sign bytes spell it.
pub(crate) fn bigint_to_i64(le: &[u8]) -> Option<i64> {
    let negative = le.last().is_some_and(|&b| b & 0x80 != 0);
    let fill = if negative { 0xff } else { 0 };
    let (low, high) = le.split_at(le.len().min(8));
    let mut buf = [fill; 8];
    buf.get_mut(..low.len())?.copy_from_slice(low);
    let value = i64::from_le_bytes(buf);
    // The bytes above the low eight only repeat the sign, which the low eight agree with.
    (high.iter().all(|&b| b == fill) && (value < 0) == negative).then_some(value)
}

/// `value` in the shortest little-endian two's complement form (Python's
/// `pickle.encode_long`; no bytes for 0), as `LONG1` writes it.
pub fn bigint_from_i128(value: i128) -> Vec<u8> {
    let mut bytes = value.to_le_bytes().to_vec();
    shorten(&mut bytes);
    bytes
}

/// A decimal integer (`123`, `-45`: an optional minus and ASCII digits, nothing else) in
/// the shortest two's complement form, or `None` if the text is not one.
pub fn bigint_from_decimal(decimal: &str) -> Option<Vec<u8>> {
    let (negative, digits) = match decimal.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, decimal),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(from_digits(digits.as_bytes(), 10, negative))
}

/// ASCII digits of `radix` (2 to 36, no sign, no separators) and a sign, in the shortest
/// two's complement form. Powers of two are converted in linear time; other radixes cost
/// the square of the number of digits, so callers bound them first.
pub(crate) fn from_digits(digits: &[u8], radix: u32, negative: bool) -> Vec<u8> {
    let mut bytes = if radix.is_power_of_two() {
        magnitude_pow2(digits, radix)
    } else {
        magnitude(digits, radix)
    };
    // Room for the sign bit (0x80 needs a second byte as +128, none as -128).
    bytes.push(0);
    if negative {
        negate(&mut bytes);
    }
    shorten(&mut bytes);
    bytes
}

/// The value of a digit of `radix`, ASCII letters being 10 and up.
fn digit_value(d: u8, radix: u32) -> u32 {
    char::from(d).to_digit(radix).unwrap_or(0)
}

/// Little-endian magnitude bytes of digits in a power-of-two radix: bit packing.
#[allow(clippy::cast_possible_truncation)] // the low byte of the accumulator is the point
fn magnitude_pow2(digits: &[u8], radix: u32) -> Vec<u8> {
    let bits = radix.trailing_zeros();
    let mut out = Vec::with_capacity(digits.len() * bits as usize / 8 + 1);
    let (mut acc, mut filled) = (0u32, 0u32);
    for &d in digits.iter().rev() {
        acc |= digit_value(d, radix) << filled;
        filled += bits;
        while filled >= 8 {
            out.push(acc as u8);
            acc >>= 8;
            filled -= 8;
        }
    }
    if filled > 0 {
        out.push(acc as u8);
    }
    out
}

/// Little-endian magnitude bytes of digits in any radix: base 2^32 limbs, seven digits at
/// a time.
#[allow(clippy::cast_possible_truncation)] // keeping the low 32 bits of a limb product is the point
fn magnitude(digits: &[u8], radix: u32) -> Vec<u8> {
    let mut limbs: Vec<u32> = vec![0];
    for chunk in digits.chunks(7) {
        let (mut carry, scale) = chunk.iter().fold((0u64, 1u64), |(value, scale), &d| {
            (
                value * u64::from(radix) + u64::from(digit_value(d, radix)),
                scale * u64::from(radix),
            )
        });
        for limb in &mut limbs {
            let product = u64::from(*limb) * scale + carry;
            *limb = product as u32;
            carry = product >> 32;
        }
        if carry > 0 {
            limbs.push(carry as u32);
        }
    }
    limbs.iter().flat_map(|l| l.to_le_bytes()).collect()
}

/// Two's complement negation in place: invert and add one.
fn negate(bytes: &mut [u8]) {
    let mut carry = true;
    for byte in bytes {
        *byte = !*byte;
        if carry {
            let (sum, overflow) = byte.overflowing_add(1);
            *byte = sum;
            carry = overflow;
        }
    }
}

/// Drops top bytes that only repeat the sign of the byte below; 0 becomes no bytes.
fn shorten(bytes: &mut Vec<u8>) {
    while let [.., below, top] = bytes[..] {
        let redundant = (top == 0 && below & 0x80 == 0) || (top == 0xff && below & 0x80 != 0);
        if !redundant {
            break;
        }
        bytes.pop();
    }
    if bytes[..] == [0] {
        bytes.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_integers_in_decimal() {
        assert_eq!(
            bigint_to_decimal(b"\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19", 64).unwrap(),
            "119547037146038801333356"
        );
        assert_eq!(
            bigint_to_decimal(b"\0\0\0\0\0\0\0\0\0\0\xff", 64).unwrap(),
            "-1208925819614629174706176"
        );
        assert_eq!(bigint_to_decimal(b"", 64).unwrap(), "0");
        assert_eq!(bigint_to_decimal(b"\xff", 64).unwrap(), "-1");
        assert_eq!(bigint_to_decimal(&[0; 100], 64), None);
    }

    #[test]
    fn encoding_matches_pythons_encode_long() {
        // pickle.encode_long(value)
        let cases: &[(i128, &[u8])] = &[
            (0, b""),
            (255, b"\xff\x00"),
            (-256, b"\x00\xff"),
            (-128, b"\x80"),
            (127, b"\x7f"),
            (128, b"\x80\x00"),
            (-1, b"\xff"),
            (-32768, b"\x00\x80"),
            (1 << 63, b"\x00\x00\x00\x00\x00\x00\x00\x80\x00"),
        ];
        for &(value, want) in cases {
            assert_eq!(bigint_from_i128(value), want, "{value}");
            assert_eq!(
                bigint_from_decimal(&value.to_string()).unwrap(),
                want,
                "{value}"
            );
            assert_eq!(
                bigint_to_decimal(want, 64).unwrap(),
                value.to_string(),
                "{value}"
            );
        }
        assert_eq!(bigint_from_decimal("-0"), Some(vec![]));
        assert_eq!(bigint_from_decimal("12a"), None);
        assert_eq!(bigint_from_decimal(""), None);
        assert_eq!(bigint_from_decimal("-"), None);
        assert_eq!(bigint_from_decimal("+1"), None);
    }

    #[test]
    fn small_values_in_any_number_of_bytes() {
        assert_eq!(bigint_to_i64(b""), Some(0));
        assert_eq!(bigint_to_i64(b"\xff"), Some(-1));
        assert_eq!(bigint_to_i64(b"\xff\x00"), Some(255));
        assert_eq!(bigint_to_i64(&[0xff; 20]), Some(-1));
        assert_eq!(bigint_to_i64(b"\0\0\0\0\0\0\0\x80"), Some(i64::MIN));
        // 2**63 and -2**63 - 1 do not fit.
        assert_eq!(bigint_to_i64(b"\0\0\0\0\0\0\0\x80\x00"), None);
        assert_eq!(bigint_to_i64(b"\xff\xff\xff\xff\xff\xff\xff\x7f\xff"), None);
        assert_eq!(bigint_to_i64(b"\x01\0\0\0\0\0\0\0\x01"), None);
    }

    #[test]
    fn every_radix_agrees() {
        assert_eq!(
            from_digits(b"119547037146038801333356", 10, false),
            b"\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"
        );
        // -2**80: pickle.encode_long gives 00 x 10, ff.
        assert_eq!(
            from_digits(b"1208925819614629174706176", 10, true),
            b"\0\0\0\0\0\0\0\0\0\0\xff"
        );
        assert_eq!(
            from_digits(b"100000000000000000000", 16, true),
            from_digits(b"1208925819614629174706176", 10, true)
        );
        assert_eq!(from_digits(b"1f", 16, false), b"\x1f");
        assert_eq!(from_digits(b"FF", 16, false), b"\xff\x00");
        assert_eq!(from_digits(b"777", 8, false), b"\xff\x01");
        assert_eq!(from_digits(b"10000000", 2, true), b"\x80");
        assert_eq!(from_digits(b"000", 16, true), b"");
        assert_eq!(from_digits(b"0", 10, false), b"");
        // 16**5000 - 1 in linear time: 2500 bytes of 0xff and a sign byte.
        let hex = vec![b'f'; 5000];
        let bytes = from_digits(&hex, 16, false);
        assert_eq!(bytes.len(), 2501);
        assert!(bytes[..2500].iter().all(|&b| b == 0xff));
    }
}
