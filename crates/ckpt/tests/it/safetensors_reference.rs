//! ckpt's safetensors reader and writer against HF's reference crate.
//!
//! - The writer lays files out byte for byte as the reference does.
//! - The reader accepts exactly the files the reference accepts (except files with a
//!   duplicate key, which ckpt refuses and the reference reads one way or another), and
//!   sees the same tensors in them.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};

use ckpt::model::{ByteOrder, Dtype, Storage, TensorView};
use ckpt::safetensors::{Plan, read, read_header};
use proptest::prelude::*;
use safetensors::{SafeTensors, View};

/// Every safetensors dtype: (name, ckpt dtype, bits).
const DTYPES: &[(&str, Dtype, u64)] = &[
    ("BOOL", Dtype::Bool, 8),
    ("F4", Dtype::Float4E2M1Fn, 4),
    ("F6_E2M3", Dtype::Float6E2M3Fn, 6),
    ("F6_E3M2", Dtype::Float6E3M2Fn, 6),
    ("U8", Dtype::UInt8, 8),
    ("I8", Dtype::Int8, 8),
    ("F8_E5M2", Dtype::Float8E5M2, 8),
    ("F8_E4M3", Dtype::Float8E4M3Fn, 8),
    ("F8_E8M0", Dtype::Float8E8M0Fnu, 8),
    ("F8_E4M3FNUZ", Dtype::Float8E4M3Fnuz, 8),
    ("F8_E5M2FNUZ", Dtype::Float8E5M2Fnuz, 8),
    ("I16", Dtype::Int16, 16),
    ("U16", Dtype::UInt16, 16),
    ("F16", Dtype::Float16, 16),
    ("BF16", Dtype::BFloat16, 16),
    ("I32", Dtype::Int32, 32),
    ("U32", Dtype::UInt32, 32),
    ("F32", Dtype::Float32, 32),
    ("C64", Dtype::Complex64, 64),
    ("F64", Dtype::Float64, 64),
    ("I64", Dtype::Int64, 64),
    ("U64", Dtype::UInt64, 64),
];

fn reference_dtype(name: &str) -> safetensors::Dtype {
    serde_json::from_value(serde_json::Value::String(name.to_owned())).unwrap()
}

