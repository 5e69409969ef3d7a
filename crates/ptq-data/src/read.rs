//! Data files: headerless raw (float32, or the input's own type when native) and `.npy`.
//!
//! Whatever the file holds, the tensor handed on has the input's type, so the engine never sees
//! a file format.

use std::io::Read;
use std::path::Path;

use bytes::Bytes;
use half::{bf16, f16};
use npyz::{DType, Endianness, NpyFile, NpyHeader, Order, TypeChar};
use ptq_ir::{DataType, Tensor};

use crate::Error;
use crate::npy_header::open_npy;
use crate::samples::BoundInput;

/// Whether ptq can read this input type from files at all.
pub(crate) fn readable(dtype: DataType) -> bool {
    (dtype.is_float() || dtype.is_integer()) && dtype.size_of().is_some()
}

/// `.npy` by extension (any case); every other file is raw.
pub(crate) fn is_npy(path: &Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("npy"))
}

/// Reads one input's file into a tensor of the input's type and bound shape.
pub(crate) fn read_file(path: &Path, input: &BoundInput, native: bool) -> Result<Tensor, Error> {
    // A folder's size (4096) would otherwise be reported as a wrong file size.
    if path.is_dir() {
        return Err(Error::NotAFile { path: path.to_path_buf() });
    }
    if is_npy(path) { read_npy(path, input) } else { read_raw(path, input, native) }
}

/// The shape in a `.npy` header, without reading the data.
pub(crate) fn npy_shape(path: &Path) -> Result<Vec<usize>, Error> {
    let header = NpyHeader::from_reader(open_npy(path)?).map_err(|e| npy_error(path, e))?;
    npy_dims(path, &header)
}

/// NaN and ±Inf in a float tensor (0 for other types).
pub(crate) fn count_nonfinite(t: &Tensor) -> usize {
    let d = &t.data[..];
    match t.dtype {
        DataType::Float => f32s(d).filter(|v| !v.is_finite()).count(),
        DataType::Double => d
            .chunks_exact(8)
            .filter(|c| <[u8; 8]>::try_from(*c).is_ok_and(|b| !f64::from_le_bytes(b).is_finite()))
            .count(),
        DataType::Float16 => {
            d.chunks_exact(2).filter(|c| !f16::from_le_bytes([c[0], c[1]]).is_finite()).count()
        }
        DataType::Bfloat16 => {
            d.chunks_exact(2).filter(|c| !bf16::from_le_bytes([c[0], c[1]]).is_finite()).count()
        }
        _ => 0,
    }
}

fn read_raw(path: &Path, input: &BoundInput, native: bool) -> Result<Tensor, Error> {
    let file_type = if native { input.dtype } else { DataType::Float };
    let expected = byte_count(&input.shape, elem_size(file_type, input)?);
    let size_error = |actual: u64| Error::RawSize {
        path: path.to_path_buf(),
        actual,
        expected,
        shape: input.shape.clone(),
        dtype: file_type,
        hint: size_hint(input, native, actual),
    };
    // Check the size before reading, so a wrong (possibly huge) file is not loaded first.
    let actual = std::fs::metadata(path).map_err(|err| file_error(path, err))?.len();
    if actual != expected {
        return Err(size_error(actual));
    }
    let data = std::fs::read(path).map_err(|err| file_error(path, err))?;
    if data.len() as u64 != expected {
        return Err(size_error(data.len() as u64));
    }
    if file_type == input.dtype { Ok(tensor(input, data)) } else { from_f32(path, &data, input) }
}

/// Points at the likely mistake when a raw file's size fits the other reading.
fn size_hint(input: &BoundInput, native: bool, actual: u64) -> String {
    let fits = |dtype: DataType| dtype.size_of().is_some_and(|s| byte_count(&input.shape, s) == actual);
    if input.dtype != DataType::Float && !native && fits(input.dtype) {
        format!(
            "; its size fits {0}: if it holds {0} values, pass --use_native_input_files (or \
             --native_input_tensor_names {1})",
            input.dtype, input.name
        )
    } else if input.dtype != DataType::Float && native && fits(DataType::Float) {
        "; its size fits float32: if it holds float32 values, do not read this input as native".to_string()
    } else {
        "; check the file, and the input's shape (--input_dimensions)".to_string()
    }
}

