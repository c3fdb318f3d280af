//! Counts, extremes, mean and sum of squared deviations of a stream of `f64`, in a form
//! that merges with little rounding error.
//!
//! Accuracy, for a tensor of 100M float32 values: values are taken in blocks of 512.
//! Within a block the mean comes from a sum over four lanes and the squared deviations from a second pass over the block (still in cache), corrected by
//! the sum of the deviations (the "corrected two-pass" algorithm of Chan, Golub and
//! LeVeque), so they carry no cancellation error. Blocks are then combined with Chan's
//! pairwise update in a binary tree (a [`Cascade`]), as are the partial results of the
//! threads: the rounding error grows with the logarithm of the number of blocks, not with
//! their number. Results are within a few ulps of the exact mean and standard deviation
//! (`tests/interop/test_stats.py` checks 16), closer than torch's own float64 `std()`.

/// Everything [`TensorStats`](super::TensorStats) needs from a stream of values, in a form
/// that merges.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Moments {
    /// Values seen.
    pub(crate) count: u64,
    pub(crate) nan: u64,
    pub(crate) pos_inf: u64,
    pub(crate) neg_inf: u64,
    /// Values equal to zero (either sign).
    pub(crate) zeros: u64,
    /// Finite values seen; `min`..`m2` are over these.
    pub(crate) finite: u64,
    pub(crate) min: f64,
    pub(crate) max: f64,
    pub(crate) mean: f64,
    /// The sum of squared deviations from `mean`.
    pub(crate) m2: f64,
}

impl Default for Moments {
    fn default() -> Self {
        Moments {
            count: 0,
            nan: 0,
            pos_inf: 0,
            neg_inf: 0,
            zeros: 0,
            finite: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            mean: 0.0,
            m2: 0.0,
        }
    }
}

/// Lanes of the inner loops: independent sums the compiler can keep in registers.
const LANES: usize = 4;

impl Moments {
    /// The moments of one block of values.
    pub(crate) fn of_block(values: &[f64]) -> Moments {
        let mut out = Moments {
            count: values.len() as u64,
            ..Moments::default()
        };
        // First pass, for the common case of finite values only: sums, extremes and zeros
        // in independent lanes, without a branch. `x * 0.0` is NaN exactly when `x` is not
        // finite, so `probe` tells whether the slower masked pass is needed.
        let mut sum = [0.0f64; LANES];
        let mut zeros = [0u64; LANES];
        let mut min = [f64::INFINITY; LANES];
        let mut max = [f64::NEG_INFINITY; LANES];
        let mut probe = [0.0f64; LANES];
        let lanes = values.chunks_exact(LANES);
        let rest = lanes.remainder();
        for group in lanes {
            for (((((&x, s), z), lo), hi), p) in group
                .iter()
                .zip(&mut sum)
                .zip(&mut zeros)
                .zip(&mut min)
                .zip(&mut max)
                .zip(&mut probe)
            {
                *s += x;
                *z += u64::from(x == 0.0);
                *lo = if x < *lo { x } else { *lo };
                *hi = if x > *hi { x } else { *hi };
                *p += x * 0.0;
            }
        }
        let mut s = sum.iter().sum::<f64>();
        let mut lo = min.iter().copied().fold(f64::INFINITY, f64::min);
        let mut hi = max.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        out.zeros = zeros.iter().sum();
        let mut finite = probe.iter().all(|p| *p == 0.0);
        for &x in rest {
            finite &= x.is_finite();
            s += x;
            out.zeros += u64::from(x == 0.0);
            lo = lo.min(x);
            hi = hi.max(x);
        }
        if finite {
            out.finite = out.count;
        } else {
            // Some NaN or infinity: count them, and redo the sums over the finite values.
            (s, lo, hi) = (0.0, f64::INFINITY, f64::NEG_INFINITY);
            for &x in values {
                if x.is_finite() {
                    out.finite += 1;
                    s += x;
                    lo = lo.min(x);
                    hi = hi.max(x);
                } else if x.is_nan() {
                    out.nan += 1;
                } else if x > 0.0 {
                    out.pos_inf += 1;
                } else {
                    out.neg_inf += 1;
                }
            }
        }
        if out.finite == 0 {
            return out;
        }
        out.min = lo;
        out.max = hi;
        if lo == hi {
            // A constant block: its mean is exact and its deviations are zero.
            out.mean = lo;
            return out;
        }
        let n = out.finite as f64;
        let mean = if s.is_finite() {
            s / n
        } else {
            // The sum overflowed (values near f64::MAX): sum the values scaled instead.
            values.iter().filter(|x| x.is_finite()).map(|x| x / n).sum()
        }
        .clamp(lo, hi);
        // Second pass: squared deviations, and their plain sum, which would be zero in
        // exact arithmetic and corrects the rounding of `mean`.
        let mut squares = [0.0f64; LANES];
        let mut deviations = [0.0f64; LANES];
        let lanes = values.chunks_exact(LANES);
        let rest = lanes.remainder();
        for group in lanes {
            for ((&x, q), c) in group.iter().zip(&mut squares).zip(&mut deviations) {
                let d = if finite || x.is_finite() {
                    x - mean
                } else {
                    0.0
                };
                *q += d * d;
                *c += d;
            }
        }
        let (mut q, mut c) = (squares.iter().sum::<f64>(), deviations.iter().sum::<f64>());
        for &x in rest {
            if x.is_finite() {
                let d = x - mean;
                q += d * d;
                c += d;
            }
        }
        out.mean = mean;
        // `c * (c / n)` is at most `q` (Cauchy-Schwarz), so it overflows only with `q`,
        // whose overflow (values near f64::MAX) must stay infinite, as in torch.
        out.m2 = if q.is_finite() {
            (q - c * (c / n)).max(0.0)
        } else {
            q
        };
        out
    }

