//! The value of a constant seen through the shape-only ops exporters put in front of it.
//!
//! paddle2onnx writes a conv bias as `Reshape(Constant, Constant [1, C, 1, 1])`, other exporters
//! as `Unsqueeze(Constant)`; those ops never change the values, only the shape, so the chain is
//! evaluated here on the constant's bytes.

use ptq_ir::{DataType, Graph, Node, Source, Tensor, get_int};
use ptq_onnx::proto::NodeProto;

use crate::Error;

/// The ops a chain may hold: each keeps the values in order and changes only the shape.
pub(super) const SHAPE_OPS: [&str; 5] = ["Reshape", "Unsqueeze", "Squeeze", "Flatten", "Identity"];

pub(super) fn is_shape_op(node: &Node) -> bool {
    super::is_default_domain(node) && SHAPE_OPS.contains(&node.op_type.as_str())
}

/// The value of `name` when it is a constant or the output of a chain of [`SHAPE_OPS`] over
/// constants; `None` when it depends on anything computed at run time, or when a shape in the
/// chain does not work out.
pub(super) fn constant_value(graph: &Graph, name: &str) -> Result<Option<Tensor>, Error> {
    let Some(info) = graph.tensor(name) else { return Ok(None) };
    let index = match info.source {
        Source::Initializer(_) | Source::ConstantNode(_) => return Ok(Some(graph.constant(name)?)),
        Source::Node(i) => i,
        Source::Input => return Ok(None),
    };
    let node = graph.node(index);
    if !is_shape_op(node) || node.outputs.first().map(String::as_str) != Some(name) {
        return Ok(None);
    }
    let Some(data) = node.inputs.first().filter(|i| !i.is_empty()) else { return Ok(None) };
    let Some(mut value) = constant_value(graph, data)? else { return Ok(None) };
    let proto = &graph.proto().node[index];
    // Axes and shapes are attributes in older opsets and constant inputs in newer ones.
    let ints_input = |slot: usize| -> Result<Option<Vec<i64>>, Error> {
        match node.inputs.get(slot).filter(|i| !i.is_empty()) {
            Some(i) => Ok(constant_value(graph, i)?.and_then(|t| ints(&t))),
            None => Ok(None),
        }
    };
    let shape = match node.op_type.as_str() {
        "Identity" => Some(value.shape.clone()),
        "Reshape" => match ints_input(1)? {
            Some(target) => reshape(&value.shape, &target, get_int(proto, "allowzero").unwrap_or(0) != 0),
            None => None,
        },
        "Unsqueeze" => match ints_attr(proto, "axes").or(ints_input(1)?) {
            Some(axes) => unsqueeze(&value.shape, &axes),
            None => None,
        },
        "Squeeze" => {
            let axes = match ints_attr(proto, "axes") {
                Some(a) => Some(a),
                None => ints_input(1)?,
            };
            squeeze(&value.shape, axes.as_deref())
        }
        "Flatten" => flatten(&value.shape, get_int(proto, "axis").unwrap_or(1)),
        _ => None,
    };
    Ok(shape.map(|shape| {
        value.shape = shape;
        value
    }))
}

fn ints(t: &Tensor) -> Option<Vec<i64>> {
    let d = &t.data[..];
    match t.dtype {
        DataType::Int64 => {
            Some(d.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect())
        }
        DataType::Int32 => {
            Some(d.chunks_exact(4).map(|c| i64::from(i32::from_le_bytes(c.try_into().unwrap()))).collect())
        }
        _ => None,
    }
}

fn ints_attr(node: &NodeProto, name: &str) -> Option<Vec<i64>> {
    node.attribute.iter().find(|a| a.name() == name).map(|a| a.ints.clone())
}

/// `axis` made non-negative against `rank`, when it is in range.
fn axis(axis: i64, rank: usize) -> Option<usize> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    usize::try_from(a).ok().filter(|&a| a < rank)
}

fn reshape(from: &[usize], target: &[i64], allow_zero: bool) -> Option<Vec<usize>> {
    let len: usize = from.iter().product();
    let mut inferred = None;
    let mut shape = Vec::with_capacity(target.len());
    for (i, &d) in target.iter().enumerate() {
        shape.push(match d {
            -1 if inferred.is_none() => {
                inferred = Some(i);
                1
            }
            0 if !allow_zero => *from.get(i)?,
            d => usize::try_from(d).ok()?,
        });
    }
    let known: usize = shape.iter().product();
    if let Some(i) = inferred {
        if known == 0 || !len.is_multiple_of(known) {
            return None;
        }
        shape[i] = len / known;
    }
    (shape.iter().product::<usize>() == len).then_some(shape)
}

fn unsqueeze(from: &[usize], axes: &[i64]) -> Option<Vec<usize>> {
    let rank = from.len() + axes.len();
    let mut ones: Vec<usize> = axes.iter().map(|&a| axis(a, rank)).collect::<Option<_>>()?;
    ones.sort_unstable();
    ones.dedup();
    if ones.len() != axes.len() {
        return None;
    }
    let mut rest = from.iter();
    (0..rank).map(|i| if ones.binary_search(&i).is_ok() { Some(1) } else { rest.next().copied() }).collect()
}

fn squeeze(from: &[usize], axes: Option<&[i64]>) -> Option<Vec<usize>> {
    let Some(axes) = axes else { return Some(from.iter().copied().filter(|&d| d != 1).collect()) };
    let drop: Vec<usize> = axes.iter().map(|&a| axis(a, from.len())).collect::<Option<_>>()?;
    if drop.iter().any(|&a| from[a] != 1) {
        return None;
    }
    Some(from.iter().enumerate().filter(|(i, _)| !drop.contains(i)).map(|(_, &d)| d).collect())
}

fn flatten(from: &[usize], axis: i64) -> Option<Vec<usize>> {
    let rank = from.len() as i64;
    let a = if axis < 0 { axis + rank } else { axis };
    let a = usize::try_from(a).ok().filter(|&a| a <= from.len())?;
    Some(vec![from[..a].iter().product(), from[a..].iter().product()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        assert_eq!(reshape(&[4], &[1, 4, 1, 1], false), Some(vec![1, 4, 1, 1]));
        assert_eq!(reshape(&[4], &[1, -1, 1, 1], false), Some(vec![1, 4, 1, 1]));
        assert_eq!(reshape(&[2, 4], &[0, -1], false), Some(vec![2, 4]));
        assert_eq!(reshape(&[4], &[3], false), None);
        assert_eq!(unsqueeze(&[4], &[0, 2, 3]), Some(vec![1, 4, 1, 1]));
        assert_eq!(unsqueeze(&[4], &[-1, -2]), Some(vec![4, 1, 1]));
        assert_eq!(unsqueeze(&[4], &[1, 1]), None);
        assert_eq!(squeeze(&[1, 4, 1], None), Some(vec![4]));
        assert_eq!(squeeze(&[1, 4, 1], Some(&[-1])), Some(vec![1, 4]));
        assert_eq!(squeeze(&[1, 4, 1], Some(&[1])), None);
        assert_eq!(flatten(&[2, 3, 4], 1), Some(vec![2, 12]));
        assert_eq!(flatten(&[2, 3, 4], -1), Some(vec![6, 4]));
        assert_eq!(flatten(&[2, 3, 4], 0), Some(vec![1, 24]));
    }
}
