//! The encodings JSON that ptq writes beside the QDQ model: AIMET/QAIRT format 1.0.0 (spec §4.2)
//! or the legacy 0.6.1 (spec §4.1).
//!
//! Offsets are QNN's (on the unsigned grid, [`Encoding::qnn_offset`]); the ONNX zero points ptq
//! uses inside stay in the model. Scales are written as the f32 values the model holds, in their
//! shortest round-trip text (`0.1`, not `0.10000000149011612`): they are serialized as f32
//! directly, never through `serde_json::Value`, which widens to f64 (rust-stack.md pitfall 4).
//! Keys appear in the order of the spec's examples; sections and entries are sorted by tensor
//! name (the [`Encodings`] map is ordered), so the same encodings always give the same bytes
//! (DESIGN.md Decision 5).

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::str::FromStr;

use serde::Serialize;
use serde_json::ser::{CompactFormatter, Formatter};

use crate::{Encoding, Encodings, Kind};

/// The encodings file formats ptq writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JsonVersion {
    /// List format (AIMET 1.0.0, spec §4.2).
    V1_0_0,
    /// Legacy dict format with min/max and string booleans (spec §4.1).
    V0_6_1,
}

impl JsonVersion {
    pub const ALL: [JsonVersion; 2] = [JsonVersion::V1_0_0, JsonVersion::V0_6_1];

    /// The `version` string written in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            JsonVersion::V1_0_0 => "1.0.0",
            JsonVersion::V0_6_1 => "0.6.1",
        }
    }
}

impl fmt::Display for JsonVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A version string that is not one ptq writes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown encodings version `{given}`; ptq writes 1.0.0 or 0.6.1")]
pub struct UnknownVersion {
    pub given: String,
}

impl FromStr for JsonVersion {
    type Err = UnknownVersion;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JsonVersion::ALL
            .into_iter()
            .find(|v| v.as_str() == s.trim())
            .ok_or_else(|| UnknownVersion { given: s.to_string() })
    }
}

/// What the user asked for; written as the informational `quantizer_args` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct QuantizerArgs {
    pub activation_bitwidth: u8,
    pub param_bitwidth: u8,
    pub act_symmetric: bool,
    pub param_symmetric: bool,
    pub per_channel: bool,
    pub per_row: bool,
    pub bias_bitwidth: u8,
}

/// Why an encodings file cannot be written.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JsonError {
    #[error("tensor `{tensor}` has scale {scale} (channel {channel}); a scale must be finite and positive")]
    BadScale { tensor: String, channel: usize, scale: f32 },

    #[error("tensor `{tensor}` has {scales} scales but {zero_points} zero points")]
    Mismatched { tensor: String, scales: usize, zero_points: usize },

    #[error("tensor `{tensor}` has no scale")]
    NoScale { tensor: String },

    #[error("tensor `{tensor}` has bitwidth {bitwidth}; the encodings file holds 2 to 32")]
    BadBitwidth { tensor: String, bitwidth: u8 },
}

