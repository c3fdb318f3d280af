//! The writer against ckpt's own reader and the zip crate.

use std::io::Read;

use super::*;
use crate::model::{ByteOrder, Dict, Dtype, Quantization, Storage, TensorView};

fn s(text: &str) -> Value<'static> {
    Value::Str(text.to_owned())
}

fn write(root: &Value<'_>, name: &str) -> Vec<u8> {
    let plan = Plan::new(root, name).unwrap();
    let mut file = Vec::new();
    plan.write_to(&mut file, &()).unwrap();
    assert_eq!(file.len() as u64, plan.file_len());
    file
}

/// Structural equality, tensors by their elements and torch-visible attributes.
fn same(a: &Value<'_>, b: &Value<'_>) -> bool {
    match (a, b) {
        (Value::Float(x), Value::Float(y)) => x.to_bits() == y.to_bits(),
        (Value::Complex(a, b), Value::Complex(c, d)) => {
            a.to_bits() == c.to_bits() && b.to_bits() == d.to_bits()
        }
        (Value::List(x), Value::List(y))
        | (Value::Tuple(x), Value::Tuple(y))
        | (Value::Set(x), Value::Set(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Dict(x), Value::Dict(y)) => {
            x.ordered == y.ordered
                && x.entries.len() == y.entries.len()
                && x.entries
                    .iter()
                    .zip(&y.entries)
                    .all(|((k1, v1), (k2, v2))| same(k1, k2) && same(v1, v2))
                && x.attributes.len() == y.attributes.len()
                && x.attributes
                    .iter()
                    .zip(&y.attributes)
                    .all(|((k1, v1), (k2, v2))| k1 == k2 && same(v1, v2))
        }
        (Value::Tensor(x), Value::Tensor(y)) => {
            x.dtype() == y.dtype()
                && x.shape() == y.shape()
                && x.strides() == y.strides()
                && x.storage_offset() == y.storage_offset()
                && x.is_conj() == y.is_conj()
                && x.is_neg() == y.is_neg()
                && x.requires_grad() == y.requires_grad()
                && x.is_parameter() == y.is_parameter()
                && x.quantization() == y.quantization()
                && x.sha256().unwrap() == y.sha256().unwrap()
                && x.attributes().len() == y.attributes().len()
                && x.attributes()
                    .iter()
                    .zip(y.attributes())
                    .all(|((k1, v1), (k2, v2))| k1 == k2 && same(v1, v2))
        }
        _ => a.to_string() == b.to_string() && a.type_name() == b.type_name(),
    }
}

fn sample(bytes: &[u8]) -> Value<'_> {
    let storage = Storage::new(bytes, ByteOrder::Little);
    let base = TensorView::contiguous(Dtype::Float32, vec![2, 3], storage.clone()).unwrap();
    let transposed =
        TensorView::strided(Dtype::Float32, vec![3, 2], vec![1, 3], 0, storage.clone()).unwrap();
    let column = TensorView::strided(Dtype::Float32, vec![2], vec![3], 1, storage.clone())
        .unwrap()
        .with_parameter(true)
        .with_requires_grad(true)
        .with_attributes(vec![("tag".into(), s("lora"))]);
    let mut metadata = Dict::ordered(vec![(s("a"), Value::Tensor(base.clone()))]);
    metadata.attributes.push((
        "_metadata".into(),
        Value::Dict(Dict::ordered(vec![(
            s(""),
            Value::Dict(Dict::new(vec![(s("version"), Value::Int(1))])),
        )])),
    ));
    Value::Dict(Dict::new(vec![
        (s("model"), Value::Dict(metadata)),
        (s("t"), Value::Tensor(transposed)),
        (s("p"), Value::Tensor(column)),
        (
            Value::Int(3),
            Value::List(vec![Value::None, Value::Bool(false)]),
        ),
        (
            Value::Tuple(vec![Value::Int(1), s("x")]),
            Value::Set(vec![Value::Int(2)]),
        ),
        (
            s("big"),
            Value::BigInt("-1267650600228229401496703205376".into()),
        ),
        (s("bytes"), Value::Bytes(vec![0, 0xff])),
        (s("empty_bytes"), Value::Bytes(vec![])),
        (s("bytearray"), Value::ByteArray(vec![1, 2])),
        (s("complex"), Value::Complex(1.0, -0.0)),
        (
            s("nan"),
            Value::Float(f64::from_bits(0x7ff8_0000_0000_0001)),
        ),
        (s("size"), Value::Size(vec![2, 3])),
        (s("device"), Value::Device("cuda:1".into())),
        (s("dtype"), Value::Dtype(Dtype::Float8E4M3Fn)),
    ]))
}

