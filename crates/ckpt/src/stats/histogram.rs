//! Equal-width histograms of finite values, binned as torch's `histc` bins them.

/// Most bins a histogram may have.
pub const MAX_BINS: usize = 1024;

/// Counts of a tensor's finite values in `bins` equal-width bins from `lo` to `hi`.
///
/// Binning follows `torch.histc(x, bins, min=lo, max=hi)` on the finite values in float64:
/// value `x` falls in bin `floor((x - lo) * bins / (hi - lo))`, and `hi` itself in the last
/// bin. `lo` and `hi` are the tensor's finite minimum and maximum; when they are equal (a
/// constant tensor) the range is widened to `lo - 1 ..= hi + 1`, as `histc` does (for
/// magnitudes beyond 2^53, where that changes nothing, to the neighbouring floats, so that
/// the value still lands in the middle bin where histc counts it nowhere).
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    /// The left edge of the first bin.
    pub lo: f64,
    /// The right edge of the last bin.
    pub hi: f64,
    /// How many finite values fall in each bin.
    pub counts: Vec<u64>,
}

impl Histogram {
    /// An empty histogram of `bins` bins (`1..=MAX_BINS`, checked by the caller) over the
    /// finite range `min..=max`.
    pub(crate) fn new(bins: usize, min: f64, max: f64) -> Histogram {
        let (lo, hi) = match (min - 1.0, max + 1.0) {
            _ if min != max => (min, max),
            // Beyond 2^53, ±1 is lost: one ulp (the larger of the two sides) instead.
            (lo, hi) if lo == hi => {
                let ulp = (max.next_up() - max).max(min - min.next_down());
                (min - ulp, max + ulp)
            }
            (lo, hi) => (lo, hi),
        };
        Histogram {
            lo,
            hi,
            counts: vec![0; bins],
        }
    }

    /// The `bins + 1` bin edges, from `lo` to `hi`.
    pub fn edges(&self) -> Vec<f64> {
        let bins = self.counts.len() as f64;
        let width = self.hi - self.lo;
        (0..=self.counts.len())
            .map(|i| {
                if i == self.counts.len() {
                    self.hi
                } else if width.is_finite() {
                    self.lo + width * (i as f64 / bins)
                } else {
                    self.lo + (self.hi / 2.0 - self.lo / 2.0) * (2.0 * i as f64 / bins)
                }
            })
            .collect()
    }

    /// Counts the finite values among `values` that lie in the range.
    pub(crate) fn add(&mut self, values: &[f64]) {
        let last = self.counts.len().saturating_sub(1);
        let bins = self.counts.len() as f64;
        let (lo, hi) = (self.lo, self.hi);
        let width = hi - lo;
        for &x in values {
            if !(lo..=hi).contains(&x) {
                continue;
            }
            // torch's histc: `(x - lo) * bins / (hi - lo)`, in this order, so that values
            // near an edge land in the same bin. Near f64::MAX the width overflows: then
            // work on halves.
            let at = if width.is_finite() {
                (x - lo) * bins / width
            } else {
                (x / 2.0 - lo / 2.0) * bins / (hi / 2.0 - lo / 2.0)
            };
            // Non-negative and at most `bins` (up to rounding), so the cast is exact.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let bin = (at as usize).min(last);
            if let Some(count) = self.counts.get_mut(bin) {
                *count += 1;
            }
        }
    }

    /// Adds `other`'s counts (a histogram over the same range) to these.
    pub(crate) fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_as_torch_histc() {
        // torch.histc(torch.tensor([0., 1, 2, 3, 4]), bins=4, min=0, max=4) == [1, 1, 1, 2]
        let mut h = Histogram::new(4, 0.0, 4.0);
        h.add(&[0.0, 1.0, 2.0, 3.0, 4.0, f64::NAN, f64::INFINITY]);
        assert_eq!(h.counts, [1, 1, 1, 2]);
        assert_eq!(h.edges(), [0.0, 1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn a_constant_widens_the_range_as_histc() {
        // torch.histc(torch.tensor([2., 2, 2]), bins=4, min=2, max=2) == [0, 0, 3, 0]
        let mut h = Histogram::new(4, 2.0, 2.0);
        h.add(&[2.0, 2.0, 2.0]);
        assert_eq!(h.counts, [0, 0, 3, 0]);
        assert_eq!((h.lo, h.hi), (1.0, 3.0));
        let big = 2f64.powi(62);
        let mut h = Histogram::new(4, big, big);
        h.add(&[big]);
        assert_eq!(h.counts, [0, 0, 1, 0]);
        assert!(h.lo < big && big < h.hi);
    }

    #[test]
    fn the_whole_f64_range() {
        let mut h = Histogram::new(2, -f64::MAX, f64::MAX);
        h.add(&[-f64::MAX, -1e300, 1e300, f64::MAX]);
        assert_eq!(h.counts, [2, 2]);
        let edges = h.edges();
        assert_eq!(edges, [-f64::MAX, 0.0, f64::MAX]);
    }

    #[test]
    fn merge_adds_counts() {
        let mut a = Histogram::new(2, 0.0, 1.0);
        a.add(&[0.0]);
        let mut b = Histogram::new(2, 0.0, 1.0);
        b.add(&[1.0, 0.9]);
        a.merge(&b);
        assert_eq!(a.counts, [1, 2]);
    }
}
