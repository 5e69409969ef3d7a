//! External data (`data_location = EXTERNAL`): tensors whose bytes live in a file beside the model.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

use bytes::Bytes;
use prost::Message;

use crate::Error;
use crate::proto::{GraphProto, ModelProto, StringStringEntryProto, TensorProto, tensor_proto::DataLocation};

/// Protobuf cannot exceed 2 GiB; keep a margin for everything that is not tensor data.
const PROTOBUF_LIMIT: usize = (2 << 30) - (64 << 20);
/// Tensors smaller than this stay inline even when a model is externalised (as onnx does).
const EXTERNAL_MIN_BYTES: usize = 1024;

pub fn is_external(t: &TensorProto) -> bool {
    t.data_location() == DataLocation::External
}

/// The raw little-endian bytes of a tensor stored in `raw_data` or as external data relative to
/// `model_dir`; `None` when its values are in the typed fields (`float_data`, `int64_data`, …).
pub fn tensor_bytes(t: &TensorProto, model_dir: &Path) -> Result<Option<Bytes>, Error> {
    if is_external(t) {
        return read_external(t, model_dir).map(Some);
    }
    Ok(t.raw_data.clone())
}

fn entry<'a>(t: &'a TensorProto, key: &str) -> Option<&'a str> {
    t.external_data.iter().find(|e| e.key() == key).map(|e| e.value())
}

/// Checks every external tensor of `model` (initializers, attributes, subgraphs) as
/// [`tensor_bytes`] would read it, without reading the data.
pub(crate) fn check_locations(model: &ModelProto, model_dir: &Path) -> Result<(), Error> {
    let mut result = Ok(());
    if let Some(g) = &model.graph {
        visit(g, &mut |t| {
            if result.is_ok() && is_external(t) {
                result = locate(t, model_dir).map(|_| ());
            }
        });
    }
    result
}

/// Where an external tensor's bytes are: the file, the offset and the length, checked against the
/// file's size and confined to `model_dir`.
struct Span {
    path: PathBuf,
    offset: u64,
    length: u64,
}

fn locate(t: &TensorProto, model_dir: &Path) -> Result<Span, Error> {
    let fail = |reason: String| Error::ExternalData {
        model: model_dir.to_owned(),
        tensor: t.name().to_owned(),
        reason,
    };
    let location = entry(t, "location").ok_or_else(|| fail("has no `location`".into()))?;
    let rel = Path::new(location);
    // A model must not read files outside its own folder (onnx refuses these too).
    let outside = || {
        fail(format!(
            "location `{location}` leaves the model's folder; keep the data file in the model's folder \
             and name it by a relative path"
        ))
    };
    if rel.is_absolute() || rel.components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir)) {
        return Err(outside());
    }
    let number = |key: &str| -> Result<Option<u64>, Error> {
        entry(t, key)
            .map(|v| v.parse::<u64>().map_err(|_| fail(format!("`{key}` is `{v}`, not a byte count"))))
            .transpose()
    };
    let offset = number("offset")?.unwrap_or(0);
    let path = model_dir.join(rel);
    // A symbolic link inside the folder may still point out of it: compare the real paths.
    let dir = if model_dir.as_os_str().is_empty() { Path::new(".") } else { model_dir };
    let real =
        |p: &Path| p.canonicalize().map_err(|e| fail(format!("file {} cannot be opened: {e}", p.display())));
    if !real(&path)?.starts_with(real(dir)?) {
        return Err(outside());
    }
    let file =
        File::open(&path).map_err(|e| fail(format!("file {} cannot be opened: {e}", path.display())))?;
    let size = file.metadata().map_err(|e| fail(format!("{}: {e}", path.display())))?.len();
    let length = number("length")?.unwrap_or(size.saturating_sub(offset));
    if offset.checked_add(length).is_none_or(|end| end > size) {
        return Err(fail(format!(
            "asks for bytes {offset}..{} of {}, which has {size} bytes",
            offset.saturating_add(length),
            path.display()
        )));
    }
    Ok(Span { path, offset, length })
}

