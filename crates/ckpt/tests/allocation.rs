//! A small file cannot make ckpt allocate much: reading any input of at most 1 KiB
//! (detection, the reader, hashing every tensor, the scanner, verify) never has more than
//! [`BUDGET`] bytes allocated at once, however large the sizes, lengths and counts it
//! declares, beyond what the `inflated-len` limit lets a compressed stream inflate to (a few
//! hundred bytes of bzip2 hold hundreds of MiB of zeros: that bound is the limit's, and the
//! inputs here are read with it at 1 MiB).
//!
//! A binary of its own, because it counts every allocation of the process through a
//! global allocator; its tests run one at a time (a lock), so that each sees only its own.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use ckpt::scan::{ScanOptions, scan_bytes};

/// "A few MB": what reading a 1 KiB file may hold at once, buffers of 1 MiB chunks
/// included, and a bzip2 decoder's tables (3.6 MB for 900 KB blocks, as Python's take).
const BUDGET: usize = 8 << 20;

/// The system allocator, counting the bytes live now and the most live since the last
/// [`reset`].
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator with the caller's arguments;
// the counters only observe sizes.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
        // SAFETY: forwarded as is (see the impl).
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded as is (see the impl).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size >= layout.size() {
            let grown = new_size - layout.size();
            let live = LIVE.fetch_add(grown, Ordering::Relaxed) + grown;
            PEAK.fetch_max(live, Ordering::Relaxed);
        } else {
            LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
        }
        // SAFETY: forwarded as is (see the impl).
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The most bytes `work` had allocated at once, beyond what was live when it started.
fn peak_of(work: impl FnOnce()) -> usize {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    work();
    PEAK.load(Ordering::Relaxed).saturating_sub(base)
}

/// Everything ckpt does with a file's bytes that a stranger's file can steer.
fn exercise(bytes: &[u8], name: &str) {
    let mut limits = ckpt::Limits::default();
    limits.set("inflated-len", "1MiB").unwrap();
    if let Ok(checkpoint) = ckpt::read_with(bytes, &limits) {
        for (_, view) in checkpoint.tensors() {
            let _ = view.sha256();
        }
        let options = ckpt::stats::StatsOptions {
            histogram_bins: Some(16),
        };
        let _ = ckpt::stats::compute(&checkpoint.tensors(), &options, &());
    }
    let _ = scan_bytes(
        bytes,
        name,
        &ScanOptions::default().with_limits(limits.clone()),
    );
    let _ = ckpt::verify::verify_bytes_with(bytes, &limits);
}

fn assert_small(bytes: &[u8], what: &str) {
    let name = if what.ends_with(".safetensors") {
        "x.safetensors"
    } else {
        "x.pt"
    };
    let peak = peak_of(|| exercise(bytes, name));
    assert!(
        peak <= BUDGET,
        "{what} ({} bytes) made ckpt allocate {peak} bytes at once",
        bytes.len()
    );
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn files_under(folder: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(folder).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, out);
        } else if !matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("json" | "md" | "py" | "txt")
        ) {
            out.push(path);
        }
    }
}

/// Every committed hostile, broken or fuzz-found file of at most 1 KiB, and the first
/// KiB of every other fixture, cut at every 13th length.
#[test]
fn small_files_allocate_little() {
    let _guard = ONE_AT_A_TIME.lock().unwrap();
    let mut files = Vec::new();
    files_under(&fixtures(), &mut files);
    files.sort();
    let mut small = 0;
    for path in &files {
        let bytes = std::fs::read(path).unwrap();
        let what = path.display().to_string();
        if bytes.len() <= 1024 {
            assert_small(&bytes, &what);
            small += 1;
        } else {
            for len in (0..=1024).step_by(13) {
                assert_small(&bytes[..len], &format!("{what}[..{len}]"));
            }
        }
    }
    assert!(small > 100, "only {small} small fixtures");
}

/// Files written to declare enormous things in a few bytes.
#[test]
fn huge_declarations_allocate_little() {
    let _guard = ONE_AT_A_TIME.lock().unwrap();
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();

    // safetensors: a header length of 100 MB (the limit), and shapes of 2^62 elements.
    let mut header = 100_000_000u64.to_le_bytes().to_vec();
    header.extend_from_slice(
        b"{\"w\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904],\"data_offsets\":[0,0]}}",
    );
    cases.push(("safetensors header length at the limit", header));
    let json = br#"{"w":{"dtype":"F32","shape":[1073741824,1073741824],"data_offsets":[0,4]}}"#;
    let mut huge = (json.len() as u64).to_le_bytes().to_vec();
    huge.extend_from_slice(json);
    huge.extend_from_slice(&[0; 4]);
    cases.push(("safetensors shape of 2^60 elements", huge));

    // Pickles that declare a 1 GiB string, a 4 GiB bytes object, a huge frame, a memo
    // index of 2^32 - 1 and a list repeated to the stack limit.
    let pickles: [(&str, Vec<u8>); 5] = [
        (
            "BINUNICODE of 1 GiB",
            [&[0x80, 2, b'X'][..], &(1u32 << 30).to_le_bytes()].concat(),
        ),
        (
            "BINBYTES8 of 4 GiB",
            [&[0x80, 4, 0x8E][..], &(1u64 << 32).to_le_bytes()].concat(),
        ),
        (
            "FRAME of 2^60 bytes",
            [&[0x80, 4, 0x95][..], &(1u64 << 60).to_le_bytes()].concat(),
        ),
        (
            "LONG_BINGET of 2^32 - 1",
            [&[0x80, 2, b'j'][..], &u32::MAX.to_le_bytes(), b"."].concat(),
        ),
        (
            "a thousand nested MARKs",
            [&[0x80, 2][..], &[b'('; 1000]].concat(),
        ),
    ];
    cases.extend(pickles);

    // A zip whose only record claims 4 GiB, and a legacy stream whose storage claims 2^61
    // elements: taken from the committed crafted fixtures when they are small enough.
    for case in [
        "fuzz/legacy-storage-length-overflow.pt",
        "fuzz/tar-expanded-view.tar",
    ] {
        let bytes = std::fs::read(fixtures().join(case)).unwrap();
        if bytes.len() <= 4096 {
            cases.push((case, bytes));
        }
    }

    for (what, bytes) in &cases {
        assert_small(bytes, what);
    }
}

/// The counting works: a test that allocates more than the budget is caught.
#[test]
fn the_counter_sees_large_allocations() {
    let _guard = ONE_AT_A_TIME.lock().unwrap();
    // Twice the budget: the harness's own threads may free a little meanwhile (a run of
    // this test once saw 310 bytes fewer than it allocated).
    let peak = peak_of(|| {
        let big = vec![1u8; 2 * BUDGET];
        std::hint::black_box(&big);
    });
    assert!(peak > BUDGET, "{peak}");
}