/// The encodings file for `encodings`: pretty-printed, ending in a newline, byte-identical for
/// identical input. Fails, naming the tensor, if an encoding is not writable (a scale that is not
/// finite and positive — JSON has no NaN or infinity —, mismatched lengths, a bitwidth outside
/// 2…32).
pub fn to_json(
    encodings: &Encodings,
    args: &QuantizerArgs,
    version: JsonVersion,
) -> Result<String, JsonError> {
    for (name, t) in &encodings.tensors {
        check(name, &t.encoding)?;
    }
    // Integer and float entries of one section, merged in name order.
    let section = |kind: Kind| {
        let ints = encodings
            .tensors
            .iter()
            .filter(move |(_, t)| t.kind == kind)
            .map(|(n, t)| (n, Some(&t.encoding), 0));
        let floats =
            encodings.floats.iter().filter(move |(_, f)| f.kind == kind).map(|(n, f)| (n, None, f.bitwidth));
        let mut all: Vec<_> = ints.chain(floats).collect();
        all.sort_by(|a, b| a.0.cmp(b.0));
        all
    };
    let text = match version {
        JsonVersion::V1_0_0 => {
            let entries = |kind| {
                section(kind)
                    .into_iter()
                    .map(|(name, e, bw)| match e {
                        Some(e) => AnyV1::Int(EntryV1::new(name, e)),
                        None => AnyV1::Float(FloatV1 { name, dtype: "FLOAT", enc_type: "PER_TENSOR", bw }),
                    })
                    .collect()
            };
            render(&FileV1 {
                version: version.as_str(),
                activation_encodings: entries(Kind::Activation),
                param_encodings: entries(Kind::Param),
                quantizer_args: ArgsV1::new(args),
                excluded_layers: [],
            })
        }
        JsonVersion::V0_6_1 => {
            let entries = |kind| {
                section(kind)
                    .into_iter()
                    .map(|(name, e, bitwidth)| match e {
                        Some(e) => (name.as_str(), entries_v0(e).into_iter().map(AnyV0::Int).collect()),
                        None => (name.as_str(), vec![AnyV0::Float(FloatV0 { bitwidth, dtype: "float" })]),
                    })
                    .collect()
            };
            render(&FileV0 {
                version: version.as_str(),
                activation_encodings: entries(Kind::Activation),
                param_encodings: entries(Kind::Param),
                quantizer_args: ArgsV0::new(args),
            })
        }
    };
    Ok(text)
}

fn check(tensor: &str, e: &Encoding) -> Result<(), JsonError> {
    if !(2..=32).contains(&e.bitwidth) {
        return Err(JsonError::BadBitwidth { tensor: tensor.to_string(), bitwidth: e.bitwidth });
    }
    if e.scales.is_empty() {
        return Err(JsonError::NoScale { tensor: tensor.to_string() });
    }
    if e.scales.len() != e.zero_points.len() {
        return Err(JsonError::Mismatched {
            tensor: tensor.to_string(),
            scales: e.scales.len(),
            zero_points: e.zero_points.len(),
        });
    }
    match e.scales.iter().position(|s| !(s.is_finite() && *s > 0.0)) {
        Some(channel) => {
            Err(JsonError::BadScale { tensor: tensor.to_string(), channel, scale: e.scales[channel] })
        }
        None => Ok(()),
    }
}

/// The offset written for channel `c`. A 32-bit signed encoding (the bias, DESIGN.md Decision 1)
/// is written with QNN's signed-storage convention, offset `−zero_point` = 0, as spec §3.2
/// example 14 gives it; the unsigned-grid convention used for every other signed encoding would
/// say −2^31. Spec §8 lists this as unconfirmed against a QAIRT-produced file; change it here
/// (and only here) if one shows −2^31.
fn offset(e: &Encoding, c: usize) -> i64 {
    if e.signed && e.bitwidth == 32 { -e.zero_points[c] } else { e.qnn_offset(c) }
}

fn py_bool(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

/// Calibration is min-max (DESIGN.md Decision 1), which AIMET calls `post_training_tf`.
const QUANT_SCHEME: &str = "post_training_tf";

#[derive(Serialize)]
struct FileV1<'a> {
    version: &'static str,
    activation_encodings: Vec<AnyV1<'a>>,
    param_encodings: Vec<AnyV1<'a>>,
    quantizer_args: ArgsV1,
    /// ptq excludes no layers; AIMET writes the key anyway.
    excluded_layers: [&'static str; 0],
}

#[derive(Serialize)]
#[serde(untagged)]
enum AnyV1<'a> {
    Int(EntryV1<'a>),
    Float(FloatV1<'a>),
}

/// A tensor kept float (spec §4.2: `dtype` FLOAT with only its bitwidth).
#[derive(Serialize)]
struct FloatV1<'a> {
    name: &'a str,
    dtype: &'static str,
    enc_type: &'static str,
    bw: u8,
}

#[derive(Serialize)]
struct EntryV1<'a> {
    name: &'a str,
    dtype: &'static str,
    enc_type: &'static str,
    is_sym: bool,
    bw: u8,
    scale: &'a [f32],
    offset: Vec<i64>,
}

