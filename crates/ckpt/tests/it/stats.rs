//! `ckpt::stats` over the committed fixtures: known values, and the same statistics for the
//! same tensors whatever the container (zip, legacy, big-endian, strided views, shards).
//! DCP chunks are compared with torch in the interop suite. The comparison with torch itself is in tests/interop/test_stats.py.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ckpt::Source;
use ckpt::stats::{StatsOptions, TensorStats, compute};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// Every tensor's statistics (with 8-bin histograms), by name; `None` for dtypes without
/// numbers.
fn stats_of(rel: &str) -> BTreeMap<String, Option<TensorStats>> {
    let source = Source::open(fixtures().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    let checkpoint = source.checkpoint().unwrap();
    let tensors = checkpoint.tensors();
    let options = StatsOptions {
        histogram_bins: Some(8),
    };
    let stats = compute(&tensors, &options, &()).unwrap();
    tensors
        .iter()
        .map(|(name, _)| name.clone())
        .zip(stats)
        .collect()
}

#[test]
fn every_dtype_of_the_safetensors_fixture() {
    let stats = stats_of("ok/dtypes.safetensors");
    let get = |name: &str| stats[name].clone().unwrap();
    // float32: [-1, 0, -0, 1, 3.4028235e38, 1e-45, -1e-45, 1.17549435e-38, nan, nan, nan, inf, -inf]
    // (see tests/fixtures/generate.py): three NaN, one of each infinity, two zeros.
    let f32 = get("float32");
    assert_eq!(
        (f32.count, f32.nan, f32.pos_inf, f32.neg_inf, f32.zeros),
        (13, 3, 1, 1, 2)
    );
    assert_eq!((f32.min, f32.max), (Some(-1.0), Some(f64::from(f32::MAX))));
    let bool_ = get("bool");
    assert_eq!(bool_.mean, Some(0.75));
    let i64s = get("int64");
    assert_eq!(i64s.min, Some(i64::MIN as f64));
    let c = get("complex64");
    assert_eq!((c.count, c.nan, c.pos_inf), (5, 1, 1));
    let f4 = get("float4_e2m1fn_x2");
    assert_eq!((f4.min, f4.max, f4.count), (Some(-6.0), Some(6.0), 512));
    // Every float8 kind has a NaN in the fixture; e4m3fn and the fnuz kinds no infinity.
    for name in [
        "float8_e4m3fn",
        "float8_e4m3fnuz",
        "float8_e5m2fnuz",
        "float8_e8m0fnu",
    ] {
        let s = get(name);
        assert!(s.nan > 0 && s.pos_inf + s.neg_inf == 0, "{name}: {s:?}");
    }
    let histogram = f32.histogram.unwrap();
    assert_eq!(histogram.counts.iter().sum::<u64>(), 8);
}

/// The statistics of two readings of the same tensors are the same (histograms too). `b`
/// may hold fewer tensors (legacy files and torch 2.0 lack the newer dtypes).
fn assert_same(a: &str, b: &str) {
    let (x, y) = (stats_of(a), stats_of(b));
    assert!(
        y.len() >= 3 && y.keys().all(|k| x.contains_key(k)),
        "{a} vs {b}"
    );
    for (name, s) in &y {
        assert_eq!(s, &x[name], "{name}: {a} vs {b}");
    }
}

#[test]
fn the_container_does_not_change_the_statistics() {
    assert_same(
        "ok/torch/dtypes-2.15-zip.pt",
        "ok/torch/dtypes-2.15-legacy.pt",
    );
    assert_same("ok/torch/dtypes-2.15-zip.pt", "ok/torch/dtypes-2.0-zip.pt");
    // Byteswapped storages, strided and conj/neg views, read in logical order.
    assert_same(
        "ok/torch/dtypes-2.15-zip.pt",
        "ok/torch/big_endian_dtypes-2.15-zip.pt",
    );
    assert_same(
        "ok/torch/views-2.15-zip.pt",
        "ok/torch/big_endian_views-2.15-zip.pt",
    );
    // The same shards as safetensors files and as torch zips.
    assert_same("ok/shards/safetensors", "ok/shards/bin");
}

#[test]
fn quantized_tensors_are_read_as_real_values() {
    let stats = stats_of("ok/torch/quantized-2.15-zip.pt");
    let quantized: Vec<_> = stats.iter().filter(|(_, s)| s.is_some()).collect();
    assert!(!quantized.is_empty());
    for (name, s) in quantized {
        let s = s.as_ref().unwrap();
        // Dequantized values of a randn-like tensor: not whole numbers.
        let mean = s.mean.unwrap();
        assert!(mean.fract() != 0.0 || s.count < 2, "{name}: {s:?}");
    }
}

#[test]
fn every_ok_fixture_is_computed_without_error() {
    let mut files = Vec::new();
    for folder in ["ok", "ok/torch", "ok/torch/pypi"] {
        for entry in std::fs::read_dir(fixtures().join(folder)).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_file() && !name.ends_with(".json") && !name.ends_with(".md") {
                files.push(format!("{folder}/{name}"));
            }
        }
    }
    assert!(files.len() > 40, "{files:?}");
    for rel in files {
        let stats = stats_of(&rel);
        for (name, s) in stats {
            if let Some(s) = s {
                assert!(s.count >= s.nan + s.pos_inf + s.neg_inf, "{rel} {name}");
                if let (Some(min), Some(max), Some(mean)) = (s.min, s.max, s.mean) {
                    assert!(min <= mean && mean <= max, "{rel} {name}: {s:?}");
                }
            }
        }
    }
}