#[test]
fn a_tree_reads_back_as_written() {
    let bytes: Vec<u8> = (0..6u32).flat_map(|i| (i as f32).to_le_bytes()).collect();
    let root = sample(&bytes);
    let file = write(&root, "model");
    let checkpoint = crate::read(&file).unwrap();
    assert_eq!(checkpoint.format(), crate::Format::TorchZip);
    assert_eq!(checkpoint.details().weights_only, Some(true));
    assert!(same(checkpoint.root(), &root), "{}", checkpoint.root());
    // Three views of one storage: one record.
    assert_eq!(Plan::new(&root, "model").unwrap().storages(), 1);
    assert_eq!(
        checkpoint.shared_storages(),
        [vec!["model.a".to_owned(), "p".to_owned(), "t".to_owned()]]
    );
    let records = &checkpoint.details().records;
    assert_eq!(records["archive_folder"], "model");
    assert_eq!(records["byteorder"], "little");
    assert_eq!(records[".storage_alignment"], "64");
    assert_eq!(records[".format_version"], "1");
    assert_eq!(records["version"], "3");
}

#[test]
fn records_are_aligned_named_and_checksummed_as_torch_writes_them() {
    let bytes = [7u8; 24];
    let file = write(&sample(&bytes), "my.model");
    let mut zip = ::zip::ZipArchive::new(std::io::Cursor::new(&file[..])).unwrap();
    let want = [
        "data.pkl",
        ".format_version",
        ".storage_alignment",
        "byteorder",
        "data/0",
        "version",
        ".data/serialization_id",
    ];
    let mut in_order: Vec<String> = Vec::new();
    for i in 0..zip.len() {
        let mut record = zip.by_index(i).unwrap();
        assert_eq!(record.compression(), ::zip::CompressionMethod::Stored);
        let name = record.name().unwrap().into_owned();
        assert_eq!(record.data_start().unwrap() % 64, 0, "{name}");
        in_order.push(name.clone());
        // Reading to the end checks the CRC-32.
        let mut content = Vec::new();
        record.read_to_end(&mut content).unwrap();
        if name.ends_with("byteorder") {
            assert_eq!(content, b"little");
        }
        if name.ends_with("serialization_id") {
            assert_eq!(content.len(), 40);
            assert!(content.iter().all(u8::is_ascii_digit));
        }
    }
    let want: Vec<String> = want.iter().map(|n| format!("my.model/{n}")).collect();
    assert_eq!(in_order, want);
}

#[test]
fn serialization_id_combines_crcs_as_torch_does() {
    // tensor-2.15-zip.pt: its records' lengths and CRCs, and torch's id.
    let written = [
        ("data.pkl", 152, 0x39d0_c75b),
        (".format_version", 1, 0x83dc_efb7),
        (".storage_alignment", 2, 0xe971_773f),
        ("byteorder", 6, 0x19e3_3d85),
        ("data/0", 24, 0x850c_f83d),
        ("version", 2, 0x5567_9ed1),
    ];
    let id = serialization_id(&written);
    assert_eq!(&id[20..], "03963179737091160840");
    assert_eq!(id.len(), 40);
}

#[test]
fn archive_names_follow_torch() {
    for (path, want) in [
        ("model.pt", "model"),
        ("a.b.c.pth", "a.b.c"),
        ("dir.d/file", "file"),
        ("x.", "x"),
        (".pt", "archive"),
        ("ünï.pt", "archive"),
        ("/tmp/out/pytorch_model.bin", "pytorch_model"),
    ] {
        assert_eq!(archive_name(Path::new(path)), want, "{path}");
    }
    for bad in ["", "a/b", "a\\b", "a\nb"] {
        assert!(Plan::new(&Value::None, bad).is_err(), "{bad:?}");
    }
}

#[test]
fn refusals_name_every_value_before_writing() {
    let root = Value::Dict(Dict::new(vec![
        (s("ok"), Value::Int(1)),
        (s("frozen"), Value::FrozenSet(vec![])),
        (
            s("cut"),
            Value::Slice(Box::new([Value::None, Value::None, Value::None])),
        ),
    ]));
    let error = Plan::new(&root, "m").unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Invalid);
    let text = error.to_string();
    assert!(text.starts_with("2 values cannot be written"), "{text}");
    assert!(text.contains("`frozen`: a frozenset"), "{text}");
    assert!(text.contains("`cut`: a slice"), "{text}");
    assert!(error.hint().unwrap().contains("key of the checkpoint"));
}

