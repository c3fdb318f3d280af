//! `ckpt stats`: min, max, mean, std and counts of NaN, infinities and zeros per tensor.

use ckpt::Access;
use ckpt::model::DtypeClass;
use ckpt::stats::{StatsOptions, TensorStats};
use serde::Serialize;
use serde_json::Value;

use crate::args::{FlagZero, StatsArgs};
use crate::exit::Outcome;
use crate::output;
use crate::term::Progress;

/// Everything `stats` reports, as printed by `--json`.
#[derive(Debug, Serialize)]
pub(crate) struct StatsReport {
    pub(crate) path: String,
    pub(crate) format: &'static str,
    pub(crate) tensors: Vec<StatsRow>,
    pub(crate) summary: Summary,
}

/// One tensor. Numbers that are not finite are the strings `"inf"`, `"-inf"`; numbers
/// there are none of are `null` (`min` of a tensor without finite values, `std` of fewer
/// than two).
#[derive(Debug, Serialize)]
pub(crate) struct StatsRow {
    pub(crate) name: String,
    pub(crate) dtype: &'static str,
    pub(crate) shape: Vec<usize>,
    /// Whether the dtype has numbers to compute with (not `bits8`...); when false, every
    /// statistic is null.
    pub(crate) computed: bool,
    pub(crate) count: u64,
    pub(crate) min: Value,
    pub(crate) max: Value,
    pub(crate) mean: Value,
    pub(crate) std: Value,
    pub(crate) nan: u64,
    pub(crate) pos_inf: u64,
    pub(crate) neg_inf: u64,
    pub(crate) zeros: u64,
    /// `nan`, `inf` (either sign), `all-zero`: the flags that make the exit code 1;
    /// `constant` (every value finite and equal, not zero) is only noted.
    pub(crate) flags: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) histogram: Option<HistogramRow>,
}

/// A tensor's histogram: `counts[i]` finite values in `[edges[i], edges[i + 1])` (the last
/// bin includes its right edge).
#[derive(Debug, Serialize)]
pub(crate) struct HistogramRow {
    pub(crate) edges: Vec<Value>,
    pub(crate) counts: Vec<u64>,
}

/// Counts over all tensors.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Summary {
    pub(crate) tensors: usize,
    /// Tensors with statistics (the others have a dtype without numbers).
    pub(crate) computed: usize,
    pub(crate) values: u64,
    /// Tensors with a flag that fails the run (NaN, inf, all zero).
    pub(crate) flagged: usize,
    /// Tensors with NaN or infinite values.
    pub(crate) nonfinite: usize,
    /// All-zero tensors that are flagged (see --flag-zero).
    pub(crate) all_zero: usize,
    /// All-zero tensors that are noted, not flagged (integer counters by default).
    pub(crate) zero_noted: usize,
    pub(crate) constant: usize,
    /// Tensors left out by --include/--exclude.
    pub(crate) excluded: usize,
}

pub(crate) fn run(args: &StatsArgs, limits: &ckpt::Limits) -> anyhow::Result<Outcome> {
    let map = super::name_filter(&args.include, &args.exclude)?;
    if let [file] = args.files.as_slice() {
        let report = one(file, args, &map, limits)?;
        print(&report, args.json)?;
        return Ok(outcome(&[report], false));
    }
    // Several files: each in turn (a JSON array of reports), an unreadable one reported
    // and skipped. Exit 1 when a tensor is flagged, else 2 when a file could not be read.
    let (reports, failed) = super::each_file(
        &args.files,
        args.json,
        |file| one(file, args, &map, limits).map(Some),
        output::stats::render,
    )?;
    Ok(outcome(&reports, failed))
}

/// Exit 1 when a tensor is flagged, else 2 when a file could not be read, else 0 (the rule
/// of `scan` and `verify`: what was found outranks what could not be read).
fn outcome(reports: &[StatsReport], failed: bool) -> Outcome {
    if reports.iter().any(|r| r.summary.flagged > 0) {
        Outcome::Found
    } else if failed {
        Outcome::Failed
    } else {
        Outcome::Success
    }
}

fn print(report: &StatsReport, json: bool) -> anyhow::Result<()> {
    if json {
        output::json(report)?;
    } else {
        output::stats::render(report)?;
    }
    Ok(())
}

/// The statistics of one checkpoint.
fn one(
    file: &std::path::Path,
    args: &StatsArgs,
    map: &ckpt::KeyMap,
    limits: &ckpt::Limits,
) -> anyhow::Result<StatsReport> {
    let source = super::open(file, limits)?;
    source.advise(Access::Sequential);
    let checkpoint = source.checkpoint()?;
    let all = checkpoint.tensors();
    let total = all.len();
    let tensors: Vec<_> = all
        .into_iter()
        .filter(|(name, _)| map.keeps(name))
        .collect();
    let bins = (args.histogram || args.bins.is_some())
        .then(|| args.bins.map_or(DEFAULT_BINS, usize::from));
    let options = StatsOptions {
        histogram_bins: bins,
    };
    let stats = {
        let progress = Progress::new("stats");
        ckpt::stats::compute(&tensors, &options, &progress)
            .map_err(|e| e.with_path(source.path()))?
    };
    let mut summary = Summary {
        tensors: tensors.len(),
        excluded: total - tensors.len(),
        ..Summary::default()
    };
    let rows: Vec<StatsRow> = tensors
        .iter()
        .zip(&stats)
        .map(|((name, view), stats)| row(name, view, stats.as_ref(), args.flag_zero, &mut summary))
        .collect();
    Ok(StatsReport {
        path: source.path().display().to_string(),
        format: checkpoint.format().name(),
        tensors: rows,
        summary,
    })
}

/// Bins of `--histogram` without `--bins`.
pub(crate) const DEFAULT_BINS: usize = 16;

/// Whether an all-zero tensor of `view`'s dtype is flagged under `policy`.
fn zero_flagged(view: &ckpt::TensorView<'_>, policy: FlagZero) -> bool {
    match policy {
        FlagZero::Any => true,
        FlagZero::None => false,
        FlagZero::Float => matches!(
            view.dtype().class(),
            DtypeClass::Float | DtypeClass::Complex | DtypeClass::Quantized
        ),
    }
}

fn row(
    name: &str,
    view: &ckpt::TensorView<'_>,
    stats: Option<&TensorStats>,
    policy: FlagZero,
    summary: &mut Summary,
) -> StatsRow {
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
        if s.all_zero() && zero_flagged(view, policy) {
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
    let number =
        |pick: fn(&TensorStats) -> Option<f64>| stats.and_then(pick).map_or(Value::Null, float);
    StatsRow {
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
            .map(|h| HistogramRow {
                edges: h.edges().into_iter().map(float).collect(),
                counts: h.counts.clone(),
            }),
    }
}

/// A number as JSON: finite ones as numbers, the others as `"inf"`, `"-inf"`, `"nan"`.
fn float(x: f64) -> Value {
    if x.is_nan() {
        "nan".into()
    } else if x.is_infinite() {
        if x > 0.0 { "inf" } else { "-inf" }.into()
    } else {
        x.into()
    }
}
