//! `ckpt diff`: compare two checkpoints.

use ckpt::KeyMap;
use ckpt::diff::{DiffOptions, Operand, Tolerance};

use super::add_rules;
use crate::args::DiffArgs;
use crate::exit::{Outcome, flag};
use crate::output;
use crate::term::Progress;

pub(crate) fn run(args: &DiffArgs, limits: &ckpt::Limits) -> anyhow::Result<Outcome> {
    let tolerance = if args.atol.is_some() || args.rtol.is_some() {
        // With the default rtol, only atol can be wrong; then only rtol.
        Tolerance::allclose(args.atol, None).map_err(flag("--atol"))?;
        Tolerance::allclose(args.atol, args.rtol).map_err(flag("--rtol"))?
    } else {
        Tolerance::Exact
    };
    let options = DiffOptions {
        tolerance,
        keys_a: key_map(
            args,
            ("--strip-prefix-a", &args.strip_prefix_a),
            ("--rename-a", &args.rename_a),
        )?,
        keys_b: key_map(
            args,
            ("--strip-prefix-b", &args.strip_prefix_b),
            ("--rename-b", &args.rename_b),
        )?,
        // --include and --exclude, on the names after renaming.
        filter: super::name_filter(&args.include, &args.exclude)?,
        ignore_dtype: args.ignore_dtype,
    };
    let source_a = super::open(&args.a, limits)?;
    let source_b = super::open(&args.b, limits)?;
    let progress = Progress::new("comparing");
    let report = ckpt::diff::compare_sources(
        Operand {
            source: &source_a,
            key: args.key_a.as_deref().or(args.key.as_deref()),
        },
        Operand {
            source: &source_b,
            key: args.key_b.as_deref().or(args.key.as_deref()),
        },
        &options,
        &progress,
    )?;
    drop(progress);
    if args.json {
        output::json(&report)?;
    } else {
        output::diff::render(&report)?;
    }
    Ok(if report.equal {
        Outcome::Success
    } else {
        Outcome::Found
    })
}

/// Both sides' options first, then one side's (each with its flag's name).
fn key_map(
    args: &DiffArgs,
    (strip_flag, strip): (&'static str, &[String]),
    (rename_flag, rename): (&'static str, &[String]),
) -> anyhow::Result<KeyMap> {
    let map = KeyMap::new();
    let map = add_rules(
        map,
        "--strip-prefix",
        &args.strip_prefix,
        KeyMap::strip_prefix,
    )?;
    let map = add_rules(map, strip_flag, strip, KeyMap::strip_prefix)?;
    let map = add_rules(map, "--rename", &args.rename, KeyMap::rename)?;
    add_rules(map, rename_flag, rename, KeyMap::rename)
}
