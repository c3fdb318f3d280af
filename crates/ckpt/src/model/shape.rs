//! Shapes and strides, with arithmetic that cannot overflow.
//!
//! Every size computed from numbers read in a file goes through these functions, so that
//! a hostile shape like `[2, 2^63]` is an error, never a wrap-around or a panic.

use super::Dtype;

/// Why a size could not be computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeError {
    /// The element or byte count does not fit in 64 bits.
    Overflow,
    /// The elements of a sub-byte dtype do not fill a whole number of bytes.
    NotWholeBytes {
        /// The number of bits the elements take.
        bits: u128,
    },
}

/// The number of elements of a tensor of this shape (1 for a scalar, `shape == []`).
pub fn numel(shape: &[usize]) -> Result<usize, SizeError> {
    shape
        .iter()
        .try_fold(1usize, |acc, &dim| acc.checked_mul(dim))
        .ok_or(SizeError::Overflow)
}

/// The number of bytes taken by `numel` densely packed elements of `dtype`.
pub fn packed_len(dtype: Dtype, numel: usize) -> Result<usize, SizeError> {
    let bits = u128::from(dtype.bits()) * numel as u128;
    if !bits.is_multiple_of(8) {
        return Err(SizeError::NotWholeBytes { bits });
    }
    usize::try_from(bits / 8).map_err(|_| SizeError::Overflow)
}

/// The strides (in elements) of a dense row-major (C order) tensor of this shape.
pub fn contiguous_strides(shape: &[usize]) -> Result<Vec<usize>, SizeError> {
    let mut strides = vec![0; shape.len()];
    let mut stride = 1usize;
    for (slot, &dim) in strides.iter_mut().zip(shape).rev() {
        *slot = stride;
        stride = stride.checked_mul(dim.max(1)).ok_or(SizeError::Overflow)?;
    }
    Ok(strides)
}

/// Whether a tensor of `shape` and `strides` is dense and row-major.
///
/// Dimensions of size 1 may have any stride, and a tensor without elements is
/// contiguous, as in torch's `is_contiguous`.
pub fn is_contiguous(shape: &[usize], strides: &[usize]) -> bool {
    if shape.len() != strides.len() {
        return false;
    }
    if shape.contains(&0) {
        return true;
    }
    let mut expected = 1usize;
    for (&dim, &stride) in shape.iter().zip(strides).rev() {
        if dim != 1 {
            if stride != expected {
                return false;
            }
            match expected.checked_mul(dim) {
                Some(next) => expected = next,
                None => return false,
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numel_of_scalar_empty_and_overflowing_shapes() {
        assert_eq!(numel(&[]), Ok(1));
        assert_eq!(numel(&[2, 0, 3]), Ok(0));
        assert_eq!(numel(&[2, 3, 4]), Ok(24));
        assert_eq!(numel(&[2, usize::MAX - 1]), Err(SizeError::Overflow));
    }

    #[test]
    fn packed_len_handles_sub_byte_and_overflow() {
        assert_eq!(packed_len(Dtype::Float32, 3), Ok(12));
        assert_eq!(packed_len(Dtype::Float4E2M1Fn, 4), Ok(2));
        assert_eq!(
            packed_len(Dtype::Float4E2M1Fn, 3),
            Err(SizeError::NotWholeBytes { bits: 12 })
        );
        assert_eq!(packed_len(Dtype::Float6E2M3Fn, 4), Ok(3));
        assert_eq!(
            packed_len(Dtype::Float64, usize::MAX / 2),
            Err(SizeError::Overflow)
        );
    }

    #[test]
    fn strides_and_contiguity() {
        assert_eq!(contiguous_strides(&[2, 3, 4]), Ok(vec![12, 4, 1]));
        assert_eq!(contiguous_strides(&[]), Ok(vec![]));
        assert_eq!(contiguous_strides(&[2, 0, 4]), Ok(vec![4, 4, 1]));
        assert!(is_contiguous(&[2, 3], &[3, 1]));
        assert!(!is_contiguous(&[2, 3], &[1, 2]));
        assert!(is_contiguous(&[2, 1, 3], &[3, 99, 1]));
        assert!(is_contiguous(&[0, 3], &[7, 7]));
        assert!(!is_contiguous(&[2, 3], &[0, 1]));
        assert!(!is_contiguous(&[2], &[1, 1]));
    }
}