fn read_npy(path: &Path, input: &BoundInput) -> Result<Tensor, Error> {
    let npy = NpyFile::new(open_npy(path)?).map_err(|e| npy_error(path, e))?;
    if npy.order() == Order::Fortran {
        return Err(Error::NpyFortran { path: path.to_path_buf() });
    }
    let (found, endianness) = npy_type(&npy.dtype());
    let file_type = match found {
        Ok(t) if t == input.dtype || t == DataType::Float => t,
        Ok(t) => return Err(npy_dtype_error(path, t.name().to_string(), input)),
        Err(name) => return Err(npy_dtype_error(path, name, input)),
    };
    let shape = npy_dims(path, &npy)?;
    if shape != input.shape {
        return Err(Error::NpyShape {
            path: path.to_path_buf(),
            found: shape,
            expected: input.shape.clone(),
        });
    }
    let size = elem_size(file_type, input)?;
    let expected = byte_count(&shape, size);
    let mut data = Vec::new();
    npy.into_inner().read_to_end(&mut data).map_err(|err| file_error(path, err))?;
    if data.len() as u64 != expected {
        let reason = format!(
            "its header promises {expected} data bytes (shape {} of {file_type}), the file holds {}",
            crate::error::dims(&shape),
            data.len()
        );
        return Err(Error::Npy { path: path.to_path_buf(), reason });
    }
    if endianness == Endianness::Big {
        data.chunks_exact_mut(size).for_each(<[u8]>::reverse);
    }
    if file_type == input.dtype { Ok(tensor(input, data)) } else { from_f32(path, &data, input) }
}

/// The ptq type of a plain numpy dtype (`Err` holds the dtype's text when there is none), and
/// its byte order.
fn npy_type(dtype: &DType) -> (Result<DataType, String>, Endianness) {
    let DType::Plain(ts) = dtype else {
        return (Err("a structured dtype".to_string()), Endianness::Little);
    };
    let t = match (ts.type_char(), ts.size_field()) {
        (TypeChar::Bool, 1) => DataType::Bool,
        (TypeChar::Int, 1) => DataType::Int8,
        (TypeChar::Int, 2) => DataType::Int16,
        (TypeChar::Int, 4) => DataType::Int32,
        (TypeChar::Int, 8) => DataType::Int64,
        (TypeChar::Uint, 1) => DataType::Uint8,
        (TypeChar::Uint, 2) => DataType::Uint16,
        (TypeChar::Uint, 4) => DataType::Uint32,
        (TypeChar::Uint, 8) => DataType::Uint64,
        (TypeChar::Float, 2) => DataType::Float16,
        (TypeChar::Float, 4) => DataType::Float,
        (TypeChar::Float, 8) => DataType::Double,
        _ => return (Err(format!("numpy dtype '{ts}'")), ts.endianness()),
    };
    (Ok(t), ts.endianness())
}

fn npy_dims(path: &Path, header: &NpyHeader) -> Result<Vec<usize>, Error> {
    header
        .shape()
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<Result<_, _>>()
        .map_err(|_| Error::Npy { path: path.to_path_buf(), reason: "a dimension is too large".to_string() })
}

fn npy_dtype_error(path: &Path, found: String, input: &BoundInput) -> Error {
    Error::NpyDtype { path: path.to_path_buf(), found, expected: input.dtype }
}

fn npy_error(path: &Path, e: std::io::Error) -> Error {
    Error::Npy { path: path.to_path_buf(), reason: e.to_string() }
}

