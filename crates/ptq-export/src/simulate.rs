//! The model ptq's engine runs to simulate the quantized one (DESIGN.md "Engine").

use std::collections::BTreeMap;

use ptq_ir::{Graph, Patch, int_attribute};
use ptq_onnx::proto::{ModelProto, NodeProto};
use ptq_quant::{Encoding, Kind};

use crate::qdq::{after_producer, float16, remove_constant};
use crate::values::{dequantized, float_constant, float_tensor, quantized, scale_and_zero_point};
use crate::{Encodings, Error};

/// The ONNX domain of ptq's FakeQuant operator (implemented by ptq-engine).
pub const FAKE_QUANT_DOMAIN: &str = "ai.ptq";

/// A simulation model and, for each tensor of the original graph, the name under which its
/// simulated value can be observed.
pub struct Simulation {
    pub model: ModelProto,
    pub observe_as: BTreeMap<String, String>,
}

/// `model` with FakeQuant after every quantized activation and every quantized constant replaced
/// by the values a runtime dequantizes — numerically what the QDQ model computes.
pub fn simulation_model(
    model: &ModelProto,
    graph: &Graph,
    encodings: &Encodings,
) -> Result<Simulation, Error> {
    let mut patch = Patch::new();
    let mut observe_as = BTreeMap::new();
    for (name, t) in &encodings.tensors {
        let e = &t.encoding;
        if t.kind == Kind::Param || graph.tensor(name).is_some_and(|i| i.is_constant()) {
            let (values, shape) = float_constant(graph, name)?;
            let baked = dequantized(&quantized(&values, &shape, e), &shape, e);
            remove_constant(graph, &mut patch, name);
            patch.add_initializer(float_tensor(name, &shape, &baked));
        } else {
            let sim = fake_quant(graph, &mut patch, name, e);
            observe_as.insert(name.clone(), sim);
        }
    }
    for (name, f) in &encodings.floats {
        if f.bitwidth == 16 {
            observe_as.insert(name.clone(), float16(graph, &mut patch, name));
        }
    }
    patch.set_opset(FAKE_QUANT_DOMAIN, 1);
    Ok(Simulation { model: patch.apply(model)?, observe_as })
}

fn fake_quant(graph: &Graph, patch: &mut Patch, name: &str, e: &Encoding) -> String {
    let (scale, zp) = scale_and_zero_point(name, e, true);
    let sim = format!("{name}_ptq_sim");
    let (lo, hi) = e.storage_range();
    let mut attribute = vec![int_attribute("qmin", lo), int_attribute("qmax", hi)];
    if let Some(axis) = e.axis {
        attribute.push(int_attribute("axis", axis as i64));
    }
    let node = NodeProto {
        name: Some(format!("{name}_ptq_fq")),
        op_type: Some("FakeQuant".into()),
        domain: Some(FAKE_QUANT_DOMAIN.into()),
        input: vec![name.to_owned(), scale.name().to_owned(), zp.name().to_owned()],
        output: vec![sim.clone()],
        attribute,
        ..Default::default()
    };
    patch.replace_uses(graph, name, &sim).add_initializer(scale).add_initializer(zp);
    patch.insert_after(after_producer(graph, name), node);
    sim
}
