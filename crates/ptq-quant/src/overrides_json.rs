//! Reading an overrides / encodings JSON (spec §4.1–§4.4) into [`GivenEncodings`].
//!
//! Three formats:
//! * **0.6.1** (also 0.4.0/0.5.0, and files without `version`): `activation_encodings` and
//!   `param_encodings` are dicts from tensor name to a list of encodings, one per channel
//!   (spec §4.1). Booleans may be the strings `"True"`/`"False"`; offsets may be integral floats.
//! * **1.0.0**: the same two sections as lists of entries with a `name` (spec §4.2).
//! * **2.0.0** (and 2.x): one flat `encodings` list in ONNX terms, `output_dtype`, `y_scale`,
//!   `y_zero_point`, `axis` (spec §4.3).
//!
//! QNN offsets (`o`, on the unsigned grid) become ONNX zero points here, the only place besides
//! the writer ([`crate::json`]) where they exist (DESIGN.md, Encodings): asymmetric → unsigned
//! storage, `zp = −o`; symmetric `o = −2^(b−1)` → signed, zp 0; strict symmetric
//! `o = −(2^(b−1) − 1)` → signed strict, zp 0; symmetric `o = 0` → unsigned symmetric (spec §3.1),
//! except at 32 bits, where offset 0 is the signed bias convention the writer uses (spec §3.2
//! example 14). Every file [`crate::json::to_json`] writes reads back to bit-identical scales and
//! zero points (`--restrict_quantization_steps` grids read back as plain symmetric ones: the JSON
//! does not record the restriction).
//!
//! Per-channel encodings of 0.6.1 and 1.0.0 carry no axis: they are read with `axis: Some(0)`,
//! the output-channel axis of a Conv weight. The caller knows the graph and re-targets it
//! (ConvTranspose weights: 1; Gemm/MatMul per-row: spec §3.2 Granularities). 2.0.0 gives its axis.
//!
//! Names are checked against the model by [`check_names`], separately, because parsing needs no
//! graph.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use serde_json::{Map, Value};

use crate::{Encoding, Given, GivenEncoding, GivenEncodings, Origin, QuantSpec, Schema, Section};

/// Why an overrides file cannot be used. Every variant names the file (except the two that
/// compare it with the model, [`check_names`]) and the tensor when there is one.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OverridesError {
    /// Not JSON at all.
    #[error("{file}:{line}:{column}: malformed JSON: {message}")]
    Syntax { file: String, line: usize, column: usize, message: String },

    /// A field (or the file, or an entry) holds the wrong JSON type.
    #[error("{file}: {context}: `{field}` must be {expected}, not {found}")]
    Type { file: String, context: String, field: String, expected: String, found: String },

    /// The file's layout or version is not one ptq reads.
    #[error("{file}: {message}")]
    Format { file: String, message: String },

    /// One tensor's encoding is invalid or not supported.
    #[error("{file}: tensor `{tensor}`: {reason}")]
    Entry { file: String, tensor: String, reason: String },

    /// The same tensor appears twice.
    #[error(
        "{file}: tensor `{tensor}` is given twice (in `{first}` and in `{second}`); keep one of the entries"
    )]
    Duplicate { file: String, tensor: String, first: String, second: String },

    /// Names the model does not have ([`check_names`]).
    #[error("{}", unknown_message(.names))]
    UnknownNames { names: Vec<UnknownName> },

    /// A per-channel encoding whose channel count is not the tensor's ([`check_names`]).
    #[error(
        "overrides: tensor `{tensor}` has {given} per-channel encodings, but the tensor has {channels} \
         channels along axis {axis}; give one encoding per output channel"
    )]
    ChannelCount { tensor: String, axis: usize, given: usize, channels: usize },
}

/// An override naming a tensor the model does not have, with the model's closest names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownName {
    pub name: String,
    /// Up to [`SUGGESTIONS`] existing tensor names, closest first (edit distance, ties by name).
    pub closest: Vec<String>,
}

/// How many close names an unknown-name error lists.
pub const SUGGESTIONS: usize = 5;

