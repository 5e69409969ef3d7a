//! Op rules (spec §5): which tensors get an encoding, which share one, which are weights or biases.
//!
//! The result is a [`Layout`]: every tensor that will carry an encoding, in classes of tensors
//! that share one encoding (data-invariant ops, spec §5.2), plus the Concat-like groups that
//! DESIGN.md Decision 10 merges after calibration when their ranges allow it.

use std::collections::{BTreeMap, BTreeSet};

use ptq_ir::{DataType, Graph, Node};

use crate::patterns::Precision;

/// How a tensor's encoding is obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Member of an activation class: its range comes from data (or constant values) and is
    /// shared by the class.
    Activation { class: usize },
    /// A constant weight of a Conv/ConvTranspose/Gemm/MatMul, with the axis of its output
    /// channels (per-channel / per-row when asked for).
    Weight { channel_axis: usize, per_channel: bool },
    /// A bias, derived from the scales of the layer's input and weight; `row_layer` for
    /// Gemm/MatMul, whose per-row weights give per-row biases only when asked for.
    Bias { input: String, weight: String, row_layer: bool },
}

/// A set of tensors sharing one activation encoding.
#[derive(Debug, Clone, PartialEq)]
pub struct Class {
    /// Members in topological order; the first is the root (its producer computes the values).
    pub members: Vec<String>,
    /// `Some` when the range is fixed by the op (Softmax, Sigmoid: [0, 1]) rather than observed.
    pub fixed_range: Option<(f64, f64)>,
}

/// Tensors whose classes may merge into one encoding after calibration (Decision 10).
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// The node that forms the group (Concat, Where, Max, Min).
    pub node: String,
    pub classes: Vec<usize>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Layout {
    pub roles: BTreeMap<String, Role>,
    pub classes: Vec<Class>,
    pub groups: Vec<Group>,
    /// Op outputs left without an encoding because the activation after them fuses with the op.
    pub fused: Vec<String>,
    /// Classes taken off the default activation spec by [`crate::patterns`] (float, or their
    /// own bitwidth), by class index.
    pub own_precision: BTreeMap<usize, Precision>,
}

/// The multiply-accumulate layers: their first two inputs are the MACs' operands, whose
/// bitwidths are the MACs' (the precision shares, and what the patterns keep at 8 bit).
pub const MAC_OPS: [&str; 4] = ["Conv", "ConvTranspose", "Gemm", "MatMul"];

/// What the rules need from the command line.
#[derive(Debug, Clone, Copy, Default)]
pub struct RuleOptions {
    pub per_channel: bool,
    pub per_row: bool,
}

/// Ops whose output holds exactly input 0's values, each once, rearranged: every statistic of
/// the output (range, histogram) is the input's.
pub const REARRANGING: [&str; 8] =
    ["Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Identity", "DepthToSpace", "SpaceToDepth"];

/// Ops whose output is a selection or rearrangement of input 0's values (spec §5.2).
const DATA_INVARIANT: &[&str] = &[
    "Reshape",
    "Transpose",
    "Squeeze",
    "Unsqueeze",
    "Flatten",
    "Identity",
    "Slice",
    "Split",
    "Tile",
    "Expand",
    "Gather",
    "GatherND",
    "GatherElements",
    "MaxPool",
    "ReduceMax",
    "ReduceMin",
    "TopK",
    "DepthToSpace",
    "SpaceToDepth",
    "Dropout",
    "Cast",
    "Pad",
    "Resize",
    "Upsample",
];

/// Ops whose inputs and output form one group (Decision 10), with the data inputs that join it.
fn group_inputs(node: &Node) -> Option<Vec<usize>> {
    match node.op_type.as_str() {
        "Concat" | "Max" | "Min" => Some((0..node.inputs.len()).collect()),
        "Where" => Some(vec![1, 2]),
        _ => None,
    }
}

/// Activation → fused consumer pairs whose inner edge carries no quantizer (spec §5.3).
fn fuses_into(producer: &str, consumer: &str) -> bool {
    matches!(
        (producer, consumer),
        ("Conv", "Relu") | ("Conv", "Clip") | ("ConvTranspose", "Relu") | ("Add", "Relu") | ("Gemm", "Relu")
    )
}

/// Inputs of an op that carry data to quantize; the others (shapes, scales, bounds, exponents,
/// normalisation statistics) stay as they are.
fn data_inputs(node: &Node) -> Vec<usize> {
    let all = || (0..node.inputs.len()).collect();
    match node.op_type.as_str() {
        "Clip" | "Resize" | "Upsample" | "Pad" | "Pow" | "BatchNormalization" | "Reshape" | "Expand"
        | "Tile" | "Slice" | "Squeeze" | "Unsqueeze" | "Split" | "TopK" | "Dropout" | "ReduceMax"
        | "ReduceMin" | "ReduceMean" | "ReduceSum" | "GatherND" | "GatherElements" => vec![0],
        "Gather" => vec![0],
        "Where" => vec![1, 2],
        // LSTM/GRU/RNN: X, W, R, B and the initial states; sequence_lens (4) is an integer.
        "LSTM" | "GRU" | "RNN" => vec![0, 1, 2, 3, 5, 6],
        _ => all(),
    }
}

