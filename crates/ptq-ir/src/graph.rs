//! The read-only view of a model's main graph.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use ptq_onnx::proto::{GraphProto, ModelProto, NodeProto, ValueInfoProto, tensor_shape_proto, type_proto};

use crate::constant::{check_initializer, constant_node_value, tensor_from_proto};
use crate::opset::MAX_OPSET;
use crate::{DataType, Dim, Error, Tensor};

/// A node of the main graph. `index` is its position in the ONNX file (what a [`crate::Patch`] refers to).
#[derive(Debug, Clone)]
pub struct Node {
    pub index: usize,
    pub name: String,
    pub op_type: String,
    pub domain: String,
    /// Input tensor names; an empty name is an omitted optional input.
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
}

impl Node {
    /// A structural error in this node.
    fn broken(&self, reason: String) -> Error {
        Error::BadNode { node: self.display_name(), op: self.op_type.clone(), reason }
    }

    /// The node's name, or `#<index> <op>` for the unnamed nodes some exporters write.
    pub fn display_name(&self) -> String {
        if self.name.is_empty() { format!("#{} {}", self.index, self.op_type) } else { self.name.clone() }
    }
}

/// Where a tensor comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A graph input that is fed at run time.
    Input,
    /// An initializer (its index in `graph.initializer`).
    Initializer(usize),
    /// The output of a `Constant` node (the node's file index).
    ConstantNode(usize),
    /// The output of any other node (the node's file index).
    Node(usize),
}

/// What is known about a tensor from the model's declarations.
#[derive(Debug, Clone)]
pub struct TensorInfo {
    pub name: String,
    pub source: Source,
    pub dtype: Option<DataType>,
    pub shape: Option<Vec<Dim>>,
}

impl TensorInfo {
    pub fn is_constant(&self) -> bool {
        matches!(self.source, Source::Initializer(_) | Source::ConstantNode(_))
    }
}

/// The main graph of a model: nodes in topological order, tensors by exact ONNX name.
#[derive(Debug, Clone)]
pub struct Graph {
    model_dir: PathBuf,
    graph: GraphProto,
    /// Opset version per domain (`""` is the default ONNX domain).
    pub opsets: BTreeMap<String, i64>,
    pub ir_version: i64,
    /// Graph inputs that are fed at run time (initializers listed as inputs are left out).
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    nodes: Vec<Node>,
    order: Vec<usize>,
    tensors: BTreeMap<String, TensorInfo>,
    consumers: HashMap<String, Vec<usize>>,
}