impl fmt::Display for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`", self.name)?;
        if !self.closest.is_empty() {
            let list: Vec<String> = self.closest.iter().map(|n| format!("`{n}`")).collect();
            write!(f, " (closest: {})", list.join(", "))?;
        }
        Ok(())
    }
}

fn unknown_message(names: &[UnknownName]) -> String {
    let list: Vec<String> = names.iter().map(ToString::to_string).collect();
    format!(
        "overrides name {} tensor{} the model does not have: {}. Overrides name ONNX tensors \
         (graph inputs, node outputs, initializers), not nodes; fix the names, or pass \
         --allow_unknown_override_names to ignore them with a warning",
        names.len(),
        if names.len() == 1 { "" } else { "s" },
        list.join("; ")
    )
}

/// Reads an overrides file. `path` is used only in messages. Warnings are dropped; see
/// [`parse_overrides_with_warnings`].
pub fn parse_overrides(path: &Path, text: &str) -> Result<GivenEncodings, OverridesError> {
    parse_overrides_with_warnings(path, text).map(|(given, _)| given)
}

/// As [`parse_overrides`], with the warnings the file deserves (ignored keys, positive 0.6.1
/// offsets read as negative, scale/offset recomputed from a disagreeing min/max), in file order.
pub fn parse_overrides_with_warnings(
    path: &Path,
    text: &str,
) -> Result<(GivenEncodings, Vec<String>), OverridesError> {
    let mut reader = Reader {
        file: path.display().to_string(),
        warnings: Vec::new(),
        given: GivenEncodings::new(),
        seen: BTreeMap::new(),
    };
    let root: Value = serde_json::from_str(text).map_err(|e| reader.syntax(&e))?;
    reader.file_(&root)?;
    Ok((reader.given, reader.warnings))
}

/// Checks the parsed overrides against the model: every name must be one of `tensors`, and every
/// per-channel encoding must have as many channels as `channels(name, axis)` says the tensor has
/// (`None`: unknown, not checked). Unknown names are one error listing each with its closest
/// existing names; with `allow_unknown` they are warnings instead (one per name), and the caller
/// skips those entries.
pub fn check_names(
    given: &GivenEncodings,
    tensors: &BTreeSet<String>,
    channels: &dyn Fn(&str, usize) -> Option<usize>,
    allow_unknown: bool,
) -> Result<Vec<String>, OverridesError> {
    let unknown: Vec<UnknownName> = given
        .keys()
        .filter(|name| !tensors.contains(*name))
        .map(|name| UnknownName { name: name.clone(), closest: closest(name, tensors) })
        .collect();
    if !unknown.is_empty() && !allow_unknown {
        return Err(OverridesError::UnknownNames { names: unknown });
    }
    for (name, g) in given.iter().filter(|(name, _)| tensors.contains(*name)) {
        if let Given::Fixed(e @ Encoding { axis: Some(axis), .. }) = &g.given
            && let Some(n) = channels(name, *axis)
            && n != e.scales.len()
        {
            return Err(OverridesError::ChannelCount {
                tensor: name.clone(),
                axis: *axis,
                given: e.scales.len(),
                channels: n,
            });
        }
    }
    Ok(unknown
        .iter()
        .map(|u| {
            format!(
                "overrides name {u}, which the model does not have; ignored (--allow_unknown_override_names)"
            )
        })
        .collect())
}

/// The existing names closest to `name`: Levenshtein distance over characters, ties in name order.
fn closest(name: &str, tensors: &BTreeSet<String>) -> Vec<String> {
    let mut scored: Vec<(usize, &String)> = tensors.iter().map(|t| (levenshtein(name, t), t)).collect();
    scored.sort();
    scored.into_iter().take(SUGGESTIONS).map(|(_, t)| t.clone()).collect()
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let next = (diag + usize::from(ca != cb)).min(row[j] + 1).min(row[j + 1] + 1);
            diag = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// Integer bitwidths an encoding may have (2-bit: DESIGN.md Decision 4).
const INT_BITWIDTHS: [u8; 5] = [2, 4, 8, 16, 32];
/// Float bitwidths a `dtype: float` entry may have (16: DESIGN.md Decision 9).
const FLOAT_BITWIDTHS: [u8; 2] = [16, 32];

/// What one channel (0.6.1) or one entry says, before channels are merged.
enum Part {
    Fixed(Encoding),
    Bitwidth(u8, Option<bool>),
    Float(u8),
}

/// Where a value sits, for messages: a tensor and maybe one of its channels, or a position.
struct Ctx<'a> {
    tensor: &'a str,
    channel: Option<usize>,
}

impl Ctx<'_> {
    fn describe(&self) -> String {
        match self.channel {
            Some(c) => format!("tensor `{}`, channel {c}", self.tensor),
            None => format!("tensor `{}`", self.tensor),
        }
    }
}

struct Reader {
    file: String,
    warnings: Vec<String>,
    given: GivenEncodings,
    /// The section each name came from (for duplicate errors).
    seen: BTreeMap<String, String>,
}

/// The file formats, from spec §4.4's detection rules.
#[derive(Clone, Copy, PartialEq)]
enum Format {
    /// Dict sections (0.4.0/0.5.0/0.6.1).
    Dicts,
    /// List sections (1.0.0).
    Lists,
}

impl Reader {
    fn syntax(&self, e: &serde_json::Error) -> OverridesError {
        let full = e.to_string();
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        let message = full.strip_suffix(&suffix).unwrap_or(&full).to_string();
        OverridesError::Syntax { file: self.file.clone(), line: e.line(), column: e.column(), message }
    }

    fn format_err(&self, message: impl Into<String>) -> OverridesError {
        OverridesError::Format { file: self.file.clone(), message: message.into() }
    }

    fn type_err(
        &self,
        context: impl Into<String>,
        field: &str,
        expected: &str,
        found: &Value,
    ) -> OverridesError {
        OverridesError::Type {
            file: self.file.clone(),
            context: context.into(),
            field: field.to_string(),
            expected: expected.to_string(),
            found: describe(found),
        }
    }

    fn entry_err(&self, ctx: &Ctx, reason: impl fmt::Display) -> OverridesError {
        let reason = match ctx.channel {
            Some(c) => format!("channel {c}: {reason}"),
            None => reason.to_string(),
        };
        OverridesError::Entry { file: self.file.clone(), tensor: ctx.tensor.to_string(), reason }
    }

    fn warn(&mut self, message: impl fmt::Display) {
        self.warnings.push(format!("{}: {message}", self.file));
    }

    /// A block-quantized entry (per-block, LPBQ, vector): ptq cannot keep it yet, so that one
    /// entry is skipped, said, and the rest of the file still counts.
    fn skip_block(&mut self, ctx: &Ctx, what: impl fmt::Display) {
        self.warn(format_args!(
            "{}: {what} means block quantization (per-block, LPBQ), which ptq cannot keep yet; this entry is \
             skipped and the tensor calibrated (give a per-tensor or per-channel encoding to fix it)",
            ctx.describe()
        ));
    }

    fn file_(&mut self, root: &Value) -> Result<(), OverridesError> {
        let Value::Object(root) = root else {
            return Err(self.type_err("the top level", "the file", "a JSON object", root));
        };
        let version = match root.get("version") {
            None => None,
            Some(Value::String(s)) => Some(s.trim().to_string()),
            Some(other) => return Err(self.type_err("the top level", "version", "a string", other)),
        };
        let major = match &version {
            None => None,
            Some(v) => match v.split('.').next().and_then(|m| m.parse::<u32>().ok()) {
                Some(m @ 0..=2) => Some(m),
                _ => {
                    return Err(self.format_err(format!(
                        "unknown encodings version `{v}`; ptq reads 0.6.1 (and 0.4.0, 0.5.0), 1.0.0 and 2.0.0"
                    )));
                }
            },
        };
        let sections = ["activation_encodings", "param_encodings"];
        for key in root.keys() {
            let known = ["version", "quantizer_args", "excluded_layers", "encodings"];
            if !known.contains(&key.as_str()) && !sections.contains(&key.as_str()) {
                self.warn(format_args!("ignored unknown top-level key `{key}`"));
            }
        }
        let flat = root.get("encodings");
        if major == Some(2) || flat.is_some() {
            let Some(flat) = flat else {
                return Err(self
                    .format_err("version 2.x needs an `encodings` list of {name, output_dtype, …} entries"));
            };
            if let Some(m @ 0..=1) = major {
                return Err(self.format_err(format!(
                    "`encodings` is the 2.0.0 layout, but the file says version {}; write version \
                     \"2.0.0\", or use `activation_encodings`/`param_encodings`",
                    version.unwrap_or_else(|| m.to_string())
                )));
            }
            for key in sections {
                if root.contains_key(key) {
                    self.warn(format_args!("ignored `{key}` in a 2.0.0 file (only `encodings` is read)"));
                }
            }
            let Value::Array(entries) = flat else {
                return Err(self.type_err("the top level", "encodings", "a list of encodings", flat));
            };
            for (i, entry) in entries.iter().enumerate() {
                self.v2_entry(i, entry)?;
            }
            return Ok(());
        }
        if !sections.iter().any(|s| root.contains_key(*s)) {
            return Err(self.format_err(
                "not an encodings file: it has none of `activation_encodings`, `param_encodings` \
                 (0.6.1, 1.0.0) or `encodings` (2.0.0)",
            ));
        }
        let expected = match major {
            Some(0) => Some(Format::Dicts),
            Some(1) => Some(Format::Lists),
            _ => None,
        };
        for (key, section) in
            [("activation_encodings", Section::Activation), ("param_encodings", Section::Param)]
        {
            let Some(value) = root.get(key) else { continue };
            let found = match value {
                Value::Null => continue,
                Value::Object(m) if m.is_empty() => continue,
                Value::Array(a) if a.is_empty() => continue,
                Value::Object(_) => Format::Dicts,
                Value::Array(_) => Format::Lists,
                other => {
                    return Err(self.type_err(
                        "the top level",
                        key,
                        "a dict of tensor names (0.6.1) or a list of entries (1.0.0)",
                        other,
                    ));
                }
            };
            if let (Some(want), Some(v)) = (expected, &version)
                && want != found
            {
                let (is, says) = match found {
                    Format::Dicts => ("a dict (the 0.6.1 layout)", "1.0.0 expects a list"),
                    Format::Lists => ("a list (the 1.0.0 layout)", "0.6.1 expects a dict"),
                };
                return Err(
                    self.format_err(format!("`{key}` is {is}, but the file says version {v}; {says}"))
                );
            }
            match value {
                Value::Object(m) => {
                    for (name, v) in m {
                        self.v0_tensor(key, section, name, v)?;
                    }
                }
                Value::Array(a) => {
                    for (i, v) in a.iter().enumerate() {
                        self.v1_entry(key, section, i, v)?;
                    }
                }
                _ => unreachable!("checked above"),
            }
        }
        Ok(())
    }

    fn insert(
        &mut self,
        name: &str,
        where_: &str,
        section: Section,
        given: Given,
    ) -> Result<(), OverridesError> {
        if let Some(first) = self.seen.get(name) {
            return Err(OverridesError::Duplicate {
                file: self.file.clone(),
                tensor: name.to_string(),
                first: first.clone(),
                second: where_.to_string(),
            });
        }
        self.seen.insert(name.to_string(), where_.to_string());
        self.given.insert(name.to_string(), GivenEncoding { section, given });
        Ok(())
    }

    // ---------------------------------------------------------------- 0.6.1 (spec §4.1)

    fn v0_tensor(
        &mut self,
        key: &str,
        section: Section,
        name: &str,
        value: &Value,
    ) -> Result<(), OverridesError> {
        let ctx = Ctx { tensor: name, channel: None };
        let channels: Vec<&Map<String, Value>> = match value {
            Value::Object(o) => vec![o],
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(c, item)| match item {
                    Value::Object(o) => Ok(o),
                    other => Err(self.type_err(
                        format!("tensor `{name}`"),
                        &format!("entry {c}"),
                        "an encoding object",
                        other,
                    )),
                })
                .collect::<Result<_, _>>()?,
            other => {
                return Err(self.type_err(ctx.describe(), name, "a list of encoding objects", other));
            }
        };
        if channels.is_empty() {
            return Err(self.entry_err(&ctx, "empty list of encodings; give one (or one per channel)"));
        }
        let many = channels.len() > 1;
        let mut parts = Vec::with_capacity(channels.len());
        for (c, entry) in channels.iter().enumerate() {
            let ctx = Ctx { tensor: name, channel: many.then_some(c) };
            parts.push(self.v0_channel(&ctx, entry)?);
        }
        let given = self.merge(&ctx, parts, many)?;
        self.insert(name, key, section, given)
    }

    fn v0_channel(&mut self, ctx: &Ctx, e: &Map<String, Value>) -> Result<Part, OverridesError> {
        const KNOWN: [&str; 7] = ["bitwidth", "dtype", "is_symmetric", "min", "max", "offset", "scale"];
        self.warn_unknown_keys(ctx, e, &KNOWN);
        let float = self.dtype(ctx, e, "dtype")?;
        let bitwidth = self.int(ctx, e, "bitwidth")?;
        if float {
            return self
                .float_bitwidth(ctx, bitwidth, "bitwidth", e, &["min", "max", "offset", "scale"])
                .map(Part::Float);
        }
        let symmetric = self.boolean(ctx, e, "is_symmetric")?;
        let scale = self.number(ctx, e, "scale")?;
        let mut offset = self.int(ctx, e, "offset")?;
        let min = self.number(ctx, e, "min")?;
        let max = self.number(ctx, e, "max")?;
        let Some(bitwidth) = bitwidth else {
            return Err(self.entry_err(
                ctx,
                if e.is_empty() {
                    "empty encoding: give `bitwidth` (and `min`/`max` or `scale`/`offset`), or `dtype` \"float\""
                } else {
                    "no `bitwidth`"
                },
            ));
        };
        let bitwidth = self.int_bitwidth(ctx, bitwidth, "bitwidth")?;
        if let Some(o) = offset.filter(|&o| o > 0) {
            // Spec §4.1: offsets live on the unsigned grid and are never positive; some
            // producers drop the sign.
            self.warn(format_args!("{}: offset {o} read as {} (0.6.1 offsets are ≤ 0)", ctx.describe(), -o));
            offset = Some(-o);
        }
        if scale.is_none() && offset.is_none() && min.is_none() && max.is_none() {
            return Ok(Part::Bitwidth(bitwidth, symmetric));
        }
        // Spec §4.4: missing is_symmetric means asymmetric.
        let symmetric = symmetric.unwrap_or(false);
        let range = match (min, max) {
            (Some(lo), Some(hi)) => Some((lo, hi)),
            (None, None) => None,
            (Some(_), None) => return Err(self.entry_err(ctx, "`min` without `max`")),
            (None, Some(_)) => return Err(self.entry_err(ctx, "`max` without `min`")),
        };
        self.resolve(ctx, bitwidth, symmetric, scale, offset, range).map(Part::Fixed)
    }

    /// One channel's integer encoding from whatever the entry gives (spec §4.4):
    ///
    /// * scale and offset, no min/max: used exactly.
    /// * min/max only: scale and offset computed by spec §3.2 Step A+B with the entry's symmetry
    ///   ([`Encoding::from_range`]; QNN recomputes them from min/max in any case).
    /// * all four: QNN says scale/offset are recomputed from min/max. ptq keeps the given
    ///   scale/offset bit-exactly when min/max agree with them (the grid ends they imply, within
    ///   half a step — what every producer, ptq's writer included, writes; recomputing a symmetric
    ///   grid `[−128Δ, 127Δ]` would otherwise drift to `128Δ/127`), and recomputes from min/max
    ///   when they do not (the user edited the range), with a warning if that changes them.
    fn resolve(
        &mut self,
        ctx: &Ctx,
        bitwidth: u8,
        symmetric: bool,
        scale: Option<f64>,
        offset: Option<i64>,
        range: Option<(f64, f64)>,
    ) -> Result<Encoding, OverridesError> {
        let exact = match (scale, offset) {
            (Some(s), Some(o)) => Some(self.qnn_encoding(ctx, bitwidth, symmetric, s, o)?),
            _ => None,
        };
        let Some((lo, hi)) = range else {
            return exact.ok_or_else(|| {
                let missing = if scale.is_some() { "`offset`" } else { "`scale`" };
                self.entry_err(ctx, format!("no {missing}: give `scale` and `offset`, or `min` and `max`"))
            });
        };
        if lo > hi {
            return Err(self.entry_err(ctx, format!("`min` {lo} is greater than `max` {hi}")));
        }
        let schema = if symmetric { Schema::Symmetric } else { Schema::Asymmetric };
        let computed = Encoding::from_range(lo, hi, &QuantSpec::new(bitwidth, schema), Origin::Override);
        let Some(exact) = exact else { return Ok(computed) };
        let (emin, emax) = exact.min_max(0);
        let half_step = f64::from(exact.scales[0]) / 2.0;
        if (emin - lo).abs() <= half_step && (emax - hi).abs() <= half_step {
            return Ok(exact);
        }
        if computed.scales != exact.scales || computed.qnn_offset(0) != exact.qnn_offset(0) {
            self.warn(format_args!(
                "{}: scale {} and offset {} disagree with min {lo} and max {hi}; recomputed from \
                 min/max as QNN does: scale {}, offset {}",
                ctx.describe(),
                exact.scales[0],
                exact.qnn_offset(0),
                computed.scales[0],
                computed.qnn_offset(0),
            ));
        }
        Ok(computed)
    }

    /// A per-tensor encoding from QNN's scale and offset (spec §3.1, §4.3 conversions).
    fn qnn_encoding(
        &self,
        ctx: &Ctx,
        bitwidth: u8,
        symmetric: bool,
        scale: f64,
        offset: i64,
    ) -> Result<Encoding, OverridesError> {
        let scale = self.scale(ctx, scale)?;
        let b = u32::from(bitwidth);
        let half = 1i64 << (b - 1);
        let steps = (1i64 << b) - 1;
        let (signed, strict, zero_point) = if symmetric {
            match offset {
                o if o == -half => (true, false, 0),
                o if o == -(half - 1) => (true, true, 0),
                // The signed 32-bit bias: QNN's signed-storage offset 0 (spec §3.2 example 14).
                0 if bitwidth == 32 => (true, false, 0),
                // Unsigned symmetric on data without negatives (spec §3.1).
                0 => (false, false, 0),
                o => {
                    return Err(self.entry_err(
                        ctx,
                        format!(
                            "symmetric {bitwidth}-bit encoding with offset {o}; a symmetric encoding has \
                             offset {} (-2^{}), {} when strict, or 0 when unsigned",
                            -half,
                            b - 1,
                            -(half - 1)
                        ),
                    ));
                }
            }
        } else {
            if !(-steps..=0).contains(&offset) {
                return Err(self.entry_err(
                    ctx,
                    format!(
                        "offset {offset} is outside [{}, 0]: a {bitwidth}-bit QNN offset is minus the \
                         zero point on the unsigned grid",
                        -steps
                    ),
                ));
            }
            (false, false, -offset)
        };
        Ok(Encoding {
            bitwidth,
            signed,
            symmetric,
            strict,
            restricted: None,
            scales: vec![scale],
            zero_points: vec![zero_point],
            axis: None,
            origin: Origin::Override,
        })
    }

    /// Joins the channels of one tensor: one part is per-tensor (unless `per_channel`), several
    /// must agree in kind, bitwidth and symmetry.
    fn merge(&self, ctx: &Ctx, parts: Vec<Part>, per_channel: bool) -> Result<Given, OverridesError> {
        let mut parts = parts.into_iter();
        let first = parts.next().expect("at least one channel");
        let rest: Vec<Part> = parts.collect();
        match first {
            Part::Fixed(mut e) => {
                for (i, p) in rest.into_iter().enumerate() {
                    let c = i + 1;
                    let Part::Fixed(other) = p else {
                        return Err(self.entry_err(
                            ctx,
                            format!("channel {c} is not a complete integer encoding, channel 0 is"),
                        ));
                    };
                    let differs = [
                        ("bitwidth", e.bitwidth != other.bitwidth),
                        ("symmetry", e.symmetric != other.symmetric),
                        ("signedness (offset 0 vs −2^(b−1))", e.signed != other.signed),
                        ("strictness (offset −2^(b−1) vs −(2^(b−1)−1))", e.strict != other.strict),
                    ];
                    if let Some((what, _)) = differs.iter().find(|d| d.1) {
                        return Err(self.entry_err(
                            ctx,
                            format!(
                                "channel {c} differs from channel 0 in {what}; the channels of a \
                                 per-channel encoding share bitwidth and symmetry"
                            ),
                        ));
                    }
                    e.scales.extend(other.scales);
                    e.zero_points.extend(other.zero_points);
                }
                if per_channel {
                    e.axis = Some(0);
                }
                Ok(Given::Fixed(e))
            }
            Part::Bitwidth(bitwidth, symmetric) => {
                if rest
                    .iter()
                    .any(|p| !matches!(p, Part::Bitwidth(b, s) if *b == bitwidth && *s == symmetric))
                {
                    return Err(self.entry_err(
                        ctx,
                        "channels mix bitwidth-only entries with others, or disagree; give one entry",
                    ));
                }
                Ok(Given::Bitwidth { bitwidth, symmetric })
            }
            Part::Float(bitwidth) => {
                if rest.iter().any(|p| !matches!(p, Part::Float(b) if *b == bitwidth)) {
                    return Err(self.entry_err(ctx, "channels mix float and integer entries; give one entry"));
                }
                Ok(Given::Float { bitwidth })
            }
        }
    }

    // ---------------------------------------------------------------- 1.0.0 (spec §4.2)

    fn v1_entry(&mut self, key: &str, section: Section, i: usize, v: &Value) -> Result<(), OverridesError> {
        let e = self.entry_object(key, i, v)?;
        let name = self.entry_name(key, i, e)?;
        let ctx = Ctx { tensor: name, channel: None };
        const KNOWN: [&str; 7] = ["name", "dtype", "enc_type", "is_sym", "bw", "scale", "offset"];
        const BLOCK: [&str; 4] = ["block_size", "compressed_bw", "per_block_int_scale", "zero_point_shift"];
        let enc_type = match e.get("enc_type") {
            None => None,
            Some(Value::String(s)) => Some(s.to_ascii_uppercase()),
            Some(other) => return Err(self.type_err(ctx.describe(), "enc_type", "a string", other)),
        };
        match enc_type.as_deref() {
            None | Some("PER_TENSOR" | "PER_CHANNEL") => {}
            Some(t @ ("PER_BLOCK" | "LPBQ" | "VECTOR")) => {
                self.skip_block(&ctx, format_args!("enc_type {t}"));
                return Ok(());
            }
            Some(t) => {
                return Err(self.entry_err(
                    &ctx,
                    format!("unknown enc_type `{t}`; expected PER_TENSOR, PER_CHANNEL, PER_BLOCK or LPBQ"),
                ));
            }
        }
        if let Some(k) = BLOCK.iter().find(|k| e.contains_key(**k)) {
            self.skip_block(&ctx, format_args!("`{k}`"));
            return Ok(());
        }
        self.warn_unknown_keys(&ctx, e, &KNOWN);
        let float = self.dtype(&ctx, e, "dtype")?;
        let bw = self.int(&ctx, e, "bw")?;
        if float {
            let bitwidth = self.float_bitwidth(&ctx, bw, "bw", e, &["scale", "offset", "is_sym"])?;
            return self.insert(name, key, section, Given::Float { bitwidth });
        }
        let symmetric = self.boolean(&ctx, e, "is_sym")?;
        let scales = self.numbers(&ctx, e, "scale")?;
        let offsets = self.ints(&ctx, e, "offset")?;
        let Some(bw) = bw else {
            return Err(self.entry_err(
                &ctx,
                if scales.is_none() && offsets.is_none() {
                    "no `bw`: give `bw` (and `scale`/`offset`), or `dtype` \"FLOAT\" with `bw`"
                } else {
                    "no `bw`"
                },
            ));
        };
        let bitwidth = self.int_bitwidth(&ctx, bw, "bw")?;
        let (scales, offsets) = match (scales, offsets) {
            (None, None) => {
                return self.insert(name, key, section, Given::Bitwidth { bitwidth, symmetric });
            }
            (Some(s), Some(o)) => (s, o),
            (Some(_), None) => return Err(self.entry_err(&ctx, "`scale` without `offset`")),
            (None, Some(_)) => return Err(self.entry_err(&ctx, "`offset` without `scale`")),
        };
        if scales.len() != offsets.len() {
            return Err(self.entry_err(
                &ctx,
                format!("{} scales but {} offsets; give one offset per scale", scales.len(), offsets.len()),
            ));
        }
        if scales.is_empty() {
            return Err(self.entry_err(&ctx, "empty `scale` and `offset`"));
        }
        let per_channel = match enc_type.as_deref() {
            Some("PER_CHANNEL") => true,
            Some(_) if scales.len() > 1 => {
                return Err(self.entry_err(
                    &ctx,
                    format!(
                        "PER_TENSOR with {} scales; a per-tensor encoding has one (use PER_CHANNEL)",
                        scales.len()
                    ),
                ));
            }
            Some(_) => false,
            None => scales.len() > 1,
        };
        let symmetric = symmetric.unwrap_or(false);
        let mut parts = Vec::with_capacity(scales.len());
        for (c, (&s, &o)) in scales.iter().zip(&offsets).enumerate() {
            let ctx = Ctx { tensor: name, channel: per_channel.then_some(c) };
            parts.push(Part::Fixed(self.qnn_encoding(&ctx, bitwidth, symmetric, s, o)?));
        }
        let given = self.merge(&ctx, parts, per_channel)?;
        self.insert(name, key, section, given)
    }

    // ---------------------------------------------------------------- 2.0.0 (spec §4.3)

    fn v2_entry(&mut self, i: usize, v: &Value) -> Result<(), OverridesError> {
        const KEY: &str = "encodings";
        let e = self.entry_object(KEY, i, v)?;
        let name = self.entry_name(KEY, i, e)?;
        let ctx = Ctx { tensor: name, channel: None };
        const KNOWN: [&str; 5] = ["name", "output_dtype", "y_scale", "y_zero_point", "axis"];
        const BLOCK: [&str; 3] = ["block_size", "per_block_int_scale", "per_channel_float_scale"];
        if let Some(k) = BLOCK.iter().find(|k| e.contains_key(**k)) {
            self.skip_block(&ctx, format_args!("`{k}`"));
            return Ok(());
        }
        self.warn_unknown_keys(&ctx, e, &KNOWN);
        let dtype = match e.get("output_dtype") {
            Some(Value::String(s)) => s.to_ascii_lowercase(),
            Some(other) => return Err(self.type_err(ctx.describe(), "output_dtype", "a string", other)),
            None => {
                return Err(self.entry_err(
                    &ctx,
                    "no `output_dtype`: give one, e.g. `uint8`, `int8`, `int16` or `float32`",
                ));
            }
        };
        let (bitwidth, signed) = match dtype.as_str() {
            "int2" => (2, true),
            "uint2" => (2, false),
            "int4" => (4, true),
            "uint4" => (4, false),
            "int8" => (8, true),
            "uint8" => (8, false),
            "int16" => (16, true),
            "uint16" => (16, false),
            "int32" => (32, true),
            // Not in spec §4.3 (2.0.0 has no float entries; AIMET omits them): ptq reads them as
            // its own 0.6.1/1.0.0 `dtype: float` entries.
            "float16" => return self.v2_float(&ctx, e, 16),
            "float32" => return self.v2_float(&ctx, e, 32),
            d if d.starts_with("float") || d.starts_with("bfloat") => {
                return Err(self.entry_err(
                    &ctx,
                    format!(
                        "output_dtype {d}: ptq keeps float tensors as float32 or float16 only; use \
                         \"float16\"/\"float32\", or an integer type"
                    ),
                ));
            }
            d => {
                return Err(self.entry_err(
                    &ctx,
                    format!("unknown output_dtype `{d}`; expected int2/4/8/16/32 or uint2/4/8/16"),
                ));
            }
        };
        let scales = match e.get("y_scale") {
            None => None,
            Some(Value::Number(n)) => Some((vec![n.as_f64().unwrap_or(f64::NAN)], false)),
            Some(Value::Array(items)) if items.iter().any(|v| v.is_array()) => {
                self.skip_block(&ctx, "nested `y_scale` lists");
                return Ok(());
            }
            Some(Value::Object(_)) => {
                return Err(self.entry_err(
                    &ctx,
                    "`y_scale` as an object (2.1.0 meta encoding) is not supported; give the scales",
                ));
            }
            Some(_) => Some((self.numbers(&ctx, e, "y_scale")?.unwrap_or_default(), true)),
        };
        let zero_points = match e.get("y_zero_point") {
            None => None,
            Some(Value::Array(_)) => self.ints(&ctx, e, "y_zero_point")?,
            Some(_) => self.int(&ctx, e, "y_zero_point")?.map(|z| vec![z]),
        };
        let axis = match self.int(&ctx, e, "axis")? {
            Some(a) if a < 0 => {
                return Err(self.entry_err(
                    &ctx,
                    format!("axis {a}: give the non-negative axis (the tensor's rank is not known here)"),
                ));
            }
            a => a.map(|a| a as usize),
        };
        let Some((scales, is_list)) = scales else {
            if zero_points.is_some() {
                return Err(self.entry_err(&ctx, "`y_zero_point` without `y_scale`"));
            }
            return self.insert(
                name,
                KEY,
                Section::Any,
                Given::Bitwidth { bitwidth, symmetric: Some(signed) },
            );
        };
        if scales.is_empty() {
            return Err(self.entry_err(&ctx, "empty `y_scale`"));
        }
        let zero_points = match zero_points {
            None => vec![0; scales.len()],
            Some(z) if z.len() == scales.len() => z,
            Some(z) if z.len() == 1 => vec![z[0]; scales.len()],
            Some(z) => {
                return Err(self.entry_err(
                    &ctx,
                    format!(
                        "{} scales but {} zero points; give one zero point per scale",
                        scales.len(),
                        z.len()
                    ),
                ));
            }
        };
        let axis = match axis {
            Some(a) if is_list => Some(a),
            _ if scales.len() > 1 => {
                return Err(self.entry_err(
                    &ctx,
                    format!("{} scales but no `axis`; a per-channel encoding names its axis", scales.len()),
                ));
            }
            _ => None,
        };
        let storage = Encoding {
            bitwidth,
            signed,
            symmetric: false,
            strict: false,
            restricted: None,
            scales: Vec::new(),
            zero_points: Vec::new(),
            axis,
            origin: Origin::Override,
        }
        .storage_range();
        let mut enc_scales = Vec::with_capacity(scales.len());
        for (c, (&s, &z)) in scales.iter().zip(&zero_points).enumerate() {
            let ctx = Ctx { tensor: name, channel: axis.map(|_| c) };
            enc_scales.push(self.scale(&ctx, s)?);
            if bitwidth == 32 && z != 0 {
                return Err(self.entry_err(&ctx, format!("int32 zero point {z}: ONNX allows only 0")));
            }
            if !(storage.0..=storage.1).contains(&z) {
                return Err(self.entry_err(
                    &ctx,
                    format!("zero point {z} is outside the {dtype} range [{}, {}]", storage.0, storage.1),
                ));
            }
        }
        // Spec §4.5: signed with all zero points 0, or unsigned with all at 2^(b−1), is symmetric.
        let mid = if signed { 0 } else { 1i64 << (bitwidth - 1) };
        let symmetric = zero_points.iter().all(|&z| z == mid);
        let given = Given::Fixed(Encoding {
            bitwidth,
            signed,
            symmetric,
            strict: false,
            restricted: None,
            scales: enc_scales,
            zero_points,
            axis,
            origin: Origin::Override,
        });
        self.insert(name, KEY, Section::Any, given)
    }

    fn v2_float(&mut self, ctx: &Ctx, e: &Map<String, Value>, bitwidth: u8) -> Result<(), OverridesError> {
        for k in ["y_scale", "y_zero_point", "axis"] {
            if e.contains_key(k) {
                self.warn(format_args!("{}: `{k}` ignored on a float entry", ctx.describe()));
            }
        }
        self.insert(ctx.tensor, "encodings", Section::Any, Given::Float { bitwidth })
    }

    // ---------------------------------------------------------------- fields

    fn entry_object<'v>(
        &self,
        key: &str,
        i: usize,
        v: &'v Value,
    ) -> Result<&'v Map<String, Value>, OverridesError> {
        match v {
            Value::Object(o) => Ok(o),
            other => Err(self.type_err(format!("entry {i} of `{key}`"), "the entry", "an object", other)),
        }
    }

    fn entry_name<'v>(
        &self,
        key: &str,
        i: usize,
        e: &'v Map<String, Value>,
    ) -> Result<&'v str, OverridesError> {
        match e.get("name") {
            Some(Value::String(s)) => Ok(s),
            Some(other) => Err(self.type_err(format!("entry {i} of `{key}`"), "name", "a string", other)),
            None => Err(self.format_err(format!("entry {i} of `{key}` has no `name`"))),
        }
    }

    fn warn_unknown_keys(&mut self, ctx: &Ctx, e: &Map<String, Value>, known: &[&str]) {
        for k in e.keys().filter(|k| !known.contains(&k.as_str())) {
            self.warn(format_args!("{}: ignored unknown key `{k}`", ctx.describe()));
        }
    }

    /// A float entry: its bitwidth must be 16 or 32; range fields are ignored with a warning.
    fn float_bitwidth(
        &mut self,
        ctx: &Ctx,
        bitwidth: Option<i64>,
        field: &str,
        e: &Map<String, Value>,
        ignored: &[&str],
    ) -> Result<u8, OverridesError> {
        let Some(bw) = bitwidth else {
            return Err(self.entry_err(ctx, format!("a float entry needs `{field}` 16 or 32")));
        };
        if !FLOAT_BITWIDTHS.iter().any(|&b| i64::from(b) == bw) {
            return Err(self.entry_err(
                ctx,
                format!("float {field} {bw} is not supported; float entries take 16 or 32"),
            ));
        }
        for k in ignored.iter().filter(|k| e.contains_key(**k)) {
            self.warn(format_args!("{}: `{k}` ignored on a float entry", ctx.describe()));
        }
        Ok(bw as u8)
    }

    fn int_bitwidth(&self, ctx: &Ctx, bw: i64, field: &str) -> Result<u8, OverridesError> {
        match INT_BITWIDTHS.iter().find(|&&b| i64::from(b) == bw) {
            Some(&b) => Ok(b),
            None => Err(self.entry_err(
                ctx,
                format!("{field} {bw} is not supported; integer encodings take 2, 4, 8, 16 or 32 bits"),
            )),
        }
    }

    /// A scale as the f32 the model will hold: finite and positive.
    fn scale(&self, ctx: &Ctx, s: f64) -> Result<f32, OverridesError> {
        let f = f32_from_json(s);
        if f.is_finite() && f > 0.0 {
            Ok(f)
        } else {
            Err(self.entry_err(ctx, format!("scale {s}: a scale must be positive and finite (as f32)")))
        }
    }

    /// `dtype`: true for float; missing means int (spec §4.4).
    fn dtype(&self, ctx: &Ctx, e: &Map<String, Value>, field: &str) -> Result<bool, OverridesError> {
        match e.get(field) {
            None => Ok(false),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("int") => Ok(false),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("float") => Ok(true),
            Some(other) => Err(self.type_err(ctx.describe(), field, "\"int\" or \"float\"", other)),
        }
    }

    fn boolean(
        &self,
        ctx: &Ctx,
        e: &Map<String, Value>,
        field: &str,
    ) -> Result<Option<bool>, OverridesError> {
        match e.get(field) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(other) => {
                Err(self.type_err(ctx.describe(), field, "true/false or \"True\"/\"False\"", other))
            }
        }
    }

    fn number(&self, ctx: &Ctx, e: &Map<String, Value>, field: &str) -> Result<Option<f64>, OverridesError> {
        match e.get(field) {
            None => Ok(None),
            Some(Value::Number(n)) => Ok(n.as_f64()),
            Some(other) => Err(self.type_err(ctx.describe(), field, "a number", other)),
        }
    }

    fn int(&self, ctx: &Ctx, e: &Map<String, Value>, field: &str) -> Result<Option<i64>, OverridesError> {
        match e.get(field) {
            None => Ok(None),
            Some(v) => match as_int(v) {
                Some(i) => Ok(Some(i)),
                None => Err(self.type_err(ctx.describe(), field, "an integer", v)),
            },
        }
    }

    /// A list of numbers (a single number is read as a list of one).
    fn numbers(
        &self,
        ctx: &Ctx,
        e: &Map<String, Value>,
        field: &str,
    ) -> Result<Option<Vec<f64>>, OverridesError> {
        let expected = "a list of numbers";
        match e.get(field) {
            None => Ok(None),
            Some(Value::Number(n)) => Ok(Some(vec![n.as_f64().unwrap_or(f64::NAN)])),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_f64().ok_or_else(|| self.type_err(ctx.describe(), field, expected, v)))
                .collect::<Result<_, _>>()
                .map(Some),
            Some(other) => Err(self.type_err(ctx.describe(), field, expected, other)),
        }
    }

    /// A list of integers (integral floats such as `-128.0` allowed; a single one as a list of one).
    fn ints(
        &self,
        ctx: &Ctx,
        e: &Map<String, Value>,
        field: &str,
    ) -> Result<Option<Vec<i64>>, OverridesError> {
        let expected = "a list of integers";
        match e.get(field) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| as_int(v).ok_or_else(|| self.type_err(ctx.describe(), field, expected, v)))
                .collect::<Result<_, _>>()
                .map(Some),
            Some(v) => match as_int(v) {
                Some(i) => Ok(Some(vec![i])),
                None => Err(self.type_err(ctx.describe(), field, expected, v)),
            },
        }
    }
}

/// An integer, or a float with an integral value (`-128.0`, spec §4.1).
fn as_int(v: &Value) -> Option<i64> {
    let Value::Number(n) = v else { return None };
    n.as_i64().or_else(|| {
        let f = n.as_f64()?;
        (f.fract() == 0.0 && f.abs() < 2f64.powi(62)).then_some(f as i64)
    })
}

/// A JSON value in a few words, for type errors.
fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) if s.chars().count() > 40 => {
            format!("a string \"{}…\"", s.chars().take(40).collect::<String>())
        }
        Value::String(s) => format!("the string \"{s}\""),
        Value::Array(_) => "a list".to_string(),
        Value::Object(_) => "an object".to_string(),
    }
}

/// The f32 that a JSON number read as `d` (f64) stands for.
///
/// `serde_json::Value` keeps numbers as f64, and rounding the f64 to f32 is not always the f32
/// whose shortest text was written: for a few values (e.g. the f32 `7.038531e-26`) the f64 of
/// the text lies on the midpoint between two f32s and `as f32` picks the other one. The neighbour
/// whose own shortest text (as ptq's writer prints it) reads back as the same f64 is the f32 that
/// was written; any other text (e.g. a producer's f64 digits) gets the nearest f32. Checked
/// exhaustively over all positive finite f32: every writer scale reads back bit-exact.
fn f32_from_json(d: f64) -> f32 {
    let c = d as f32;
    if !(c.is_finite() && c != 0.0) {
        return c;
    }
    for candidate in [c, c.next_down(), c.next_up()] {
        let text = serde_json::to_string(&candidate).unwrap_or_default();
        if serde_json::from_str::<f64>(&text).ok() == Some(d) {
            return candidate;
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levenshtein_distances() {
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(levenshtein("conv.weight", "conv.weight"), 0);
        assert_eq!(levenshtein("ä", "a"), 1);
    }

    #[test]
    fn the_f32_midpoint_case_reads_back_exactly() {
        let x = 7.038531e-26f32;
        let text = serde_json::to_string(&x).unwrap();
        let d: f64 = serde_json::from_str(&text).unwrap();
        assert_ne!(d as f32, x, "the plain cast is wrong here (why f32_from_json exists)");
        assert_eq!(f32_from_json(d), x);
    }

    #[test]
    fn integral_floats_are_integers() {
        assert_eq!(as_int(&serde_json::json!(-128.0)), Some(-128));
        assert_eq!(as_int(&serde_json::json!(-128.5)), None);
        assert_eq!(as_int(&serde_json::json!("8")), None);
    }
}
