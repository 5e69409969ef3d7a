//! `Patch`: the one way ptq edits a model.
//!
//! Edits are collected against the file indices a [`crate::Graph`] reports and applied in one
//! pass, so the order in which a rewrite records them does not matter and everything the patch
//! does not name stays byte-identical.

use std::collections::{BTreeMap, BTreeSet};

use ptq_onnx::proto::{ModelProto, NodeProto, OperatorSetIdProto, TensorProto, ValueInfoProto};

use crate::{Error, Graph, Source};

#[derive(Debug, Clone, Default)]
pub struct Patch {
    /// New nodes to place after the node with this file index (`None`: before every node).
    inserted: BTreeMap<Option<usize>, Vec<NodeProto>>,
    removed: BTreeSet<usize>,
    /// Node file index → the node that takes its place (same position).
    replaced: BTreeMap<usize, NodeProto>,
    /// (node, input slot) → new tensor name.
    rewired: BTreeMap<(usize, usize), String>,
    /// (node, output slot) → new tensor name.
    renamed_outputs: BTreeMap<(usize, usize), String>,
    initializers: Vec<TensorProto>,
    removed_initializers: BTreeSet<String>,
    outputs: Vec<ValueInfoProto>,
    opsets: BTreeMap<String, i64>,
    ir_version: Option<i64>,
}

impl Patch {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.inserted.is_empty()
            && self.removed.is_empty()
            && self.replaced.is_empty()
            && self.rewired.is_empty()
            && self.renamed_outputs.is_empty()
            && self.initializers.is_empty()
            && self.removed_initializers.is_empty()
            && self.outputs.is_empty()
            && self.opsets.is_empty()
            && self.ir_version.is_none()
    }

    /// Places `node` right after the node at file index `after` (`None`: at the start), after
    /// any node inserted there before it.
    pub fn insert_after(&mut self, after: Option<usize>, node: NodeProto) -> &mut Self {
        self.inserted.entry(after).or_default().push(node);
        self
    }

    pub fn remove_node(&mut self, index: usize) -> &mut Self {
        self.removed.insert(index);
        self
    }

    /// Puts `node` in the place of the node at file index `index` (its inputs, outputs, attributes,
    /// name and op all come from `node`). Rewiring recorded for the same index applies to `node`.
    pub fn replace_node(&mut self, index: usize, node: NodeProto) -> &mut Self {
        self.replaced.insert(index, node);
        self
    }

    /// Makes input `slot` of node `index` read `tensor` instead.
    pub fn set_input(&mut self, index: usize, slot: usize, tensor: &str) -> &mut Self {
        self.rewired.insert((index, slot), tensor.to_owned());
        self
    }

    /// Makes node `index` write output `slot` under the name `tensor`.
    pub fn set_output(&mut self, index: usize, slot: usize, tensor: &str) -> &mut Self {
        self.renamed_outputs.insert((index, slot), tensor.to_owned());
        self
    }

    /// Makes every reader of `from` in `graph` read `to` instead (graph outputs are not readers).
    pub fn replace_uses(&mut self, graph: &Graph, from: &str, to: &str) -> &mut Self {
        for n in graph.consumers(from) {
            for (slot, _) in n.inputs.iter().enumerate().filter(|(_, i)| *i == from) {
                self.rewired.insert((n.index, slot), to.to_owned());
            }
        }
        self
    }

    pub fn add_initializer(&mut self, tensor: TensorProto) -> &mut Self {
        self.initializers.push(tensor);
        self
    }

    pub fn remove_initializer(&mut self, name: &str) -> &mut Self {
        self.removed_initializers.insert(name.to_owned());
        self
    }

    /// Removes constant `name` of `graph` wherever it comes from: its initializer or its
    /// `Constant` node (before a new value of the same name is added).
    pub fn remove_constant(&mut self, graph: &Graph, name: &str) -> &mut Self {
        match graph.tensor(name).map(|t| t.source) {
            Some(Source::Initializer(_)) => self.remove_initializer(name),
            Some(Source::ConstantNode(i)) => self.remove_node(i),
            _ => self,
        }
    }

    /// Adds a graph output (appended after the existing ones).
    pub fn add_output(&mut self, value: ValueInfoProto) -> &mut Self {
        self.outputs.push(value);
        self
    }

    pub fn set_opset(&mut self, domain: &str, version: i64) -> &mut Self {
        self.opsets.insert(domain.to_owned(), version);
        self
    }

    pub fn set_ir_version(&mut self, version: i64) -> &mut Self {
        self.ir_version = Some(version);
        self
    }

    /// The edited model. Fails when an edit names a node or input slot the model does not have.
    pub fn apply(&self, model: &ModelProto) -> Result<ModelProto, Error> {
        let mut out = model.clone();
        let Some(graph) = out.graph.as_mut() else {
            return Err(Error::NoSuchTensor("<graph>".into()));
        };
        let count = graph.node.len();
        let bad = |index: usize, reason: String| Error::BadNode {
            node: format!("#{index}"),
            op: String::new(),
            reason,
        };
        if let Some(&i) = self
            .removed
            .iter()
            .chain(self.replaced.keys())
            .chain(self.inserted.keys().flatten())
            .find(|&&i| i >= count)
        {
            return Err(bad(i, format!("the model has {count} nodes")));
        }
        if let Some(&i) = self.replaced.keys().find(|i| self.removed.contains(i)) {
            return Err(bad(i, "is both removed and replaced".into()));
        }
        for (&index, node) in &self.replaced {
            graph.node[index] = node.clone();
        }
        for (&(index, slot), name) in &self.rewired {
            let node = graph
                .node
                .get_mut(index)
                .ok_or_else(|| bad(index, format!("the model has {count} nodes")))?;
            let input =
                node.input.get_mut(slot).ok_or_else(|| bad(index, format!("has no input slot {slot}")))?;
            *input = name.clone();
        }
        for (&(index, slot), name) in &self.renamed_outputs {
            let node = graph
                .node
                .get_mut(index)
                .ok_or_else(|| bad(index, format!("the model has {count} nodes")))?;
            let output =
                node.output.get_mut(slot).ok_or_else(|| bad(index, format!("has no output slot {slot}")))?;
            *output = name.clone();
        }
        let old = std::mem::take(&mut graph.node);
        graph.node.extend(self.inserted.get(&None).into_iter().flatten().cloned());
        for (i, node) in old.into_iter().enumerate() {
            if !self.removed.contains(&i) {
                graph.node.push(node);
            }
            graph.node.extend(self.inserted.get(&Some(i)).into_iter().flatten().cloned());
        }
        graph.initializer.retain(|t| !self.removed_initializers.contains(t.name()));
        graph.input.retain(|v| !self.removed_initializers.contains(v.name()));
        graph.initializer.extend(self.initializers.iter().cloned());
        graph.output.extend(self.outputs.iter().cloned());
        for (domain, &version) in &self.opsets {
            match out.opset_import.iter_mut().find(|o| o.domain() == domain) {
                Some(o) => o.version = Some(version),
                None => out
                    .opset_import
                    .push(OperatorSetIdProto { domain: Some(domain.clone()), version: Some(version) }),
            }
        }
        if let Some(v) = self.ir_version {
            out.ir_version = Some(v);
        }
        Ok(out)
    }
}