struct RefTensor {
    dtype: safetensors::Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl View for &RefTensor {
    fn dtype(&self) -> safetensors::Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

/// A random tensor: (name, dtype index, shape, data), with a shape whose bit count is a
/// whole number of bytes.
fn tensor() -> impl Strategy<Value = (String, usize, Vec<usize>, Vec<u8>)> {
    (
        prop_oneof![
            "[a-c.]{0,3}",
            "\\PC{0,6}",
            "model\\.layers\\.[0-9]{1,2}\\.[a-z_]{1,8}"
        ],
        0..DTYPES.len(),
        prop::collection::vec(0usize..5, 0..4),
        any::<u64>(),
    )
        .prop_map(|(name, d, mut shape, seed)| {
            let bits = DTYPES[d].2;
            while !(shape.iter().product::<usize>() as u64 * bits).is_multiple_of(8) {
                shape.push(2);
            }
            let numel: usize = shape.iter().product();
            let len = (numel as u64 * bits / 8) as usize;
            let data = (0..len)
                .map(|i| (seed.rotate_left(i as u32 % 64) as u8) ^ (i as u8))
                .collect();
            (name, d, shape, data)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Same tensors and metadata (at most one key) -> the same bytes as the reference.
    #[test]
    fn writer_is_byte_identical_to_the_reference(
        tensors in prop::collection::vec(tensor(), 0..8),
        metadata in prop::option::of(("\\PC{0,8}", "\\PC{0,12}")),
    ) {
        let mut seen = HashSet::new();
        let tensors: Vec<_> = tensors.into_iter().filter(|t| seen.insert(t.0.clone())).collect();
        let views: Vec<TensorView<'_>> = tensors
            .iter()
            .map(|(_, d, shape, data)| {
                TensorView::contiguous(DTYPES[*d].1, shape.clone(), Storage::new(data, ByteOrder::Little)).unwrap()
            })
            .collect();
        let named: Vec<(String, &TensorView<'_>)> =
            tensors.iter().zip(&views).map(|(t, v)| (t.0.clone(), v)).collect();
        let metadata: BTreeMap<String, String> = metadata.into_iter().collect();
        let plan = Plan::new(&named, &metadata).unwrap();
        let mut ours = Vec::new();
        plan.write_to(&mut ours, &()).unwrap();
        prop_assert_eq!(ours.len() as u64, plan.file_len());

        let reference_tensors: Vec<RefTensor> = tensors
            .iter()
            .map(|(_, d, shape, data)| RefTensor { dtype: reference_dtype(DTYPES[*d].0), shape: shape.clone(), data: data.clone() })
            .collect();
        let reference_metadata: Option<HashMap<String, String>> =
            (!metadata.is_empty()).then(|| metadata.clone().into_iter().collect());
        let theirs = safetensors::serialize(
            tensors.iter().map(|t| t.0.clone()).zip(reference_tensors.iter()),
            reference_metadata,
        )
        .unwrap();
        prop_assert!(ours == theirs, "ckpt and the reference wrote different bytes:\n{}\n{}",
            String::from_utf8_lossy(&ours[8..plan.header().len() + 8]),
            String::from_utf8_lossy(&theirs[8..]).chars().take(plan.header().len()).collect::<String>());

        // And reading it back gives the same tensors, zero-copy.
        let checkpoint = read(&ours).unwrap();
        prop_assert_eq!(checkpoint.metadata(), &metadata);
        let back = checkpoint.tensors();
        prop_assert_eq!(back.len(), named.len());
        for (name, view) in &named {
            let (_, read_view) = back.iter().find(|(n, _)| n == name).unwrap();
            prop_assert_eq!(read_view.dtype(), view.dtype());
            prop_assert_eq!(read_view.shape(), view.shape());
            prop_assert_eq!(read_view.data().unwrap(), view.data().unwrap());
        }
    }

    /// Any header, well-formed or not: ckpt accepts exactly what the reference accepts.
    #[test]
    fn reader_agrees_with_the_reference(
        entries in prop::collection::vec(
            (
                "[ab]{0,2}",
                prop_oneof![8 => (0..DTYPES.len()).prop_map(|d| DTYPES[d].0.to_owned()), 1 => Just("f32".to_owned()), 1 => Just("C128".to_owned())],
                prop::collection::vec(prop_oneof![10 => 0u64..4, 1 => Just(u64::MAX / 3)], 0..3),
            ),
            0..5,
        ),
        metadata in prop::option::of(prop::collection::vec(("[xy]{1}", "[a-z]{0,3}"), 0..3)),
        offset_noise in prop::collection::vec(prop_oneof![12 => Just(0i64), 1 => -3i64..4], 10),
        length_noise in prop_oneof![8 => Just(0i64), 1 => -4i64..6],
        padding in prop_oneof![Just(""), Just("  "), Just("\n\t ")],
        leading in prop_oneof![3 => Just(""), 1 => Just(" "), 1 => Just("\t\r\n ")],
    ) {
        // Place tensors back to back (when their sizes are whole bytes), then disturb.
        let mut cursor = 0u64;
        let mut body = format!("{leading}{{");
        if let Some(metadata) = &metadata {
            body.push_str("\"__metadata__\":{");
            let items: Vec<String> = metadata.iter().map(|(k, v)| format!("{k:?}:{v:?}")).collect();
            body.push_str(&items.join(","));
            body.push_str("},");
        }
        let mut names = Vec::new();
        for (i, (name, dtype, shape)) in entries.iter().enumerate() {
            let bits = DTYPES.iter().find(|d| d.0 == dtype).map_or(8, |d| d.2);
            let len = shape
                .iter()
                .try_fold(1u64, |a, &d| a.checked_mul(d))
                .and_then(|n| n.checked_mul(bits))
                .map_or(1, |b| b / 8);
            let begin = cursor.saturating_add_signed(offset_noise[2 * i]);
            let end = (cursor + len).saturating_add_signed(offset_noise[2 * i + 1]);
            cursor += len;
            body.push_str(&format!(
                "{}:{{\"dtype\":{dtype:?},\"shape\":{shape:?},\"data_offsets\":[{begin},{end}]}},",
                serde_json::to_string(name).unwrap()
            ));
            names.push(name.clone());
        }
        if body.ends_with(',') {
            body.pop();
        }
        body.push('}');
        body.push_str(padding);
        let data_len = cursor.saturating_add_signed(length_noise).min(4096) as usize;
        let mut file = (body.len() as u64).to_le_bytes().to_vec();
        file.extend_from_slice(body.as_bytes());
        file.resize(file.len() + data_len, 0x5a);

        let ours = read_header(&file);
        let duplicate_names = names.iter().collect::<HashSet<_>>().len() != names.len();
        let duplicate_metadata = metadata.as_ref().is_some_and(|m| {
            m.iter().map(|(k, _)| k).collect::<HashSet<_>>().len() != m.len()
        });
        if duplicate_names || duplicate_metadata {
            prop_assert!(ours.is_err(), "a duplicate key must be refused");
            return Ok(());
        }
        let theirs = SafeTensors::deserialize(&file);
        prop_assert_eq!(ours.is_ok(), theirs.is_ok(),
            "ckpt: {:?}\nreference: {:?}\nheader: {}", ours.as_ref().err(), theirs.as_ref().err(), body);
        if let (Ok(header), Ok(reference)) = (ours, theirs) {
            let checkpoint = read(&file).unwrap();
            let tensors = checkpoint.tensors();
            prop_assert_eq!(tensors.len(), reference.len());
            prop_assert_eq!(header.entries().len(), reference.len());
            for (name, view) in tensors {
                let theirs = reference.tensor(&name).unwrap();
                prop_assert_eq!(view.shape(), theirs.shape());
                prop_assert_eq!(view.data().unwrap(), theirs.data());
                prop_assert_eq!(format!("{:?}", theirs.dtype()),
                    DTYPES.iter().find(|d| d.1 == view.dtype()).unwrap().0);
            }
        }
    }
}

/// The reference writer's dtype order is its enum order: a table check with one tensor
/// of each dtype, all named alike but for their dtype.
#[test]
fn every_dtype_sorts_like_the_reference() {
    // Two elements, or four for sub-byte dtypes: always a whole number of bytes.
    let count = |bits: u64| if bits < 8 { 4 } else { 2 };
    let tensors: Vec<(String, Vec<u8>)> = DTYPES
        .iter()
        .map(|(name, _, bits)| {
            (
                name.to_lowercase(),
                vec![7u8; (count(*bits) * bits / 8) as usize],
            )
        })
        .collect();
    let views: Vec<TensorView<'_>> = DTYPES
        .iter()
        .zip(&tensors)
        .map(|((_, dtype, bits), (_, data))| {
            let shape = vec![count(*bits) as usize];
            TensorView::contiguous(*dtype, shape, Storage::new(data, ByteOrder::Little)).unwrap()
        })
        .collect();
    let named: Vec<_> = tensors.iter().map(|(n, _)| n.clone()).zip(&views).collect();
    let plan = Plan::new(&named, &BTreeMap::new()).unwrap();
    let mut ours = Vec::new();
    plan.write_to(&mut ours, &()).unwrap();
    let reference: Vec<RefTensor> = DTYPES
        .iter()
        .zip(&views)
        .map(|((name, ..), v)| RefTensor {
            dtype: reference_dtype(name),
            shape: v.shape().to_vec(),
            data: v.data().unwrap().to_vec(),
        })
        .collect();
    let theirs = safetensors::serialize(
        named.iter().map(|(n, _)| n.clone()).zip(reference.iter()),
        None,
    )
    .unwrap();
    assert_eq!(ours, theirs);
}

/// `"__metadata__":{}` reads as no metadata and is written as none.
#[test]
fn empty_metadata_is_not_written() {
    let header = r#"{"__metadata__":{},"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}"#;
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(header.as_bytes());
    file.extend_from_slice(&[1, 2]);
    let checkpoint = read(&file).unwrap();
    assert!(checkpoint.metadata().is_empty());
    let tensors = checkpoint.tensors();
    let plan = Plan::new(&tensors, checkpoint.metadata()).unwrap();
    let header = String::from_utf8(plan.header().to_vec()).unwrap();
    assert_eq!(
        header.trim_end(),
        r#"{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}"#
    );
}
