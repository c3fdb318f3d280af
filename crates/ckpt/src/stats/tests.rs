use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::*;
use crate::ErrorKind;
use crate::model::{ByteOrder, Dtype, Storage};

fn view(dtype: Dtype, shape: Vec<usize>, bytes: &[u8]) -> TensorView<'_> {
    TensorView::contiguous(dtype, shape, Storage::new(bytes, ByteOrder::Little)).unwrap()
}

fn one(view: &TensorView<'_>) -> TensorStats {
    one_with(view, &StatsOptions::default())
}

fn one_with(view: &TensorView<'_>, options: &StatsOptions) -> TensorStats {
    compute(&[("t".to_owned(), view)], options, &())
        .unwrap()
        .remove(0)
        .unwrap()
}

fn f32s(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn f64s(values: &[f64]) -> Vec<u8> {
    values.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn float32_with_nan_inf_and_signed_zeros() {
    let data = f32s(&[
        1.0,
        f32::NAN,
        -0.0,
        f32::INFINITY,
        0.0,
        f32::NEG_INFINITY,
        5.0,
    ]);
    let s = one(&view(Dtype::Float32, vec![7], &data));
    assert_eq!(
        (s.count, s.nan, s.pos_inf, s.neg_inf, s.zeros),
        (7, 1, 1, 1, 2)
    );
    assert_eq!((s.min, s.max, s.mean), (Some(-0.0), Some(5.0), Some(1.5)));
    // torch.tensor([1., -0., 0., 5.]).double().std() == 2.3804761428476167
    assert_eq!(s.std, Some(2.3804761428476167));
    assert!(s.has_nonfinite() && !s.all_zero() && !s.is_constant());
}

#[test]
fn empty_single_and_all_nan() {
    let empty = one(&view(Dtype::Float32, vec![0, 3], &[]));
    assert_eq!(empty.count, 0);
    assert_eq!(
        (empty.min, empty.max, empty.mean, empty.std),
        (None, None, None, None)
    );
    assert!(!empty.all_zero() && !empty.has_nonfinite() && !empty.is_constant());

    // torch.tensor([2.5]).std() is nan: fewer than two values.
    let single = one(&view(Dtype::Float64, vec![], &f64s(&[2.5])));
    assert_eq!(
        (single.count, single.min, single.mean, single.std),
        (1, Some(2.5), Some(2.5), None)
    );
    assert!(!single.is_constant());

    let nans = one(&view(Dtype::Float32, vec![3], &f32s(&[f32::NAN; 3])));
    assert_eq!(
        (nans.count, nans.nan, nans.min, nans.std),
        (3, 3, None, None)
    );
}

#[test]
fn zeros_and_constants_are_told_apart() {
    let zeros = one(&view(Dtype::Float32, vec![3], &f32s(&[0.0, -0.0, 0.0])));
    assert!(zeros.all_zero() && !zeros.is_constant());
    assert_eq!((zeros.std, zeros.mean), (Some(0.0), Some(0.0)));
    let ones = one(&view(Dtype::Float32, vec![4], &f32s(&[1.0; 4])));
    assert!(ones.is_constant() && !ones.all_zero());
    assert_eq!((ones.mean, ones.std), (Some(1.0), Some(0.0)));
}

#[test]
fn subnormals_are_finite_and_not_zero() {
    let tiny = f32::from_bits(1); // 2^-149
    let s = one(&view(Dtype::Float32, vec![2], &f32s(&[tiny, -tiny])));
    assert_eq!(s.zeros, 0);
    assert_eq!(
        (s.min, s.max, s.mean),
        (Some(-f64::from(tiny)), Some(f64::from(tiny)), Some(0.0))
    );
    // float64 subnormals too: 5e-324 and 0.
    let s = one(&view(Dtype::Float64, vec![2], &f64s(&[5e-324, 0.0])));
    assert_eq!((s.zeros, s.max, s.min), (1, Some(5e-324), Some(0.0)));
}

#[test]
fn integers_and_their_extremes() {
    let data: Vec<u8> = [i64::MIN, -1, 0, i64::MAX]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let s = one(&view(Dtype::Int64, vec![4], &data));
    // As t.double(): the extremes round to ±2^63.
    assert_eq!(
        (s.min, s.max),
        (Some(-(2f64.powi(63))), Some(2f64.powi(63)))
    );
    assert_eq!((s.zeros, s.nan), (1, 0));
    // The -1 is lost beside 2^63, as in torch's t.double().mean() (0.0).
    assert_eq!(s.mean, Some(0.0));

    let s = one(&view(Dtype::UInt8, vec![3], &[0, 255, 3]));
    assert_eq!(
        (s.min, s.max, s.mean, s.zeros),
        (Some(0.0), Some(255.0), Some(86.0), 1)
    );
    let data: Vec<u8> = [-5i16, 7].iter().flat_map(|x| x.to_le_bytes()).collect();
    let s = one(&view(Dtype::Int16, vec![2], &data));
    assert_eq!((s.min, s.max, s.mean), (Some(-5.0), Some(7.0), Some(1.0)));
}

#[test]
fn bool_mean_is_the_fraction_true() {
    let s = one(&view(Dtype::Bool, vec![4], &[1, 0, 1, 1]));
    assert_eq!(
        (s.mean, s.zeros, s.min, s.max),
        (Some(0.75), 1, Some(0.0), Some(1.0))
    );
    // torch.tensor([1., 0, 1, 1]).std() == 0.5
    assert_eq!(s.std, Some(0.5));
}

#[test]
fn half_widths_and_float8() {
    // float16: 1.0, -2.0, inf, NaN
    let s = one(&view(
        Dtype::Float16,
        vec![4],
        &[0x00, 0x3C, 0x00, 0xC0, 0x00, 0x7C, 0x00, 0x7E],
    ));
    assert_eq!(
        (s.min, s.max, s.pos_inf, s.nan),
        (Some(-2.0), Some(1.0), 1, 1)
    );
    // bfloat16: 1.0, 3.0, -inf
    let s = one(&view(
        Dtype::BFloat16,
        vec![3],
        &[0x80, 0x3F, 0x40, 0x40, 0x80, 0xFF],
    ));
    assert_eq!((s.mean, s.neg_inf), (Some(2.0), 1));
    // float8_e4m3fn: 448, -448, NaN (0x7F), 2^-9 (0x01); it has no infinity.
    let s = one(&view(
        Dtype::Float8E4M3Fn,
        vec![4],
        &[0x7E, 0xFE, 0x7F, 0x01],
    ));
    assert_eq!(
        (s.min, s.max, s.nan, s.pos_inf, s.zeros),
        (Some(-448.0), Some(448.0), 1, 0, 0)
    );
    // float8_e5m2: 0x7C is +inf.
    let s = one(&view(Dtype::Float8E5M2, vec![2], &[0x7C, 0x3C]));
    assert_eq!((s.pos_inf, s.max), (1, Some(1.0)));
    // float8_e4m3fnuz: 0x80 is its only NaN (no negative zero).
    let s = one(&view(Dtype::Float8E4M3Fnuz, vec![2], &[0x80, 0x00]));
    assert_eq!((s.nan, s.zeros), (1, 1));
}

#[test]
fn complex_by_magnitude() {
    // complex64: 3+4j, NaN+0j, inf+1j, 0-0j, inf+NaN j (NaN, though |z| would be inf)
    let data = f32s(&[
        3.0,
        4.0,
        f32::NAN,
        0.0,
        f32::INFINITY,
        1.0,
        0.0,
        -0.0,
        f32::INFINITY,
        f32::NAN,
    ]);
    let s = one(&view(Dtype::Complex64, vec![5], &data));
    assert_eq!(
        (s.count, s.nan, s.pos_inf, s.neg_inf, s.zeros),
        (5, 2, 1, 0, 1)
    );
    assert_eq!((s.min, s.max, s.mean), (Some(0.0), Some(5.0), Some(2.5)));
}

#[test]
fn quantized_by_real_value() {
    // qint8 per tensor: (q - 2) * 0.5
    let q = view(Dtype::QInt8, vec![3], &[2, 4, 0xFE]).with_quantization(Quantization::PerTensor {
        scale: 0.5,
        zero_point: 2,
    });
    let s = one(&q);
    assert_eq!((s.min, s.max, s.zeros), (Some(-2.0), Some(1.0), 1));
    // quint8 per channel along axis 0 of a 2x2: rows scaled by 1 and 10, zero points 0 and 1.
    let q = view(Dtype::QUInt8, vec![2, 2], &[1, 2, 1, 3]).with_quantization(
        Quantization::PerChannel {
            scales: vec![1.0, 10.0],
            zero_points: vec![0.0, 1.0],
            axis: 0,
            float_qparams: false,
        },
    );
    let s = one(&q);
    assert_eq!(
        (s.min, s.max, s.zeros, s.mean),
        (Some(0.0), Some(20.0), 1, Some(5.75))
    );
    // along axis 1: columns scaled by 1 and 10.
    let q = view(Dtype::QUInt8, vec![2, 2], &[1, 2, 1, 3]).with_quantization(
        Quantization::PerChannel {
            scales: vec![1.0, 10.0],
            zero_points: vec![0.0, 1.0],
            axis: 1,
            float_qparams: false,
        },
    );
    assert_eq!(one(&q).max, Some(20.0));
    assert_eq!(one(&q).min, Some(1.0));
    // Scales that do not match the axis are an error, not a panic.
    let bad = view(Dtype::QUInt8, vec![2, 2], &[1, 2, 1, 3]).with_quantization(
        Quantization::PerChannel {
            scales: vec![1.0],
            zero_points: vec![0.0],
            axis: 5,
            float_qparams: false,
        },
    );
    let err = compute(&[("q".to_owned(), &bad)], &StatsOptions::default(), &()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Malformed);
    assert_eq!(err.location().tensor.as_deref(), Some("q"));
}

#[test]
fn opaque_dtypes_have_no_statistics_but_do_not_stop_the_rest() {
    let bits = view(Dtype::Bits8, vec![2], &[1, 2]);
    let floats = f32s(&[1.0]);
    let f = view(Dtype::Float32, vec![1], &floats);
    let stats = compute(
        &[("bits".to_owned(), &bits), ("f".to_owned(), &f)],
        &StatsOptions {
            histogram_bins: Some(4),
        },
        &(),
    )
    .unwrap();
    assert!(stats[0].is_none());
    assert_eq!(stats[1].as_ref().unwrap().max, Some(1.0));
}

#[test]
fn strided_and_big_endian_views_are_read_in_logical_order() {
    // A transposed 2x2 of big-endian float32 (stride 1, 2): per-channel order matters only
    // for quantized tensors, but the values must be the four elements.
    let data: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0]
        .iter()
        .flat_map(|x| x.to_be_bytes())
        .collect();
    let v = TensorView::strided(
        Dtype::Float32,
        vec![2, 2],
        vec![1, 2],
        0,
        Storage::new(&data, ByteOrder::Big),
    )
    .unwrap();
    let s = one(&v);
    assert_eq!(
        (s.min, s.max, s.mean, s.count),
        (Some(1.0), Some(4.0), Some(2.5), 4)
    );
}

/// A deterministic stream of pseudo-random float32 values.
fn random_f32(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u32 << 24) as f32 - 0.5) * 0.04 + 0.001
        })
        .collect()
}

