//! Opset conversion of the default ONNX domain (DESIGN.md, Decision 3).
//!
//! [`upgrade_opset`] walks every node of the default domain (`""` / `"ai.onnx"`) through each
//! opset at which its operator's schema changed between the model's opset and the target, and
//! applies the rule ptq has for that change (`rules.rs`): either "nothing to do" (the operator
//! only gained types, optional inputs, or attributes whose defaults keep the old behaviour) or a
//! rewrite (an attribute becoming an input, Softmax's axis semantics, Upsample becoming Resize,
//! ...). A change ptq has no rule for is refused by name. The edits go through one [`Patch`], so
//! everything the conversion does not touch stays byte-identical.

mod history;
pub(crate) use history::MAX_OPSET;
mod rules;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use ptq_onnx::proto::attribute_proto::AttributeType;
use ptq_onnx::proto::{AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto};

use crate::{DataType, Error, Graph, Patch, Tensor};

/// Converts the model's default ONNX domain from its opset to `target`.
///
/// Every node whose operator changed in between is rewritten per the ONNX operator changelog;
/// other domains are untouched. A model already at or above `target` is returned unchanged. The
/// IR version is raised to at least the one ONNX released with `target` (10 for opset 21).
/// Fails, naming every node concerned, when a node's operator changed in a way ptq does not know
/// how to convert, or when the conversion needs facts (a rank, an element type, a constant
/// value) the model does not declare.
pub fn upgrade_opset(model: &ModelProto, model_dir: &Path, target: i64) -> Result<ModelProto, Error> {
    let import = model.opset_import.iter().find(|o| is_default_domain(o.domain()));
    let from = import.map(|o| o.version());
    if from.is_some_and(|f| f >= target) {
        return Ok(model.clone());
    }
    let from = from.unwrap_or(0);
    let refuse_all = |detail: String| Err(Error::Opset { from, to: target, detail });
    if target > history::MAX_OPSET {
        return refuse_all(format!(
            "ptq knows the ONNX operators up to opset {}; choose a target at or below it",
            history::MAX_OPSET
        ));
    }
    let graph = Graph::new(model, model_dir)?;
    let Some(proto) = model.graph.as_ref() else {
        return Err(Error::NoSuchTensor("<graph>".into()));
    };
    let ir_version = model.ir_version().max(history::ir_version_for(target));
    let mut cx = Cx {
        graph: &graph,
        target,
        constants_as_nodes: ir_version < 4,
        names: used_names(proto),
        patch: Patch::new(),
        refusals: Refusals::default(),
    };

    for index in 0..proto.node.len() {
        let node = &proto.node[index];
        if !is_default_domain(node.domain()) {
            continue;
        }
        if from == 0 {
            cx.refusals.add(node, "the model does not import the default ONNX domain".into());
            continue;
        }
        if let Some(work) = convert_node(&mut cx, node, from) {
            let mut sequence = work.before.into_iter().chain([work.node]).chain(work.after);
            cx.patch.replace_node(index, sequence.next().expect("at least the node itself"));
            for extra in sequence {
                cx.patch.insert_after(Some(index), extra);
            }
        }
        for attr in &node.attribute {
            for g in attr.g.iter().chain(&attr.graphs) {
                check_subgraph(&mut cx.refusals, g, node, from, target);
            }
        }
    }
    for f in &model.functions {
        let Some(fv) = f.opset_import.iter().find(|o| is_default_domain(o.domain())).map(|o| o.version())
        else {
            continue;
        };
        for n in f.node.iter().filter(|n| is_default_domain(n.domain())) {
            let changed =
                history::versions(n.op_type()).is_none_or(|v| v.iter().any(|&c| c > fv && c <= target));
            if fv != target && changed {
                cx.refusals.add_named(
                    &format!("`{}` (in model-local function `{}`)", display(n), f.name()),
                    n.op_type(),
                    format!(
                        "the function imports opset {fv} and {} changed before opset {target}; \
                         ptq does not convert model-local functions",
                        n.op_type()
                    ),
                );
            }
        }
    }
    if !cx.refusals.is_empty() {
        return refuse_all(cx.refusals.describe(target));
    }
    let domain = import.map(|o| o.domain().to_owned()).unwrap_or_default();
    cx.patch.set_opset(&domain, target);
    if ir_version != model.ir_version() {
        cx.patch.set_ir_version(ir_version);
    }
    cx.patch.apply(model)
}

