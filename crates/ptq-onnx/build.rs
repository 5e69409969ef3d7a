// Generates the prost types from the vendored onnx.proto without a system `protoc`.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/onnx.proto");
    let fds = protox::compile(["proto/onnx.proto"], ["proto"])?;
    let mut cfg = prost_build::Config::new();
    // `bytes` fields become `bytes::Bytes`, so `raw_data` points into the file buffer (no copy).
    cfg.bytes(["."]);
    cfg.compile_fds(fds)?;
    Ok(())
}
