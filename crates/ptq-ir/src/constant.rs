//! Decoding constant values (initializers and `Constant` nodes) into [`Tensor`]s.

use std::path::Path;

use bytes::Bytes;
use ptq_onnx::proto::{AttributeProto, TensorProto};

use crate::{DataType, Error, Tensor};

/// The value of an ONNX tensor, from `raw_data`, external data or the typed fields.
pub fn tensor_from_proto(t: &TensorProto, model_dir: &Path) -> Result<Tensor, Error> {
    let fail = |reason: String| Error::BadTensor { tensor: t.name().to_owned(), reason };
    let dtype = DataType::from_onnx(t.data_type())
        .ok_or_else(|| fail(format!("unknown element type {}", t.data_type())))?;
    let shape = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| fail(format!("negative dimension {d}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let size = dtype.size_of().ok_or_else(|| fail(format!("{dtype} values are not supported here")))?;
    // The dims come from the file: their product may not even fit a usize.
    let count = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    let needed = count
        .and_then(|n| n.checked_mul(size))
        .ok_or_else(|| fail(format!("its shape {shape:?} has more elements than any tensor can hold")))?;
    let data = match ptq_onnx::tensor_bytes(t, model_dir)? {
        Some(bytes) => bytes,
        None => typed_bytes(t, dtype, needed).ok_or_else(|| fail(format!("{dtype} tensor has no data")))?,
    };
    if data.len() != needed {
        return Err(fail(size_mismatch(data.len(), &shape, dtype, needed)));
    }
    Ok(Tensor { dtype, shape, data })
}

/// An initializer's element type and inline `raw_data` against its shape, without copying the
/// data: checked when the graph is read, so a corrupt file is refused naming the tensor, not by
/// the engine later.
pub(crate) fn check_initializer(t: &TensorProto) -> Result<(), Error> {
    if ptq_onnx::proto::tensor_proto::DataType::try_from(t.data_type()).is_err() {
        return Err(Error::BadTensor {
            tensor: t.name().to_owned(),
            reason: format!(
                "element type {} is no ONNX type: the model file is corrupt; export it again",
                t.data_type()
            ),
        });
    }
    let len = t.raw_data().len();
    let size = DataType::from_onnx(t.data_type()).and_then(|d| d.size_of().map(|s| (d, s)));
    let shape: Option<Vec<usize>> = t.dims.iter().map(|&d| usize::try_from(d).ok()).collect();
    let (Some((dtype, size)), Some(shape)) = (size, shape) else { return Ok(()) };
    // The dims come from the file: their product may not even fit a usize.
    let Some(needed) = shape.iter().try_fold(size, |n, &d| n.checked_mul(d)) else {
        return Err(Error::BadTensor {
            tensor: t.name().to_owned(),
            reason: format!("its shape {shape:?} has more elements than any tensor can hold"),
        });
    };
    if len == 0 || len == needed {
        return Ok(());
    }
    Err(Error::BadTensor { tensor: t.name().to_owned(), reason: size_mismatch(len, &shape, dtype, needed) })
}

fn size_mismatch(len: usize, shape: &[usize], dtype: DataType, needed: usize) -> String {
    format!(
        "holds {len} bytes, its shape {shape:?} of {dtype} needs {needed}: the model file is corrupt; \
         export it again"
    )
}

/// The value of a `Constant` node's attribute (`value`, `value_float(s)`, `value_int(s)`).
pub fn constant_node_value(
    attrs: &[AttributeProto],
    output: &str,
    model_dir: &Path,
) -> Result<Tensor, Error> {
    let fail = |reason: &str| Error::BadTensor { tensor: output.to_owned(), reason: reason.into() };
    let attr = attrs.first().ok_or_else(|| fail("Constant node without a value"))?;
    match attr.name() {
        "value" => {
            let t = attr.t.as_ref().ok_or_else(|| fail("Constant `value` is not a tensor"))?;
            tensor_from_proto(t, model_dir)
        }
        "value_float" => Ok(Tensor::from_f32(vec![], &[attr.f()])),
        "value_floats" => Ok(Tensor::from_f32(vec![attr.floats.len()], &attr.floats)),
        "value_int" => Ok(Tensor::from_i64(vec![], &[attr.i()])),
        "value_ints" => Ok(Tensor::from_i64(vec![attr.ints.len()], &attr.ints)),
        other => Err(fail(&format!("Constant `{other}` values are not supported"))),
    }
}

/// Little-endian bytes from the typed repeated fields ONNX allows instead of `raw_data`;
/// `needed` is what the shape asks for (reserved only up to what the fields can fill, since the
/// dims may claim far more than the file holds).
fn typed_bytes(t: &TensorProto, dtype: DataType, needed: usize) -> Option<Bytes> {
    use DataType::*;
    let held = [
        t.float_data.len(),
        t.double_data.len(),
        t.int64_data.len(),
        t.uint64_data.len(),
        t.int32_data.len(),
    ];
    let mut out = Vec::with_capacity(needed.min(held.iter().sum::<usize>() * 8));
    match dtype {
        Float | Complex64 => t.float_data.iter().for_each(|v| out.extend(v.to_le_bytes())),
        Double | Complex128 => t.double_data.iter().for_each(|v| out.extend(v.to_le_bytes())),
        Int64 => t.int64_data.iter().for_each(|v| out.extend(v.to_le_bytes())),
        Uint32 => t.uint64_data.iter().for_each(|&v| out.extend((v as u32).to_le_bytes())),
        Uint64 => t.uint64_data.iter().for_each(|v| out.extend(v.to_le_bytes())),
        Int32 => t.int32_data.iter().for_each(|v| out.extend(v.to_le_bytes())),
        // int32_data holds the narrower types one value per entry (float16/bfloat16 as bit patterns).
        Int16 | Uint16 | Float16 | Bfloat16 => {
            t.int32_data.iter().for_each(|&v| out.extend((v as u16).to_le_bytes()))
        }
        Int8 | Uint8 | Bool | Float8e4m3fn | Float8e4m3fnuz | Float8e5m2 | Float8e5m2fnuz | Float8e8m0 => {
            t.int32_data.iter().for_each(|&v| out.push(v as u8))
        }
        _ => return None,
    }
    (needed == 0 || !out.is_empty()).then(|| Bytes::from(out))
}