#[test]
fn big_endian_storages_are_written_little_endian() {
    let be: Vec<u8> = [1u16, 0x0203]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect();
    let view =
        TensorView::contiguous(Dtype::UInt16, vec![2], Storage::new(&be, ByteOrder::Big)).unwrap();
    let be32 = [0u8, 0, 0, 9];
    let q = TensorView::contiguous(Dtype::QInt32, vec![1], Storage::new(&be32, ByteOrder::Big))
        .unwrap()
        .with_quantization(Quantization::PerTensor {
            scale: 0.5,
            zero_point: 1,
        });
    let root = Value::List(vec![Value::Tensor(view.clone()), Value::Tensor(q.clone())]);
    let file = write(&root, "m");
    let checkpoint = crate::read(&file).unwrap();
    assert!(same(checkpoint.root(), &root));
    let tensors = checkpoint.tensors();
    assert_eq!(tensors[0].1.data().unwrap(), [1, 0, 3, 2]);
    assert_eq!(tensors[0].1.storage().byte_order(), ByteOrder::Little);
    assert_eq!(tensors[1].1.data().unwrap(), [9, 0, 0, 0]);
}

#[test]
fn writing_stops_when_cancelled() {
    struct Cancel;
    impl Progress for Cancel {
        fn is_cancelled(&self) -> bool {
            true
        }
    }
    let bytes = [0u8; 24];
    let plan = Plan::new(&sample(&bytes), "m").unwrap();
    let mut out = Vec::new();
    let error = plan.write_to(&mut out, &Cancel).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Interrupted);
}

#[test]
fn progress_counts_every_byte() {
    use std::sync::atomic::{AtomicU64, Ordering};
    #[derive(Default)]
    struct Count(AtomicU64, AtomicU64);
    impl Progress for Count {
        fn start(&self, total: u64) {
            self.0.store(total, Ordering::Relaxed);
        }
        fn advance(&self, bytes: u64) {
            self.1.fetch_add(bytes, Ordering::Relaxed);
        }
    }
    let bytes = [0u8; 24];
    let plan = Plan::new(&sample(&bytes), "m").unwrap();
    let count = Count::default();
    let mut out = Vec::new();
    plan.write_to(&mut out, &count).unwrap();
    assert_eq!(count.0.load(Ordering::Relaxed), plan.file_len());
    assert_eq!(count.1.load(Ordering::Relaxed), plan.file_len());
}

/// Writing from a file's map (checksums read from the file, large pieces copied in the
/// kernel) gives the same bytes as writing from memory.
#[test]
fn writing_from_a_mapped_file_gives_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let source_path = dir.path().join("source.pth");
    // A storage of 3 MiB and a bit: several chunks, the last one short.
    let big: Vec<u8> = (0..(3 << 20) + 12).map(|i: u32| (i % 253) as u8).collect();
    let view = TensorView::contiguous(
        Dtype::Float32,
        vec![big.len() / 4],
        Storage::new(&big, ByteOrder::Little),
    )
    .unwrap();
    let small = TensorView::contiguous(
        Dtype::UInt8,
        vec![3],
        Storage::new(&big[..3], ByteOrder::Little),
    )
    .unwrap();
    let root = Value::Dict(Dict::new(vec![
        (s("w"), Value::Tensor(view)),
        (s("b"), Value::Tensor(small)),
    ]));
    std::fs::write(&source_path, write(&root, "source")).unwrap();

    let source = crate::Source::open(&source_path).unwrap();
    let checkpoint = source.checkpoint().unwrap();
    let plan = Plan::new(checkpoint.root(), "out").unwrap();
    let mut from_memory = Vec::new();
    plan.write_to(&mut from_memory, &()).unwrap();
    let out = tempfile::tempfile().unwrap();
    {
        let mut sink = crate::output::FileSink::new(&out, source.mapped_input());
        plan.write_reading(&mut sink, source.mapped_input(), &())
            .unwrap();
        sink.flush().unwrap();
    }
    let mut from_file = Vec::new();
    let mut out = out;
    std::io::Seek::rewind(&mut out).unwrap();
    out.read_to_end(&mut from_file).unwrap();
    assert!(from_file == from_memory);
    assert!(same(crate::read(&from_file).unwrap().root(), &root));
}