impl Graph {
    /// Builds the view; `model_dir` is where external data is resolved.
    pub fn new(model: &ModelProto, model_dir: &Path) -> Result<Graph, Error> {
        let graph = model.graph.clone().unwrap_or_default();
        let opsets: BTreeMap<String, i64> =
            model.opset_import.iter().map(|o| (o.domain().to_owned(), o.version())).collect();
        // Operators of a newer opset may mean what no table here says.
        if let Some(&version) = opsets.get("").or(opsets.get("ai.onnx")).filter(|&&v| v > MAX_OPSET) {
            return Err(Error::FutureOpset { version, max: MAX_OPSET });
        }
        let nodes: Vec<Node> = graph
            .node
            .iter()
            .enumerate()
            .map(|(index, n)| Node {
                index,
                name: n.name().to_owned(),
                op_type: n.op_type().to_owned(),
                domain: n.domain().to_owned(),
                inputs: n.input.clone(),
                outputs: n.output.clone(),
            })
            .collect();

        let mut tensors = BTreeMap::new();
        let initializers: BTreeSet<&str> = graph.initializer.iter().map(|t| t.name()).collect();
        let inputs: Vec<String> = graph
            .input
            .iter()
            .map(|v| v.name().to_owned())
            .filter(|n| !initializers.contains(n.as_str()))
            .collect();
        for name in &inputs {
            tensors.insert(
                name.clone(),
                TensorInfo { name: name.clone(), source: Source::Input, dtype: None, shape: None },
            );
        }
        for (i, t) in graph.initializer.iter().enumerate() {
            let dims = t.dims.iter().map(|&d| dim_from_value(d)).collect();
            tensors.insert(
                t.name().to_owned(),
                TensorInfo {
                    name: t.name().to_owned(),
                    source: Source::Initializer(i),
                    dtype: DataType::from_onnx(t.data_type()),
                    shape: Some(dims),
                },
            );
        }
        for n in &nodes {
            let source = if n.op_type == "Constant" && n.domain.is_empty() {
                Source::ConstantNode(n.index)
            } else {
                Source::Node(n.index)
            };
            for out in n.outputs.iter().filter(|o| !o.is_empty()) {
                let info = TensorInfo { name: out.clone(), source, dtype: None, shape: None };
                if let Some(first) = tensors.insert(out.clone(), info) {
                    return Err(n.broken(format!(
                        "writes `{out}`, which {} already defines; an ONNX tensor has one producer: \
                         the model is broken, export it again",
                        describe_source(first.source, &nodes)
                    )));
                }
            }
        }
        for t in &graph.initializer {
            check_initializer(t)?;
        }
        // The engine would refuse these too, naming neither the node nor what to do (or panic:
        // tract on an output nothing defines).
        for n in &nodes {
            if let Some(missing) =
                node_dependencies(&graph.node[n.index]).into_iter().find(|d| !tensors.contains_key(d))
            {
                return Err(n.broken(format!(
                    "reads `{missing}`, which no node, graph input or initializer defines: the model is \
                     broken, export it again"
                )));
            }
        }
        if let Some(lost) = graph.output.iter().find(|o| !tensors.contains_key(o.name())) {
            return Err(Error::BadTensor {
                tensor: lost.name().to_owned(),
                reason:
                    "is a graph output, but no node, graph input or initializer defines it: the model is \
                         broken, export it again"
                        .into(),
            });
        }
        for v in graph.input.iter().chain(&graph.output).chain(&graph.value_info) {
            if let Some(info) = tensors.get_mut(v.name()) {
                let (dtype, shape) = declared_type(v);
                info.dtype = info.dtype.or(dtype);
                if info.shape.is_none() {
                    info.shape = shape;
                }
            }
        }
        for n in nodes.iter().filter(|n| n.op_type == "Constant" && n.domain.is_empty()) {
            let value = graph.node[n.index].attribute.first().and_then(|a| a.t.as_ref());
            if let (Some(info), Some(t)) = (n.outputs.first().and_then(|o| tensors.get_mut(o)), value) {
                info.dtype = DataType::from_onnx(t.data_type());
                info.shape = Some(t.dims.iter().map(|&d| dim_from_value(d)).collect());
            }
        }

        let mut consumers: HashMap<String, Vec<usize>> = HashMap::new();
        for n in &nodes {
            for input in node_dependencies(&graph.node[n.index]) {
                consumers.entry(input).or_default().push(n.index);
            }
        }
        for c in consumers.values_mut() {
            c.dedup();
        }
        let order = topological_order(&graph, &nodes)?;
        Ok(Graph {
            model_dir: model_dir.to_owned(),
            opsets,
            ir_version: model.ir_version(),
            outputs: graph.output.iter().map(|v| v.name().to_owned()).collect(),
            inputs,
            graph,
            nodes,
            order,
            tensors,
            consumers,
        })
    }

    /// The nodes in topological order (stable: file order wherever the file order is valid).
    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.order.iter().map(|&i| &self.nodes[i])
    }

    /// The node at file index `index`.
    pub fn node(&self, index: usize) -> &Node {
        &self.nodes[index]
    }

    pub fn node_by_name(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    pub fn proto(&self) -> &GraphProto {
        &self.graph
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.get(name)
    }

    /// Every tensor, ordered by name.
    pub fn tensors(&self) -> impl Iterator<Item = &TensorInfo> {
        self.tensors.values()
    }

    /// The node that writes `tensor` (none for inputs and initializers).
    pub fn producer(&self, tensor: &str) -> Option<&Node> {
        match self.tensors.get(tensor)?.source {
            Source::Node(i) | Source::ConstantNode(i) => Some(&self.nodes[i]),
            _ => None,
        }
    }

    /// The nodes that read `tensor` (including through a subgraph), in file order.
    pub fn consumers(&self, tensor: &str) -> impl Iterator<Item = &Node> {
        self.consumers.get(tensor).into_iter().flatten().map(|&i| &self.nodes[i])
    }

    /// The value of a constant tensor (initializer or `Constant` node output).
    pub fn constant(&self, name: &str) -> Result<Tensor, Error> {
        let info = self.tensors.get(name).ok_or_else(|| Error::NoSuchTensor(name.to_owned()))?;
        match info.source {
            Source::Initializer(i) => tensor_from_proto(&self.graph.initializer[i], &self.model_dir),
            Source::ConstantNode(i) => {
                constant_node_value(&self.graph.node[i].attribute, name, &self.model_dir)
            }
            _ => Err(Error::BadTensor { tensor: name.to_owned(), reason: "is not a constant".into() }),
        }
    }

    /// The INT attribute `name` of `node`.
    pub fn int_attr(&self, node: &Node, name: &str) -> Option<i64> {
        crate::get_int(&self.graph.node[node.index], name)
    }

    /// Op type → count, over the main graph.
    pub fn op_histogram(&self) -> BTreeMap<String, usize> {
        let mut h = BTreeMap::new();
        for n in &self.nodes {
            let key = if n.domain.is_empty() || n.domain == "ai.onnx" {
                n.op_type.clone()
            } else {
                format!("{}:{}", n.domain, n.op_type)
            };
            *h.entry(key).or_insert(0) += 1;
        }
        h
    }
}

