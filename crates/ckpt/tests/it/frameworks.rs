//! Checkpoints written by training frameworks through their own save APIs
//! (`tests/fixtures/ok/frameworks/`, made by `tests/fixtures/frameworks/generate.py`):
//! PyTorch Lightning, Lightning Fabric, the Hugging Face Trainer, accelerate, fairseq-style
//! dicts with omegaconf and hydra configs, RNG states. Their pickles hold objects of
//! classes ckpt does not know as data; ckpt reads them inert and reaches every tensor.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ckpt::Source;
use ckpt::scan::{ScanOptions, Verdict, scan_file};
use serde_json::Value;

fn folder() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/ok/frameworks")
}

fn expected() -> Value {
    let path = folder().join("expected.json");
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `name -> (dtype, shape, sha256)`.
type Rows = BTreeMap<String, (String, Value, String)>;

fn rows_of(tensors: &[Value]) -> Rows {
    tensors
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_owned(),
                (
                    t["dtype"].as_str().unwrap().to_owned(),
                    t["shape"].clone(),
                    t["sha256"].as_str().unwrap().to_owned(),
                ),
            )
        })
        .collect()
}

/// Every tensor torch.load(weights_only=False) gives (numpy arrays too) is read, under the
/// same name, with the same dtype, shape and bytes; and nothing else.
#[test]
fn every_tensor_torch_sees_is_read_with_equal_hashes() {
    let expected = expected();
    let files = expected["files"].as_object().unwrap();
    assert!(files.len() >= 15, "the framework fixtures: {}", files.len());
    let mut objects = 0;
    for (rel, want) in files {
        let path = folder().join(rel);
        let source = Source::open(&path).unwrap_or_else(|e| panic!("{rel}: {e}"));
        let checkpoint = source.checkpoint().unwrap_or_else(|e| panic!("{rel}: {e}"));
        let got: Rows = checkpoint
            .tensors()
            .into_iter()
            .map(|(name, view)| {
                (
                    name,
                    (
                        view.dtype().name().to_owned(),
                        serde_json::to_value(view.shape()).unwrap(),
                        hex(&view.sha256().unwrap()),
                    ),
                )
            })
            .collect();
        assert_eq!(got, rows_of(want["tensors"].as_array().unwrap()), "{rel}");
        objects += checkpoint.objects().len();
    }
    assert!(objects > 50, "the fixtures are full of objects: {objects}");
}

/// Loading them imports classes torch's weights-only unpickler refuses, and no more: the
/// scanner calls every file unsafe, never dangerous, and reading them runs nothing.
#[test]
fn frameworks_checkpoints_are_unsafe_not_dangerous() {
    let expected = expected();
    for rel in expected["files"].as_object().unwrap().keys() {
        let report = scan_file(&folder().join(rel), &ScanOptions::default());
        assert!(report.errors.is_empty(), "{rel}: {:?}", report.errors);
        assert!(
            matches!(report.verdict, Verdict::Safe | Verdict::Unsafe),
            "{rel}: {:?}",
            report.findings
        );
    }
}

/// The configuration objects read as their natural values.
#[test]
fn configuration_objects_read_as_their_values() {
    let read = |rel: &str| {
        let source = Source::open(folder().join(rel)).unwrap();
        let checkpoint = source.checkpoint().unwrap();
        let values: BTreeMap<String, String> = checkpoint
            .values()
            .into_iter()
            .map(|(name, value)| (name, value.to_string()))
            .collect();
        values
    };
    let rich = read("lightning/richdict/manual.ckpt");
    for (name, shown) in [
        (
            "hyper_parameters.data_dir",
            r#"pathlib.PosixPath("/data/tiny")"#,
        ),
        ("hyper_parameters.mode", r#"myproj.config.Mode("train")"#),
        ("hyper_parameters.precision", "myproj.config.Precision(32)"),
        (
            "hyper_parameters.started_utc",
            r#"datetime.datetime("2024-05-01T12:30:00+00:00")"#,
        ),
        ("hyper_parameters.day", r#"datetime.date("2024-05-01")"#),
        (
            "hyper_parameters.budget",
            r#"datetime.timedelta("1:02:00")"#,
        ),
        ("hyper_parameters.train_cfg.optim.lr", "0.001"),
        ("hyper_parameters.dtype", "torch.float32"),
    ] {
        assert_eq!(rich.get(name).map(String::as_str), Some(shown), "{name}");
    }
    let dictconfig = read("lightning/dictconfig/manual.ckpt");
    assert_eq!(dictconfig["hyper_parameters.optim.lr"], "0.01");
    assert_eq!(
        dictconfig["hyper_parameters.trainer.dim_copy"],
        r#""${model.dim}""#
    );
    let fairseq = read("fairseq/checkpoint_args_namespace.pt");
    assert_eq!(fairseq["args.arch"], r#""transformer_lm""#);
    assert_eq!(fairseq["args.lr.0"], "0.0005");
    let hf = read("hf_trainer/checkpoint-2/training_args.bin");
    assert_eq!(
        hf["lr_scheduler_type"],
        r#"transformers.trainer_utils.SchedulerType("cosine")"#
    );
    assert_eq!(hf["learning_rate"], "0.001");
}
