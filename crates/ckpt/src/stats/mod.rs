//! Summary statistics of tensors (`ckpt stats`): extremes, mean, standard deviation,
//! counts of NaN, infinities and zeros, and optionally a histogram, computed on all cores
//! straight from the mapped file.
//!
//! # What the numbers mean
//!
//! Every element is read as an `f64` (see [`Decoder`]), so that a statistic of `t` equals
//! the same torch expression on `t.double()`:
//!
//! - `count`: the values looked at: `t.numel()` (an element of `float4_e2m1fn_x2` holds two
//!   values, and counts twice).
//! - `nan`, `pos_inf`, `neg_inf`: `x.isnan().sum()`, `(x == inf).sum()`,
//!   `(x == -inf).sum()`.
//! - `zeros`: `(x == 0).sum()`; `-0.0` is a zero.
//! - `min`, `max`, `mean`, `std` are over the **finite** values only: with
//!   `f = x[x.isfinite()]`, they are `f.min()`, `f.max()`, `f.mean()` and `f.std()`, the
//!   unbiased standard deviation (`correction=1`). So one NaN does not hide the spread of
//!   the rest; NaN and infinities are counted instead. `min`/`max`/`mean` are `None` when
//!   no value is finite (torch raises or gives NaN), `std` when fewer than two are.
//!
//! Per dtype family:
//!
//! - floats of every width (`float64` to `float8_*`, `float4_e2m1fn`), exactly as torch
//!   widens them;
//! - integers as numbers; `int64`/`uint64` beyond 2^53 round to the nearest `f64` as in
//!   `t.double()` (so `min`/`max` may differ from torch's exact integer `t.min()` there);
//! - `bool` as 0 and 1: `mean` is the fraction of `True`;
//! - complex numbers by magnitude `|z|` (computed as `t.to(torch.complex128).abs()`); an
//!   element with a NaN part is NaN (as `t.isnan()` says, even where `abs` gives inf), an
//!   element with an infinite part and no NaN is `+inf`, zeros are `0+0j`;
//! - quantized tensors (`qint8`, `quint8`, `qint32`) by their real values
//!   `(q - zero_point) * scale` computed in `f64`, per channel for per-channel schemes
//!   (`(t.int_repr().double() - zero_point) * scale`);
//! - the opaque `bits*` dtypes and the others [`Decoder::new`] refuses have no statistics:
//!   their entry is `None`, and the other tensors are still computed.
//!
//! The mean and standard deviation are accumulated in blocks merged in a balanced tree (see
//! `moments.rs`): they are within a few ulps of the exact values (closer than torch's own
//! float64 reductions, which they match to `1e-12` relative), and the same whatever the
//! number of threads.

mod histogram;
mod moments;
mod report;

use rayon::prelude::*;

use crate::cast::{Decoder, decodes};
use crate::error::{Error, Result};
use crate::model::{DtypeClass, Quantization, TensorView};
use crate::progress::Progress;

pub use histogram::{Histogram, MAX_BINS};
use moments::{Cascade, Moments};
pub use report::{HistogramReport, Report, Summary, TensorReport, ZeroPolicy, report};

/// Dense tensors larger than this are cut into pieces of this size, computed in parallel.
const PIECE_LEN: usize = 4 << 20;

/// The statistics of one tensor (see the [module documentation](self) for their meaning).
#[derive(Debug, Clone, PartialEq)]
pub struct TensorStats {
    /// The values looked at.
    pub count: u64,
    /// Smallest finite value.
    pub min: Option<f64>,
    /// Largest finite value.
    pub max: Option<f64>,
    /// Mean of the finite values.
    pub mean: Option<f64>,
    /// Unbiased standard deviation of the finite values (`None` for fewer than two).
    pub std: Option<f64>,
    /// NaN values.
    pub nan: u64,
    /// `+inf` values.
    pub pos_inf: u64,
    /// `-inf` values.
    pub neg_inf: u64,
    /// Values equal to zero.
    pub zeros: u64,
    /// The histogram of the finite values, when asked for and there is one.
    pub histogram: Option<Histogram>,
}

impl TensorStats {
    fn from_moments(m: &Moments) -> TensorStats {
        let finite = m.finite > 0;
        TensorStats {
            count: m.count,
            min: finite.then_some(m.min),
            max: finite.then_some(m.max),
            mean: finite.then_some(m.mean),
            std: (m.finite > 1).then(|| (m.m2 / (m.finite - 1) as f64).sqrt()),
            nan: m.nan,
            pos_inf: m.pos_inf,
            neg_inf: m.neg_inf,
            zeros: m.zeros,
            histogram: None,
        }
    }

    /// Whether some value is NaN or infinite.
    pub fn has_nonfinite(&self) -> bool {
        self.nan + self.pos_inf + self.neg_inf > 0
    }