fn is_default_domain(domain: &str) -> bool {
    domain.is_empty() || domain == "ai.onnx"
}

fn display(n: &NodeProto) -> String {
    if n.name().is_empty() {
        format!("<{} writing {}>", n.op_type(), n.output.first().map(String::as_str).unwrap_or("?"))
    } else {
        n.name().to_owned()
    }
}

/// One node on its way through the versions: the node itself and the nodes that must run right
/// before and after it (all of them take the node's place in the file).
struct Work {
    node: NodeProto,
    before: Vec<NodeProto>,
    after: Vec<NodeProto>,
    /// The node was an Upsample (whose scales are ≥ 1 by definition).
    from_upsample: bool,
}

/// Walks one node from opset `from` to the target; `None` when it needs no edit (or is refused).
fn convert_node(cx: &mut Cx, node: &NodeProto, from: i64) -> Option<Work> {
    let op = node.op_type();
    let Some(history) = history::versions(op) else {
        cx.refusals.add(node, format!("{op} is not an operator of the default ONNX domain"));
        return None;
    };
    if history[0] > from {
        cx.refusals.add(
            node,
            format!("{op} does not exist in opset {from} (ONNX introduced it in opset {})", history[0]),
        );
        return None;
    }
    let mut work = Work { node: node.clone(), before: Vec::new(), after: Vec::new(), from_upsample: false };
    let mut version = from;
    loop {
        let op = work.node.op_type().to_owned();
        let result = match history::deprecated_at(&op).filter(|&d| d <= cx.target) {
            // A deprecated operator is replaced by its successor, in the form of that successor
            // at the opset of the deprecation; the successor's own later changes follow.
            Some(d) => {
                let replace = rules::replacement(&op).expect("every deprecated operator has a rule");
                version = d;
                replace(cx, &mut work)
            }
            None => {
                let history = history::versions(&op).unwrap_or(&[]);
                let Some(&change) = history.iter().find(|&&c| c > version && c <= cx.target) else {
                    break;
                };
                version = change;
                match rules::rule(&op, change) {
                    Some(rules::Rule::Same) => Ok(()),
                    Some(rules::Rule::Rewrite(rewrite)) => rewrite(cx, &mut work),
                    None => Err(format!(
                        "ptq does not know how {op} changed at opset {change} and cannot convert it"
                    )),
                }
            }
        };
        if let Err(reason) = result {
            cx.refusals.add(node, reason);
            return None;
        }
    }
    let unchanged = work.before.is_empty() && work.after.is_empty() && work.node == *node;
    (!unchanged).then_some(work)
}

/// Nodes inside subgraphs (If/Loop/Scan bodies) are not rewritten: they may only hold operators
/// whose changes need no rewrite.
fn check_subgraph(refusals: &mut Refusals, g: &GraphProto, outer: &NodeProto, from: i64, target: i64) {
    for n in &g.node {
        if is_default_domain(n.domain()) {
            let op = n.op_type();
            let problem = match history::versions(op) {
                None => Some(format!("{op} is not an operator of the default ONNX domain")),
                Some(_) if history::deprecated_at(op).is_some_and(|d| d <= target) => {
                    Some(format!("{op} is deprecated by opset {target}"))
                }
                Some(h) => h.iter().filter(|&&c| c > from && c <= target).find_map(|&c| match rules::rule(op, c) {
                    Some(rules::Rule::Same) => None,
                    Some(rules::Rule::Rewrite(_)) => Some(format!(
                        "{op} changed at opset {c} and needs a rewrite, which ptq does not do inside subgraphs"
                    )),
                    None => Some(format!("ptq does not know how {op} changed at opset {c}")),
                }),
            };
            if let Some(reason) = problem {
                refusals.add_named(
                    &format!("`{}` (inside node `{}`)", display(n), display(outer)),
                    op,
                    reason,
                );
            }
        }
        for attr in &n.attribute {
            for inner in attr.g.iter().chain(&attr.graphs) {
                check_subgraph(refusals, inner, outer, from, target);
            }
        }
    }
}

/// Why nodes were refused, grouped by operator and reason.
#[derive(Default)]
struct Refusals(BTreeMap<(String, String), Vec<String>>);

impl Refusals {
    fn add(&mut self, node: &NodeProto, reason: String) {
        self.add_named(&format!("`{}`", display(node)), node.op_type(), reason);
    }

