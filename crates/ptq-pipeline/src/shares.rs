//! How much of a quantized model runs at which precision: the multiply-accumulates of its
//! layers (Conv, ConvTranspose, Gemm, MatMul) and its activation tensors, float or by bitwidth.
//! What a pattern's own precision costs is read here (issue 15: ≥ 95 % of MACs at 8 bit).

use std::collections::{BTreeMap, BTreeSet};

use ptq_ir::{Graph, Node};
use ptq_quant::rules::MAC_OPS;
use ptq_quant::{Encodings, Kind, MinMax};

/// A precision, ordered from the cheapest: integer bitwidths, then float.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum At {
    Int(u8),
    Float,
}

impl At {
    /// The report's name for it: `int8`, `int16`, `float`.
    pub fn key(self) -> String {
        match self {
            At::Int(bits) => format!("int{bits}"),
            At::Float => "float".into(),
        }
    }

    /// The summary's words for it: `at 8 bit`, `float`.
    pub fn label(self) -> String {
        match self {
            At::Int(bits) => format!("at {bits} bit"),
            At::Float => "float".into(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Shares {
    /// Multiply-accumulates per precision of the layer's operands (the widest of its input and
    /// weight; float when either has no integer encoding).
    pub macs: BTreeMap<At, u64>,
    /// Layers whose shapes type inference left open: their MACs are not counted.
    pub uncounted: Vec<String>,
    /// Float activation tensors of the model per precision (an encoding's bitwidth, or float).
    pub activations: BTreeMap<At, usize>,
}

impl Shares {
    /// The fraction of all counted MACs at `at` (0 when there are none).
    pub fn mac_share(&self, at: At) -> f64 {
        fraction(self.macs.get(&at).copied().unwrap_or(0) as f64, self.macs.values().sum::<u64>() as f64)
    }

    /// The fraction of activation tensors at `at`.
    pub fn activation_share(&self, at: At) -> f64 {
        let all: usize = self.activations.values().sum();
        fraction(self.activations.get(&at).copied().unwrap_or(0) as f64, all as f64)
    }
}

fn fraction(part: f64, all: f64) -> f64 {
    if all > 0.0 { part / all } else { 0.0 }
}

/// The shares of `encodings` over `graph`, whose tensor shapes `shapes` gives (type inference
/// for the bound inputs); `observed` are the float activations calibration saw (some of which
/// got no encoding).
pub fn shares(
    graph: &Graph,
    shapes: &BTreeMap<String, Vec<usize>>,
    encodings: &Encodings,
    observed: &BTreeMap<String, MinMax>,
) -> Shares {
    let mut out = Shares::default();
    let at = |tensor: &str| encodings.get(tensor).map_or(At::Float, |e| At::Int(e.bitwidth));
    let shape = |tensor: &str| -> Option<Vec<usize>> {
        shapes
            .get(tensor)
            .cloned()
            .or_else(|| graph.tensor(tensor)?.shape.as_ref()?.iter().map(|d| d.fixed()).collect())
    };
    for node in graph.nodes() {
        if !MAC_OPS.contains(&node.op_type.as_str()) {
            continue;
        }
        let Some(macs) = macs(graph, node, &shape) else {
            out.uncounted.push(node.display_name());
            continue;
        };
        let operands = node.inputs.iter().take(2).map(|i| at(i)).max().unwrap_or(At::Float);
        *out.macs.entry(operands).or_default() += macs;
    }
    let constant = |t: &str| graph.tensor(t).is_some_and(|t| t.is_constant());
    let mut activations: BTreeSet<&String> = observed.keys().filter(|t| !constant(t)).collect();
    activations.extend(encodings.tensors.iter().filter(|(_, t)| t.kind == Kind::Activation).map(|(n, _)| n));
    activations.extend(encodings.floats.iter().filter(|(_, f)| f.kind == Kind::Activation).map(|(n, _)| n));
    for t in activations {
        *out.activations.entry(at(t)).or_default() += 1;
    }
    out
}

/// A layer's multiply-accumulates for one run: each output element sums one product per
/// input channel (of its group) and kernel position; a transposed conv scatters each input
/// element into `C_out/g · kernel` outputs.
fn macs(graph: &Graph, node: &Node, shape: &dyn Fn(&str) -> Option<Vec<usize>>) -> Option<u64> {
    let product = |s: &[usize]| s.iter().map(|&d| d as u64).product::<u64>();
    let input = |k: usize| shape(node.inputs.get(k)?);
    let out = shape(node.outputs.first()?)?;
    match node.op_type.as_str() {
        "Conv" => Some(product(&out) * product(input(1)?.get(1..)?)),
        "ConvTranspose" => Some(product(&input(0)?) * product(input(1)?.get(1..)?)),
        "Gemm" => {
            let a = input(0)?;
            let k = if graph.int_attr(node, "transA") == Some(1) { a.first()? } else { a.get(1)? };
            Some(product(&out) * *k as u64)
        }
        "MatMul" => Some(product(&out) * *input(0)?.last()? as u64),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use ptq_onnx::build::{self, FLOAT};
    use ptq_quant::{Encoding, Origin, QuantSpec, Schema, TensorEncoding};

    use super::*;

    /// A 3×3 conv 2→4 channels on 5×5 (padding 1) and a MatMul [5,4]·[4,3]: 4·25·(2·9) = 1800 and
    /// 5·3·4 = 60 MACs; the MatMul reads a 16-bit input.
    #[test]
    fn macs_follow_the_widest_operand() {
        let m = build::model(
            13,
            vec![
                build::node("Conv", "conv", &["x", "w"], &["y"]),
                build::node("MatMul", "mm", &["a", "b"], &["z"]),
            ],
            vec![build::tensor_value("x", FLOAT, &[1, 2, 5, 5]), build::tensor_value("a", FLOAT, &[5, 4])],
            vec![build::tensor_value("y", FLOAT, &[1, 4, 5, 5]), build::tensor_value("z", FLOAT, &[5, 3])],
            vec![
                build::f32_tensor("w", &[4, 2, 3, 3], &[0.1; 72]),
                build::f32_tensor("b", &[4, 3], &[0.1; 12]),
            ],
        );
        let g = Graph::new(&m, Path::new(".")).unwrap();
        let encoding = |bits, kind| TensorEncoding {
            kind,
            encoding: Encoding::from_range(
                0.0,
                1.0,
                &QuantSpec::new(bits, Schema::Asymmetric),
                Origin::Calibrated,
            ),
        };
        let mut e = Encodings::default();
        for (t, bits, kind) in [
            ("x", 8, Kind::Activation),
            ("w", 8, Kind::Param),
            ("y", 8, Kind::Activation),
            ("a", 16, Kind::Activation),
            ("b", 8, Kind::Param),
        ] {
            e.tensors.insert(t.into(), encoding(bits, kind));
        }
        let s = shares(&g, &BTreeMap::new(), &e, &BTreeMap::new());
        assert_eq!(s.macs, BTreeMap::from([(At::Int(8), 1800), (At::Int(16), 60)]));
        assert!((s.mac_share(At::Int(8)) - 1800.0 / 1860.0).abs() < 1e-12);
        // Without an encoding on its input the MatMul runs in float; z has no encoding either.
        e.tensors.remove("a");
        let s = shares(&g, &BTreeMap::new(), &e, &BTreeMap::new());
        assert_eq!(s.macs.get(&At::Float), Some(&60));
        assert_eq!(s.activations, BTreeMap::from([(At::Int(8), 2)]));
    }
}
