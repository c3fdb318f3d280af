//! `ckpt stats`: min, max, mean, std and counts of NaN, infinities and zeros per tensor.

use ckpt::stats::{Report, StatsOptions, ZeroPolicy};

use crate::args::{FlagZero, StatsArgs};
use crate::exit::Outcome;
use crate::output;
use crate::term::Progress;

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
fn outcome(reports: &[Report], failed: bool) -> Outcome {
    if reports.iter().any(|r| r.summary.flagged > 0) {
        Outcome::Found
    } else if failed {
        Outcome::Failed
    } else {
        Outcome::Success
    }
}

fn print(report: &Report, json: bool) -> anyhow::Result<()> {
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
) -> anyhow::Result<Report> {
    let source = super::open(file, limits)?;
    let checkpoint = source.checkpoint()?;
    let bins = (args.histogram || args.bins.is_some())
        .then(|| args.bins.map_or(DEFAULT_BINS, usize::from));
    let options = StatsOptions {
        histogram_bins: bins,
    };
    let zero = match args.flag_zero {
        FlagZero::Float => ZeroPolicy::Float,
        FlagZero::Any => ZeroPolicy::Any,
        FlagZero::None => ZeroPolicy::None,
    };
    let progress = Progress::new("stats");
    Ok(ckpt::stats::report(
        &source,
        &checkpoint,
        map,
        &options,
        zero,
        &progress,
    )?)
}

/// Bins of `--histogram` without `--bins`.
pub(crate) const DEFAULT_BINS: usize = 16;
