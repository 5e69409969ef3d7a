//! ptq's FakeQuant on the engine: a 16×256×256 activation per tensor (uint8) and per channel
//! (int8, axis 1), the kernel every simulated run spends its quantization time in.

use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ptq_data::BoundInput;
use ptq_engine::{Engine, TractEngine};
use ptq_ir::{DataType, Tensor, int_attribute};
use ptq_onnx::build::{self, FLOAT, f32_tensor_float_data, node, opset, tensor_value};

const SHAPE: [usize; 4] = [1, 16, 256, 256];

/// `x → FakeQuant → y` with `channels` scales on axis 1 (1: per tensor).
fn engine(channels: usize, qmin: i64, qmax: i64) -> TractEngine {
    let mut fq = node("FakeQuant", "fq", &["x", "scale", "zp"], &["y"]);
    fq.domain = Some("ai.ptq".into());
    fq.attribute = vec![int_attribute("qmin", qmin), int_attribute("qmax", qmax), int_attribute("axis", 1)];
    let dims: Vec<i64> = SHAPE.iter().map(|&d| d as i64).collect();
    let param = if channels == 1 { vec![] } else { vec![channels as i64] };
    let zp = if qmin < 0 { 0.0 } else { 128.0 };
    let mut model = build::model(
        13,
        vec![fq],
        vec![tensor_value("x", FLOAT, &dims)],
        vec![tensor_value("y", FLOAT, &dims)],
        vec![
            f32_tensor_float_data("scale", &param, &vec![0.04; channels]),
            f32_tensor_float_data("zp", &param, &vec![zp; channels]),
        ],
    );
    model.opset_import.push(opset("ai.ptq", 1));
    let inputs = [BoundInput { name: "x".into(), dtype: DataType::Float, shape: SHAPE.to_vec() }];
    TractEngine::new(&ptq_onnx::encode(&model), Path::new("."), &inputs, &["y".to_string()]).unwrap()
}

fn fake_quant(c: &mut Criterion) {
    let n: usize = SHAPE.iter().product();
    let x =
        Tensor::from_f32(SHAPE.to_vec(), &(0..n).map(|i| (i % 1000) as f32 * 0.01 - 5.0).collect::<Vec<_>>());
    let mut g = c.benchmark_group("FakeQuant 16×256×256");
    g.throughput(Throughput::Elements(n as u64));
    for (what, e) in [("per tensor uint8", engine(1, 0, 255)), ("per channel int8", engine(16, -128, 127))] {
        let mut runner = e.runner().unwrap();
        g.bench_function(what, |b| b.iter(|| runner.run(std::slice::from_ref(&x)).unwrap()));
    }
    g.finish();
}

criterion_group!(benches, fake_quant);
criterion_main!(benches);
