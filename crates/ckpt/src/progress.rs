//! Reporting progress of long work, and cancelling it.

/// An observer of long work (writing a file, hashing tensors), counted in bytes.
///
/// The library calls it from worker threads, so it must be `Sync`. A front end draws a
/// progress bar from it, and asks the work to stop (Ctrl-C) through [`Progress::is_cancelled`]:
/// the work then ends with an [`ErrorKind::Interrupted`](crate::ErrorKind::Interrupted)
/// error and leaves nothing behind.
pub trait Progress: Sync {
    /// Work of `total` bytes begins.
    fn start(&self, total: u64) {
        let _ = total;
    }

    /// `bytes` more bytes are done.
    fn advance(&self, bytes: u64) {
        let _ = bytes;
    }

    /// Whether the work should stop as soon as it can.
    fn is_cancelled(&self) -> bool {
        false
    }
}

/// No progress reporting, no cancellation.
impl Progress for () {}
