//! `ckpt limits`: the limits that protect ckpt from hostile files, and `--limit`.

use anyhow::Context;
use ckpt::Limits;
use serde::Serialize;

use crate::args::LimitsArgs;
use crate::exit::Outcome;
use crate::output;

/// The limits the user's `--limit NAME=VALUE` options make (the defaults otherwise).
pub(crate) fn from_args(options: &[String]) -> anyhow::Result<Limits> {
    let mut limits = Limits::default();
    for option in options {
        let (name, value) = option.split_once('=').with_context(|| {
            format!("`--limit {option}`: expected NAME=VALUE, such as depth=1000")
        })?;
        limits
            .set(name.trim(), value.trim())
            .with_context(|| format!("`--limit {option}`"))?;
    }
    Ok(limits)
}

/// One limit, as `ckpt limits` lists it.
#[derive(Debug, Serialize)]
pub(crate) struct LimitRow {
    pub(crate) name: &'static str,
    pub(crate) value: u64,
    pub(crate) default: u64,
    pub(crate) bounds: &'static str,
}

pub(crate) fn run(args: &LimitsArgs, limits: &Limits) -> anyhow::Result<Outcome> {
    let defaults = Limits::default();
    let rows: Vec<LimitRow> = ckpt::limits::NAMES
        .iter()
        .map(|&(name, bounds)| LimitRow {
            name,
            value: limits.get(name).unwrap_or_default(),
            default: defaults.get(name).unwrap_or_default(),
            bounds,
        })
        .collect();
    if args.json {
        output::json(&rows)?;
    } else {
        output::limits::print(&rows)?;
    }
    Ok(Outcome::Success)
}
