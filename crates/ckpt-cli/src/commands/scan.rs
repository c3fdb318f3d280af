//! `ckpt scan`: whether loading files with Python would run code; nothing is run.

use ckpt::scan::{ScanOptions, scan_paths};

use crate::args::{FailOn, ScanArgs};
use crate::exit::Outcome;
use crate::output;

pub(crate) fn run(args: &ScanArgs, limits: &ckpt::Limits) -> anyhow::Result<Outcome> {
    let options = ScanOptions::default()
        .with_allow(args.allow.iter().cloned())
        .with_limits(limits.clone());
    let (paths, spool) = super::with_stdin(&args.paths)?;
    let mut scan = scan_paths(&paths, &options);
    for report in &mut scan.files {
        if let Some(spool) = &spool
            && report.path == spool.path()
        {
            report.path = "-".into();
        }
    }
    let summary = &scan.summary;
    let failing = match args.fail_on {
        FailOn::Unsafe => summary.unsafe_ + summary.dangerous,
        FailOn::Dangerous => summary.dangerous,
    };
    let outcome = if failing > 0 {
        Outcome::Found
    } else if summary.errors > 0 || scan.files.iter().any(|r| !r.errors.is_empty()) {
        Outcome::Failed
    } else {
        Outcome::Success
    };
    if args.json {
        output::json(&scan)?;
    } else if args.sarif {
        output::json(&output::scan::sarif(&scan))?;
    } else {
        output::scan::render(&scan)?;
    }
    Ok(outcome)
}

#[cfg(test)]
pub(crate) mod tests {
    use ckpt::scan::{Scan, ScanOptions, scan_bytes};

    /// A scan of one file with one dangerous finding and a hostile name, for rendering
    /// tests.
    pub(crate) fn sample() -> Scan {
        let bytes = include_bytes!("../../../../tests/fixtures/attack/torch/os_system_reduce.pt");
        Scan::new(vec![scan_bytes(
            bytes,
            "evil\u{1b}[31m.pt",
            &ScanOptions::default(),
        )])
    }
}
