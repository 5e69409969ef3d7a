//! The shapes a model declares for its intermediate tensors (`value_info`), against the shapes
//! the bound inputs give them.
//!
//! Exporters declare intermediate shapes in their own symbols — `batch`, paddle2onnx's
//! `p2o.DynamicDimension.3`, torch's `floor(height/2 - 1/2) + 1` — and sometimes in symbols that
//! no input carries, or wrongly. tract would have to unify each of those with the numbers the
//! bound inputs give, and fails on the first one it cannot (`Impossible to unify Sym(batch) with
//! Val(1)`). So the model is parsed without its value_info, tract infers every shape from the
//! bound inputs, and only then is each declaration checked: the input symbols in it are replaced
//! by their bound values, a declaration that agrees adds what tract could not infer, and one that
//! contradicts the inference is reported and ignored.

use std::collections::HashMap;
use std::fmt;

use ptq_data::BoundInput;
use tract_onnx::pb::{GraphProto, TensorShapeProto, tensor_shape_proto::dimension::Value as DimValue};
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::{Factoid, GenericFactoid, ShapeFactoid};

/// A declared shape that contradicts the bound inputs, and was ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoredShape {
    pub tensor: String,
    /// As declared, bound symbols replaced by their values (`?` for what stays unknown).
    pub declared: String,
    /// What the bound inputs give.
    pub inferred: String,
}

impl fmt::Display for IgnoredShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the model declares `{}` with shape {}, but the bound input shapes give {}; the declaration is \
             ignored (it was exported for other input shapes)",
            self.tensor, self.declared, self.inferred
        )
    }
}

/// The value of every symbol in the graph inputs' declared shapes, as the bound shapes give it.
/// (Two inputs binding one symbol differently are refused by `ptq_data` before this.)
fn input_symbols(graph: &GraphProto, inputs: &[BoundInput]) -> HashMap<String, i64> {
    let mut values = HashMap::new();
    for input in &graph.input {
        let Some(bound) = inputs.iter().find(|b| b.name == input.name) else { continue };
        let Some(dims) = tensor_shape(input.r#type.as_ref()) else { continue };
        for (dim, &value) in dims.dim.iter().zip(&bound.shape) {
            if let Some(DimValue::DimParam(symbol)) = &dim.value {
                values.insert(symbol.clone(), value as i64);
            }
        }
    }
    values
}

fn tensor_shape(t: Option<&tract_onnx::pb::TypeProto>) -> Option<&TensorShapeProto> {
    match t?.value.as_ref()? {
        tract_onnx::pb::type_proto::Value::TensorType(t) => t.shape.as_ref(),
    }
}

/// A declared shape with the input symbols replaced by their values: each dim's value where it
/// is a number or an expression of bound symbols, `None` where it stays unknown.
fn declared_dims(shape: &TensorShapeProto, symbols: &HashMap<String, i64>) -> Vec<Option<i64>> {
    shape
        .dim
        .iter()
        .map(|d| match &d.value {
            Some(DimValue::DimValue(v)) if *v >= 0 => Some(*v),
            Some(DimValue::DimParam(p)) => evaluate(p, symbols),
            _ => None,
        })
        .collect()
}

/// A `dim_param` as a number: a bound symbol, or an expression of bound symbols (tract's parser
/// reads the rational expressions exporters write).
fn evaluate(param: &str, symbols: &HashMap<String, i64>) -> Option<i64> {
    if let Some(&v) = symbols.get(param) {
        return Some(v);
    }
    let scope = SymbolScope::default();
    let dim = tract_onnx::dim_expr::parse_onnx_dim(&scope, param).ok()?;
    let mut values = SymbolValues::default();
    for symbol in dim.symbols() {
        values.set(&symbol, *symbols.get(&format!("{symbol}"))?);
    }
    dim.eval(&values).to_i64().ok()
}

fn format_dims(dims: impl IntoIterator<Item = Option<i64>>) -> String {
    let parts: Vec<String> = dims.into_iter().map(|d| d.map_or("?".into(), |v| v.to_string())).collect();
    format!("[{}]", parts.join(","))
}

/// A shape fact as `[1,3,?,?]` (`[…]` when even the rank is unknown).
pub(crate) fn format_fact(shape: &ShapeFactoid) -> String {
    let dims = shape.dims().map(|d| d.concretize().and_then(|d| d.to_i64().ok()));
    let text = format_dims(dims);
    if shape.is_open() { format!("{}…]", text.trim_end_matches(']')) } else { text }
}

/// Checks every declaration of `graph.value_info` against what tract infers in `model` (parsed
/// without value_info, inputs set to their bound shapes, analysed): those that agree are added
/// where tract's inference left a dim open; those that contradict it are returned.
pub(crate) fn reconcile(
    model: &mut InferenceModel,
    outlets: &HashMap<String, OutletId>,
    graph: &GraphProto,
    inputs: &[BoundInput],
) -> TractResult<Vec<IgnoredShape>> {
    let symbols = input_symbols(graph, inputs);
    let mut ignored = Vec::new();
    for info in &graph.value_info {
        let (Some(outlet), Some(shape)) = (outlets.get(&info.name), tensor_shape(info.r#type.as_ref()))
        else {
            continue;
        };
        let declared = declared_dims(shape, &symbols);
        let inferred = model.outlet_fact(*outlet)?.clone();
        let fact = InferenceFact {
            shape: ShapeFactoid::closed(
                declared
                    .iter()
                    .map(|d| d.map_or(GenericFactoid::Any, |v| GenericFactoid::Only(v.to_dim())))
                    .collect(),
            ),
            ..InferenceFact::default()
        };
        match inferred.unify(&fact) {
            Ok(unified) if unified != inferred => model.set_outlet_fact(*outlet, unified)?,
            Ok(_) => {}
            Err(_) => ignored.push(IgnoredShape {
                tensor: info.name.clone(),
                declared: format_dims(declared),
                inferred: format_fact(&inferred.shape),
            }),
        }
    }
    Ok(ignored)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expressions_of_bound_symbols_evaluate() {
        let symbols: HashMap<String, i64> =
            [("height".to_string(), 48), ("batch".to_string(), 2)].into_iter().collect();
        assert_eq!(evaluate("batch", &symbols), Some(2));
        assert_eq!(evaluate("floor(height/2 - 1/2) + 1", &symbols), Some(24));
        assert_eq!(evaluate("2*batch", &symbols), Some(4));
        assert_eq!(evaluate("width", &symbols), None);
        assert_eq!(evaluate("height*width", &symbols), None);
        assert_eq!(evaluate("?", &symbols), None);
    }
}