    /// Adds `other`'s values to these (Chan's parallel update).
    pub(crate) fn merge(&mut self, other: &Moments) {
        self.count += other.count;
        self.nan += other.nan;
        self.pos_inf += other.pos_inf;
        self.neg_inf += other.neg_inf;
        self.zeros += other.zeros;
        if other.finite == 0 {
            return;
        }
        if self.finite == 0 {
            self.finite = other.finite;
            self.min = other.min;
            self.max = other.max;
            self.mean = other.mean;
            self.m2 = other.m2;
            return;
        }
        let (na, nb) = (self.finite as f64, other.finite as f64);
        let n = na + nb;
        self.finite += other.finite;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        if self.min == self.max {
            self.mean = self.min;
            self.m2 = 0.0;
            return;
        }
        let delta = other.mean - self.mean;
        let mean = if delta.is_finite() {
            self.mean + delta * (nb / n)
        } else {
            // Means of opposite signs near f64::MAX: their weighted sum cannot overflow.
            self.mean * (na / n) + other.mean * (nb / n)
        };
        self.mean = mean.clamp(self.min, self.max);
        // The weights as fractions first: `delta * delta * na * nb` could overflow.
        self.m2 += other.m2 + delta * delta * (na / n) * nb;
    }
}

/// Merges a sequence of [`Moments`] as the leaves of a balanced binary tree, keeping only
/// one partial result per level (like a binary counter): `O(log n)` memory, and a rounding
/// error that grows with the depth of the tree.
#[derive(Debug, Default)]
pub(crate) struct Cascade {
    /// Partial results and the number of leaves (a power of two) each holds, largest first.
    levels: Vec<(u32, Moments)>,
}

impl Cascade {
    /// Adds the next leaf.
    pub(crate) fn push(&mut self, moments: Moments) {
        let mut carry = (0u32, moments);
        while let Some(&(level, _)) = self.levels.last() {
            if level != carry.0 {
                break;
            }
            if let Some((_, mut left)) = self.levels.pop() {
                left.merge(&carry.1);
                carry = (level.saturating_add(1), left);
            }
        }
        self.levels.push(carry);
    }

    /// The moments of every leaf pushed, in order.
    pub(crate) fn finish(self) -> Moments {
        let mut levels = self.levels.into_iter().rev();
        let Some((_, mut right)) = levels.next() else {
            return Moments::default();
        };
        for (_, mut left) in levels {
            left.merge(&right);
            right = left;
        }
        right
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference: exact-ish moments of the finite values by a plain two-pass over f64,
    /// summed with Neumaier compensation.
    fn reference(values: &[f64]) -> (f64, f64) {
        let finite: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        let n = finite.len() as f64;
        let mean = neumaier(finite.iter().copied()) / n;
        let m2 = neumaier(finite.iter().map(|x| (x - mean) * (x - mean)));
        (mean, m2)
    }

    fn neumaier(values: impl Iterator<Item = f64>) -> f64 {
        let (mut sum, mut c) = (0.0f64, 0.0f64);
        for x in values {
            let t = sum + x;
            c += if sum.abs() >= x.abs() {
                (sum - t) + x
            } else {
                (x - t) + sum
            };
            sum = t;
        }
        sum + c
    }

    /// A deterministic stream of pseudo-random numbers in [0, 1).
    fn lcg(seed: u64) -> impl Iterator<Item = f64> {
        let mut state = seed;
        std::iter::from_fn(move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            Some((state >> 11) as f64 / (1u64 << 53) as f64)
        })
    }

    fn in_blocks(values: &[f64], block: usize) -> Moments {
        let mut cascade = Cascade::default();
        for chunk in values.chunks(block) {
            cascade.push(Moments::of_block(chunk));
        }
        cascade.finish()
    }

