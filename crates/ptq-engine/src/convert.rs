//! ptq tensors ↔ tract tensors (same bytes, little-endian, C order).

use bytes::Bytes;
use ptq_ir::{DataType, Tensor};
use tract_onnx::prelude::{Datum, DatumType, TDim, Tensor as TractTensor};

use crate::Error;

pub(crate) fn datum_type(dt: DataType) -> Option<DatumType> {
    use DataType::*;
    Some(match dt {
        Float => DatumType::F32,
        Double => DatumType::F64,
        Float16 => DatumType::F16,
        Uint8 => DatumType::U8,
        Int8 => DatumType::I8,
        Uint16 => DatumType::U16,
        Int16 => DatumType::I16,
        Int32 => DatumType::I32,
        Int64 => DatumType::I64,
        Uint32 => DatumType::U32,
        Uint64 => DatumType::U64,
        Bool => DatumType::Bool,
        _ => return None,
    })
}

fn data_type(dt: DatumType) -> Option<DataType> {
    use DataType::*;
    Some(match dt {
        DatumType::F32 => Float,
        DatumType::F64 => Double,
        DatumType::F16 => Float16,
        DatumType::U8 => Uint8,
        DatumType::I8 => Int8,
        DatumType::U16 => Uint16,
        DatumType::I16 => Int16,
        DatumType::I32 => Int32,
        DatumType::I64 => Int64,
        DatumType::U32 => Uint32,
        DatumType::U64 => Uint64,
        DatumType::Bool => Bool,
        _ => return None,
    })
}

pub(crate) fn to_tract(name: &str, t: &Tensor) -> Result<TractTensor, Error> {
    let fail = |reason: String| Error::Input { name: name.to_owned(), reason };
    let dt = datum_type(t.dtype).ok_or_else(|| fail(format!("{} inputs are not supported", t.dtype)))?;
    // SAFETY: `dt` is a plain numeric type (checked above), for which every bit pattern is valid.
    unsafe { TractTensor::from_raw_dt(dt, &t.shape, &t.data) }.map_err(|e| fail(crate::error::chain(&e)))
}

pub(crate) fn from_tract(name: &str, t: &TractTensor) -> Result<Tensor, Error> {
    let fail = |reason: String| Error::Run { reason: format!("tensor `{name}`: {reason}") };
    // Shape computations come out of tract as symbolic dims; ONNX calls them int64.
    let t = if t.datum_type() == TDim::datum_type() {
        std::borrow::Cow::Owned(
            t.cast_to_dt(DatumType::I64).map_err(|e| fail(crate::error::chain(&e)))?.into_owned(),
        )
    } else {
        std::borrow::Cow::Borrowed(t)
    };
    let dtype = data_type(t.datum_type())
        .ok_or_else(|| fail(format!("{:?} values cannot be read", t.datum_type())))?;
    let view = t.try_as_plain_ram().map_err(|e| fail(crate::error::chain(&e)))?;
    Ok(Tensor { dtype, shape: t.shape().to_vec(), data: Bytes::copy_from_slice(view.as_bytes()) })
}