    /// `who` is the node as the message shows it (its name in backticks, and where it is).
    fn add_named(&mut self, who: &str, op: &str, reason: String) {
        let names = self.0.entry((op.to_owned(), reason)).or_default();
        if !names.iter().any(|n| n == who) {
            names.push(who.to_owned());
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn describe(&self, target: i64) -> String {
        let mut parts = Vec::new();
        for ((op, reason), names) in &self.0 {
            let shown: Vec<&str> = names.iter().take(5).map(String::as_str).collect();
            let more = if names.len() > 5 { format!(" and {} more", names.len() - 5) } else { String::new() };
            let noun = if names.len() == 1 { "node" } else { "nodes" };
            parts.push(format!("{noun} {}{more} ({op}): {reason}", shown.join(", ")));
        }
        format!("{}; re-export the model at opset {target} or later instead", parts.join("; "))
    }
}

/// Every name already used in the model (tensors and nodes, subgraphs included).
fn used_names(g: &GraphProto) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    fn walk(g: &GraphProto, names: &mut BTreeSet<String>) {
        names.extend(g.input.iter().chain(&g.output).chain(&g.value_info).map(|v| v.name().to_owned()));
        names.extend(g.initializer.iter().map(|t| t.name().to_owned()));
        for n in &g.node {
            names.insert(n.name().to_owned());
            names.extend(n.input.iter().chain(&n.output).cloned());
            for a in &n.attribute {
                for inner in a.g.iter().chain(&a.graphs) {
                    walk(inner, names);
                }
            }
        }
    }
    walk(g, &mut names);
    names
}

/// What a rule can see and do.
pub(crate) struct Cx<'a> {
    graph: &'a Graph,
    target: i64,
    /// The converted model's IR version is below 4, where every initializer must also be a
    /// graph input: new constants become `Constant` nodes instead.
    constants_as_nodes: bool,
    names: BTreeSet<String>,
    patch: Patch,
    refusals: Refusals,
}

