//! Writing `ptq quantize`'s results: the QDQ model and, when asked, the encodings JSON.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use ptq_onnx::proto::ModelProto;
use ptq_quant::Encodings;
use ptq_quant::json::{JsonVersion, QuantizerArgs, to_json};

use crate::cli::{EncodingVersion, QuantizeArgs, SchemaArg};
use crate::quantize::encodings_path;

pub fn render(encodings: &Encodings, args: &QuantizeArgs) -> Result<String> {
    let version = match args.encoding_version {
        EncodingVersion::V1_0_0 => JsonVersion::V1_0_0,
        EncodingVersion::V0_6_1 => JsonVersion::V0_6_1,
    };
    let quantizer_args = QuantizerArgs {
        activation_bitwidth: args.act_bitwidth,
        param_bitwidth: args.weights_bitwidth,
        act_symmetric: args.act_quantizer_schema != SchemaArg::Asymmetric,
        param_symmetric: args.param_quantizer_schema != SchemaArg::Asymmetric,
        per_channel: args.use_per_channel_quantization,
        per_row: args.use_per_row_quantization,
        bias_bitwidth: args.bias_bitwidth,
    };
    Ok(to_json(encodings, &quantizer_args, version)?)
}

/// Writes the model (and JSON) atomically; on failure nothing new is left behind.
pub fn write_outputs(model: &ModelProto, source_dir: &Path, output: &Path, json: Option<&str>) -> Result<()> {
    if let Some(dir) = output.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the folder of {}", output.display()))?;
    }
    let json_path = encodings_path(output);
    crate::interrupt::register_temp_files(
        output.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new(".")),
    );
    if let Some(text) = json {
        write_atomic(&json_path, text.as_bytes())?;
    }
    if let Err(e) = ptq_onnx::save(model, source_dir, output) {
        if json.is_some() {
            let _ = std::fs::remove_file(&json_path);
        }
        return Err(e.into());
    }
    Ok(())
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let fail = || format!("cannot write {}", path.display());
    let mut tmp = tempfile::Builder::new()
        .prefix(&ptq_onnx::temp_prefix())
        .suffix(".tmp")
        .tempfile_in(dir)
        .with_context(fail)?;
    tmp.write_all(bytes).with_context(fail)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file().set_permissions(std::fs::Permissions::from_mode(0o644)).with_context(fail)?;
    }
    tmp.persist(path).map_err(|e| e.error).with_context(fail)?;
    Ok(())
}