#[test]
fn big_tensors_are_cut_and_the_threads_do_not_change_the_result() {
    // 3.5 pieces of float32, with a NaN and an inf planted in different pieces.
    let n = PIECE_LEN / 4 * 7 / 2 + 3;
    let mut values = random_f32(n, 11);
    values[10] = f32::NAN;
    values[n - 2] = f32::INFINITY;
    let data = f32s(&values);
    let v = view(Dtype::Float32, vec![n], &data);
    assert_eq!(jobs(&[("t".to_owned(), &v)], &[true]).len(), 4);
    let options = StatsOptions {
        histogram_bins: Some(16),
    };
    let runs: Vec<TensorStats> = [1, 2, 3]
        .iter()
        .map(|&threads| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| one_with(&v, &options))
        })
        .collect();
    assert_eq!(runs[0], runs[1]);
    assert_eq!(runs[0], runs[2]);
    let s = &runs[0];
    assert_eq!((s.count, s.nan, s.pos_inf), (n as u64, 1, 1));
    // The same values as a strided (non-dense) view: one sequential stream, cut otherwise.
    let strided = TensorView::strided(
        Dtype::Float32,
        vec![n],
        vec![1],
        0,
        Storage::new(&data, ByteOrder::Little),
    )
    .unwrap()
    .with_neg(true);
    let negated = one_with(&strided, &options);
    assert_eq!(negated.min, s.max.map(|x| -x));
    let (a, b) = (negated.mean.unwrap(), s.mean.unwrap());
    assert!((a + b).abs() <= 1e-15 * s.max.unwrap(), "{a} vs {b}");
    let (a, b) = (negated.std.unwrap(), s.std.unwrap());
    assert!((a - b).abs() <= 1e-14 * b, "{a} vs {b}");
    let histogram = s.histogram.as_ref().unwrap();
    assert_eq!(histogram.counts.iter().sum::<u64>(), n as u64 - 2);
    let mut reversed = negated.histogram.unwrap().counts;
    reversed.reverse();
    // Mirrored bins hold the same values, except those exactly on an edge.
    let moved: u64 = reversed
        .iter()
        .zip(&histogram.counts)
        .map(|(a, b)| a.abs_diff(*b))
        .sum();
    assert!(moved <= 32, "{moved}");
}

