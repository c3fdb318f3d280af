//! Hostile and damaged safetensors input: clean errors, never a panic.

use std::collections::BTreeMap;

use ckpt::model::{ByteOrder, Dtype, Storage, TensorView};
use ckpt::safetensors::{Plan, read};
use ckpt::{ErrorKind, Format};
use proptest::prelude::*;

fn sample_file() -> Vec<u8> {
    let a: Vec<u8> = (0..24).collect();
    let b: Vec<u8> = (0..6).collect();
    let views = [
        TensorView::contiguous(
            Dtype::Float32,
            vec![2, 3],
            Storage::new(&a, ByteOrder::Little),
        )
        .unwrap(),
        TensorView::contiguous(
            Dtype::BFloat16,
            vec![3],
            Storage::new(&b, ByteOrder::Little),
        )
        .unwrap(),
    ];
    let named = vec![("w".to_owned(), &views[0]), ("b".to_owned(), &views[1])];
    let metadata = BTreeMap::from([("format".to_owned(), "pt".to_owned())]);
    let mut out = Vec::new();
    Plan::new(&named, &metadata)
        .unwrap()
        .write_to(&mut out, &())
        .unwrap();
    out
}

#[test]
fn every_truncation_fails_cleanly() {
    let file = sample_file();
    assert!(read(&file).is_ok());
    for len in 0..file.len() {
        let error = match ckpt::read(&file[..len]) {
            Ok(_) => panic!("a {len}-byte prefix was accepted"),
            Err(e) => e,
        };
        assert!(
            matches!(
                error.kind(),
                ErrorKind::Malformed | ErrorKind::NotACheckpoint
            ),
            "prefix {len}: {error:?}"
        );
    }
}

#[test]
fn errors_name_the_tensor_and_the_byte() {
    let mut file = sample_file();
    // Make `w` claim one element more than its bytes hold.
    let header_len = u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
    let header = String::from_utf8(file[8..8 + header_len].to_vec()).unwrap();
    let bad = header.replace("[2,3]", "[2,4]");
    file.splice(8..8 + header_len, bad.bytes());
    let error = read(&file).unwrap_err();
    assert_eq!(error.location().tensor.as_deref(), Some("w"));
    let offset = error.location().offset.unwrap() as usize;
    assert!(file[offset..].starts_with(b"{\"dtype\":\"F32\""), "{error}");
    assert!(error.message().contains("takes 32 bytes"), "{error}");

    // Trailing bytes are found and located.
    let mut file = sample_file();
    let len = file.len() as u64;
    file.extend_from_slice(b"PK\x03\x04");
    let error = read(&file).unwrap_err();
    assert_eq!(error.location().offset, Some(len));
    assert!(error.message().contains("4 unexpected bytes"), "{error}");
}

#[test]
fn oversized_headers_hit_the_limit() {
    let mut file = 100_000_001u64.to_le_bytes().to_vec();
    file.extend_from_slice(b"{}");
    let error = read(&file).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::LimitExceeded);
    let mut file = u64::MAX.to_le_bytes().to_vec();
    file.extend_from_slice(b"{}");
    assert_eq!(read(&file).unwrap_err().kind(), ErrorKind::LimitExceeded);
}

#[test]
fn huge_shapes_are_refused_without_allocating() {
    let header = r#"{"x":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,16]}}"#;
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(header.as_bytes());
    file.extend_from_slice(&[0; 16]);
    let error = read(&file).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Malformed);
    assert!(error.message().contains("too large"), "{error}");
}

#[test]
fn many_zero_sized_tensors_may_share_an_offset() {
    let header = r#"{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"F32","shape":[2,0],"data_offsets":[0,0]}}"#;
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(header.as_bytes());
    let checkpoint = ckpt::read(&file).unwrap();
    assert_eq!(checkpoint.format(), Format::Safetensors);
    assert_eq!(checkpoint.tensors().len(), 2);
}

#[test]
fn deeply_nested_json_is_refused_without_overflowing_the_stack() {
    for body in [
        format!("{{\"a\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000)),
        format!(
            "{{\"__metadata__\":{}1{}}}",
            "{\"a\":".repeat(50_000),
            "}".repeat(50_000)
        ),
        format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)),
    ] {
        let mut file = (body.len() as u64).to_le_bytes().to_vec();
        file.extend_from_slice(body.as_bytes());
        let error = ckpt::read(&file).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Malformed, "{error}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = ckpt::read(&bytes);
    }

    #[test]
    fn bit_flips_never_panic(flips in prop::collection::vec((any::<prop::sample::Index>(), 0u8..8), 1..4)) {
        let mut file = sample_file();
        for (index, bit) in flips {
            let i = index.index(file.len());
            file[i] ^= 1 << bit;
        }
        if let Ok(checkpoint) = ckpt::read(&file) {
            for (_, view) in checkpoint.tensors() {
                view.sha256().unwrap();
            }
        }
    }
}