impl Cx<'_> {
    /// `base` if no tensor or node has that name yet, else `base_1`, `base_2`, ...
    fn fresh(&mut self, base: &str) -> String {
        let mut name = base.to_owned();
        let mut i = 0;
        while self.names.contains(&name) {
            i += 1;
            name = format!("{base}_{i}");
        }
        self.names.insert(name.clone());
        name
    }

    /// Adds a constant (an initializer, or a `Constant` node placed before `work`'s node) and
    /// returns its name.
    fn constant(&mut self, work: &mut Work, base: &str, mut tensor: TensorProto) -> String {
        let name = self.fresh(base);
        if self.constants_as_nodes {
            let attr = AttributeProto {
                name: Some("value".into()),
                r#type: Some(AttributeType::Tensor as i32),
                t: Some(tensor),
                ..Default::default()
            };
            let node = NodeProto {
                name: Some(name.clone()),
                op_type: Some("Constant".into()),
                output: vec![name.clone()],
                attribute: vec![attr],
                ..Default::default()
            };
            work.before.push(node);
        } else {
            tensor.name = Some(name.clone());
            self.patch.add_initializer(tensor);
        }
        name
    }

    /// The rank of `tensor`: declared, or declared for a tensor it reaches through operators that
    /// keep the rank (elementwise ones, Softmax, Conv, pooling, Pad, ...), in either direction.
    fn rank(&self, tensor: &str) -> Option<usize> {
        let mut seen = BTreeSet::new();
        self.rank_via(tensor, &mut seen)
    }

    fn rank_via(&self, tensor: &str, seen: &mut BTreeSet<String>) -> Option<usize> {
        if !seen.insert(tensor.to_owned()) || seen.len() > 256 {
            return None;
        }
        let info = self.graph.tensor(tensor)?;
        if let Some(shape) = &info.shape {
            return Some(shape.len());
        }
        let keeps_rank = |n: &crate::Node| {
            is_default_domain(&n.domain) && SAME_RANK_AS_FIRST_INPUT.contains(&n.op_type.as_str())
        };
        if let Some(p) = self.graph.producer(tensor).filter(|p| keeps_rank(p) && p.outputs[0] == tensor)
            && let Some(r) = p.inputs.first().and_then(|i| self.rank_via(i, seen))
        {
            return Some(r);
        }
        let readers: Vec<&crate::Node> = self.graph.consumers(tensor).collect();
        readers
            .into_iter()
            .filter(|c| keeps_rank(c) && c.inputs.first().is_some_and(|i| i == tensor))
            .find_map(|c| self.rank_via(&c.outputs[0], seen))
    }

    /// The value of `tensor` if it is a constant.
    fn value(&self, tensor: &str) -> Option<Tensor> {
        let info = self.graph.tensor(tensor)?;
        if info.is_constant() { self.graph.constant(tensor).ok() } else { None }
    }

    /// Whether any node or graph output reads `tensor`.
    fn is_read(&self, tensor: &str) -> bool {
        self.graph.consumers(tensor).next().is_some() || self.graph.outputs.iter().any(|o| o == tensor)
    }

    /// The element type of `tensor`: declared, or followed back through the operators whose
    /// output has the type of an input (or a fixed type).
    fn dtype(&self, tensor: &str) -> Option<DataType> {
        let mut name = tensor.to_owned();
        for _ in 0..1000 {
            let info = self.graph.tensor(&name)?;
            if let Some(d) = info.dtype {
                return Some(d);
            }
            let producer = self.graph.producer(&name)?;
            let node = &self.graph.proto().node[producer.index];
            if !is_default_domain(node.domain()) {
                return None;
            }
            let slot = node.output.iter().position(|o| *o == name)?;
            let follow = |i: usize| node.input.get(i).filter(|s| !s.is_empty()).cloned();
            let next = match (node.op_type(), slot) {
                ("Cast", _) => return DataType::from_onnx(attr_i(node, "to")? as i32),
                ("Shape" | "Size" | "NonZero" | "ArgMax" | "ArgMin", _) | ("TopK" | "MaxPool", 1) => {
                    return Some(DataType::Int64);
                }
                (
                    "Equal" | "Less" | "Greater" | "LessOrEqual" | "GreaterOrEqual" | "Not" | "And" | "Or"
                    | "Xor" | "IsNaN" | "IsInf",
                    _,
                ) => return Some(DataType::Bool),
                ("ConstantOfShape", _) => {
                    return match attr(node, "value").and_then(|a| a.t.as_ref()) {
                        Some(t) => DataType::from_onnx(t.data_type()),
                        None => Some(DataType::Float),
                    };
                }
                ("Where", 0) => follow(1)?,
                ("DequantizeLinear", 0) => follow(1)?,
                ("Split" | "LSTM" | "GRU" | "RNN", _) => follow(0)?,
                (op, 0) if SAME_TYPE_AS_FIRST_INPUT.contains(&op) => follow(0)?,
                _ => return None,
            };
            name = next;
        }
        None
    }
}

/// Operators whose first output has the element type of their first input.
#[rustfmt::skip]
const SAME_TYPE_AS_FIRST_INPUT: &[&str] = &[
    "Abs", "Acos", "Acosh", "Add", "Asin", "Asinh", "Atan", "Atanh", "AveragePool", "BatchNormalization",
    "Ceil", "Celu", "Clip", "Concat", "Conv", "ConvTranspose", "Cos", "Cosh", "CumSum", "DepthToSpace",
    "Div", "Dropout", "Elu", "Erf", "Exp", "Expand", "Flatten", "Floor", "Gather", "GatherElements",
    "GatherND", "Gelu", "Gemm", "GlobalAveragePool", "GlobalLpPool", "GlobalMaxPool", "GroupNormalization",
    "HardSigmoid", "HardSwish", "Hardmax", "Identity", "InstanceNormalization", "LRN", "LayerNormalization",
    "LeakyRelu", "Log", "LogSoftmax", "LpNormalization", "LpPool", "MatMul", "Max", "MaxPool", "Mean",
    "Min", "Mish", "Mod", "Mul", "Neg", "PRelu", "Pad", "Pow", "Reciprocal", "ReduceL1", "ReduceL2",
    "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean", "ReduceMin", "ReduceProd", "ReduceSum",
    "ReduceSumSquare", "Relu", "Reshape", "Resize", "ReverseSequence", "Round", "ScatterElements",
    "ScatterND", "Selu", "Shrink", "Sigmoid", "Sign", "Sin", "Sinh", "Slice", "Softmax", "Softplus",
    "Softsign", "SpaceToDepth", "Sqrt", "Squeeze", "Sub", "Sum", "Tan", "Tanh", "ThresholdedRelu", "Tile",
    "TopK", "Transpose", "Trilu", "Unsqueeze", "Upsample",
];

