//! Decode → encode is byte-identical on every shared model; external data and bad files.

use std::path::{Path, PathBuf};

use ptq_onnx::proto::{
    GraphProto, ModelProto, StringStringEntryProto, TensorProto, tensor_proto::DataLocation,
};
use ptq_onnx::{Error, decode, encode, is_external, load, save, tensor_bytes};

fn shared_models() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/models");
    assert!(dir.is_dir(), "the shared model zoo is expected at {}", dir.display());
    dir
}

#[test]
fn every_shared_model_round_trips_byte_identically() {
    let mut count = 0;
    for entry in std::fs::read_dir(shared_models()).unwrap() {
        let path = entry.unwrap().path().join("model.onnx");
        if !path.exists() {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let model = decode(bytes.clone().into(), &path).unwrap();
        assert!(encode(&model) == bytes, "{} changed in a round trip", path.display());
        count += 1;
    }
    assert!(count >= 5, "found only {count} shared models");
}

fn model_with(tensors: Vec<TensorProto>) -> ModelProto {
    ModelProto {
        ir_version: Some(8),
        graph: Some(GraphProto { initializer: tensors, ..Default::default() }),
        ..Default::default()
    }
}

fn external(name: &str, location: &str, offset: usize, length: usize) -> TensorProto {
    let kv = |k: &str, v: String| StringStringEntryProto { key: Some(k.into()), value: Some(v) };
    TensorProto {
        name: Some(name.into()),
        dims: vec![(length / 4) as i64],
        data_type: Some(1),
        data_location: Some(DataLocation::External as i32),
        external_data: vec![
            kv("location", location.into()),
            kv("offset", offset.to_string()),
            kv("length", length.to_string()),
        ],
        ..Default::default()
    }
}

#[test]
fn external_data_is_read_and_written_beside_the_output() {
    let src = tempfile::tempdir().unwrap();
    let payload: Vec<u8> = (0..64u8).collect();
    std::fs::write(src.path().join("weights.bin"), &payload).unwrap();
    let model = model_with(vec![external("a", "weights.bin", 0, 32), external("b", "weights.bin", 32, 32)]);
    let a = &model.graph.as_ref().unwrap().initializer[0];
    assert_eq!(tensor_bytes(a, src.path()).unwrap().unwrap(), &payload[..32]);

    let dst = tempfile::tempdir().unwrap();
    let out = dst.path().join("copy.onnx");
    save(&model, src.path(), &out).unwrap();
    let loaded = load(&out).unwrap();
    let init = &loaded.model.graph.as_ref().unwrap().initializer;
    assert!(init.iter().all(is_external));
    assert_eq!(tensor_bytes(&init[0], loaded.dir()).unwrap().unwrap(), &payload[..32]);
    assert_eq!(tensor_bytes(&init[1], loaded.dir()).unwrap().unwrap(), &payload[32..]);
    assert!(dst.path().join("copy.onnx.data").exists());
}

#[test]
fn external_data_outside_the_model_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for location in ["../x.bin", "/etc/passwd"] {
        let t = external("w", location, 0, 4);
        let err = tensor_bytes(&t, dir.path()).unwrap_err().to_string();
        assert!(err.contains("leaves the model's folder") && err.contains("`w`"), "{err}");
    }
}

#[test]
fn external_data_past_the_end_of_its_file_names_both_sizes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("w.bin"), [0u8; 8]).unwrap();
    let err = tensor_bytes(&external("w", "w.bin", 4, 8), dir.path()).unwrap_err().to_string();
    assert!(err.contains("4..12") && err.contains("8 bytes"), "{err}");
}

#[test]
fn a_text_file_is_not_an_onnx_model() {
    let err = decode(b"hello, this is text\n".to_vec().into(), Path::new("notes.txt")).unwrap_err();
    assert!(matches!(err, Error::NotOnnx { .. }), "{err}");
    assert!(err.to_string().contains("notes.txt"));
    let err = decode(Vec::new().into(), Path::new("empty.onnx")).unwrap_err();
    assert!(err.to_string().contains("empty"), "{err}");
}

#[test]
fn a_truncated_model_is_reported_as_corrupt() {
    let path = shared_models().join("digits_cnn/model.onnx");
    let bytes = std::fs::read(&path).unwrap();
    let err = decode(bytes[..bytes.len() / 2].to_vec().into(), Path::new("half.onnx")).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("half.onnx"), "{err}");
}

#[test]
fn save_under_a_regular_file_fails_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain");
    std::fs::write(&file, b"x").unwrap();
    let err = save(&model_with(vec![]), dir.path(), &file.join("out.onnx")).unwrap_err();
    assert!(err.to_string().contains("plain/out.onnx"), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}
