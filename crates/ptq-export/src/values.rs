//! Baking constants into integers, and the initializers that carry encodings.

use bytes::Bytes;
use ptq_ir::{DataType, Graph};
use ptq_onnx::proto::TensorProto;
use ptq_quant::Encoding;

use crate::Error;

/// The channel of element `i` of a C-order tensor of `shape` under `encoding`.
fn channel(encoding: &Encoding, shape: &[usize], i: usize) -> usize {
    match encoding.axis {
        Some(axis) if encoding.scales.len() > 1 => {
            let inner: usize = shape[axis + 1..].iter().product();
            (i / inner.max(1)) % shape[axis]
        }
        _ => 0,
    }
}

/// A constant's value and shape, as f32.
pub fn float_constant(graph: &Graph, name: &str) -> Result<(Vec<f32>, Vec<usize>), Error> {
    let t = graph.constant(name)?;
    let values = t.to_f32().ok_or_else(|| Error::Tensor {
        tensor: name.to_owned(),
        reason: format!("{} values cannot be quantized", t.dtype),
    })?;
    Ok((values, t.shape))
}

/// The integers a constant is stored as (QNN rounding, DESIGN.md Decision 1).
pub fn quantized(values: &[f32], shape: &[usize], e: &Encoding) -> Vec<i64> {
    values.iter().enumerate().map(|(i, &x)| e.quantize(channel(e, shape, i), x)).collect()
}

/// What a runtime's DequantizeLinear gives back for those integers.
pub fn dequantized(q: &[i64], shape: &[usize], e: &Encoding) -> Vec<f32> {
    q.iter().enumerate().map(|(i, &v)| e.dequantize(channel(e, shape, i), v)).collect()
}

pub fn float_tensor(name: &str, shape: &[usize], values: &[f32]) -> TensorProto {
    TensorProto {
        name: Some(name.to_owned()),
        data_type: Some(DataType::Float.to_onnx()),
        dims: shape.iter().map(|&d| d as i64).collect(),
        raw_data: Some(Bytes::from(values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>())),
        ..Default::default()
    }
}

/// An integer tensor in `dtype`'s storage: little-endian, 4-bit types packed two per byte with
/// the first element in the low nibble (ONNX int4/uint4).
pub fn int_tensor(name: &str, dtype: DataType, shape: &[usize], values: &[i64]) -> TensorProto {
    let raw: Vec<u8> = match dtype {
        DataType::Int4 | DataType::Uint4 => values
            .chunks(2)
            .map(|p| (p[0] as u8 & 0x0f) | ((p.get(1).copied().unwrap_or(0) as u8 & 0x0f) << 4))
            .collect(),
        DataType::Int8 | DataType::Uint8 => values.iter().map(|&v| v as u8).collect(),
        DataType::Int16 | DataType::Uint16 => values.iter().flat_map(|&v| (v as u16).to_le_bytes()).collect(),
        DataType::Int32 | DataType::Uint32 => values.iter().flat_map(|&v| (v as u32).to_le_bytes()).collect(),
        _ => values.iter().flat_map(|&v| v.to_le_bytes()).collect(),
    };
    TensorProto {
        name: Some(name.to_owned()),
        data_type: Some(dtype.to_onnx()),
        dims: shape.iter().map(|&d| d as i64).collect(),
        raw_data: Some(Bytes::from(raw)),
        ..Default::default()
    }
}

/// Scale and zero-point initializers: scalars per tensor, 1-D per channel.
pub fn scale_and_zero_point(
    tensor: &str,
    e: &Encoding,
    zero_point_as_float: bool,
) -> (TensorProto, TensorProto) {
    let shape: Vec<usize> =
        if e.scales.len() > 1 || e.axis.is_some() { vec![e.scales.len()] } else { vec![] };
    let scale = float_tensor(&format!("{tensor}_ptq_scale"), &shape, &e.scales);
    let zp_name = format!("{tensor}_ptq_zero_point");
    let zp = if zero_point_as_float {
        let values: Vec<f32> = e.zero_points.iter().map(|&z| z as f32).collect();
        float_tensor(&zp_name, &shape, &values)
    } else {
        int_tensor(&zp_name, e.storage_type(), &shape, &e.zero_points)
    };
    (scale, zp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int4_packs_the_first_element_in_the_low_nibble() {
        let t = int_tensor("w", DataType::Int4, &[3], &[-8, 7, -1]);
        assert_eq!(&t.raw_data.unwrap()[..], &[0x78, 0x0f]);
    }

    #[test]
    fn per_channel_values_use_their_channel_scale() {
        use ptq_quant::{Origin, QuantSpec, Schema};
        let e = Encoding::from_ranges(
            &[(-1.27, 1.27), (-2.54, 2.54)],
            0,
            &QuantSpec::new(8, Schema::Symmetric),
            Origin::Calibrated,
        );
        let q = quantized(&[1.27, 0.01, 2.54, 0.02], &[2, 2], &e);
        assert_eq!(q, [127, 1, 127, 1]);
        let q = quantized(&[1.27, 2.54], &[1, 2], &Encoding { axis: Some(1), ..e });
        assert_eq!(q, [127, 127]);
    }
}
