//! The terminal: escaping untrusted text, progress bars, Ctrl-C.

use std::io::IsTerminal;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Whether colours go to stdout and to stderr (see [`configure`]).
static COLOR_STDOUT: AtomicBool = AtomicBool::new(false);
static COLOR_STDERR: AtomicBool = AtomicBool::new(false);
/// `-q`: no progress bars, notes or warnings; `-v`: long lists in full.
static QUIET: AtomicBool = AtomicBool::new(false);
static VERBOSE: AtomicBool = AtomicBool::new(false);

/// When to colour the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ColorChoice {
    /// On a terminal, unless `NO_COLOR` is set (to anything but the empty string).
    Auto,
    /// Always, even into a pipe or a file.
    Always,
    /// Never.
    Never,
}

/// Sets how the process writes to the terminal, from the global options.
pub(crate) fn configure(color: ColorChoice, quiet: bool, verbose: bool) {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let (stdout, stderr) = match color {
        ColorChoice::Always => (true, true),
        ColorChoice::Never => (false, false),
        ColorChoice::Auto if no_color => (false, false),
        ColorChoice::Auto => (
            std::io::stdout().is_terminal(),
            std::io::stderr().is_terminal(),
        ),
    };
    COLOR_STDOUT.store(stdout, Ordering::Relaxed);
    COLOR_STDERR.store(stderr, Ordering::Relaxed);
    QUIET.store(quiet, Ordering::Relaxed);
    VERBOSE.store(verbose, Ordering::Relaxed);
}

/// `-q`: only errors and the reports asked for.
pub(crate) fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// `-v`: lists in full where the text output shortens them.
pub(crate) fn verbose() -> bool {
    VERBOSE.load(Ordering::Relaxed)
}

/// A colour for a word of the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Paint {
    /// Good news: safe, sound, equal.
    Good,
    /// Worth a look: unsafe, warnings, problems.
    Warn,
    /// Bad news: dangerous, errors, flagged tensors.
    Bad,
    /// Notes and hints.
    Note,
}

/// `text` in `paint`'s colour when the stream it goes to is coloured (`stderr` or not).
pub(crate) fn paint(text: &str, paint: Paint, stderr: bool) -> String {
    let on = if stderr {
        COLOR_STDERR.load(Ordering::Relaxed)
    } else {
        COLOR_STDOUT.load(Ordering::Relaxed)
    };
    if !on {
        return text.to_owned();
    }
    let code = match paint {
        Paint::Good => "1;32",
        Paint::Warn => "1;33",
        Paint::Bad => "1;31",
        Paint::Note => "1;36",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

/// Set by the first Ctrl-C; long work checks it and stops cleanly.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Makes Ctrl-C ask running work to stop (it then removes its partial output and exits
/// with 130). A second Ctrl-C exits at once. Installed by the first long operation, so
/// quick commands do not start the handler's thread.
fn install_interrupt_handler() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let _ = ctrlc::set_handler(|| {
            if INTERRUPTED.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
        });
    });
}

/// Escapes what a terminal would interpret or hide in text that comes from a file
/// (tensor names, metadata, paths): control characters (escape sequences), bidirectional
/// overrides and zero-width characters are shown as `\u{..}`.
pub(crate) fn sanitize(text: &str) -> String {
    if !text.chars().any(needs_escape) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if needs_escape(c) {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{200b}'..='\u{200f}'   // zero-width space/joiners, LRM, RLM
            | '\u{202a}'..='\u{202e}' // bidi embeddings and overrides
            | '\u{2060}'..='\u{2069}' // word joiner, invisible operators, bidi isolates
            | '\u{061c}'              // Arabic letter mark
            | '\u{feff}'              // zero-width no-break space
            | '\u{e0000}'..='\u{e007f}' // tag characters
        )
}

/// A progress bar on stderr for long work: drawn only on a terminal, and only once the
/// work has taken more than a second. It also carries Ctrl-C to the library.
pub(crate) struct Progress {
    bar: ProgressBar,
    started: Instant,
    shown: OnceLock<()>,
    enabled: bool,
}

impl Progress {
    /// A bar whose message says what is being done (`"hashing"`, `"writing"`).
    pub(crate) fn new(message: &'static str) -> Progress {
        install_interrupt_handler();
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
        bar.set_style(
            ProgressStyle::with_template(
                "{msg:>8} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_message(message);
        Progress {
            bar,
            started: Instant::now(),
            shown: OnceLock::new(),
            enabled: std::io::stderr().is_terminal() && !quiet(),
        }
    }
}

impl ckpt::Progress for Progress {
    fn start(&self, total: u64) {
        self.bar.set_length(total);
    }

    fn advance(&self, bytes: u64) {
        self.bar.inc(bytes);
        if self.enabled && self.started.elapsed() > Duration::from_secs(1) {
            self.shown.get_or_init(|| {
                self.bar.set_draw_target(ProgressDrawTarget::stderr());
            });
        }
    }

    fn is_cancelled(&self) -> bool {
        INTERRUPTED.load(Ordering::Relaxed)
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_escapes_what_terminals_interpret() {
        assert_eq!(sanitize("model.layers.0.weight"), "model.layers.0.weight");
        assert_eq!(sanitize("héllo wörld ✓"), "héllo wörld ✓");
        assert_eq!(sanitize("\u{1b}[31mred"), "\\u{1b}[31mred");
        assert_eq!(sanitize("a\nb\tc"), "a\\u{a}b\\u{9}c");
        assert_eq!(sanitize("abc\u{202e}fed"), "abc\\u{202e}fed");
        assert_eq!(sanitize("x\u{200b}y"), "x\\u{200b}y");
        assert_eq!(sanitize("\u{85}"), "\\u{85}");
    }
}
