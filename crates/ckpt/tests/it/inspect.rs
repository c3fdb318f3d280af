//! `ckpt::inspect`: an inspection of a real torch training checkpoint, as values and as the
//! JSON it serializes to.

use std::path::Path;

use ckpt::inspect::{InspectOptions, Inspection, inspect};
use ckpt::{Format, Kind, Source};
use serde_json::{Value, json};

fn inspection(relative: &str, options: &InspectOptions) -> Inspection {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(relative);
    let source = Source::open(&path).unwrap();
    let checkpoint = source.checkpoint().unwrap();
    inspect(&source, &checkpoint, options, &()).unwrap()
}

#[test]
fn a_training_checkpoint() {
    let options = InspectOptions::default().with_hashes(true);
    let inspection = inspection("ok/torch/checkpoint-2.15-zip.pt", &options);
    assert_eq!(inspection.format, Format::TorchZip);
    assert_eq!(inspection.kind, Kind::Checkpoint);
    assert_eq!(inspection.weights_only, Some(true));
    assert_eq!(inspection.totals.tensors, 27);
    assert_eq!(inspection.totals.parameters, 100);
    assert_eq!(inspection.totals.by_dtype["int64"].bytes, 8);
    assert!(
        inspection
            .load
            .ends_with(r#", weights_only=True)["model"])"#)
    );
    let epoch = &inspection.values[0];
    assert_eq!((epoch.name.as_str(), epoch.repr.as_str()), ("epoch", "7"));

    let json = serde_json::to_value(&inspection).unwrap();
    let keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert!(keys.contains(&"pickle_protocol") && keys.contains(&"totals"));
    assert_eq!(json["format"], "torch-zip");
    assert_eq!(json["kind"], "checkpoint");
    assert_eq!(json["file_size"], 9630);
    assert_eq!(json["keys"][0], "epoch");
    assert_eq!(json["pickle_protocol"], 2);
    assert_eq!(json["records"]["byteorder"], "little");
    let weight = &json["tensors"][0];
    assert_eq!(weight["name"], "model.0.weight");
    assert_eq!(weight["dtype"], "float32");
    assert_eq!(weight["shape"], json!([3, 4]));
    assert_eq!(weight["stride"], json!([4, 1]));
    assert_eq!(weight["parameters"], 12);
    assert_eq!(weight["sha256"].as_str().unwrap().len(), 64);
    // Optional fields are left out, not null.
    assert!(weight.get("files").is_none() && weight.get("q_scale").is_none());
    // Values: exact big integers, NaN as text, `type` for the Python type, no `repr`.
    let value = |name: &str| -> Value {
        json["values"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(
        value("epoch"),
        json!({"name": "epoch", "type": "int", "value": 7})
    );
    assert_eq!(value("nan")["value"], "nan");
    assert_eq!(value("complex")["value"], json!([1.0, 2.0]));
    let text = serde_json::to_string(&inspection).unwrap();
    assert!(text.contains(r#""name":"big","type":"int","value":1208925819614629174706176}"#));
    assert_eq!(
        json["totals"]["by_dtype"]["float32"],
        json!({"tensors": 26, "parameters": 99, "bytes": 396})
    );
}

#[test]
fn hashes_only_when_asked() {
    let inspection = inspection("ok/tiny-mlp.safetensors", &InspectOptions::default());
    assert!(inspection.tensors.iter().all(|t| t.sha256.is_none()));
    let json = serde_json::to_value(&inspection).unwrap();
    assert!(json["tensors"][0].get("sha256").is_none());
    assert_eq!(json["weights_only"], Value::Null);
    assert_eq!(json["metadata"], json!({"format": "pt"}));
}
