//! The terminal: escaping untrusted text, progress bars, Ctrl-C.

use std::io::IsTerminal;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

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
            enabled: std::io::stderr().is_terminal(),
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