pub(crate) fn file_error(path: &Path, err: std::io::Error) -> Error {
    Error::FileRead { path: path.to_path_buf(), err }
}

fn elem_size(dtype: DataType, input: &BoundInput) -> Result<usize, Error> {
    dtype
        .size_of()
        .filter(|_| readable(dtype))
        .ok_or_else(|| Error::UnsupportedType { input: input.name.clone(), dtype })
}

/// Saturates instead of overflowing: no file can be that large, so the size check still fails.
fn byte_count(shape: &[usize], elem: usize) -> u64 {
    shape.iter().try_fold(elem as u64, |n, &d| n.checked_mul(d as u64)).unwrap_or(u64::MAX)
}

fn tensor(input: &BoundInput, data: Vec<u8>) -> Tensor {
    Tensor { dtype: input.dtype, shape: input.shape.clone(), data: Bytes::from(data) }
}

fn f32s(data: &[u8]) -> impl Iterator<Item = f32> + '_ {
    data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
}

/// Casts float32 data to the input's type: floats by conversion, integers only when every value
/// is a whole number in range (a silent truncation would hide a wrong file).
fn from_f32(path: &Path, data: &[u8], input: &BoundInput) -> Result<Tensor, Error> {
    let values = f32s(data);
    let whole = |lo: f64, hi: f64, put: fn(f64, &mut Vec<u8>)| whole_numbers(path, data, input, lo, hi, put);
    let signed = |bits: i32| (-(2f64.powi(bits - 1)), 2f64.powi(bits - 1));
    let unsigned = |bits: i32| (0.0, 2f64.powi(bits));
    // Range checks above make every `as` below exact.
    let out = match input.dtype {
        DataType::Float => data.to_vec(),
        DataType::Double => values.flat_map(|v| f64::from(v).to_le_bytes()).collect(),
        DataType::Float16 => values.flat_map(|v| f16::from_f32(v).to_le_bytes()).collect(),
        DataType::Bfloat16 => values.flat_map(|v| bf16::from_f32(v).to_le_bytes()).collect(),
        DataType::Bool => whole(0.0, 2.0, |w, o| o.push(w as u8))?,
        DataType::Uint8 => {
            let (lo, hi) = unsigned(8);
            whole(lo, hi, |w, o| o.push(w as u8))?
        }
        DataType::Int8 => {
            let (lo, hi) = signed(8);
            whole(lo, hi, |w, o| o.extend((w as i8).to_le_bytes()))?
        }
        DataType::Uint16 => {
            let (lo, hi) = unsigned(16);
            whole(lo, hi, |w, o| o.extend((w as u16).to_le_bytes()))?
        }
        DataType::Int16 => {
            let (lo, hi) = signed(16);
            whole(lo, hi, |w, o| o.extend((w as i16).to_le_bytes()))?
        }
        DataType::Uint32 => {
            let (lo, hi) = unsigned(32);
            whole(lo, hi, |w, o| o.extend((w as u32).to_le_bytes()))?
        }
        DataType::Int32 => {
            let (lo, hi) = signed(32);
            whole(lo, hi, |w, o| o.extend((w as i32).to_le_bytes()))?
        }
        DataType::Uint64 => {
            let (lo, hi) = unsigned(64);
            whole(lo, hi, |w, o| o.extend((w as u64).to_le_bytes()))?
        }
        DataType::Int64 => {
            let (lo, hi) = signed(64);
            whole(lo, hi, |w, o| o.extend((w as i64).to_le_bytes()))?
        }
        dtype => {
            return Err(Error::UnsupportedType { input: input.name.clone(), dtype });
        }
    };
    Ok(tensor(input, out))
}