fn read_external(t: &TensorProto, model_dir: &Path) -> Result<Bytes, Error> {
    let Span { path, offset, length } = locate(t, model_dir)?;
    let fail = |e: std::io::Error| Error::ExternalData {
        model: model_dir.to_owned(),
        tensor: t.name().to_owned(),
        reason: format!("{}: {e}", path.display()),
    };
    let mut file = File::open(&path).map_err(fail)?;
    let mut buf = vec![0u8; length as usize];
    file.seek(SeekFrom::Start(offset)).and_then(|_| file.read_exact(&mut buf)).map_err(fail)?;
    Ok(Bytes::from(buf))
}

/// Returns a copy of `model` whose external tensors (and, past the protobuf limit, its large
/// tensors) point into one data file named `data_name`, with that file's bytes; `None` when the
/// model can be written as it is.
pub(crate) fn externalise(
    model: &ModelProto,
    source_dir: &Path,
    data_name: &str,
) -> Result<Option<(ModelProto, Vec<u8>)>, Error> {
    externalise_past(model, source_dir, data_name, PROTOBUF_LIMIT)
}

fn externalise_past(
    model: &ModelProto,
    source_dir: &Path,
    data_name: &str,
    limit: usize,
) -> Result<Option<(ModelProto, Vec<u8>)>, Error> {
    let mut any_external = false;
    if let Some(g) = &model.graph {
        visit(g, &mut |t| any_external |= is_external(t));
    }
    let too_big = model.encoded_len() > limit;
    if !any_external && !too_big {
        return Ok(None);
    }
    let mut out = model.clone();
    let mut data = Vec::new();
    let mut failure = None;
    if let Some(g) = &mut out.graph {
        visit_mut(g, &mut |t| {
            if failure.is_some() {
                return;
            }
            let bytes = if is_external(t) {
                match read_external(t, source_dir) {
                    Ok(b) => b,
                    Err(e) => return failure = Some(e),
                }
            } else if too_big && t.raw_data.as_ref().is_some_and(|r| r.len() >= EXTERNAL_MIN_BYTES) {
                t.raw_data.take().unwrap_or_default()
            } else {
                return;
            };
            let kv = |k: &str, v: String| StringStringEntryProto { key: Some(k.into()), value: Some(v) };
            t.external_data = vec![
                kv("location", data_name.into()),
                kv("offset", data.len().to_string()),
                kv("length", bytes.len().to_string()),
            ];
            t.set_data_location(DataLocation::External);
            t.raw_data = None;
            data.extend_from_slice(&bytes);
        });
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(Some((out, data))),
    }
}

fn visit(g: &GraphProto, f: &mut impl FnMut(&TensorProto)) {
    g.initializer.iter().for_each(&mut *f);
    for n in &g.node {
        for a in &n.attribute {
            a.t.iter().chain(&a.tensors).for_each(&mut *f);
            a.g.iter().chain(&a.graphs).for_each(|sub| visit(sub, f));
        }
    }
}

fn visit_mut(g: &mut GraphProto, f: &mut impl FnMut(&mut TensorProto)) {
    g.initializer.iter_mut().for_each(&mut *f);
    for n in &mut g.node {
        for a in &mut n.attribute {
            a.t.iter_mut().chain(&mut a.tensors).for_each(&mut *f);
            a.g.iter_mut().chain(&mut a.graphs).for_each(|sub| visit_mut(sub, f));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::GraphProto;

    fn tensor(name: &str, bytes: usize) -> TensorProto {
        TensorProto {
            name: Some(name.into()),
            data_type: Some(2),
            dims: vec![bytes as i64],
            raw_data: Some(Bytes::from(vec![7u8; bytes])),
            ..Default::default()
        }
    }

    #[test]
    fn a_model_past_the_limit_moves_its_large_tensors_out() {
        let graph =
            GraphProto { initializer: vec![tensor("big", 4096), tensor("small", 8)], ..Default::default() };
        let model = ModelProto { ir_version: Some(8), graph: Some(graph), ..Default::default() };
        assert!(externalise_past(&model, Path::new("."), "m.onnx.data", usize::MAX).unwrap().is_none());
        let (out, data) = externalise_past(&model, Path::new("."), "m.onnx.data", 1000).unwrap().unwrap();
        let init = &out.graph.as_ref().unwrap().initializer;
        assert!(is_external(&init[0]) && !is_external(&init[1]));
        assert_eq!(data, vec![7u8; 4096]);
        assert_eq!(entry(&init[0], "location"), Some("m.onnx.data"));
        assert_eq!(entry(&init[0], "length"), Some("4096"));
    }
}
