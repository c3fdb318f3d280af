//! Property tests: for random tensors of every dtype, shape and layout, write -> read ->
//! write is the identity, through each writer and from one format to the other.
//!
//! - safetensors: the bytes read back are the bytes written, and writing what was read
//!   gives the same file.
//! - PyTorch zip: random dtypes (every one torch can save), shapes (scalars, empty
//!   dimensions), strided and offset views, storages shared between tensors, big-endian
//!   storages; what reads back has the same elements, and sharing is kept; a second write
//!   gives the same file.
//! - safetensors -> PyTorch -> safetensors gives the first file back, byte for byte.

use std::collections::BTreeMap;

use ckpt::model::{ByteOrder, Dict, Storage};
use ckpt::torch::write::Plan as TorchPlan;
use ckpt::{Dtype, TensorView, Value};
use proptest::prelude::*;

/// Every dtype the PyTorch writer stores with whole bytes per element; all but the last
/// two (complex128, complex32) safetensors can store too ([`DTYPES`]).
const TORCH_DTYPES: [Dtype; 21] = [
    Dtype::Bool,
    Dtype::UInt8,
    Dtype::Int8,
    Dtype::Int16,
    Dtype::UInt16,
    Dtype::Int32,
    Dtype::UInt32,
    Dtype::Int64,
    Dtype::UInt64,
    Dtype::Float16,
    Dtype::BFloat16,
    Dtype::Float32,
    Dtype::Float64,
    Dtype::Complex64,
    Dtype::Float8E5M2,
    Dtype::Float8E4M3Fn,
    Dtype::Float8E5M2Fnuz,
    Dtype::Float8E4M3Fnuz,
    Dtype::Float8E8M0Fnu,
    Dtype::Complex128,
    Dtype::Complex32,
];

/// Every dtype both writers can store.
const DTYPES: &[Dtype] = TORCH_DTYPES.split_at(19).0;

/// A random tensor: its dtype, shape, a storage of random bytes that holds it (a little
/// larger than needed), strides (row-major, or a permutation of it) and an offset.
#[derive(Debug, Clone)]
struct Spec {
    dtype: Dtype,
    shape: Vec<usize>,
    permute: bool,
    offset: usize,
    big_endian: bool,
    seed: u64,
}

fn spec(dtypes: &'static [Dtype]) -> impl Strategy<Value = Spec> {
    (
        prop::sample::select(dtypes),
        prop::collection::vec(0usize..5, 0..4),
        any::<bool>(),
        0usize..3,
        any::<bool>(),
        any::<u64>(),
    )
        .prop_map(|(dtype, shape, permute, offset, big_endian, seed)| Spec {
            dtype,
            shape,
            permute,
            offset,
            big_endian,
            seed,
        })
}

/// Random bytes from a seed (bool elements kept to 0 or 1, as torch requires).
fn bytes(spec: &Spec, len: usize) -> Vec<u8> {
    let mut x = spec.seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if spec.dtype == Dtype::Bool {
                (x & 1) as u8
            } else {
                x as u8
            }
        })
        .collect()
}

/// The storage bytes for a spec: enough for its view at its offset.
fn storage_bytes(spec: &Spec) -> Vec<u8> {
    let element = spec.dtype.byte_size().unwrap();
    let numel: usize = spec.shape.iter().product();
    bytes(spec, (numel + spec.offset) * element)
}

/// The view a spec describes over `data`.
fn view<'a>(spec: &Spec, data: &'a [u8]) -> TensorView<'a> {
    let order = if spec.big_endian {
        ByteOrder::Big
    } else {
        ByteOrder::Little
    };
    let storage = Storage::new(data, order);
    // Row-major strides of the shape, or of its reverse read backwards (a transpose).
    let rank = spec.shape.len();
    let mut strides = vec![0usize; rank];
    let mut order_of_dims: Vec<usize> = (0..rank).collect();
    if spec.permute {
        order_of_dims.reverse();
    }
    let mut step = 1;
    for &d in order_of_dims.iter().rev() {
        strides[d] = step;
        step *= spec.shape[d].max(1);
    }
    TensorView::strided(
        spec.dtype,
        spec.shape.clone(),
        strides,
        spec.offset,
        storage,
    )
    .unwrap()
}