impl<'a> EntryV1<'a> {
    fn new(name: &'a str, e: &'a Encoding) -> Self {
        EntryV1 {
            name,
            dtype: "INT",
            enc_type: if e.is_per_channel() { "PER_CHANNEL" } else { "PER_TENSOR" },
            is_sym: e.symmetric,
            bw: e.bitwidth,
            scale: &e.scales,
            offset: (0..e.scales.len()).map(|c| offset(e, c)).collect(),
        }
    }
}

/// Spec §4.2's keys first (AIMET's `is_symmetric` is the params' default), then ptq's own.
#[derive(Serialize)]
struct ArgsV1 {
    activation_bitwidth: u8,
    dtype: &'static str,
    is_symmetric: bool,
    param_bitwidth: u8,
    per_channel_quantization: bool,
    quant_scheme: &'static str,
    activation_is_symmetric: bool,
    per_row_quantization: bool,
    bias_bitwidth: u8,
}

impl ArgsV1 {
    fn new(a: &QuantizerArgs) -> Self {
        ArgsV1 {
            activation_bitwidth: a.activation_bitwidth,
            dtype: "int",
            is_symmetric: a.param_symmetric,
            param_bitwidth: a.param_bitwidth,
            per_channel_quantization: a.per_channel,
            quant_scheme: QUANT_SCHEME,
            activation_is_symmetric: a.act_symmetric,
            per_row_quantization: a.per_row,
            bias_bitwidth: a.bias_bitwidth,
        }
    }
}

#[derive(Serialize)]
struct FileV0<'a> {
    version: &'static str,
    activation_encodings: BTreeMap<&'a str, Vec<AnyV0>>,
    param_encodings: BTreeMap<&'a str, Vec<AnyV0>>,
    quantizer_args: ArgsV0,
}

#[derive(Serialize)]
#[serde(untagged)]
enum AnyV0 {
    Int(EntryV0),
    Float(FloatV0),
}

/// A tensor kept float (spec §4.1: `dtype` float with only its bitwidth).
#[derive(Serialize)]
struct FloatV0 {
    bitwidth: u8,
    dtype: &'static str,
}

/// One channel of a 0.6.1 encoding; more than one in a list means per channel (spec §4.1).
#[derive(Serialize)]
struct EntryV0 {
    bitwidth: u8,
    dtype: &'static str,
    is_symmetric: &'static str,
    /// f64: readers recompute scale and offset from min/max (spec §4.4), and these are the exact
    /// ends of the f32 scale's grid.
    min: f64,
    max: f64,
    offset: i64,
    scale: f32,
}

fn entries_v0(e: &Encoding) -> Vec<EntryV0> {
    (0..e.scales.len())
        .map(|c| {
            let (min, max) = e.min_max(c);
            EntryV0 {
                bitwidth: e.bitwidth,
                dtype: "int",
                is_symmetric: py_bool(e.symmetric),
                min,
                max,
                offset: offset(e, c),
                scale: e.scales[c],
            }
        })
        .collect()
}

/// As [`ArgsV1`], with the string booleans of 0.6.1.
#[derive(Serialize)]
struct ArgsV0 {
    activation_bitwidth: u8,
    dtype: &'static str,
    is_symmetric: &'static str,
    param_bitwidth: u8,
    per_channel_quantization: &'static str,
    quant_scheme: &'static str,
    activation_is_symmetric: &'static str,
    per_row_quantization: &'static str,
    bias_bitwidth: u8,
}

impl ArgsV0 {
    fn new(a: &QuantizerArgs) -> Self {
        ArgsV0 {
            activation_bitwidth: a.activation_bitwidth,
            dtype: "int",
            is_symmetric: py_bool(a.param_symmetric),
            param_bitwidth: a.param_bitwidth,
            per_channel_quantization: py_bool(a.per_channel),
            quant_scheme: QUANT_SCHEME,
            activation_is_symmetric: py_bool(a.act_symmetric),
            per_row_quantization: py_bool(a.per_row),
            bias_bitwidth: a.bias_bitwidth,
        }
    }
}

