//! `ckpt inspect`: what is in a checkpoint, and how to load it.

use ckpt::inspect::{InspectOptions, Inspection, inspect};
use ckpt::{Access, Source};

use crate::args::InspectArgs;
use crate::exit::Outcome;
use crate::output;
use crate::term::Progress;

pub(crate) fn run(args: &InspectArgs, limits: &ckpt::Limits) -> anyhow::Result<Outcome> {
    if let [file] = args.files.as_slice() {
        if let Some(report) = one(file, args, limits)? {
            print(&report, args.json)?;
        }
        return Ok(Outcome::Success);
    }
    // Several files: each in turn (a JSON array of reports), an unreadable one reported
    // and skipped; exit 2 at the end if one was.
    let (_, failed) = super::each_file(
        &args.files,
        args.json,
        |file| one(file, args, limits),
        output::inspect::render,
    )?;
    Ok(if failed {
        Outcome::Failed
    } else {
        Outcome::Success
    })
}

fn print(report: &Inspection, json: bool) -> anyhow::Result<()> {
    if json {
        output::json(report)?;
    } else {
        output::inspect::render(report)?;
    }
    Ok(())
}

/// The report on one file; `None` when `--pickle` printed its listing instead.
fn one(
    file: &std::path::Path,
    args: &InspectArgs,
    limits: &ckpt::Limits,
) -> anyhow::Result<Option<Inspection>> {
    let source = super::open(file, limits)?;
    source.advise(if args.hash {
        Access::Sequential
    } else {
        Access::Sparse
    });
    // A multi-file checkpoint: the pickle of its main file (a DCP `.metadata`).
    let source = match source.files().first() {
        Some(main) if args.pickle && source.is_multi_file() => Source::open_file(main)?,
        _ => source,
    };
    if args.pickle {
        let pickles =
            ckpt::torch::pickles(source.bytes()).map_err(|e| e.with_path(source.path()))?;
        if args.files.len() > 1 {
            output::heading(&source.path().display().to_string())?;
        }
        output::inspect::listing(&pickles)?;
        return Ok(None);
    }
    let checkpoint = source.checkpoint()?;
    let options = InspectOptions::default().with_hashes(args.hash);
    let inspection = if args.hash {
        inspect(&source, &checkpoint, &options, &Progress::new("hashing"))?
    } else {
        inspect(&source, &checkpoint, &options, &())?
    };
    Ok(Some(inspection))
}
