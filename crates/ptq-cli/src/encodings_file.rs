//! Writing `ptq quantize`'s results: the QDQ model and, when asked, the encodings JSON.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use ptq_algos::{Fold, Smoothing};
use ptq_onnx::proto::ModelProto;
use ptq_pipeline::Config;
use ptq_pipeline::shares::{At, Shares};
use ptq_pipeline::simulate::OutputSqnr;
use ptq_quant::json::to_json;
use ptq_quant::patterns::{Finding, Precision};
use ptq_quant::rules::{Layout, Role};
use ptq_quant::{Encodings, Kind, MinMax};

use crate::UsageError;
use crate::summary::LeftFloat;

/// The encodings JSON. Its header's `is_symmetric` says what the weights got, not only what was
/// asked: per-channel and per-row weights are symmetric under any --param_quantizer_schema.
pub fn render(encodings: &Encodings, config: &Config, layout: &Layout) -> Result<String> {
    let mut args = config.quantizer_args();
    let mut weights = encodings
        .tensors
        .iter()
        .filter(|(name, _)| matches!(layout.roles.get(*name), Some(Role::Weight { .. })))
        .peekable();
    if weights.peek().is_some() {
        args.param_symmetric = weights.all(|(_, t)| t.encoding.symmetric);
    }
    Ok(to_json(encodings, &args, config.json_version)?)
}

/// The model path `flag` names, checked before any work (that it overwrites no input is
/// [`crate::overwrite::check`]'s): not a folder, not inside a file, and not a `.dlc` name (a
/// qairt habit), since what is written there is an ONNX model.
pub fn check_output_model(flag: &str, out: &Path) -> Result<()> {
    if out.is_dir() {
        bail!("{flag} {} is a folder; give the path of the .onnx file to write", out.display());
    }
    // The nearest existing folder above it must be one: a file there cannot hold the output.
    if let Some(file) = out.ancestors().skip(1).find(|a| a.exists()).filter(|a| !a.is_dir()) {
        bail!(
            "{flag} {}: {} is a file, not a folder; choose a path in a folder",
            out.display(),
            file.display()
        );
    }
    if out.extension().is_some_and(|e| e.eq_ignore_ascii_case("dlc")) {
        bail!(UsageError(format!(
            "{flag} {}: ptq writes a QDQ ONNX model, not a DLC (qairt-converter turns that model into \
             one); name it {}",
            out.display(),
            out.with_extension("onnx").display()
        )));
    }
    Ok(())
}

/// Writes the model and its side files (encodings JSON, report) atomically; on failure nothing
/// new is left behind.
pub fn write_outputs(
    model: &ModelProto,
    source_dir: &Path,
    output: &Path,
    side: &[(PathBuf, String)],
) -> Result<()> {
    let dir = output.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the folder of {}", output.display()))?;
    crate::interrupt::register_temp_files(dir);
    let mut written: Vec<&Path> = Vec::new();
    let mut result = side.iter().try_for_each(|(path, text)| {
        write_atomic(path, text.as_bytes())?;
        written.push(path);
        Ok::<(), anyhow::Error>(())
    });
    if result.is_ok() {
        result = ptq_onnx::save(model, source_dir, output).map_err(Into::into);
    }
    if result.is_err() {
        for path in written {
            let _ = std::fs::remove_file(path);
        }
    }
    result
}

/// `ptq quantize`'s per-tensor report: where each encoding came from (override, QAT, calibrated,
/// propagated, derived) or why the tensor stayed float, and the closing SQNR.
/// How calibration ranges were set: the methods, and per calibrated tensor the observed and the
/// chosen range.
pub struct Ranges<'a> {
    pub activations: ptq_quant::Method,
    pub weights: ptq_quant::Method,
    pub observed: &'a BTreeMap<String, MinMax>,
    pub chosen: &'a BTreeMap<String, MinMax>,
}

/// What the report holds besides the encodings and the ranges.
pub struct Findings<'a> {
    pub left_float: &'a BTreeMap<String, LeftFloat>,
    pub folds: &'a [Fold],
    pub patterns: &'a [Finding],
    pub smoothed: &'a [Smoothing],
    pub shares: &'a Shares,
}

