//! ONNX bytes → model (decode, external-data locations checked) → graph → every constant's
//! value: what every command does with `--input_network` before it runs anything.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;

/// The model's folder, with a small external-data file that seeds may point into
/// (`location = "w.bin"`).
static MODEL: LazyLock<std::path::PathBuf> = LazyLock::new(|| {
    let dir = ptq_fuzz::scratch("onnx_graph");
    std::fs::write(dir.join("w.bin"), (0..64u8).collect::<Vec<_>>()).unwrap();
    dir.join("model.onnx")
});

fuzz_target!(|data: &[u8]| {
    let Ok(loaded) = ptq_onnx::from_bytes(data.to_vec().into(), &MODEL) else { return };
    let Ok(graph) = ptq_ir::Graph::new(&loaded.model, loaded.dir()) else { return };
    for t in graph.tensors().filter(|t| t.is_constant()) {
        let _ = graph.constant(&t.name);
    }
    let _ = graph.op_histogram();
});
