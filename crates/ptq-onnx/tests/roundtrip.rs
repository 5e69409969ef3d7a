//! Decode → encode is byte-identical on every shared model; external data and bad files.

use std::path::{Path, PathBuf};

use ptq_onnx::proto::{GraphProto, ModelProto, TensorProto};
use ptq_onnx::{Error, build, decode, encode, is_external, load, save, tensor_bytes};

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
    build::f32_external_tensor(name, &[(length / 4) as i64], location, offset as u64, length as u64)
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

fn refusal(location: &str, dir: &Path) -> String {
    let err = tensor_bytes(&external("w", location, 0, 4), dir).unwrap_err().to_string();
    assert!(err.contains("leaves the model's folder") && err.contains("`w`"), "{err}");
    assert!(err.contains(&format!("`{location}`")), "the message names the location: {err}");
    err
}

#[test]
fn external_data_at_an_absolute_path_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("w.bin"), [0u8; 4]).unwrap();
    refusal(&dir.path().join("w.bin").display().to_string(), dir.path());
}

#[test]
fn external_data_up_the_tree_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("model")).unwrap();
    std::fs::write(dir.path().join("w.bin"), [0u8; 4]).unwrap();
    refusal("../w.bin", &dir.path().join("model"));
    refusal("sub/../../w.bin", &dir.path().join("model"));
}

#[cfg(unix)]
#[test]
fn external_data_through_a_symlink_out_of_the_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("model");
    std::fs::create_dir(&model_dir).unwrap();
    std::fs::write(dir.path().join("secret.bin"), [0u8; 4]).unwrap();
    std::os::unix::fs::symlink(dir.path().join("secret.bin"), model_dir.join("w.bin")).unwrap();
    std::os::unix::fs::symlink(dir.path(), model_dir.join("up")).unwrap();
    refusal("w.bin", &model_dir);
    refusal("up/secret.bin", &model_dir);
}

#[cfg(unix)]
#[test]
fn external_data_through_a_symlink_inside_the_folder_is_read() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("data/real.bin"), 1f32.to_le_bytes()).unwrap();
    std::os::unix::fs::symlink("data/real.bin", dir.path().join("w.bin")).unwrap();
    let bytes = tensor_bytes(&external("w", "w.bin", 0, 4), dir.path()).unwrap().unwrap();
    assert_eq!(bytes, &1f32.to_le_bytes()[..]);
}

#[test]
fn load_refuses_a_model_whose_external_data_leaves_its_folder() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.onnx");
    std::fs::write(&path, encode(&model_with(vec![external("deep.w", "../../etc/passwd", 0, 4)]))).unwrap();
    let err = load(&path).unwrap_err().to_string();
    assert!(err.contains("`deep.w`") && err.contains("`../../etc/passwd`"), "{err}");
}

#[test]
fn load_refuses_a_model_whose_external_data_file_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.onnx");
    std::fs::write(&path, encode(&model_with(vec![external("w", "gone.bin", 0, 4)]))).unwrap();
    let err = load(&path).unwrap_err().to_string();
    assert!(err.contains("`w`") && err.contains("gone.bin") && err.contains("cannot be opened"), "{err}");
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