    #[test]
    fn counts_and_extremes_skip_nan_and_inf() {
        let m = Moments::of_block(&[
            1.0,
            f64::NAN,
            -0.0,
            f64::INFINITY,
            0.0,
            f64::NEG_INFINITY,
            3.0,
            f64::NAN,
            -2.0,
        ]);
        assert_eq!(
            (m.count, m.nan, m.pos_inf, m.neg_inf, m.zeros, m.finite),
            (9, 2, 1, 1, 2, 5)
        );
        assert_eq!((m.min, m.max), (-2.0, 3.0));
        assert_eq!(m.mean, 2.0 / 5.0);
        // Deviations from 0.4: 0.6, -0.4, -0.4, 2.6, -2.4.
        assert!((m.m2 - 13.2).abs() < 1e-14, "{}", m.m2);
    }

    #[test]
    fn no_finite_values() {
        let m = Moments::of_block(&[f64::NAN, f64::INFINITY]);
        assert_eq!((m.finite, m.nan, m.pos_inf), (0, 1, 1));
        let mut all = Moments::default();
        all.merge(&m);
        all.merge(&Moments::of_block(&[5.0]));
        all.merge(&m);
        assert_eq!(
            (all.count, all.finite, all.min, all.max, all.mean),
            (5, 1, 5.0, 5.0, 5.0)
        );
        assert_eq!(Cascade::default().finish(), Moments::default());
    }

    #[test]
    fn constants_have_exact_mean_and_zero_deviation() {
        let values = vec![0.1f64; 100_003];
        for block in [1, 7, 4096, 200_000] {
            let m = in_blocks(&values, block);
            assert_eq!((m.mean, m.m2, m.min, m.max), (0.1, 0.0, 0.1, 0.1));
        }
    }

    #[test]
    fn the_cut_does_not_change_the_result_beyond_rounding() {
        let values: Vec<f64> = lcg(7).take(300_001).map(|x| 1000.0 + x).collect();
        let (mean, m2) = reference(&values);
        // Blocks are decoder batches: at most 16K values.
        for block in [1, 3, 4, 5, 1000, 16384] {
            let m = in_blocks(&values, block);
            assert_eq!(m.finite, values.len() as u64);
            assert!(
                (m.mean - mean).abs() <= 4.0 * f64::EPSILON * mean,
                "block {block}: {} vs {mean}",
                m.mean
            );
            assert!(
                (m.m2 - m2).abs() <= 1e-12 * m2,
                "block {block}: {} vs {m2}",
                m.m2
            );
        }
    }

    #[test]
    #[allow(clippy::cast_possible_truncation)] // to float32 on purpose
    fn a_large_offset_does_not_cancel_the_variance() {
        // float32 weights around 1e4 with a spread of 1e-3: the naive sum of squares
        // loses every digit; the two-pass form keeps them.
        let values: Vec<f64> = lcg(3)
            .take(1 << 20)
            .map(|x| f64::from((1e4 + x * 1e-3) as f32))
            .collect();
        let (mean, m2) = reference(&values);
        let m = in_blocks(&values, 16384);
        assert!((m.mean - mean).abs() <= 4.0 * f64::EPSILON * mean);
        assert!((m.m2 - m2).abs() <= 1e-9 * m2, "{} vs {m2}", m.m2);
    }

    #[test]
    fn huge_values_do_not_overflow_the_merge() {
        let values = [f64::MAX, -f64::MAX, f64::MAX, -f64::MAX];
        let mut m = Moments::default();
        for x in values {
            m.merge(&Moments::of_block(&[x]));
        }
        assert_eq!((m.min, m.max), (-f64::MAX, f64::MAX));
        assert!(m.mean.abs() <= 1e-15 * f64::MAX, "{}", m.mean);
        let block = Moments::of_block(&values);
        assert_eq!((block.mean, block.m2), (0.0, f64::INFINITY));
        let block = Moments::of_block(&[f64::MAX, 1.0, -1.0, 0.0, 2.0]);
        assert_eq!(block.m2, f64::INFINITY);
        // The true m2 (4 * MAX^2) overflows f64, as it does in torch.
        assert_eq!(m.m2, f64::INFINITY);
    }

    #[test]
    fn cascade_is_a_balanced_tree() {
        let mut cascade = Cascade::default();
        for i in 0..1000 {
            cascade.push(Moments::of_block(&[f64::from(i)]));
            assert!(cascade.levels.len() <= 10);
        }
        let m = cascade.finish();
        assert_eq!((m.count, m.min, m.max, m.mean), (1000, 0.0, 999.0, 499.5));
        // Σ (i - 499.5)^2 for i < 1000 = (n^3 - n) / 12.
        assert_eq!(m.m2, (1e9 - 1000.0) / 12.0);
    }
}
