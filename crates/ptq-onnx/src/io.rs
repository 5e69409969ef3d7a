use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use prost::Message;

use crate::Error;
use crate::external;
use crate::proto::ModelProto;

/// A decoded model and the file it came from (external data is resolved against its folder).
#[derive(Debug, Clone)]
pub struct Loaded {
    pub model: ModelProto,
    pub path: PathBuf,
}

impl Loaded {
    /// The folder that external-data locations are relative to.
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new(""))
    }
}

/// Reads and decodes an ONNX file, see [`from_bytes`].
pub fn load(path: &Path) -> Result<Loaded, Error> {
    let bytes = fs::read(path).map_err(|err| Error::Read { path: path.to_owned(), err })?;
    from_bytes(Bytes::from(bytes), path)
}

/// Decodes the bytes of the ONNX file `path` and checks its external data: every location must
/// name a file inside the model's folder that holds the bytes asked for. Checking them all here,
/// before anything else reads the model, is what keeps a model from reading other files.
pub fn from_bytes(bytes: Bytes, path: &Path) -> Result<Loaded, Error> {
    let loaded = Loaded { model: decode(bytes, path)?, path: path.to_owned() };
    external::check_locations(&loaded.model, loaded.dir())?;
    Ok(loaded)
}

/// The newest IR version of the onnx.proto this crate is built from.
const MAX_IR_VERSION: i64 = crate::proto::Version::IrVersion as i64;

/// Decodes ONNX bytes; `path` only names the file in errors.
///
/// Protobuf decodes many byte strings that are not models, so a model must also carry an IR
/// version and a graph. Exporters write `ir_version` (field 1, varint) first, which tells a
/// truncated model from a file of another kind when decoding fails.
pub fn decode(bytes: Bytes, path: &Path) -> Result<ModelProto, Error> {
    let not_onnx = |reason: &str| Error::NotOnnx { path: path.to_owned(), reason: reason.into() };
    if bytes.is_empty() {
        return Err(not_onnx("the file is empty"));
    }
    let starts_like_model = bytes[0] == 0x08;
    match ModelProto::decode(bytes) {
        Ok(m) if m.ir_version.is_none() => Err(not_onnx("it has no IR version")),
        Ok(m) if m.graph.is_none() => Err(not_onnx("it has no graph")),
        // A newer IR may mean things this reader does not know (new types, fields).
        Ok(m) if !(1..=MAX_IR_VERSION).contains(&m.ir_version()) => {
            Err(Error::IrVersion { path: path.to_owned(), version: m.ir_version(), max: MAX_IR_VERSION })
        }
        Ok(m) => Ok(m),
        Err(_) if !starts_like_model => Err(not_onnx("it is not a protobuf ModelProto")),
        Err(err) => Err(Error::Corrupt { path: path.to_owned(), err }),
    }
}

/// Encodes a model exactly as prost writes it (byte-identical to the input when untouched).
pub fn encode(model: &ModelProto) -> Vec<u8> {
    model.encode_to_vec()
}

/// Writes `model` to `path` atomically (a temporary file in the target folder, renamed at the end).
///
/// `source_dir` is where the model's external data lives now. External tensors are copied into
/// `<file name>.data` beside the output, and so are the large tensors of a model whose protobuf
/// would pass 2 GiB (the protobuf limit of every other ONNX tool).
pub fn save(model: &ModelProto, source_dir: &Path, path: &Path) -> Result<(), Error> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let file_name =
        path.file_name().map(|n| n.to_string_lossy().into_owned()).ok_or_else(|| Error::Write {
            path: path.to_owned(),
            err: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file path"),
        })?;
    let externalised = external::externalise(model, source_dir, &format!("{file_name}.data"))?;
    let (model_bytes, data) = match &externalised {
        Some((m, data)) => (encode(m), Some(data)),
        None => (encode(model), None),
    };
    // Write the data file first: a model must never point at data that is not there yet.
    let mut pending = Vec::new();
    if let Some(data) = data {
        pending.push(write_temp(dir, &dir.join(format!("{file_name}.data")), data)?);
    }
    pending.push(write_temp(dir, path, &model_bytes)?);
    for (tmp, target) in pending {
        tmp.persist(&target).map_err(|e| Error::Write { path: target.clone(), err: e.error })?;
    }
    Ok(())
}

/// The name prefix of this process's temporary files: a folder's half-written files can be
/// found (and removed on Ctrl-C) without touching another process's.
pub fn temp_prefix() -> String {
    format!(".ptq-{}-", std::process::id())
}

fn write_temp(dir: &Path, target: &Path, bytes: &[u8]) -> Result<(tempfile::NamedTempFile, PathBuf), Error> {
    let err = |err| Error::Write { path: target.to_owned(), err };
    let mut tmp =
        tempfile::Builder::new().prefix(&temp_prefix()).suffix(".tmp").tempfile_in(dir).map_err(err)?;
    tmp.write_all(bytes).map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    set_readable(tmp.as_file()).map_err(err)?;
    Ok((tmp, target.to_owned()))
}

#[cfg(unix)]
fn set_readable(f: &fs::File) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    // tempfile creates 0600; outputs are ordinary files (0644).
    f.set_permissions(fs::Permissions::from_mode(0o644))
}

#[cfg(not(unix))]
fn set_readable(_: &fs::File) -> std::io::Result<()> {
    Ok(())
}