/// The constant weights of a layer and how they are quantized.
struct Slots {
    weights: &'static [usize],
    bias: Option<usize>,
    /// The weights' output-channel (or gate-row) axis.
    axis: usize,
    /// Whether one encoding per channel was asked for.
    per_channel: bool,
}

fn weight_slots(node: &Node, graph: &Graph, opts: RuleOptions) -> Option<Slots> {
    let slots = |bias, axis, per_channel| Slots { weights: &[1], bias, axis, per_channel };
    match node.op_type.as_str() {
        "Conv" => Some(slots(Some(2), 0, opts.per_channel)),
        // ConvTranspose weights are [I, O/g, kH, kW]: output channels on axis 1.
        "ConvTranspose" => Some(slots(Some(2), 1, opts.per_channel)),
        "Gemm" => {
            Some(slots(Some(2), if graph.int_attr(node, "transB") == Some(1) { 0 } else { 1 }, opts.per_row))
        }
        "MatMul" => {
            let rank = graph.tensor(node.inputs.get(1)?)?.shape.as_ref()?.len();
            (rank == 2).then_some(slots(None, 1, opts.per_row))
        }
        // W [dirs, gates·H, in] and R [dirs, gates·H, H] are fully connected layers per gate row;
        // B adds the input and recurrent biases of two differently scaled products, so it stays
        // a constant with its own range.
        "LSTM" | "GRU" | "RNN" => {
            Some(Slots { weights: &[1, 2], bias: None, axis: 1, per_channel: opts.per_row })
        }
        _ => None,
    }
}

/// The output-channel axis of a layer weight (spec §3.2 Granularities): Conv 0, ConvTranspose
/// 1, Gemm 0 or 1 by `transB`, MatMul 1, LSTM/GRU/RNN 1 (gate rows).
pub fn weight_axis(graph: &Graph, weight: &str) -> Option<usize> {
    graph.consumers(weight).find_map(|layer| {
        let slots = weight_slots(layer, graph, RuleOptions::default())?;
        slots.weights.iter().any(|&w| layer.inputs.get(w).is_some_and(|i| i == weight)).then_some(slots.axis)
    })
}

fn is_constant(graph: &Graph, name: &str) -> bool {
    graph.tensor(name).is_some_and(|t| t.is_constant())
}

/// A tensor that can hold float data as far as the model declares (unknown types count: the
/// engine reports the real type during calibration, and non-float tensors are dropped then).
fn maybe_float(graph: &Graph, name: &str) -> bool {
    !name.is_empty() && graph.tensor(name).is_some_and(|t| t.dtype.is_none_or(|d| d == DataType::Float))
}

