//! Writing tensors as `.raw` (float32, qnn-net-run's default) and `.npy` (their own dtype).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result, bail};
use npyz::WriterBuilder;
use ptq_ir::{DataType, Tensor};

pub fn write_raw_f32(path: &Path, t: &Tensor) -> Result<()> {
    let Some(values) = t.to_f32() else { bail!("{} values cannot be written as float32", t.dtype) };
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

pub fn write_npy(path: &Path, t: &Tensor) -> Result<()> {
    let err = || format!("cannot write {}", path.display());
    let shape: Vec<u64> = t.shape.iter().map(|&d| d as u64).collect();
    let mut file = BufWriter::new(File::create(path).with_context(err)?);
    macro_rules! write_as {
        ($ty:ty, $n:expr) => {{
            let mut w = npyz::WriteOptions::<$ty>::new()
                .default_dtype()
                .shape(&shape)
                .writer(&mut file)
                .begin_nd()
                .with_context(err)?;
            for c in t.data.chunks_exact($n) {
                w.push(&<$ty>::from_le_bytes(c.try_into().expect("chunk size"))).with_context(err)?;
            }
            w.finish().with_context(err)?;
        }};
    }
    match t.dtype {
        DataType::Float => write_as!(f32, 4),
        DataType::Double => write_as!(f64, 8),
        DataType::Int8 => write_as!(i8, 1),
        DataType::Uint8 => write_as!(u8, 1),
        DataType::Int16 => write_as!(i16, 2),
        DataType::Uint16 => write_as!(u16, 2),
        DataType::Int32 => write_as!(i32, 4),
        DataType::Uint32 => write_as!(u32, 4),
        DataType::Int64 => write_as!(i64, 8),
        DataType::Uint64 => write_as!(u64, 8),
        DataType::Float16 => write_as!(half::f16, 2),
        DataType::Bool => {
            let mut w = npyz::WriteOptions::<bool>::new()
                .default_dtype()
                .shape(&shape)
                .writer(&mut file)
                .begin_nd()
                .with_context(err)?;
            for &b in t.data.iter() {
                w.push(&(b != 0)).with_context(err)?;
            }
            w.finish().with_context(err)?;
        }
        other => bail!("{other} values cannot be written as .npy"),
    }
    file.flush().with_context(err)
}