    /// Whether there are values and every one is zero.
    pub fn all_zero(&self) -> bool {
        self.count > 0 && self.zeros == self.count
    }

    /// Whether there are at least two values, all finite and equal (but not all zero:
    /// that is [`TensorStats::all_zero`]), as a LayerNorm weight at initialisation.
    pub fn is_constant(&self) -> bool {
        self.count > 1 && !self.has_nonfinite() && !self.all_zero() && self.min == self.max
    }
}

/// What to compute beyond the basic statistics.
#[derive(Debug, Clone, Default)]
pub struct StatsOptions {
    /// Bins of a histogram per tensor (`1..=MAX_BINS`), or none.
    pub histogram_bins: Option<usize>,
}

/// The statistics of each named tensor, in the order given; `None` for tensors whose dtype
/// has no numeric reading (see [`crate::cast::decodes`]).
///
/// Work is shared among rayon's threads: whole tensors, and pieces of large dense ones, so
/// that one big tensor keeps every core busy. The result does not depend on the number of
/// threads. A histogram takes a second pass over the data (its range is the tensor's
/// extremes). `progress` hears about every byte read (the total counts both passes) and can
/// cancel the work. Errors name the tensor.
///
/// ```
/// use ckpt::model::{ByteOrder, Dtype, Storage, TensorView};
/// use ckpt::stats::{StatsOptions, compute};
///
/// let data: Vec<u8> = [1.0f32, f32::NAN, 3.0, 0.0].iter().flat_map(|x| x.to_le_bytes()).collect();
/// let view = TensorView::contiguous(Dtype::Float32, vec![4], Storage::new(&data, ByteOrder::Little))?;
/// let stats = compute(&[("w".to_string(), &view)], &StatsOptions::default(), &())?;
/// let w = stats[0].as_ref().unwrap();
/// assert_eq!((w.count, w.nan, w.zeros), (4, 1, 1));
/// assert_eq!((w.min, w.max, w.mean, w.std), (Some(0.0), Some(3.0), Some(4.0 / 3.0), Some(1.5275252316519468)));
/// # Ok::<(), ckpt::Error>(())
/// ```
pub fn compute(
    tensors: &[(String, &TensorView<'_>)],
    options: &StatsOptions,
    progress: &dyn Progress,
) -> Result<Vec<Option<TensorStats>>> {
    if let Some(bins) = options.histogram_bins
        && !(1..=MAX_BINS).contains(&bins)
    {
        return Err(Error::invalid(format!(
            "a histogram has 1 to {MAX_BINS} bins, not {bins}"
        )));
    }
    let readable: Vec<bool> = tensors.iter().map(|(_, v)| decodes(v.dtype())).collect();
    let bytes: u64 = tensors
        .iter()
        .zip(&readable)
        .filter(|(_, ok)| **ok)
        .map(|((_, v), _)| v.nbytes() as u64)
        .sum();
    let passes = if options.histogram_bins.is_some() {
        2
    } else {
        1
    };
    progress.start(bytes.saturating_mul(passes));

    let jobs = jobs(tensors, &readable);
    let moments = run(
        tensors,
        &jobs,
        progress,
        |_| Moments::default(),
        Moments::merge,
    )?;
    let mut stats: Vec<Option<TensorStats>> = readable
        .iter()
        .zip(&moments)
        .map(|(&ok, m)| ok.then(|| TensorStats::from_moments(m)))
        .collect();

    if let Some(bins) = options.histogram_bins {
        let ranges: Vec<Option<(f64, f64)>> = stats
            .iter()
            .map(|s| s.as_ref().and_then(|s| Some((s.min?, s.max?))))
            .collect();
        let empty = |i: usize| {
            ranges
                .get(i)
                .copied()
                .flatten()
                .map(|(min, max)| Histogram::new(bins, min, max))
        };
        let jobs: Vec<Job> = jobs
            .into_iter()
            .filter(|job| ranges.get(job.tensor).is_some_and(Option::is_some))
            .collect();
        let histograms = run(tensors, &jobs, progress, empty, |a, b| {
            if let (Some(a), Some(b)) = (a, b) {
                a.merge(b);
            }
        })?;
        for (s, h) in stats.iter_mut().zip(histograms) {
            if let Some(s) = s {
                s.histogram = h;
            }
        }
    }
    Ok(stats)
}

/// A unit of parallel work: a tensor, or a byte range of a dense one.
#[derive(Debug, Clone, Copy)]
struct Job {
    tensor: usize,
    /// A byte range of [`TensorView::data`], or the whole tensor through
    /// [`TensorView::for_each_chunk`].
    range: Option<(usize, usize)>,
}

/// The jobs of the readable tensors, largest pieces first in each tensor's order.
fn jobs(tensors: &[(String, &TensorView<'_>)], readable: &[bool]) -> Vec<Job> {
    let mut jobs = Vec::new();
    for (tensor, ((_, view), &ok)) in tensors.iter().zip(readable).enumerate() {
        if !ok {
            continue;
        }
        let element = view.dtype().byte_size();
        match (view.data(), element) {
            (Some(data), Some(element)) if data.len() > PIECE_LEN && element > 0 => {
                // Pieces hold whole elements: PIECE_LEN is a multiple of every element size.
                let piece = PIECE_LEN - PIECE_LEN % element;
                let mut start = 0;
                while start < data.len() {
                    let end = start.saturating_add(piece).min(data.len());
                    jobs.push(Job {
                        tensor,
                        range: Some((start, end)),
                    });
                    start = end;
                }
            }
            _ => jobs.push(Job {
                tensor,
                range: None,
            }),
        }
    }
    jobs
}

/// Something values are fed to: the moments of a first pass, or the histogram of the
/// second.
trait Sink: Send {
    fn take(&mut self, values: &[f64]);
}

/// Values per block of [`Moments::of_block`]: each of its four lanes then sums 128 terms,
/// whose rounding errors stay within a few ulps; blocks merge in a tree.
const BLOCK: usize = 512;

impl Sink for Cascade {
    fn take(&mut self, values: &[f64]) {
        for block in values.chunks(BLOCK) {
            self.push(Moments::of_block(block));
        }
    }
}

impl Sink for Option<Histogram> {
    fn take(&mut self, values: &[f64]) {
        if let Some(h) = self {
            h.add(values);
        }
    }
}

/// Runs every job in parallel, each with a fresh accumulator `A` (made by `empty` for its
/// tensor), and merges the results of each tensor's jobs in order with `merge`, in a
/// balanced tree. Returns one result per tensor (`empty`'s for tensors without jobs).
fn run<A, F, M>(
    tensors: &[(String, &TensorView<'_>)],
    jobs: &[Job],
    progress: &dyn Progress,
    empty: F,
    merge: M,
) -> Result<Vec<A>>
where
    A: Accumulator,
    F: Fn(usize) -> A + Sync,
    M: Fn(&mut A, &A),
{
    let partials: Vec<A> = jobs
        .par_iter()
        .map(|job| {
            let (name, view) = tensors
                .get(job.tensor)
                .ok_or_else(|| Error::invalid("a statistics job names no tensor"))?;
            let mut acc = empty(job.tensor);
            stream(view, job.range, progress, &mut acc).map_err(|e| e.with_tensor(name.clone()))?;
            Ok(acc)
        })
        .collect::<Result<_>>()?;
    let mut out: Vec<A> = (0..tensors.len()).map(&empty).collect();
    let mut start = 0;
    while let Some(job) = jobs.get(start) {
        let tensor = job.tensor;
        let end = jobs
            .iter()
            .skip(start)
            .position(|j| j.tensor != tensor)
            .map_or(jobs.len(), |n| start + n);
        if let (Some(slot), Some(parts)) = (out.get_mut(tensor), partials.get(start..end)) {
            *slot = tree(parts, &merge).unwrap_or_else(|| empty(tensor));
        }
        start = end;
    }
    Ok(out)
}

/// Merges `parts` in order as the leaves of a balanced binary tree.
fn tree<A: Clone, M: Fn(&mut A, &A)>(parts: &[A], merge: &M) -> Option<A> {
    match parts {
        [] => None,
        [one] => Some(one.clone()),
        _ => {
            let (left, right) = parts.split_at(parts.len() / 2);
            let mut left = tree(left, merge)?;
            if let Some(right) = tree(right, merge) {
                merge(&mut left, &right);
            }
            Some(left)
        }
    }
}

/// A per-job result: what a [`Sink`] turns into once its stream ends.
trait Accumulator: Clone + Send {
    type Sink: Sink;
    fn sink(&mut self) -> Self::Sink;
    fn finish(&mut self, sink: Self::Sink);
}

impl Accumulator for Moments {
    type Sink = Cascade;
    fn sink(&mut self) -> Cascade {
        Cascade::default()
    }
    fn finish(&mut self, sink: Cascade) {
        self.merge(&sink.finish());
    }
}

impl Accumulator for Option<Histogram> {
    type Sink = Option<Histogram>;
    fn sink(&mut self) -> Option<Histogram> {
        self.take()
    }
    fn finish(&mut self, sink: Option<Histogram>) {
        *self = sink;
    }
}

/// Streams a tensor's values (or those of a byte range of its dense data) into `acc`.
fn stream<A: Accumulator>(
    view: &TensorView<'_>,
    range: Option<(usize, usize)>,
    progress: &dyn Progress,
    acc: &mut A,
) -> Result<()> {
    let mut values = Values::new(view)?;
    if let (Some((start, _)), Some(element)) = (range, view.dtype().byte_size())
        && element > 0
    {
        values.index = (start / element) as u64;
    }
    let mut sink = acc.sink();
    {
        let mut feed = |chunk: &[u8]| {
            if progress.is_cancelled() {
                return Err(Error::interrupted());
            }
            values.push(chunk, &mut sink)?;
            progress.advance(chunk.len() as u64);
            Ok(())
        };
        match range {
            Some((start, end)) => {
                let data = view
                    .data()
                    .and_then(|d| d.get(start..end))
                    .ok_or_else(|| Error::invalid("a statistics piece lies outside its tensor"))?;
                for chunk in data.chunks(1 << 20) {
                    feed(chunk)?;
                }
            }
            None => view.for_each_chunk(&mut feed)?,
        }
    }
    values.decoder.finish()?;
    acc.finish(sink);
    Ok(())
}

/// How decoded numbers become the values of the statistics.
#[derive(Debug)]
enum Transform {
    /// As decoded.
    Plain,
    /// Complex (re, im) pairs to magnitudes.
    Magnitude,
    /// Quantized integers to `(q - zero_point) * scale`, for `channels` channels of
    /// `inner` consecutive elements each (one channel for per-tensor schemes).
    Dequantize {
        scales: Vec<f64>,
        zero_points: Vec<f64>,
        inner: u64,
    },
}

/// The decoding of one stream: a [`Decoder`], a [`Transform`] and the element index.
struct Values {
    decoder: Decoder,
    transform: Transform,
    /// The index of the next element in the whole tensor (for per-channel scales).
    index: u64,
    scratch: Vec<f64>,
}

impl Values {
    fn new(view: &TensorView<'_>) -> Result<Values> {
        let decoder = Decoder::new(view.dtype())?;
        let transform = match (view.dtype().class(), view.quantization()) {
            (DtypeClass::Complex, _) => Transform::Magnitude,
            (DtypeClass::Quantized, Some(Quantization::PerTensor { scale, zero_point })) => {
                #[allow(clippy::cast_precision_loss)] // zero points are small integers
                let zero_point = *zero_point as f64;
                Transform::Dequantize {
                    scales: vec![*scale],
                    zero_points: vec![zero_point],
                    inner: u64::MAX,
                }
            }
            (
                DtypeClass::Quantized,
                Some(Quantization::PerChannel {
                    scales,
                    zero_points,
                    axis,
                    ..
                }),
            ) => {
                let shape = view.shape();
                let channels = shape.get(*axis).copied();
                if channels != Some(scales.len()) || channels != Some(zero_points.len()) {
                    return Err(Error::malformed(format!(
                        "a per-channel quantized tensor of shape {shape:?} has {} scales and {} \
                         zero points along axis {axis}",
                        scales.len(),
                        zero_points.len()
                    )));
                }
                let inner = shape
                    .iter()
                    .skip(axis.saturating_add(1))
                    .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
                    .ok_or_else(|| Error::malformed("quantized tensor too large"))?;
                Transform::Dequantize {
                    scales: scales.clone(),
                    zero_points: zero_points.clone(),
                    inner: inner.max(1),
                }
            }
            _ => Transform::Plain,
        };
        Ok(Values {
            decoder,
            transform,
            index: 0,
            scratch: Vec::new(),
        })
    }

    fn push(&mut self, chunk: &[u8], sink: &mut impl Sink) -> Result<()> {
        let Values {
            decoder,
            transform,
            index,
            scratch,
        } = self;
        decoder.push(chunk, |decoded| match transform {
            Transform::Plain => sink.take(decoded),
            Transform::Magnitude => {
                scratch.clear();
                scratch.extend(decoded.chunks_exact(2).map(|pair| match pair {
                    [re, im] if re.is_nan() || im.is_nan() => f64::NAN,
                    [re, im] => re.hypot(*im),
                    _ => f64::NAN,
                }));
                sink.take(scratch);
            }
            Transform::Dequantize {
                scales,
                zero_points,
                inner,
            } => {
                let channels = scales.len().max(1) as u64;
                scratch.clear();
                scratch.extend(decoded.iter().enumerate().map(|(i, &q)| {
                    let channel = ((*index + i as u64) / *inner) % channels;
                    let c = usize::try_from(channel).unwrap_or(usize::MAX);
                    match (scales.get(c), zero_points.get(c)) {
                        (Some(scale), Some(zero)) => (q - zero) * scale,
                        _ => f64::NAN,
                    }
                }));
                *index += decoded.len() as u64;
                sink.take(scratch);
            }
        })
    }
}

#[cfg(test)]
mod tests;
