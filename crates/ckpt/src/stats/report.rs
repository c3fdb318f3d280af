//! What `ckpt stats --json` prints and the Python package returns ([`Report`]): per tensor
//! its statistics and the flags that make them suspicious, built from [`compute`].

use serde::Serialize;
use serde_json::Value;

use super::{StatsOptions, TensorStats, compute};
use crate::convert::KeyMap;
use crate::error::Result;
use crate::model::{Checkpoint, DtypeClass, TensorView};
use crate::progress::Progress;
use crate::source::{Access, Source};

/// Which all-zero tensors are flagged (an all-zero weight is suspicious; an all-zero
/// integer counter usually is not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ZeroPolicy {
    /// Floating, complex and quantized tensors.
    #[default]
    Float,
    /// Every tensor, integer and bool ones too.
    Any,
    /// None.
    None,
}

impl ZeroPolicy {
    /// Whether an all-zero tensor of `view`'s dtype is flagged.
    fn flags(self, view: &TensorView<'_>) -> bool {
        match self {
            ZeroPolicy::Any => true,
            ZeroPolicy::None => false,
            ZeroPolicy::Float => matches!(
                view.dtype().class(),
                DtypeClass::Float | DtypeClass::Complex | DtypeClass::Quantized
            ),
        }
    }
}

/// The statistics of one checkpoint's tensors.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The checkpoint's path.
    pub path: String,
    /// Its container's format.
    pub format: &'static str,
    /// The tensors kept by the key map's filters, in the checkpoint's order.
    pub tensors: Vec<TensorReport>,
    /// Counts over the tensors.
    pub summary: Summary,
}

/// One tensor. Numbers that are not finite are the strings `"inf"`, `"-inf"`; numbers
/// there are none of are `null` (`min` of a tensor without finite values, `std` of fewer
/// than two).
#[derive(Debug, Clone, Serialize)]
pub struct TensorReport {
    /// Its name.
    pub name: String,
    /// Its dtype.
    pub dtype: &'static str,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Whether the dtype has numbers to compute with (not `bits8`...); when false, every
    /// statistic is null.
    pub computed: bool,
    /// How many values it holds.
    pub count: u64,
    /// The smallest finite value.
    pub min: Value,
    /// The largest finite value.
    pub max: Value,
    /// The mean of the finite values.
    pub mean: Value,
    /// Their standard deviation (torch's, with Bessel's correction).
    pub std: Value,
    /// How many values are NaN.
    pub nan: u64,
    /// How many are +inf.
    pub pos_inf: u64,
    /// How many are -inf.
    pub neg_inf: u64,
    /// How many are zero.
    pub zeros: u64,
    /// `nan`, `inf` (either sign), `all-zero`: the flags that make a run fail;
    /// `constant` (every value finite and equal, not zero) is only noted, as is an all-zero
    /// tensor the [`ZeroPolicy`] does not flag.
    pub flags: Vec<&'static str>,
    /// Its histogram, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub histogram: Option<HistogramReport>,
}

/// A tensor's histogram: `counts[i]` finite values in `[edges[i], edges[i + 1])` (the last
/// bin includes its right edge).
#[derive(Debug, Clone, Serialize)]
pub struct HistogramReport {
    /// The bins' edges, one more than the bins.
    pub edges: Vec<Value>,
    /// The values in each bin.
    pub counts: Vec<u64>,
}

/// Counts over all tensors.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Tensors reported.
    pub tensors: usize,
    /// Tensors with statistics (the others have a dtype without numbers).
    pub computed: usize,
    /// Values over all tensors.
    pub values: u64,
    /// Tensors with a flag that fails the run (NaN, inf, all zero).
    pub flagged: usize,
    /// Tensors with NaN or infinite values.
    pub nonfinite: usize,
    /// All-zero tensors that are flagged (see [`ZeroPolicy`]).
    pub all_zero: usize,
    /// All-zero tensors that are noted, not flagged (integer counters by default).
    pub zero_noted: usize,
    /// Tensors whose values are all equal (and not zero).
    pub constant: usize,
    /// Tensors left out by the key map's filters.
    pub excluded: usize,
}

/// The statistics of the tensors of `checkpoint` (read from `source`) that `keys` keeps,
/// with the flags of `zero`, computed on all cores as [`compute`] does.
pub fn report(
    source: &Source,
    checkpoint: &Checkpoint<'_>,
    keys: &KeyMap,
    options: &StatsOptions,
    zero: ZeroPolicy,
    progress: &dyn Progress,
) -> Result<Report> {
    source.advise(Access::Sequential);
    let all = checkpoint.tensors();
    let total = all.len();
    let tensors: Vec<_> = all
        .into_iter()
        .filter(|(name, _)| keys.keeps(name))
        .collect();
    let stats = compute(&tensors, options, progress).map_err(|e| e.with_path(source.path()))?;
    let mut summary = Summary {
        tensors: tensors.len(),
        excluded: total - tensors.len(),
        ..Summary::default()
    };
    let rows = tensors
        .iter()
        .zip(&stats)
        .map(|((name, view), stats)| row(name, view, stats.as_ref(), zero, &mut summary))
        .collect();
    Ok(Report {
        path: source.path().display().to_string(),
        format: checkpoint.format().name(),
        tensors: rows,
        summary,
    })
}

fn row(
    name: &str,
    view: &TensorView<'_>,
    stats: Option<&TensorStats>,
    zero: ZeroPolicy,
    summary: &mut Summary,
) -> TensorReport {
    let mut flags = Vec::new();
    let mut noted = Vec::new();
    if let Some(s) = stats {
        summary.computed += 1;
        summary.values += s.count;
        if s.nan > 0 {
            flags.push("nan");
        }
        if s.pos_inf + s.neg_inf > 0 {
            flags.push("inf");
        }
        if s.all_zero() && zero.flags(view) {
            flags.push("all-zero");
            summary.all_zero += 1;
        } else if s.all_zero() {
            noted.push("all-zero");
            summary.zero_noted += 1;
        }
        if s.has_nonfinite() {
            summary.nonfinite += 1;
        }
        if !flags.is_empty() {
            summary.flagged += 1;
        }
        if s.is_constant() {
            flags.push("constant");
            summary.constant += 1;
        }
        flags.extend(noted);
    }
    let float = crate::inspect::json_float;
    let number =
        |pick: fn(&TensorStats) -> Option<f64>| stats.and_then(pick).map_or(Value::Null, float);
    TensorReport {
        name: name.to_owned(),
        dtype: view.dtype().name(),
        shape: view.shape().to_vec(),
        computed: stats.is_some(),
        count: stats.map_or(0, |s| s.count),
        min: number(|s| s.min),
        max: number(|s| s.max),
        mean: number(|s| s.mean),
        std: number(|s| s.std),
        nan: stats.map_or(0, |s| s.nan),
        pos_inf: stats.map_or(0, |s| s.pos_inf),
        neg_inf: stats.map_or(0, |s| s.neg_inf),
        zeros: stats.map_or(0, |s| s.zeros),
        flags,
        histogram: stats
            .and_then(|s| s.histogram.as_ref())
            .map(|h| HistogramReport {
                edges: h.edges().into_iter().map(float).collect(),
                counts: h.counts.clone(),
            }),
    }
}