/// Values in `[lo, hi)` with no fraction (NaN and Inf fail both tests), each written by `put`.
fn whole_numbers(
    path: &Path,
    data: &[u8],
    input: &BoundInput,
    lo: f64,
    hi: f64,
    put: fn(f64, &mut Vec<u8>),
) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(data.len() / 4 * input.dtype.size_of().unwrap_or(1));
    for (index, value) in f32s(data).enumerate() {
        let w = f64::from(value);
        if w.fract() != 0.0 || !(lo..hi).contains(&w) {
            return Err(Error::NotWhole { path: path.to_path_buf(), index, value, dtype: input.dtype });
        }
        put(w, &mut out);
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use npyz::WriterBuilder;
    use std::path::PathBuf;

    pub(crate) fn write_f32(path: &Path, values: &[f32]) {
        std::fs::write(path, values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
    }

    pub(crate) fn write_npy<T: npyz::AutoSerialize + Clone>(path: &Path, shape: &[u64], values: &[T]) {
        write_npy_as(path, shape, values, T::default_dtype(), Order::C);
    }

    fn write_npy_as<T: npyz::Serialize + Clone>(
        path: &Path,
        shape: &[u64],
        values: &[T],
        dtype: DType,
        order: Order,
    ) {
        let mut buf = Vec::new();
        let mut w = npyz::WriteOptions::<T>::new()
            .dtype(dtype)
            .shape(shape)
            .order(order)
            .writer(&mut buf)
            .begin_nd()
            .unwrap();
        w.extend(values.iter().cloned()).unwrap();
        w.finish().unwrap();
        std::fs::write(path, buf).unwrap();
    }

    fn input(name: &str, dtype: DataType, shape: &[usize]) -> BoundInput {
        BoundInput { name: name.to_string(), dtype, shape: shape.to_vec() }
    }

    fn tmp(d: &tempfile::TempDir, name: &str) -> PathBuf {
        d.path().join(name)
    }

    #[test]
    fn raw_float32_as_is() {
        let d = tempfile::tempdir().unwrap();
        let p = tmp(&d, "a.raw");
        write_f32(&p, &[1.0, -2.5]);
        let t = read_file(&p, &input("x", DataType::Float, &[1, 2]), false).unwrap();
        assert_eq!(t, Tensor::from_f32(vec![1, 2], &[1.0, -2.5]));
    }

    #[test]
    fn raw_float32_cast_to_int64() {
        let d = tempfile::tempdir().unwrap();
        let p = tmp(&d, "ids.raw");
        write_f32(&p, &[101.0, -7.0, 0.0, 16_777_216.0]);
        let t = read_file(&p, &input("ids", DataType::Int64, &[1, 4]), false).unwrap();
        assert_eq!(t, Tensor::from_i64(vec![1, 4], &[101, -7, 0, 16_777_216]));
    }

    #[test]
    fn raw_float32_cast_to_small_ints_and_floats() {
        let d = tempfile::tempdir().unwrap();
        let p = tmp(&d, "a.dat"); // any extension but .npy is raw
        write_f32(&p, &[1.0, 0.0, 255.0]);
        let t = read_file(&p, &input("x", DataType::Uint8, &[3]), false).unwrap();
        assert_eq!(&t.data[..], &[1, 0, 255]);
        let t = read_file(&p, &input("x", DataType::Int16, &[3]), false).unwrap();
        assert_eq!(t.to_f32().unwrap(), [1.0, 0.0, 255.0]);
        for dtype in [DataType::Float16, DataType::Bfloat16, DataType::Double] {
            let t = read_file(&p, &input("x", dtype, &[3]), false).unwrap();
            assert_eq!(t.dtype, dtype);
            assert_eq!(t.to_f32().unwrap(), [1.0, 0.0, 255.0]);
        }
        write_f32(&p, &[1.0, 0.0]);
        let t = read_file(&p, &input("m", DataType::Bool, &[2]), false).unwrap();
        assert_eq!(&t.data[..], &[1, 0]);
    }

    #[test]
    fn fractional_or_out_of_range_values_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = tmp(&d, "ids.raw");
        write_f32(&p, &[1.0, 2.5]);
        let m = read_file(&p, &input("ids", DataType::Int64, &[2]), false).unwrap_err().to_string();
        assert!(m.contains("ids.raw") && m.contains("element 1 is 2.5") && m.contains("int64"), "{m}");
        assert!(m.contains("--use_native_input_files"), "{m}");
        write_f32(&p, &[256.0, 0.0]);
        let m = read_file(&p, &input("x", DataType::Uint8, &[2]), false).unwrap_err().to_string();
        assert!(m.contains("element 0 is 256") && m.contains("uint8"), "{m}");
        write_f32(&p, &[0.0, 2.0]);
        let m = read_file(&p, &input("x", DataType::Bool, &[2]), false).unwrap_err().to_string();
        assert!(m.contains("element 1 is 2") && m.contains("bool"), "{m}");
        write_f32(&p, &[9.223372e18, f32::NAN]);
        let m = read_file(&p, &input("x", DataType::Int64, &[2]), false).unwrap_err().to_string();
        assert!(m.contains("element 0 is 9223372000000000000"), "{m}");
        write_f32(&p, &[1.0, f32::NAN]);
        let m = read_file(&p, &input("x", DataType::Int32, &[2]), false).unwrap_err().to_string();
        assert!(m.contains("element 1 is NaN"), "{m}");
    }

    #[test]
    fn native_int64_raw() {
        let d = tempfile::tempdir().unwrap();
        let p = tmp(&d, "ids.raw");
        let values: Vec<u8> = [101i64, 2054, 102].iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(&p, values).unwrap();
        let t = read_file(&p, &input("ids", DataType::Int64, &[1, 3]), true).unwrap();
        assert_eq!(t, Tensor::from_i64(vec![1, 3], &[101, 2054, 102]));
    }

    #[test]
    fn raw_size_mismatch_names_file_bytes_shape_and_type() {
        let d = tempfile::tempdir().unwrap();
        let p = tmp(&d, "a.raw");
        write_f32(&p, &[1.0; 5]);
        let m = read_file(&p, &input("x", DataType::Float, &[1, 2, 3]), false).unwrap_err().to_string();
        assert!(
            m.contains("a.raw has 20 bytes, expected 24 (shape [1,2,3] of float32, 4 bytes each)"),
            "{m}"
        );
        assert!(m.contains("--input_dimensions"), "{m}");
    }

    #[test]
    fn raw_size_hints_at_native_reading() {
        let d = tempfile::tempdir().unwrap();
        let p = tmp(&d, "ids.raw");
        std::fs::write(&p, [0u8; 16]).unwrap();
        // 16 bytes = two int64 values, but read as float32 two values need 8 bytes.
        let m = read_file(&p, &input("ids", DataType::Int64, &[1, 2]), false).unwrap_err().to_string();
        assert!(m.contains("expected 8") && m.contains("fits int64"), "{m}");
        assert!(m.contains("--native_input_tensor_names ids"), "{m}");
        std::fs::write(&p, [0u8; 8]).unwrap();
        let m = read_file(&p, &input("ids", DataType::Int64, &[1, 2]), true).unwrap_err().to_string();
        assert!(
            m.contains("expected 16 (shape [1,2] of int64, 8 bytes each)") && m.contains("fits float32"),
            "{m}"
        );
    }

    #[test]
    fn npy_int64() {
        let d = tempfile::tempdir().unwrap();
        let p = tmp(&d, "ids.npy");
        write_npy(&p, &[1, 3], &[101i64, 7, 102]);
        assert_eq!(npy_shape(&p).unwrap(), [1, 3]);
        let t = read_file(&p, &input("ids", DataType::Int64, &[1, 3]), false).unwrap();
        assert_eq!(t, Tensor::from_i64(vec![1, 3], &[101, 7, 102]));
    }

    #[test]
    fn npy_big_endian_is_swapped() {
        let d = tempfile::tempdir().unwrap();
        let p = tmp(&d, "ids.NPY");
        let be = DType::Plain(">i8".parse().unwrap());
        write_npy_as(&p, &[2], &[1i64, -2], be, Order::C);
        let t = read_file(&p, &input("ids", DataType::Int64, &[2]), false).unwrap();
        assert_eq!(t, Tensor::from_i64(vec![2], &[1, -2]));
    }

    #[test]
    fn npy_float32_is_cast_by_the_float32_rule() {
        let d = tempfile::tempdir().unwrap();
        let p = tmp(&d, "ids.npy");
        write_npy(&p, &[2], &[3.0f32, 4.0]);
        let t = read_file(&p, &input("ids", DataType::Int64, &[2]), false).unwrap();
        assert_eq!(t, Tensor::from_i64(vec![2], &[3, 4]));
        write_npy(&p, &[2], &[3.0f32, 4.5]);
        let m = read_file(&p, &input("ids", DataType::Int64, &[2]), false).unwrap_err().to_string();
        assert!(m.contains("element 1 is 4.5"), "{m}");
    }

    #[test]
    fn npy_wrong_dtype() {
        let d = tempfile::tempdir().unwrap();
        let p = tmp(&d, "ids.npy");
        write_npy(&p, &[2], &[3i32, 4]);
        let m = read_file(&p, &input("ids", DataType::Int64, &[2]), false).unwrap_err().to_string();
        assert!(m.contains("ids.npy holds int32, the input is int64; save it as int64"), "{m}");
        write_npy(&p, &[2], &[1.0f64, 2.0]);
        let m = read_file(&p, &input("x", DataType::Float, &[2]), false).unwrap_err().to_string();
        assert!(m.contains("holds float64, the input is float32"), "{m}");
        // float32 is what is asked for, not a second choice.
        assert!(m.ends_with("save it as float32"), "{m}");
        let text = DType::Plain("<U2".parse().unwrap());
        write_npy_as(&p, &[1], &["ab".to_string()], text, Order::C);
        let m = read_file(&p, &input("x", DataType::Float, &[1]), false).unwrap_err().to_string();
        assert!(m.contains("holds numpy dtype '<U2'"), "{m}");
    }

    #[test]
    fn a_folder_is_no_data_file() {
        let d = tempfile::tempdir().unwrap();
        for name in ["x.raw", "x.npy"] {
            let p = tmp(&d, name);
            std::fs::create_dir(&p).unwrap();
            let m = read_file(&p, &input("x", DataType::Float, &[1024]), false).unwrap_err().to_string();
            assert!(m.contains(&format!("{name} is a folder")), "{m}");
        }
    }

    #[test]
    fn npy_wrong_shape() {
        let d = tempfile::tempdir().unwrap();
        let p = tmp(&d, "ids.npy");
        write_npy(&p, &[1, 2], &[3i64, 4]);
        let m = read_file(&p, &input("ids", DataType::Int64, &[2, 1]), false).unwrap_err().to_string();
        assert!(m.contains("ids.npy has shape [1,2], the input is bound to [2,1]"), "{m}");
    }

    #[test]
    fn npy_fortran_order_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = tmp(&d, "f.npy");
        write_npy_as(
            &p,
            &[2, 2],
            &[1.0f32, 2.0, 3.0, 4.0],
            DType::Plain("<f4".parse().unwrap()),
            Order::Fortran,
        );
        let m = read_file(&p, &input("x", DataType::Float, &[2, 2]), false).unwrap_err().to_string();
        assert!(m.contains("f.npy is stored in Fortran order") && m.contains("C order"), "{m}");
    }

    #[test]
    fn npy_garbage_and_truncation() {
        let d = tempfile::tempdir().unwrap();
        let p = tmp(&d, "bad.npy");
        std::fs::write(&p, b"not an npy file").unwrap();
        let m = npy_shape(&p).unwrap_err().to_string();
        assert!(m.contains("bad.npy is not a readable .npy file"), "{m}");
        write_npy(&p, &[4], &[1.0f32; 4]);
        let mut bytes = std::fs::read(&p).unwrap();
        bytes.truncate(bytes.len() - 4);
        std::fs::write(&p, bytes).unwrap();
        let m = read_file(&p, &input("x", DataType::Float, &[4]), false).unwrap_err().to_string();
        assert!(m.contains("promises 16 data bytes") && m.contains("holds 12"), "{m}");
    }

    #[test]
    fn missing_data_file() {
        let d = tempfile::tempdir().unwrap();
        let m = read_file(&tmp(&d, "gone.raw"), &input("x", DataType::Float, &[1]), false)
            .unwrap_err()
            .to_string();
        assert!(m.contains("cannot read") && m.contains("gone.raw"), "{m}");
    }

    #[test]
    fn nonfinite_counts_per_float_type() {
        let t = Tensor::from_f32(vec![4], &[1.0, f32::NAN, f32::INFINITY, f32::NEG_INFINITY]);
        assert_eq!(count_nonfinite(&t), 3);
        let d = tempfile::tempdir().unwrap();
        let p = tmp(&d, "a.raw");
        // 1e6 overflows float16, so it counts once cast.
        write_f32(&p, &[1e6, 1.0]);
        let t = read_file(&p, &input("x", DataType::Float16, &[2]), false).unwrap();
        assert_eq!(count_nonfinite(&t), 1);
        write_f32(&p, &[f32::NAN, 1.0]);
        for dtype in [DataType::Double, DataType::Bfloat16] {
            assert_eq!(count_nonfinite(&read_file(&p, &input("x", dtype, &[2]), false).unwrap()), 1);
        }
        assert_eq!(count_nonfinite(&Tensor::from_i64(vec![1], &[5])), 0);
    }

    #[test]
    fn unreadable_types() {
        assert!(readable(DataType::Bool) && readable(DataType::Bfloat16));
        assert!(!readable(DataType::String) && !readable(DataType::Int4) && !readable(DataType::Complex64));
    }

    /// Found by fuzzing (fuzz target `input_list`): a version-3 header whose length field says
    /// 3.3 GB made npyz allocate that much for a 200-byte file.
    #[test]
    fn fuzz_npy_header_longer_than_the_file_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let p = tmp(&d, "x.npy");
        let mut bytes = b"\x93NUMPY\x03\x00".to_vec();
        bytes.extend_from_slice(&0xc4c4_c4c4u32.to_le_bytes());
        bytes.extend_from_slice(&[b' '; 100]);
        std::fs::write(&p, bytes).unwrap();
        let expect = "x.npy is not a readable .npy file: its header claims to end at byte 3301229776, \
                      past the end of the file (112 bytes)";
        let m = npy_shape(&p).unwrap_err().to_string();
        assert!(m.contains(expect), "{m}");
        let m = read_file(&p, &input("x", DataType::Float, &[2]), false).unwrap_err().to_string();
        assert!(m.contains(expect), "{m}");
    }

    /// Found by fuzzing (fuzz target `input_list`): a header nesting ninety `[` kept npyz's parser
    /// busy for minutes (its backtracking is exponential in the nesting).
    #[test]
    fn fuzz_npy_header_nested_too_deep_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let p = tmp(&d, "x.npy");
        let header =
            format!("{{{}'descr': '<f4', 'fortran_order': False, 'shape': (2,), }}\n", "[".repeat(90));
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(&[0u8; 8]);
        std::fs::write(&p, bytes).unwrap();
        let m = npy_shape(&p).unwrap_err().to_string();
        assert!(m.contains("x.npy is not a readable .npy file: its header nests brackets 92 deep"), "{m}");
        let m = read_file(&p, &input("x", DataType::Float, &[2]), false).unwrap_err().to_string();
        assert!(m.contains("nests brackets 92 deep"), "{m}");
    }
}