fn write_torch(root: &Value<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    let plan = TorchPlan::new(root, "archive").unwrap();
    plan.write_to(&mut out, &()).unwrap();
    assert_eq!(out.len() as u64, plan.file_len());
    out
}

fn write_safetensors(tensors: &[(String, &TensorView<'_>)]) -> Vec<u8> {
    let plan = ckpt::safetensors::Plan::new(tensors, &BTreeMap::new()).unwrap();
    let mut out = Vec::new();
    plan.write_to(&mut out, &()).unwrap();
    out
}

fn state_dict<'a>(views: &[(String, TensorView<'a>)]) -> Value<'a> {
    Value::Dict(Dict::ordered(
        views
            .iter()
            .map(|(name, view)| (Value::Str(name.clone()), Value::Tensor(view.clone())))
            .collect(),
    ))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Random tensors, some sharing one storage (as tied weights do), through the PyTorch
    /// writer and back: the same dtypes, shapes and elements, shared storages still
    /// shared, and a second write gives the same bytes.
    #[test]
    fn torch_write_read_write_is_the_identity(
        specs in prop::collection::vec(spec(&TORCH_DTYPES), 1..6),
        tie in any::<bool>(),
    ) {
        let datas: Vec<Vec<u8>> = specs.iter().map(storage_bytes).collect();
        let mut views: Vec<(String, TensorView<'_>)> = specs
            .iter()
            .zip(&datas)
            .enumerate()
            .map(|(i, (spec, data))| (format!("t{i}"), view(spec, data)))
            .collect();
        if tie {
            // A second name for the first tensor: one storage, two views.
            views.push(("tied".to_owned(), views[0].1.clone()));
        }
        let root = state_dict(&views);
        let file = write_torch(&root);
        let checkpoint = ckpt::torch::read_zip(&file).unwrap();
        let back = checkpoint.tensors();
        prop_assert_eq!(back.len(), views.len());
        for ((name, original), (read_name, read)) in views.iter().zip(&back) {
            prop_assert_eq!(name, read_name);
            prop_assert_eq!(original.dtype(), read.dtype());
            prop_assert_eq!(original.shape(), read.shape());
            prop_assert_eq!(original.to_le_bytes().unwrap(), read.to_le_bytes().unwrap(), "{}", name);
        }
        // (An empty storage has nothing to share: torch gives each its own.)
        if tie && !datas[0].is_empty() {
            let shared = checkpoint.shared_storages();
            prop_assert!(
                shared.iter().any(|names| names.contains(&"t0".to_owned()) && names.contains(&"tied".to_owned())),
                "tied tensors no longer share a storage: {:?}", shared
            );
        }
        prop_assert!(write_torch(checkpoint.root()) == file, "a second write changed the file");
    }

    /// safetensors -> PyTorch -> safetensors gives the first file back, byte for byte.
    #[test]
    fn safetensors_to_torch_and_back_is_the_identity(
        specs in prop::collection::vec(spec(DTYPES), 0..6),
    ) {
        let datas: Vec<Vec<u8>> = specs.iter().map(storage_bytes).collect();
        let views: Vec<(String, TensorView<'_>)> = specs
            .iter()
            .zip(&datas)
            .enumerate()
            .map(|(i, (spec, data))| (format!("layer.{i}.weight"), view(spec, data)))
            .collect();
        let named: Vec<(String, &TensorView<'_>)> = views.iter().map(|(n, v)| (n.clone(), v)).collect();
        let first = write_safetensors(&named);
        let from_safetensors = ckpt::safetensors::read(&first).unwrap();
        prop_assert!(write_safetensors(&from_safetensors.tensors()) == first, "safetensors rewrite changed the file");

        let torch = write_torch(&state_dict(
            &from_safetensors.tensors().into_iter().map(|(n, v)| (n, v.clone())).collect::<Vec<_>>(),
        ));
        let from_torch = ckpt::torch::read_zip(&torch).unwrap();
        prop_assert!(write_safetensors(&from_torch.tensors()) == first, "safetensors -> torch -> safetensors changed the file");
    }
}