/// Assigns roles to every tensor of `graph` (spec §5.1–§5.3, DESIGN.md Decision 10).
///
/// `keep` names tensors that carry a given encoding (overrides, QAT): they are never fused
/// away, so a model quantized elsewhere keeps an encoding wherever it had one.
pub fn layout(graph: &Graph, opts: RuleOptions, keep: &dyn Fn(&str) -> bool) -> Layout {
    let mut b = Builder::default();
    for input in &graph.inputs {
        if maybe_float(graph, input) {
            b.new_class(input, None);
        }
    }
    for node in graph.nodes() {
        if node.op_type == "Constant" {
            continue;
        }
        let weights = weight_slots(node, graph, opts);
        let wanted: BTreeSet<usize> = data_inputs(node).into_iter().collect();
        for (slot, input) in node.inputs.iter().enumerate() {
            if !wanted.contains(&slot) || !maybe_float(graph, input) || b.roles.contains_key(input) {
                continue;
            }
            match &weights {
                Some(s) if s.weights.contains(&slot) && is_constant(graph, input) => {
                    b.roles.insert(
                        input.clone(),
                        Role::Weight { channel_axis: s.axis, per_channel: s.per_channel },
                    );
                }
                Some(s) if s.bias == Some(slot) && is_constant(graph, input) => {
                    let role = Role::Bias {
                        input: node.inputs[0].clone(),
                        weight: node.inputs[s.weights[0]].clone(),
                        row_layer: node.op_type == "Gemm",
                    };
                    b.roles.insert(input.clone(), role);
                }
                _ if node.op_type == "Add"
                    && is_constant(graph, input)
                    && linear_bias(graph, node, keep).is_some() =>
                {
                    let (matmul, _) = linear_bias(graph, node, keep).expect("checked");
                    let role = Role::Bias {
                        input: matmul.inputs[0].clone(),
                        weight: matmul.inputs[1].clone(),
                        row_layer: true,
                    };
                    b.roles.insert(input.clone(), role);
                }
                // Other constants read by quantized ops are quantized like activations (spec §5.1).
                _ if is_constant(graph, input) => {
                    b.new_class(input, None);
                }
                // An activation nobody encoded (its producer fused into this op): nothing to do.
                _ => {}
            }
        }
        let outputs: Vec<&String> = node.outputs.iter().filter(|o| maybe_float(graph, o)).collect();
        if DATA_INVARIANT.contains(&node.op_type.as_str()) {
            let shared = node.inputs.first().and_then(|i| b.class_of(i));
            for out in outputs {
                match shared {
                    Some(class) => b.join(out, class),
                    // The input carries no encoding (e.g. an integer tensor cast to float).
                    None => {
                        b.new_class(out, None);
                    }
                }
            }
            continue;
        }
        let fixed = matches!(node.op_type.as_str(), "Softmax" | "Sigmoid").then_some((0.0, 1.0));
        for out in outputs {
            if fused_away(graph, node, out, keep) {
                b.fused.push(out.clone());
                continue;
            }
            b.new_class(out, fixed);
        }
        if let Some(slots) = group_inputs(node) {
            let mut classes: Vec<usize> =
                slots.iter().filter_map(|&s| node.inputs.get(s)).filter_map(|i| b.class_of(i)).collect();
            classes.extend(node.outputs.first().and_then(|o| b.class_of(o)));
            classes.dedup();
            if classes.len() > 1 {
                b.groups.push(Group { node: node.display_name(), classes });
            }
        }
    }
    Layout { roles: b.roles, classes: b.classes, groups: b.groups, fused: b.fused, ..Layout::default() }
}

/// For an Add of a constant vector to a MatMul with constant weights (a fully connected layer
/// as exporters write it; QNN converts it to FullyConnected): the MatMul and the bias.
fn linear_bias<'a>(graph: &'a Graph, add: &Node, keep: &dyn Fn(&str) -> bool) -> Option<(&'a Node, String)> {
    let [a, b] = &add.inputs[..] else { return None };
    let (product, bias) = if is_constant(graph, b) { (a, b) } else { (b, a) };
    if keep(product) {
        return None;
    }
    let matmul = graph.producer(product).filter(|m| m.op_type == "MatMul")?;
    let weight = graph.tensor(matmul.inputs.get(1)?)?;
    let columns = weight.shape.as_ref().filter(|s| s.len() == 2)?[1].fixed()?;
    let bias_shape = graph.tensor(bias)?.shape.clone()?;
    let bias_len: Option<usize> = bias_shape.iter().map(|d| d.fixed()).product();
    let single_reader = graph.consumers(product).count() == 1 && !graph.outputs.iter().any(|o| o == product);
    (weight.is_constant() && bias_len == Some(columns) && bias_shape.len() == 1 && single_reader)
        .then(|| (matmul, bias.clone()))
}

/// The output of a Conv-like op read only by the activation that fuses with it (spec §5.3),
/// or of a MatMul whose bias Add completes a fully connected layer.
fn fused_away(graph: &Graph, node: &Node, out: &str, keep: &dyn Fn(&str) -> bool) -> bool {
    if graph.outputs.iter().any(|o| o == out) || keep(out) {
        return false;
    }
    let bias_add = graph.consumers(out).next().filter(|add| add.op_type == "Add");
    if node.op_type == "MatMul" && bias_add.is_some_and(|add| linear_bias(graph, add, keep).is_some()) {
        return true;
    }
    let mut readers = graph.consumers(out);
    match (readers.next(), readers.next()) {
        (Some(only), None) => {
            fuses_into(&node.op_type, &only.op_type) && only.inputs.first().is_some_and(|i| i == out)
        }
        _ => false,
    }
}

#[derive(Default)]
struct Builder {
    roles: BTreeMap<String, Role>,
    classes: Vec<Class>,
    groups: Vec<Group>,
    fused: Vec<String>,
}

impl Builder {
    fn new_class(&mut self, tensor: &str, fixed_range: Option<(f64, f64)>) -> usize {
        let class = self.classes.len();
        self.classes.push(Class { members: vec![tensor.to_owned()], fixed_range });
        self.roles.insert(tensor.to_owned(), Role::Activation { class });
        class
    }

    fn join(&mut self, tensor: &str, class: usize) {
        self.classes[class].members.push(tensor.to_owned());
        self.roles.insert(tensor.to_owned(), Role::Activation { class });
    }

    fn class_of(&self, tensor: &str) -> Option<usize> {
        match self.roles.get(tensor) {
            Some(Role::Activation { class }) => Some(*class),
            _ => None,
        }
    }
}