fn dim_from_value(d: i64) -> Dim {
    usize::try_from(d).map(Dim::Fixed).unwrap_or(Dim::Unknown)
}

/// Element type and shape declared by a `ValueInfoProto` (tensor types only).
fn declared_type(v: &ValueInfoProto) -> (Option<DataType>, Option<Vec<Dim>>) {
    let Some(type_proto::Value::TensorType(t)) = v.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
        return (None, None);
    };
    let shape = t.shape.as_ref().map(|s| {
        s.dim
            .iter()
            .map(|d| match &d.value {
                Some(tensor_shape_proto::dimension::Value::DimValue(v)) => dim_from_value(*v),
                // Some exporters (Paddle) write `?` for "any"; it names no shared dimension.
                Some(tensor_shape_proto::dimension::Value::DimParam(p)) if !p.is_empty() && p != "?" => {
                    Dim::Symbolic(p.clone())
                }
                _ => Dim::Unknown,
            })
            .collect()
    });
    (DataType::from_onnx(t.elem_type()), shape)
}

/// The outer-graph tensors a node reads: its inputs plus the names its subgraphs capture.
fn node_dependencies(n: &NodeProto) -> BTreeSet<String> {
    let mut deps: BTreeSet<String> = n.input.iter().filter(|i| !i.is_empty()).cloned().collect();
    for a in &n.attribute {
        for g in a.g.iter().chain(&a.graphs) {
            captured_names(g, &mut deps);
        }
    }
    deps
}

/// Names a subgraph reads but does not define itself (they come from an enclosing scope).
fn captured_names(g: &GraphProto, out: &mut BTreeSet<String>) {
    let mut defined: BTreeSet<&str> = g.input.iter().map(|v| v.name()).collect();
    defined.extend(g.initializer.iter().map(|t| t.name()));
    defined.extend(g.node.iter().flat_map(|n| n.output.iter().map(String::as_str)));
    let mut inner = BTreeSet::new();
    for n in &g.node {
        inner.extend(node_dependencies(n));
    }
    out.extend(inner.into_iter().filter(|name| !defined.contains(name.as_str())));
}

/// Where a tensor comes from, in words.
fn describe_source(source: Source, nodes: &[Node]) -> String {
    match source {
        Source::Input => "a graph input".into(),
        Source::Initializer(_) => "an initializer".into(),
        Source::ConstantNode(i) | Source::Node(i) => format!("node `{}`", nodes[i].display_name()),
    }
}

/// Kahn's algorithm, always taking the earliest ready node in file order.
fn topological_order(graph: &GraphProto, nodes: &[Node]) -> Result<Vec<usize>, Error> {
    let producer: HashMap<&str, usize> = nodes
        .iter()
        .flat_map(|n| n.outputs.iter().filter(|o| !o.is_empty()).map(move |o| (o.as_str(), n.index)))
        .collect();
    let mut pending = vec![0usize; nodes.len()];
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    for n in nodes {
        for dep in node_dependencies(&graph.node[n.index]) {
            // Names produced by no node are inputs or initializers (Graph::new refused the rest).
            if let Some(&p) = producer.get(dep.as_str()) {
                pending[n.index] += 1;
                dependents[p].push(n.index);
            }
        }
    }
    let mut ready: BTreeSet<usize> = (0..nodes.len()).filter(|&i| pending[i] == 0).collect();
    let mut order = Vec::with_capacity(nodes.len());
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for &d in &dependents[i] {
            pending[d] -= 1;
            if pending[d] == 0 {
                ready.insert(d);
            }
        }
    }
    if order.len() != nodes.len() {
        let stuck: Vec<String> =
            nodes.iter().filter(|n| pending[n.index] > 0).take(5).map(|n| n.display_name()).collect();
        return Err(Error::Cycle { nodes: stuck.join(", ") });
    }
    Ok(order)
}