/// Operators whose first output has the rank of their first input.
#[rustfmt::skip]
const SAME_RANK_AS_FIRST_INPUT: &[&str] = &[
    "Abs", "Acos", "Acosh", "Asin", "Asinh", "Atan", "Atanh", "AveragePool", "BatchNormalization", "Cast",
    "CastLike", "Ceil", "Celu", "Clip", "Conv", "ConvTranspose", "Cos", "Cosh", "CumSum", "DepthToSpace",
    "Dropout", "Elu", "Erf", "Exp", "Floor", "Gelu", "GlobalAveragePool", "GlobalLpPool", "GlobalMaxPool",
    "GroupNormalization", "HardSigmoid", "HardSwish", "Hardmax", "Identity", "InstanceNormalization",
    "IsInf", "IsNaN", "LRN", "LayerNormalization", "LeakyRelu", "Log", "LogSoftmax", "LpNormalization",
    "LpPool", "MaxPool", "MeanVarianceNormalization", "Mish", "Neg", "Not", "Pad", "PRelu", "Reciprocal",
    "Relu", "Resize", "Round", "Selu", "Shrink", "Sigmoid", "Sign", "Sin", "Sinh", "Slice", "Softmax",
    "Softplus", "Softsign", "SpaceToDepth", "Sqrt", "Tan", "Tanh", "ThresholdedRelu", "Tile", "Transpose",
    "Trilu", "Upsample",
];

// ---- attribute and tensor helpers used by the rules ----

fn attr<'n>(node: &'n NodeProto, name: &str) -> Option<&'n AttributeProto> {
    node.attribute.iter().find(|a| a.name() == name)
}

fn attr_i(node: &NodeProto, name: &str) -> Option<i64> {
    attr(node, name).map(|a| a.i())
}

fn attr_s(node: &NodeProto, name: &str) -> Option<String> {
    attr(node, name).map(|a| String::from_utf8_lossy(a.s()).into_owned())
}

/// Removes attribute `name` and returns it.
fn take_attr(node: &mut NodeProto, name: &str) -> Option<AttributeProto> {
    let i = node.attribute.iter().position(|a| a.name() == name)?;
    Some(node.attribute.remove(i))
}

/// Sets (replacing or appending) an attribute.
fn set_attr(node: &mut NodeProto, value: AttributeProto) {
    match node.attribute.iter_mut().find(|a| a.name == value.name) {
        Some(a) => *a = value,
        None => node.attribute.push(value),
    }
}

pub(crate) use crate::attribute::int_attribute as int_attr;

fn string_attr(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::String as i32),
        s: Some(v.as_bytes().to_vec().into()),
        ..Default::default()
    }
}

/// Makes input `slot` of `node` read `tensor`, padding skipped optional inputs with `""`.
fn set_input(node: &mut NodeProto, slot: usize, tensor: &str) {
    if node.input.len() <= slot {
        node.input.resize(slot + 1, String::new());
    }
    node.input[slot] = tensor.to_owned();
}

fn raw_tensor(dtype: DataType, dims: Vec<i64>, raw: Vec<u8>) -> TensorProto {
    TensorProto { dims, data_type: Some(dtype.to_onnx()), raw_data: Some(raw.into()), ..Default::default() }
}

fn i64_tensor(dims: Vec<i64>, values: &[i64]) -> TensorProto {
    raw_tensor(DataType::Int64, dims, values.iter().flat_map(|v| v.to_le_bytes()).collect())
}

fn f32_tensor(dims: Vec<i64>, values: &[f32]) -> TensorProto {
    raw_tensor(DataType::Float, dims, values.iter().flat_map(|v| v.to_le_bytes()).collect())
}

/// A scalar of a floating-point element type.
fn float_scalar(dtype: DataType, v: f32) -> Option<TensorProto> {
    let raw = match dtype {
        DataType::Float => v.to_le_bytes().to_vec(),
        DataType::Double => f64::from(v).to_le_bytes().to_vec(),
        DataType::Float16 => half::f16::from_f32(v).to_le_bytes().to_vec(),
        DataType::Bfloat16 => half::bf16::from_f32(v).to_le_bytes().to_vec(),
        _ => return None,
    };
    Some(raw_tensor(dtype, vec![], raw))
}

fn node(op: &str, name: String, inputs: &[&str], output: &str, attributes: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        name: Some(name),
        op_type: Some(op.into()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.to_owned()],
        attribute: attributes,
        ..Default::default()
    }
}
