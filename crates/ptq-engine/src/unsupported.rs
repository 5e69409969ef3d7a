//! Operators tract cannot run, and what a user can do about each.

use std::collections::BTreeMap;
use std::fmt;

use tract_onnx::pb::{GraphProto, ModelProto};
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::ops::unimpl::UnimplementedOp;

/// One operator type tract cannot run, with the nodes that use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsupportedOp {
    pub op_type: String,
    /// `ai.onnx` for the default domain.
    pub domain: String,
    /// The model's opset for that domain.
    pub opset: Option<i64>,
    pub nodes: Vec<String>,
}

impl UnsupportedOp {
    /// What would make the model run.
    pub fn advice(&self) -> String {
        match (self.domain.as_str(), self.op_type.as_str()) {
            ("ai.onnx", "Loop") => "tract has no Loop: export the model with the loop unrolled to a fixed \
                                    number of steps, or cut the model before the loop and quantize the part \
                                    before it"
                .into(),
            ("ai.onnx", _) => "tract does not implement this standard operator: export the model with other \
                               operators (another opset, or the exporter's option to decompose it)"
                .into(),
            ("com.microsoft", _) => "an onnxruntime contrib operator, written by onnxruntime's graph \
                                     optimizations: quantize the model as exported, before those \
                                     optimizations"
                .into(),
            (domain, _) => format!(
                "an operator of the custom domain `{domain}`: ptq runs standard ONNX operators only; \
                 replace it with standard ones"
            ),
        }
    }
}

impl fmt::Display for UnsupportedOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let noun = if self.nodes.len() == 1 { "node" } else { "nodes" };
        let opset = self.opset.map(|v| format!(" opset {v}")).unwrap_or_default();
        write!(
            f,
            "{} ({noun} {}; {}{opset}): {}",
            self.op_type,
            self.nodes.join(", "),
            self.domain,
            self.advice()
        )
    }
}

/// Every node tract parsed as unimplemented, by (domain, op type), in name order.
pub(crate) fn collect(model: &InferenceModel, proto: &ModelProto, graph: &GraphProto) -> Vec<UnsupportedOp> {
    let domain_of = |node_name: &str| {
        // tract names a node after its ONNX name, or its first output when it has none.
        let node = graph
            .node
            .iter()
            .find(|n| n.name == node_name || n.output.first().is_some_and(|o| o == node_name));
        node.map(|n| n.domain.clone()).filter(|d| !d.is_empty()).unwrap_or_else(|| "ai.onnx".into())
    };
    let opset = |domain: &str| {
        proto
            .opset_import
            .iter()
            .find(|o| o.domain == domain || (domain == "ai.onnx" && o.domain.is_empty()))
            .map(|o| o.version)
    };
    let mut ops: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for node in model.nodes() {
        if let Some(op) = node.op_as::<UnimplementedOp>() {
            // tract names it `Unimplemented(<ONNX op type>)`.
            let name = op.name();
            let op_type =
                name.strip_prefix("Unimplemented(").and_then(|s| s.strip_suffix(')')).unwrap_or(&name);
            ops.entry((op_type.to_owned(), domain_of(&node.name))).or_default().push(node.name.clone());
        }
    }
    ops.into_iter()
        .map(|((op_type, domain), nodes)| UnsupportedOp { opset: opset(&domain), op_type, domain, nodes })
        .collect()
}