fn render<T: Serialize>(value: &T) -> String {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, Layout::default());
    // Plain structs, string keys, finite numbers, an in-memory writer: nothing here can fail.
    value.serialize(&mut ser).expect("serializing encodings to memory cannot fail");
    let mut text = String::from_utf8(out).expect("serde_json writes UTF-8");
    text.push('\n');
    text
}

/// Pretty printing (4-space indent, like Python's `json.dump(indent=4)`) that keeps arrays of
/// numbers or strings on one line — `"scale": [0.1, 0.05, 0.2]` — so a per-channel tensor is one
/// line per field rather than one per channel. An array goes multi-line when its first element is
/// an object or array.
#[derive(Default)]
struct Layout {
    stack: Vec<Frame>,
}

#[derive(Clone, Copy, PartialEq)]
enum Frame {
    Object {
        has_keys: bool,
    },
    /// `None` until the first element shows whether the array is inline.
    Array {
        inline: Option<bool>,
    },
}

impl Layout {
    fn newline<W: ?Sized + io::Write>(&self, w: &mut W) -> io::Result<()> {
        w.write_all(b"\n")?;
        for _ in 0..self.stack.len() {
            w.write_all(b"    ")?;
        }
        Ok(())
    }

    /// Called before any value; decides an undecided array's layout from its first element.
    fn before_value<W: ?Sized + io::Write>(&mut self, w: &mut W, container: bool) -> io::Result<()> {
        if let Some(Frame::Array { inline: inline @ None }) = self.stack.last_mut() {
            *inline = Some(!container);
            if container {
                self.newline(w)?;
            }
        }
        Ok(())
    }
}

macro_rules! scalar {
    ($($method:ident($ty:ty)),* $(,)?) => {$(
        fn $method<W: ?Sized + io::Write>(&mut self, w: &mut W, value: $ty) -> io::Result<()> {
            self.before_value(w, false)?;
            CompactFormatter.$method(w, value)
        }
    )*};
}

impl Formatter for Layout {
    scalar!(
        write_bool(bool),
        write_i8(i8),
        write_i16(i16),
        write_i32(i32),
        write_i64(i64),
        write_i128(i128),
        write_u8(u8),
        write_u16(u16),
        write_u32(u32),
        write_u64(u64),
        write_u128(u128),
        write_f32(f32),
        write_f64(f64),
        write_number_str(&str),
        write_raw_fragment(&str),
    );

    fn write_null<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.before_value(w, false)?;
        w.write_all(b"null")
    }

    fn begin_string<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        // Object keys arrive here too; with an object on top of the stack this does nothing.
        self.before_value(w, false)?;
        w.write_all(b"\"")
    }

    fn begin_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.before_value(w, true)?;
        self.stack.push(Frame::Array { inline: None });
        w.write_all(b"[")
    }

    fn begin_array_value<W: ?Sized + io::Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        match self.stack.last() {
            _ if first => Ok(()),
            Some(Frame::Array { inline: Some(true) }) => w.write_all(b", "),
            _ => {
                w.write_all(b",")?;
                self.newline(w)
            }
        }
    }

    fn end_array_value<W: ?Sized + io::Write>(&mut self, _w: &mut W) -> io::Result<()> {
        Ok(())
    }

    fn end_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        let frame = self.stack.pop();
        if frame == Some(Frame::Array { inline: Some(false) }) {
            self.newline(w)?;
        }
        w.write_all(b"]")
    }

    fn begin_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.before_value(w, true)?;
        self.stack.push(Frame::Object { has_keys: false });
        w.write_all(b"{")
    }

    fn begin_object_key<W: ?Sized + io::Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if let Some(Frame::Object { has_keys }) = self.stack.last_mut() {
            *has_keys = true;
        }
        if !first {
            w.write_all(b",")?;
        }
        self.newline(w)
    }

    fn end_object_key<W: ?Sized + io::Write>(&mut self, _w: &mut W) -> io::Result<()> {
        Ok(())
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }

    fn end_object_value<W: ?Sized + io::Write>(&mut self, _w: &mut W) -> io::Result<()> {
        Ok(())
    }

    fn end_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        let frame = self.stack.pop();
        if frame == Some(Frame::Object { has_keys: true }) {
            self.newline(w)?;
        }
        w.write_all(b"}")
    }
}
