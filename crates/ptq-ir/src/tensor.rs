use bytes::Bytes;

use crate::DataType;

/// A dense tensor as ONNX stores it: element type, shape, and little-endian C-order bytes.
///
/// This is the currency between stages (samples read from input lists, constants, engine
/// outputs); numeric work converts to typed slices with [`Tensor::to_f32`] and friends.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub dtype: DataType,
    pub shape: Vec<usize>,
    pub data: Bytes,
}

impl Tensor {
    /// Wraps bytes; `None` when their length does not match shape × element size.
    pub fn new(dtype: DataType, shape: Vec<usize>, data: Bytes) -> Option<Self> {
        let expected = dtype.size_of()? * shape.iter().product::<usize>();
        (data.len() == expected).then_some(Tensor { dtype, shape, data })
    }

    pub fn from_f32(shape: Vec<usize>, values: &[f32]) -> Self {
        let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        Tensor { dtype: DataType::Float, shape, data: Bytes::from(data) }
    }

    pub fn from_i64(shape: Vec<usize>, values: &[i64]) -> Self {
        let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        Tensor { dtype: DataType::Int64, shape, data: Bytes::from(data) }
    }

    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values widened or cast to f32 (integers exactly up to 2^24); `None` for types that have
    /// no numeric reading (strings, sub-byte and 8-bit float types).
    pub fn to_f32(&self) -> Option<Vec<f32>> {
        use DataType::*;
        let d = &self.data[..];
        macro_rules! cast {
            ($t:ty, $n:expr) => {
                d.chunks_exact($n).map(|c| <$t>::from_le_bytes(c.try_into().unwrap()) as f32).collect()
            };
        }
        Some(match self.dtype {
            Float => cast!(f32, 4),
            Double => cast!(f64, 8),
            Float16 => d.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
            Bfloat16 => d.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
            Uint8 | Bool => d.iter().map(|&v| v as f32).collect(),
            Int8 => d.iter().map(|&v| v as i8 as f32).collect(),
            Uint16 => cast!(u16, 2),
            Int16 => cast!(i16, 2),
            Int32 => cast!(i32, 4),
            Uint32 => cast!(u32, 4),
            Int64 => cast!(i64, 8),
            Uint64 => cast!(u64, 8),
            _ => return None,
        })
    }
}