pub fn report(
    encodings: &Encodings,
    sqnr: &[OutputSqnr],
    ranges: &Ranges,
    findings: &Findings,
) -> Result<String> {
    let Findings { left_float: left, folds, patterns, smoothed, shares } = findings;
    // How many samples the SQNR was measured on, and which list they came from (none in float
    // fallback).
    let sqnr_samples = sqnr.first().map_or(0, |s| s.samples);
    let sqnr_list = sqnr.first().map(|s| if s.eval_list { "eval_list" } else { "input_list" });
    let mut tensors = serde_json::Map::new();
    let kind = |k: Kind| if k == Kind::Activation { "activation" } else { "param" };
    let names: std::collections::BTreeSet<&String> = encodings.tensors.keys().chain(left.keys()).collect();
    for name in names {
        let entry = match (encodings.tensors.get(name), left.get(name)) {
            (Some(t), _) => {
                let mut e = serde_json::json!({
                    "origin": t.encoding.origin.name(),
                    "kind": kind(t.kind),
                    "dtype": "int",
                    "bitwidth": t.encoding.bitwidth,
                });
                if let (Some(o), Some(c)) = (ranges.observed.get(name), ranges.chosen.get(name)) {
                    e["observed_range"] = serde_json::json!([o.min, o.max]);
                    e["chosen_range"] = serde_json::json!([c.min, c.max]);
                }
                e
            }
            (None, Some(f)) => serde_json::json!({
                "origin": f.origin,
                "kind": kind(f.kind),
                "dtype": "float",
                "bitwidth": encodings.floats.get(name).map_or(32, |f| f.bitwidth),
            }),
            (None, None) => continue,
        };
        tensors.insert(name.clone(), entry);
    }
    let sqnr: serde_json::Map<String, serde_json::Value> = sqnr
        .iter()
        .map(|s| {
            (s.name.clone(), if s.db.is_finite() { serde_json::json!(s.db) } else { serde_json::Value::Null })
        })
        .collect();
    let folded: Vec<serde_json::Value> = folds
        .iter()
        .map(|f| serde_json::json!({ "layer": f.layer, "folded": f.follower, "op_type": f.kind.op_type() }))
        .collect();
    let calibration = serde_json::json!({
        "activations": ranges.activations.to_string(),
        "weights": ranges.weights.to_string(),
        "clipped_activations": clipped(ranges).len(),
    });
    let mut patterns: Vec<serde_json::Value> = patterns
        .iter()
        .map(|f| {
            let (action, bitwidth) = match f.precision {
                Precision::Float { bitwidth, .. } => ("float", bitwidth),
                Precision::Bits(bits) => ("int", Some(bits)),
            };
            serde_json::json!({
                "pattern": f.pattern.name(),
                "at": f.at,
                "tensors": f.tensors,
                "action": action,
                "bitwidth": bitwidth,
                "summary": f.describe(),
            })
        })
        .collect();
    patterns.extend(smoothed.iter().map(|s| {
        serde_json::json!({
            "pattern": "activation outliers into MatMul",
            "at": s.tensor,
            "tensors": [&s.tensor],
            "action": "smoothquant",
            "producer": s.producer,
            "weights": s.weights,
            "channel_ratio": s.ratio,
            "scale_range": [s.scales.0, s.scales.1],
            "summary": s.describe(),
        })
    }));
    // Counts and shares per precision, keyed `int8`, `int16`, `float`.
    let by_key = |at: &mut dyn Iterator<Item = (At, serde_json::Value)>| -> serde_json::Map<_, _> {
        at.map(|(at, v)| (at.key(), v)).collect()
    };
    let precision = serde_json::json!({
        "macs": by_key(&mut shares.macs.iter().map(|(&at, n)| (at, serde_json::json!(n)))),
        "mac_share": by_key(&mut shares.macs.keys().map(|&at| (at, serde_json::json!(shares.mac_share(at))))),
        "uncounted_layers": shares.uncounted,
        "activations": by_key(&mut shares.activations.iter().map(|(&at, n)| (at, serde_json::json!(n)))),
        "activation_share": by_key(
            &mut shares.activations.keys().map(|&at| (at, serde_json::json!(shares.activation_share(at))))
        ),
    });
    let doc = serde_json::json!({
        "tensors": tensors,
        "folded": folded,
        "calibration": calibration,
        "patterns": patterns,
        "precision": precision,
        "sqnr_db": sqnr,
        "sqnr_samples": sqnr_samples,
        "sqnr_list": sqnr_list,
    });
    Ok(serde_json::to_string_pretty(&doc)? + "\n")
}

/// The calibrated tensors whose chosen range is narrower than what calibration saw.
pub fn clipped<'a>(ranges: &Ranges<'a>) -> Vec<&'a String> {
    ranges
        .chosen
        .iter()
        .filter(|(n, c)| ranges.observed.get(*n).is_some_and(|o| c.min > o.min || c.max < o.max))
        .map(|(n, _)| n)
        .collect()
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