#[test]
fn histogram_bins_are_bounded() {
    let data = f32s(&[1.0]);
    let v = view(Dtype::Float32, vec![1], &data);
    for bins in [0, MAX_BINS + 1, usize::MAX] {
        let err = compute(
            &[("t".to_owned(), &v)],
            &StatsOptions {
                histogram_bins: Some(bins),
            },
            &(),
        )
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Invalid);
    }
    // A tensor without finite values has no histogram.
    let nan = f32s(&[f32::NAN]);
    let s = one_with(
        &view(Dtype::Float32, vec![1], &nan),
        &StatsOptions {
            histogram_bins: Some(3),
        },
    );
    assert!(s.histogram.is_none());
}

#[derive(Default)]
struct Counting {
    total: AtomicU64,
    done: AtomicU64,
    cancel: AtomicBool,
}

impl Progress for Counting {
    fn start(&self, total: u64) {
        self.total.store(total, Ordering::SeqCst);
    }
    fn advance(&self, bytes: u64) {
        self.done.fetch_add(bytes, Ordering::SeqCst);
    }
    fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }
}

#[test]
fn progress_counts_both_passes_and_cancels() {
    let data = f32s(&random_f32(1000, 1));
    let v = view(Dtype::Float32, vec![1000], &data);
    let bits = view(Dtype::Bits16, vec![1], &[0, 0]);
    let tensors = [("t".to_owned(), &v), ("b".to_owned(), &bits)];
    let progress = Counting::default();
    compute(
        &tensors,
        &StatsOptions {
            histogram_bins: Some(8),
        },
        &progress,
    )
    .unwrap();
    assert_eq!(progress.total.load(Ordering::SeqCst), 8000);
    assert_eq!(progress.done.load(Ordering::SeqCst), 8000);

    progress.cancel.store(true, Ordering::SeqCst);
    let err = compute(&tensors, &StatsOptions::default(), &progress).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Interrupted);
}
