//! The overrides / encodings JSON reader (spec §4.1–§4.4). Golden numbers are the spec's: the
//! §4.1–§4.3 examples and §3.2's worked examples.

use std::collections::BTreeSet;
use std::path::Path;

use ptq_quant::json::{JsonVersion, QuantizerArgs, to_json};
use ptq_quant::overrides_json::{
    OverridesError, check_names, parse_overrides, parse_overrides_with_warnings,
};
use ptq_quant::{
    Encoding, Encodings, FloatReason, FloatTensor, Given, GivenEncodings, Kind, Origin, QuantSpec, Schema,
    Section, TensorEncoding,
};

const FILE: &str = "ov.json";

fn parse(text: &str) -> GivenEncodings {
    match parse_overrides(Path::new(FILE), text) {
        Ok(g) => g,
        Err(e) => panic!("{e}\n{text}"),
    }
}

fn parse_warn(text: &str) -> (GivenEncodings, Vec<String>) {
    parse_overrides_with_warnings(Path::new(FILE), text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn error(text: &str) -> OverridesError {
    match parse_overrides(Path::new(FILE), text) {
        Ok(g) => panic!("parsed, expected an error: {g:?}\n{text}"),
        Err(e) => e,
    }
}

/// The error's message contains every piece (and names the file).
fn fails_with(text: &str, pieces: &[&str]) -> OverridesError {
    let e = error(text);
    let msg = e.to_string();
    assert!(msg.starts_with(FILE), "no file name in: {msg}");
    for p in pieces {
        assert!(msg.contains(p), "missing {p:?} in: {msg}");
    }
    e
}

fn fixed<'a>(g: &'a GivenEncodings, name: &str) -> &'a Encoding {
    match &g[name].given {
        Given::Fixed(e) => e,
        other => panic!("{name}: {other:?}"),
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * b.abs().max(1e-9)
}

/// Wraps 0.6.1 sections in a file.
fn v0(activations: &str, params: &str) -> String {
    format!(
        r#"{{"version": "0.6.1", "activation_encodings": {{{activations}}}, "param_encodings": {{{params}}}}}"#
    )
}

fn v1(activations: &str, params: &str) -> String {
    format!(
        r#"{{"version": "1.0.0", "activation_encodings": [{activations}], "param_encodings": [{params}]}}"#
    )
}

fn v2(entries: &str) -> String {
    format!(r#"{{"version": "2.0.0", "encodings": [{entries}]}}"#)
}

// ------------------------------------------------------------------ spec examples

const SPEC_4_1: &str = r#"{
  "version": "0.6.1",
  "activation_encodings": {
    "input": [ {"bitwidth": 8, "dtype": "int", "is_symmetric": "False",
                "min": -1.8039215686274508, "max": 0.49607843137254903,
                "offset": -200, "scale": 0.009019607843137253} ],
    "conv2_out": [ {"bitwidth": 16, "dtype": "float"} ]
  },
  "param_encodings": {
    "conv.weight": [
      {"bitwidth": 8, "dtype": "int", "is_symmetric": "True", "min": -12.8, "max": 12.7,
       "offset": -128, "scale": 0.1},
      {"bitwidth": 8, "dtype": "int", "is_symmetric": "True", "min": -6.4, "max": 6.35,
       "offset": -128, "scale": 0.05}
    ]
  },
  "quantizer_args": {"activation_bitwidth": 8, "dtype": "int", "is_symmetric": "True",
                     "param_bitwidth": 8, "per_channel_quantization": "True",
                     "quant_scheme": "post_training_tf"}
}"#;

/// Spec §3.2 example 1 as the §4.1–§4.3 examples give it (float64 digits).
const EXAMPLE_1_SCALE: f64 = 0.009019607843137253;

fn assert_example_1(e: &Encoding) {
    assert_eq!(e.scales, [EXAMPLE_1_SCALE as f32]);
    assert_eq!(e.zero_points, [200]);
    assert_eq!((e.bitwidth, e.signed, e.symmetric, e.strict, e.axis), (8, false, false, false, None));
    assert_eq!(e.qnn_offset(0), -200);
    assert_eq!(e.origin, Origin::Override);
}

fn assert_conv_weight(e: &Encoding) {
    assert_eq!(e.scales, [0.1f32, 0.05]);
    assert_eq!(e.zero_points, [0, 0]);
    assert_eq!((e.bitwidth, e.signed, e.symmetric, e.strict, e.axis), (8, true, true, false, Some(0)));
    assert_eq!((e.qnn_offset(0), e.qnn_offset(1)), (-128, -128));
}

#[test]
fn spec_4_1_example_0_6_1() {
    let (g, warnings) = parse_warn(SPEC_4_1);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(g.len(), 3);
    assert_example_1(fixed(&g, "input"));
    assert_eq!(g["input"].section, Section::Activation);
    assert_eq!(g["conv2_out"].given, Given::Float { bitwidth: 16 });
    assert_eq!(g["conv2_out"].section, Section::Activation);
    assert_conv_weight(fixed(&g, "conv.weight"));
    assert_eq!(g["conv.weight"].section, Section::Param);
}

const SPEC_4_2_BLOCKS: &str = r#",
    {"name": "fc.weight", "dtype": "INT", "enc_type": "PER_BLOCK", "is_sym": true, "bw": 4,
     "block_size": 32, "scale": [0.01, 0.02, 0.03, 0.04], "offset": [-8, -8, -8, -8]}"#;
const SPEC_4_2_LPBQ: &str = r#",
    {"name": "fc2.weight", "dtype": "INT", "enc_type": "LPBQ", "is_sym": true, "bw": 8,
     "compressed_bw": 4, "block_size": 64, "scale": [0.0029375],
     "per_block_int_scale": [4, 10, 16, 7], "offset": [-128]}"#;

fn spec_4_2(blocks: &str, lpbq: &str) -> String {
    format!(
        r#"{{
  "version": "1.0.0",
  "activation_encodings": [
    {{"name": "input", "dtype": "INT", "enc_type": "PER_TENSOR", "is_sym": false, "bw": 8,
     "scale": [0.009019607843137253], "offset": [-200]}},
    {{"name": "conv2_out", "dtype": "FLOAT", "enc_type": "PER_TENSOR", "bw": 16}}
  ],
  "param_encodings": [
    {{"name": "conv.weight", "dtype": "INT", "enc_type": "PER_CHANNEL", "is_sym": true, "bw": 8,
     "scale": [0.1, 0.05], "offset": [-128, -128]}}{blocks}{lpbq}
  ],
  "quantizer_args": {{"activation_bitwidth": 8, "dtype": "int", "is_symmetric": true,
                     "param_bitwidth": 8, "per_channel_quantization": true,
                     "quant_scheme": "post_training_tf"}},
  "excluded_layers": []
}}"#
    )
}

#[test]
fn spec_4_2_example_1_0_0() {
    let (g, warnings) = parse_warn(&spec_4_2("", ""));
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(g.len(), 3);
    assert_example_1(fixed(&g, "input"));
    assert_eq!(g["conv2_out"].given, Given::Float { bitwidth: 16 });
    assert_conv_weight(fixed(&g, "conv.weight"));
    assert_eq!(g["conv.weight"].section, Section::Param);
}

/// A block-quantized entry cannot be kept yet: that entry is skipped with a warning naming the
/// tensor, and the rest of the file — the spec's own example included — still counts (one such
/// entry used to reject the whole file).
#[test]
fn spec_4_2_block_and_lpbq_entries_are_skipped_by_name() {
    let (g, warnings) = parse_warn(&spec_4_2(SPEC_4_2_BLOCKS, SPEC_4_2_LPBQ));
    assert_eq!(g.len(), 3, "the other entries are kept");
    assert_example_1(fixed(&g, "input"));
    assert_conv_weight(fixed(&g, "conv.weight"));
    assert!(!g.contains_key("fc.weight") && !g.contains_key("fc2.weight"));
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0].contains("`fc.weight`") && warnings[0].contains("PER_BLOCK"), "{warnings:?}");
    assert!(warnings[1].contains("`fc2.weight`") && warnings[1].contains("LPBQ"), "{warnings:?}");
    assert!(warnings.iter().all(|w| w.contains("skipped")), "{warnings:?}");
    // A block field on an entry that does not say PER_BLOCK is a block entry too.
    let (g, warnings) = parse_warn(&v1(
        "",
        r#"{"name": "w", "bw": 4, "is_sym": true, "block_size": 32, "scale": [0.1], "offset": [-8]}"#,
    ));
    assert!(g.is_empty());
    assert!(warnings[0].contains("`w`") && warnings[0].contains("`block_size`"), "{warnings:?}");
}

const SPEC_4_3_BLOCK: &str = r#",
    {"name": "fc.weight", "output_dtype": "int4", "axis": 1, "block_size": 32,
     "y_scale": [[0.01, 0.02], [0.03, 0.04]]}"#;
const SPEC_4_3_LPBQ: &str = r#",
    {"name": "fc2.weight", "output_dtype": "int4", "axis": 1, "block_size": 64,
     "per_block_int_scale": [[4, 10, 16, 7]], "per_channel_float_scale": [[0.0029375]]}"#;

fn spec_4_3(block: &str, lpbq: &str) -> String {
    format!(
        r#"{{
  "version": "2.0.0",
  "encodings": [
    {{"name": "input", "output_dtype": "uint8", "y_scale": 0.009019607843137253, "y_zero_point": 200}},
    {{"name": "conv.weight", "output_dtype": "int8", "y_scale": [0.1, 0.05], "axis": 0}}{block},
    {{"name": "conv.bias", "output_dtype": "int32",
     "y_scale": [0.0009019607843137253, 0.00045098039215686267], "axis": 0}}{lpbq}
  ],
  "quantizer_args": {{}}
}}"#
    )
}

#[test]
fn spec_4_3_example_2_0_0() {
    let (g, warnings) = parse_warn(&spec_4_3("", ""));
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(g.len(), 3);
    assert_example_1(fixed(&g, "input"));
    assert_eq!(g["input"].section, Section::Any);
    assert_conv_weight(fixed(&g, "conv.weight"));
    let bias = fixed(&g, "conv.bias");
    assert_eq!(bias.scales, [0.0009019607843137253f64 as f32, 0.00045098039215686267f64 as f32]);
    assert_eq!(bias.zero_points, [0, 0]);
    assert_eq!((bias.bitwidth, bias.signed, bias.symmetric, bias.axis), (32, true, true, Some(0)));
}

#[test]
fn spec_4_3_block_and_lpbq_entries_are_skipped_by_name() {
    let (g, warnings) = parse_warn(&spec_4_3(SPEC_4_3_BLOCK, SPEC_4_3_LPBQ));
    assert_eq!(g.len(), 3, "the other entries are kept");
    assert_conv_weight(fixed(&g, "conv.weight"));
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0].contains("`fc.weight`") && warnings[0].contains("`block_size`"), "{warnings:?}");
    assert!(warnings[1].contains("`fc2.weight`"), "{warnings:?}");
    // Nested y_scale without block_size is per-block too.
    let (g, warnings) =
        parse_warn(&v2(r#"{"name": "w", "output_dtype": "int4", "axis": 1, "y_scale": [[0.1], [0.2]]}"#));
    assert!(g.is_empty());
    assert!(warnings[0].contains("`w`") && warnings[0].contains("nested `y_scale`"), "{warnings:?}");
}

/// The same encodings in every format read to the same thing (sections aside).
#[test]
fn the_three_spec_examples_agree() {
    let a = parse(SPEC_4_1);
    let b = parse(&spec_4_2("", ""));
    let c = parse(&spec_4_3("", ""));
    for name in ["input", "conv.weight"] {
        assert_eq!(a[name].given, b[name].given, "{name}");
        assert_eq!(a[name].given, c[name].given, "{name}");
    }
}

#[test]
fn a_file_without_version_is_0_6_1_and_list_sections_are_1_0_0() {
    let text = r#"{"activation_encodings": {"x": [{"bitwidth": 8, "min": -1.8, "max": 0.5}]},
                   "param_encodings": {}}"#;
    assert_eq!(fixed(&parse(text), "x").zero_points, [200]);
    // Only one section, and lists without a version.
    let text =
        r#"{"param_encodings": [{"name": "w", "bw": 8, "is_sym": true, "scale": [0.1], "offset": [-128]}]}"#;
    let g = parse(text);
    assert_eq!(fixed(&g, "w").zero_points, [0]);
    assert_eq!(g["w"].section, Section::Param);
    // A 2.x file is recognised by `encodings` alone too.
    let g = parse(r#"{"encodings": [{"name": "x", "output_dtype": "int8", "y_scale": 0.5}]}"#);
    assert_eq!(fixed(&g, "x").scales, [0.5]);
}

// ------------------------------------------------------------------ bitwidth-only and float

#[test]
fn bitwidth_only_entries_ask_for_calibration_at_that_bitwidth() {
    let g = parse(&v0(
        r#""a": [{"bitwidth": 16, "dtype": "int"}], "b": [{"bitwidth": 4, "is_symmetric": "True"}]"#,
        r#""w": [{"bitwidth": 8, "is_symmetric": false}]"#,
    ));
    assert_eq!(g["a"].given, Given::Bitwidth { bitwidth: 16, symmetric: None });
    assert_eq!(g["b"].given, Given::Bitwidth { bitwidth: 4, symmetric: Some(true) });
    assert_eq!(g["w"].given, Given::Bitwidth { bitwidth: 8, symmetric: Some(false) });
    let g = parse(&v1(
        r#"{"name": "a", "dtype": "INT", "enc_type": "PER_TENSOR", "bw": 16}"#,
        r#"{"name": "w", "bw": 4, "is_sym": true}"#,
    ));
    assert_eq!(g["a"].given, Given::Bitwidth { bitwidth: 16, symmetric: None });
    assert_eq!(g["w"].given, Given::Bitwidth { bitwidth: 4, symmetric: Some(true) });
    let g = parse(&v2(r#"{"name": "a", "output_dtype": "uint16"}, {"name": "w", "output_dtype": "int8"}"#));
    assert_eq!(g["a"].given, Given::Bitwidth { bitwidth: 16, symmetric: Some(false) });
    assert_eq!(g["w"].given, Given::Bitwidth { bitwidth: 8, symmetric: Some(true) });
}

#[test]
fn float_entries_keep_the_tensor_float_at_their_bitwidth() {
    let g = parse(&v0(
        r#""a": [{"bitwidth": 16, "dtype": "float"}], "b": [{"bitwidth": 32, "dtype": "FLOAT"}]"#,
        "",
    ));
    assert_eq!(g["a"].given, Given::Float { bitwidth: 16 });
    assert_eq!(g["b"].given, Given::Float { bitwidth: 32 });
    let g = parse(&v1(r#"{"name": "a", "dtype": "FLOAT", "bw": 32}"#, ""));
    assert_eq!(g["a"].given, Given::Float { bitwidth: 32 });
    let g = parse(&v2(r#"{"name": "a", "output_dtype": "float16"}"#));
    assert_eq!(g["a"].given, Given::Float { bitwidth: 16 });
    // Range fields on a float entry are ignored, with a warning.
    let (g, w) = parse_warn(&v0(r#""a": [{"bitwidth": 16, "dtype": "float", "min": 0, "max": 1}]"#, ""));
    assert_eq!(g["a"].given, Given::Float { bitwidth: 16 });
    assert!(w.iter().any(|w| w.contains("`a`") && w.contains("`min` ignored")), "{w:?}");
}

// ------------------------------------------------------------------ completing fields

/// Spec §4.4: scale/offset absent → computed from bitwidth/min/max (§3.2 Step A+B).
#[test]
fn missing_scale_and_offset_come_from_min_max() {
    let g = parse(&v0(
        r#""ex1": [{"bitwidth": 8, "dtype": "int", "is_symmetric": "False", "min": -1.8, "max": 0.5}],
           "ex5": [{"bitwidth": 8, "is_symmetric": "True", "min": -1.8, "max": 0.5}],
           "ex7": [{"bitwidth": 16, "min": -1.8, "max": 0.5}]"#,
        r#""ex13": [{"bitwidth": 4, "is_symmetric": "True", "min": -0.7, "max": 0.7},
                    {"bitwidth": 4, "is_symmetric": "True", "min": -0.35, "max": 0.1},
                    {"bitwidth": 4, "is_symmetric": "True", "min": -1.0, "max": 1.4}]"#,
    ));
    let e = fixed(&g, "ex1");
    assert!(close(f64::from(e.scales[0]), 0.009019608), "{}", e.scales[0]);
    assert_eq!((e.zero_points[0], e.signed, e.symmetric), (200, false, false));
    let e = fixed(&g, "ex5");
    assert!(close(f64::from(e.scales[0]), 0.0141732283), "{}", e.scales[0]);
    assert_eq!((e.zero_points[0], e.signed, e.symmetric, e.qnn_offset(0)), (0, true, true, -128));
    // Missing is_symmetric → asymmetric (spec §4.4); example 7: 16-bit offset −51288.
    let e = fixed(&g, "ex7");
    assert!(close(f64::from(e.scales[0]), 3.50957504e-05), "{}", e.scales[0]);
    assert_eq!(e.qnn_offset(0), -51288);
    let e = fixed(&g, "ex13");
    assert_eq!(e.axis, Some(0));
    for (c, want) in [0.1, 0.05, 0.2].into_iter().enumerate() {
        assert!(close(f64::from(e.scales[c]), want), "channel {c}: {}", e.scales[c]);
        assert_eq!(e.qnn_offset(c), -8);
    }
    // The numbers equal Encoding::from_range's, bit for bit.
    let want = Encoding::from_range(-1.8, 0.5, &QuantSpec::new(8, Schema::Asymmetric), Origin::Override);
    assert_eq!(fixed(&g, "ex1"), &want);
}

/// Spec §3.2 "Re-deriving min/max from scale/offset": the encoding's range is `[Δ·o, Δ·(o+steps)]`
/// asymmetric, `[Δ·o, Δ·floor(steps/2)]` symmetric.
#[test]
fn missing_min_max_come_from_scale_and_offset() {
    let g = parse(&v1(
        r#"{"name": "ex1", "bw": 8, "is_sym": false, "scale": [0.00901960784], "offset": [-200]},
           {"name": "ex8", "bw": 16, "is_sym": true, "scale": [5.49333171e-05], "offset": [-32768]},
           {"name": "ex6", "bw": 8, "is_sym": true, "scale": [0.0141732283], "offset": [-127]}"#,
        "",
    ));
    let (lo, hi) = fixed(&g, "ex1").min_max(0);
    assert!(close(lo, -1.80392157) && close(hi, 0.496078431), "{lo} {hi}");
    let (lo, hi) = fixed(&g, "ex8").min_max(0);
    assert!(close(lo, -1.80005493) && close(hi, 1.8), "{lo} {hi}");
    let e = fixed(&g, "ex6");
    assert!(e.strict);
    let (lo, hi) = e.min_max(0);
    assert!(close(lo, -1.8) && close(hi, 1.8), "{lo} {hi}");
}

/// 0.6.1 with min/max and scale/offset that agree: the given scale/offset are kept exactly (a
/// symmetric range recomputed from `[−128Δ, 127Δ]` would drift to 128Δ/127). When they disagree,
/// QNN's rule applies: recomputed from min/max, with a warning.
#[test]
fn min_max_and_scale_offset_agreeing_keep_the_given_numbers_else_min_max_wins() {
    let (g, w) = parse_warn(&v0(
        r#""sym": [{"bitwidth": 8, "is_symmetric": "True", "min": -12.8, "max": 12.7, "offset": -128, "scale": 0.1}],
           "observed": [{"bitwidth": 8, "is_symmetric": "False", "min": -1.8, "max": 0.5, "offset": -200, "scale": 0.00901960784}]"#,
        "",
    ));
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(fixed(&g, "sym").scales, [0.1]);
    assert_eq!(fixed(&g, "observed").scales, [0.00901960784f64 as f32]);
    // The range was edited to [−1, 1] and the old scale left behind.
    let (g, w) = parse_warn(&v0(
        r#""x": [{"bitwidth": 8, "is_symmetric": "True", "min": -1.0, "max": 1.0, "offset": -128, "scale": 0.1}]"#,
        "",
    ));
    assert_eq!(fixed(&g, "x").scales, [(1.0f64 / 127.0) as f32]);
    assert!(w.iter().any(|w| w.contains("`x`") && w.contains("recomputed from min/max")), "{w:?}");
}

#[test]
fn types_are_read_leniently_where_producers_differ() {
    // Integral float offsets, JSON booleans in 0.6.1, string booleans in 1.0.0, scalar scale/offset.
    let g =
        parse(&v0(r#""a": [{"bitwidth": 8.0, "is_symmetric": true, "offset": -128.0, "scale": 0.5}]"#, ""));
    assert_eq!((fixed(&g, "a").signed, fixed(&g, "a").zero_points[0]), (true, 0));
    let g = parse(&v1(r#"{"name": "a", "bw": 8, "is_sym": "True", "scale": 0.5, "offset": -128}"#, ""));
    assert_eq!((fixed(&g, "a").signed, fixed(&g, "a").axis), (true, None));
    // A single 0.6.1 encoding given as an object rather than a list of one.
    let g = parse(&v0(r#""a": {"bitwidth": 8, "min": -1.8, "max": 0.5}"#, ""));
    assert_eq!(fixed(&g, "a").zero_points, [200]);
}

/// Spec §4.1 "offsets forced negative": a positive legacy offset is read as its negation.
#[test]
fn positive_0_6_1_offsets_are_read_negative_with_a_warning() {
    let (g, w) = parse_warn(&v0(
        r#""a": [{"bitwidth": 8, "is_symmetric": "False", "offset": 200, "scale": 0.5}]"#,
        "",
    ));
    assert_eq!(fixed(&g, "a").zero_points, [200]);
    assert!(w.iter().any(|w| w.contains("`a`") && w.contains("offset 200 read as -200")), "{w:?}");
    // 1.0.0 offsets are never positive: an error, with the valid range.
    fails_with(
        &v1(r#"{"name": "a", "bw": 8, "scale": [0.5], "offset": [200]}"#, ""),
        &["`a`", "offset 200", "[-255, 0]"],
    );
}

#[test]
fn symmetric_offsets_give_signed_strict_or_unsigned_grids() {
    let g = parse(&v1(
        "",
        r#"{"name": "sym", "bw": 4, "is_sym": true, "scale": [0.1], "offset": [-8]},
           {"name": "strict", "bw": 16, "is_sym": true, "scale": [0.1], "offset": [-32767]},
           {"name": "unsigned", "bw": 8, "is_sym": true, "scale": [0.1], "offset": [0]},
           {"name": "bias", "bw": 32, "is_sym": true, "scale": [0.001], "offset": [0]},
           {"name": "bias_grid", "bw": 32, "is_sym": true, "scale": [0.001], "offset": [-2147483648]},
           {"name": "two", "bw": 2, "is_sym": true, "scale": [0.1], "offset": [-2]}"#,
    ));
    let grid = |n: &str| {
        let e = fixed(&g, n);
        (e.signed, e.strict, e.zero_points[0], e.grid())
    };
    assert_eq!(grid("sym"), (true, false, 0, (-8, 7)));
    assert_eq!(grid("strict"), (true, true, 0, (-32767, 32767)));
    assert_eq!(grid("unsigned"), (false, false, 0, (0, 255)));
    assert_eq!(grid("bias"), (true, false, 0, (-(1 << 31), (1 << 31) - 1)));
    assert_eq!(grid("bias_grid"), grid("bias"));
    assert_eq!(grid("two"), (true, false, 0, (-2, 1)));
}

#[test]
fn v2_zero_points_decide_symmetry() {
    let g = parse(&v2(r#"{"name": "s", "output_dtype": "int8", "y_scale": 0.1, "y_zero_point": 0},
           {"name": "a", "output_dtype": "int8", "y_scale": 0.1, "y_zero_point": 3},
           {"name": "u", "output_dtype": "uint8", "y_scale": 0.1, "y_zero_point": 128},
           {"name": "u16", "output_dtype": "uint16", "y_scale": [0.1, 0.2], "y_zero_point": [7, 9], "axis": 1},
           {"name": "i4", "output_dtype": "int4", "y_scale": [0.1]}"#));
    let e = fixed(&g, "s");
    assert_eq!((e.signed, e.symmetric, e.qnn_offset(0)), (true, true, -128));
    let e = fixed(&g, "a");
    assert_eq!((e.signed, e.symmetric, e.qnn_offset(0)), (true, false, -131)); // spec §4.5: zp 3 → −131
    let e = fixed(&g, "u");
    assert_eq!((e.signed, e.symmetric, e.qnn_offset(0)), (false, true, -128));
    let e = fixed(&g, "u16");
    assert_eq!(
        (e.bitwidth, e.signed, e.symmetric, e.axis, &e.zero_points[..]),
        (16, false, false, Some(1), &[7, 9][..])
    );
    let e = fixed(&g, "i4");
    assert_eq!((e.bitwidth, e.axis, e.symmetric), (4, None, true));
}

// ------------------------------------------------------------------ errors

#[test]
fn malformed_json_names_line_and_column() {
    let text = "{\n  \"version\": \"1.0.0\"\n  \"activation_encodings\": []\n}";
    let e = error(text);
    assert!(matches!(e, OverridesError::Syntax { line: 3, column: 3, .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.starts_with("ov.json:3:3: malformed JSON: expected `,` or `}`"), "{msg}");
    assert!(!msg.contains("at line"), "{msg}");
    let e = error("");
    assert!(matches!(e, OverridesError::Syntax { line: 1, column: 0, .. }), "{e:?}");
    let e = error("{\"version\": \"0.6.1\", \"activation_encodings\": {\"x\": [{\"min\": -1,}]}}");
    assert!(matches!(e, OverridesError::Syntax { line: 1, .. }), "{e:?}");
}

#[test]
fn wrong_types_name_the_field_and_the_expected_type() {
    let e = fails_with(
        &v0(r#""x": [{"bitwidth": "8", "min": -1, "max": 1}]"#, ""),
        &["tensor `x`", "`bitwidth` must be an integer, not the string \"8\""],
    );
    assert!(matches!(e, OverridesError::Type { .. }), "{e:?}");
    fails_with(
        &v0(r#""x": [{"bitwidth": 8, "is_symmetric": "yes", "min": -1, "max": 1}]"#, ""),
        &["`is_symmetric` must be true/false", "the string \"yes\""],
    );
    fails_with(&v0(r#""x": [{"bitwidth": 8, "min": "-1", "max": 1}]"#, ""), &["`min` must be a number"]);
    fails_with(
        &v0(r#""x": [{"bitwidth": 8, "offset": -1.5, "scale": 0.1}]"#, ""),
        &["`offset` must be an integer, not the number -1.5"],
    );
    fails_with(
        &v0(r#""x": [{"bitwidth": 8, "dtype": "half"}]"#, ""),
        &["`dtype` must be \"int\" or \"float\""],
    );
    fails_with(&v0(r#""x": 8"#, ""), &["tensor `x`", "must be a list of encoding objects", "the number 8"]);
    fails_with(&v0(r#""x": [8]"#, ""), &["tensor `x`", "`entry 0` must be an encoding object"]);
    fails_with(
        &v1(r#"{"name": "x", "bw": 8, "scale": ["0.1"], "offset": [0]}"#, ""),
        &["tensor `x`", "`scale` must be a list of numbers"],
    );
    fails_with(
        &v1(r#"{"name": 3, "bw": 8}"#, ""),
        &["entry 0 of `activation_encodings`", "`name` must be a string"],
    );
    fails_with(&v1(r#"{"bw": 8}"#, ""), &["entry 0 of `activation_encodings` has no `name`"]);
    fails_with(&v2(r#"{"name": "x", "output_dtype": 8}"#), &["`output_dtype` must be a string"]);
    fails_with(
        &v2(r#"{"name": "x", "output_dtype": "int2", "y_scale": 0.1, "y_zero_point": -0.5}"#),
        &["`y_zero_point` must be an integer, not the number -0.5"],
    );
    fails_with("[1, 2]", &["the top level", "must be a JSON object", "a list"]);
    fails_with(r#"{"version": 1, "activation_encodings": []}"#, &["`version` must be a string"]);
    fails_with(r#"{"activation_encodings": "x"}"#, &["`activation_encodings` must be a dict"]);
}

#[test]
fn symmetric_encodings_with_a_bad_offset_are_refused() {
    fails_with(
        &v0(r#""x": [{"bitwidth": 8, "is_symmetric": "True", "offset": -100, "scale": 0.1}]"#, ""),
        &["tensor `x`", "symmetric 8-bit encoding with offset -100", "-128", "-127 when strict"],
    );
    fails_with(
        &v1(
            "",
            r#"{"name": "w", "enc_type": "PER_CHANNEL", "bw": 4, "is_sym": true, "scale": [0.1, 0.2], "offset": [-8, -7]}"#,
        ),
        &["tensor `w`", "differs from channel 0 in strictness"],
    );
    fails_with(
        &v1(
            "",
            r#"{"name": "w", "enc_type": "PER_CHANNEL", "bw": 4, "is_sym": true, "scale": [0.1, 0.2], "offset": [-8, -5]}"#,
        ),
        &["tensor `w`: channel 1: symmetric 4-bit encoding with offset -5"],
    );
}

#[test]
fn bitwidths_not_allowed_are_refused() {
    fails_with(
        &v0(r#""x": [{"bitwidth": 12, "min": -1, "max": 1}]"#, ""),
        &["tensor `x`", "bitwidth 12 is not supported", "2, 4, 8, 16 or 32"],
    );
    fails_with(&v1(r#"{"name": "x", "bw": 3}"#, ""), &["bw 3 is not supported"]);
    fails_with(
        &v1(r#"{"name": "x", "bw": 0, "scale": [0.1], "offset": [0]}"#, ""),
        &["bw 0 is not supported"],
    );
    fails_with(
        &v0(r#""x": [{"bitwidth": 8, "dtype": "float"}]"#, ""),
        &["float bitwidth 8 is not supported", "16 or 32"],
    );
    fails_with(&v0(r#""x": [{"dtype": "float"}]"#, ""), &["a float entry needs `bitwidth` 16 or 32"]);
    fails_with(
        &v2(r#"{"name": "x", "output_dtype": "int12", "y_scale": 0.1}"#),
        &["unknown output_dtype `int12`"],
    );
    fails_with(
        &v2(r#"{"name": "x", "output_dtype": "float8e4m3fn", "y_scale": 0.1}"#),
        &["tensor `x`", "float8e4m3fn", "float32 or float16 only"],
    );
}

#[test]
fn bad_scales_and_mismatched_lengths_are_refused() {
    for scale in ["0", "-0.1", "1e39", "1e-50"] {
        fails_with(
            &v1(
                r#"{"name": "x", "bw": 8, "scale": [SCALE], "offset": [0]}"#.replace("SCALE", scale).as_str(),
                "",
            ),
            &["tensor `x`", "a scale must be positive and finite"],
        );
    }
    fails_with(&v0(r#""x": [{"bitwidth": 8, "scale": 0, "offset": 0}]"#, ""), &["tensor `x`", "scale 0"]);
    fails_with(
        &v1(r#"{"name": "x", "bw": 8, "enc_type": "PER_CHANNEL", "scale": [0.1, 0.2], "offset": [0]}"#, ""),
        &["2 scales but 1 offsets"],
    );
    fails_with(
        &v1(r#"{"name": "x", "bw": 8, "enc_type": "PER_TENSOR", "scale": [0.1, 0.2], "offset": [0, 0]}"#, ""),
        &["PER_TENSOR with 2 scales"],
    );
    fails_with(&v1(r#"{"name": "x", "bw": 8, "scale": [0.1]}"#, ""), &["`scale` without `offset`"]);
    fails_with(
        &v2(
            r#"{"name": "x", "output_dtype": "uint8", "y_scale": [0.1, 0.2, 0.3], "y_zero_point": [1, 2], "axis": 0}"#,
        ),
        &["3 scales but 2 zero points"],
    );
    fails_with(
        &v2(r#"{"name": "x", "output_dtype": "uint8", "y_scale": [0.1, 0.2]}"#),
        &["2 scales but no `axis`"],
    );
    fails_with(
        &v2(r#"{"name": "x", "output_dtype": "uint8", "y_scale": [0.1, 0.2], "axis": -1}"#),
        &["axis -1"],
    );
    fails_with(
        &v2(r#"{"name": "x", "output_dtype": "uint8", "y_scale": 0.1, "y_zero_point": 256}"#),
        &["zero point 256 is outside the uint8 range [0, 255]"],
    );
    fails_with(
        &v2(r#"{"name": "x", "output_dtype": "int32", "y_scale": 0.1, "y_zero_point": 1}"#),
        &["int32 zero point 1"],
    );
    fails_with(
        &v2(r#"{"name": "x", "output_dtype": "uint8", "y_zero_point": 1}"#),
        &["`y_zero_point` without `y_scale`"],
    );
}

#[test]
fn entries_without_anything_to_use_are_refused() {
    fails_with(&v0(r#""x": [{}]"#, ""), &["tensor `x`", "empty encoding"]);
    fails_with(&v0(r#""x": []"#, ""), &["tensor `x`", "empty list"]);
    fails_with(
        &v0(r#""x": [{"dtype": "int", "scale": 0.1, "offset": 0}]"#, ""),
        &["tensor `x`", "no `bitwidth`"],
    );
    fails_with(&v0(r#""x": [{"bitwidth": 8, "min": -1}]"#, ""), &["`min` without `max`"]);
    fails_with(
        &v0(r#""x": [{"bitwidth": 8, "min": 1, "max": -1}]"#, ""),
        &["`min` 1 is greater than `max` -1"],
    );
    fails_with(&v0(r#""x": [{"bitwidth": 8, "scale": 0.1}]"#, ""), &["no `offset`"]);
    fails_with(&v1(r#"{"name": "x"}"#, ""), &["tensor `x`", "no `bw`"]);
    fails_with(&v2(r#"{"name": "x"}"#), &["tensor `x`", "no `output_dtype`"]);
    fails_with(
        &v0(r#""x": [{"bitwidth": 8, "min": -1, "max": 1}, {"bitwidth": 16, "dtype": "float"}]"#, ""),
        &["tensor `x`", "channel 1 is not a complete integer encoding"],
    );
}

#[test]
fn file_level_problems_are_refused() {
    fails_with(r#"{"version": "3.0.0", "encodings": []}"#, &["unknown encodings version `3.0.0`"]);
    fails_with(r#"{"version": "1.0.0"}"#, &["not an encodings file"]);
    fails_with(r#"{"version": "2.0.0", "activation_encodings": []}"#, &["needs an `encodings` list"]);
    fails_with(
        r#"{"version": "1.0.0", "encodings": []}"#,
        &["`encodings` is the 2.0.0 layout", "version 1.0.0"],
    );
    fails_with(
        r#"{"version": "1.0.0", "activation_encodings": [], "param_encodings": {"x": [{"bitwidth": 8}]}}"#,
        &["`param_encodings` is a dict (the 0.6.1 layout), but the file says version 1.0.0"],
    );
    fails_with(
        &v0("", "").replace(r#""param_encodings": {}"#, r#""param_encodings": [{"name": "w", "bw": 8}]"#),
        &["`param_encodings` is a list (the 1.0.0 layout), but the file says version 0.6.1"],
    );
    let e = fails_with(
        &v0(r#""x": [{"bitwidth": 8}]"#, r#""x": [{"bitwidth": 8}]"#),
        &["tensor `x` is given twice", "`activation_encodings`", "`param_encodings`"],
    );
    assert!(matches!(e, OverridesError::Duplicate { .. }), "{e:?}");
    fails_with(
        &v2(r#"{"name": "x", "output_dtype": "int8"}, {"name": "x", "output_dtype": "int8"}"#),
        &["tensor `x` is given twice"],
    );
}

#[test]
fn unknown_keys_are_warnings() {
    let (g, w) = parse_warn(
        r#"{"version": "1.0.0", "extra": 1, "activation_encodings": [{"name": "x", "bw": 8, "bitwidth": 8}]}"#,
    );
    assert_eq!(g["x"].given, Given::Bitwidth { bitwidth: 8, symmetric: None });
    assert!(w.iter().any(|w| w.contains("top-level key `extra`")), "{w:?}");
    assert!(w.iter().any(|w| w.contains("tensor `x`: ignored unknown key `bitwidth`")), "{w:?}");
    assert!(w.iter().all(|w| w.starts_with("ov.json: ")), "{w:?}");
}

// ------------------------------------------------------------------ check_names

fn tensors(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

const MODEL: &[&str] =
    &["input", "conv.weight", "conv.bias", "conv_out", "conv2.weight", "conv2_out", "fc.weight", "output"];

#[test]
fn unknown_names_list_the_closest_existing_names() {
    let g = parse(&v0(
        r#""conv_outt": [{"bitwidth": 8}], "input": [{"bitwidth": 8}], "Conv_3": [{"bitwidth": 8}]"#,
        r#""conv.wieght": [{"bitwidth": 8}]"#,
    ));
    let none = |_: &str, _: usize| None;
    let e = check_names(&g, &tensors(MODEL), &none, false).unwrap_err();
    let OverridesError::UnknownNames { names } = &e else { panic!("{e:?}") };
    let found: Vec<&str> = names.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(found, ["Conv_3", "conv.wieght", "conv_outt"]);
    // Edit distance (1, 2, 5, then 6 for `conv.weight`, `input` and `output`), ties in name
    // order, at most five.
    assert_eq!(names[2].closest, ["conv_out", "conv2_out", "conv.bias", "conv.weight", "input"]);
    assert_eq!(names[1].closest[..2], ["conv.weight", "conv2.weight"]);
    assert_eq!(names[0].closest.len(), 5);
    let msg = e.to_string();
    for piece in [
        "3 tensors the model does not have",
        "`conv_outt` (closest: `conv_out`, `conv2_out`",
        "--allow_unknown_override_names",
        "not nodes",
    ] {
        assert!(msg.contains(piece), "missing {piece:?} in {msg}");
    }
    // Allowed: one warning per unknown name, no error.
    let w = check_names(&g, &tensors(MODEL), &none, true).unwrap();
    assert_eq!(w.len(), 3, "{w:?}");
    assert!(w[2].contains("`conv_outt` (closest: `conv_out`") && w[2].contains("ignored"), "{w:?}");
    // All known: nothing to say.
    let g = parse(&v0(r#""input": [{"bitwidth": 8}]"#, ""));
    assert_eq!(check_names(&g, &tensors(MODEL), &none, false).unwrap(), Vec::<String>::new());
}

#[test]
fn an_override_naming_a_node_is_an_unknown_name() {
    let g = parse(&v2(r#"{"name": "Conv_0", "output_dtype": "uint8", "y_scale": 0.1, "y_zero_point": 3}"#));
    let e = check_names(&g, &tensors(MODEL), &|_, _| None, false).unwrap_err();
    assert!(e.to_string().contains("`Conv_0`"), "{e}");
}

#[test]
fn per_channel_counts_must_match_the_tensor() {
    let g = parse(SPEC_4_1);
    let channels = |name: &str, axis: usize| (name == "conv.weight" && axis == 0).then_some(3);
    let e = check_names(&g, &tensors(MODEL), &channels, false).unwrap_err();
    assert!(
        matches!(&e, OverridesError::ChannelCount { tensor, axis: 0, given: 2, channels: 3 } if tensor == "conv.weight"),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("`conv.weight` has 2 per-channel encodings, but the tensor has 3 channels"),
        "{msg}"
    );
    // Matching or unknown counts pass.
    let two = |name: &str, _: usize| (name == "conv.weight").then_some(2);
    assert!(check_names(&g, &tensors(MODEL), &two, false).is_ok());
    assert!(check_names(&g, &tensors(MODEL), &|_, _| None, false).is_ok());
}

// ------------------------------------------------------------------ round trip with the writer

const ARGS: QuantizerArgs = QuantizerArgs {
    activation_bitwidth: 8,
    param_bitwidth: 8,
    act_symmetric: false,
    param_symmetric: true,
    per_channel: true,
    per_row: false,
    bias_bitwidth: 32,
};

fn written() -> Encodings {
    let spec = |bits, schema| QuantSpec::new(bits, schema);
    let strict = QuantSpec { strict: true, ..spec(8, Schema::Symmetric) };
    let entries: Vec<(&str, Kind, Encoding)> = vec![
        (
            "asym8",
            Kind::Activation,
            Encoding::from_range(-1.8, 0.5, &spec(8, Schema::Asymmetric), Origin::Calibrated),
        ),
        (
            "asym8_pos",
            Kind::Activation,
            Encoding::from_range(5.0, 10.0, &spec(8, Schema::Asymmetric), Origin::Calibrated),
        ),
        (
            "asym8_neg",
            Kind::Activation,
            Encoding::from_range(-20.0, -6.0, &spec(8, Schema::Asymmetric), Origin::Calibrated),
        ),
        (
            "asym16",
            Kind::Activation,
            Encoding::from_range(-1.8, 0.5, &spec(16, Schema::Asymmetric), Origin::Calibrated),
        ),
        (
            "unsigned_sym",
            Kind::Activation,
            Encoding::from_range(0.0, 6.0, &spec(8, Schema::UnsignedSymmetric), Origin::Calibrated),
        ),
        (
            "tiny",
            Kind::Activation,
            Encoding::from_range(0.0, 0.0, &spec(8, Schema::Asymmetric), Origin::Calibrated),
        ),
        (
            "sym8",
            Kind::Param,
            Encoding::from_range(-1.8, 0.5, &spec(8, Schema::Symmetric), Origin::Calibrated),
        ),
        ("strict8", Kind::Param, Encoding::from_range(-1.8, 0.5, &strict, Origin::Calibrated)),
        (
            "sym8_pc",
            Kind::Param,
            Encoding::from_ranges(
                &[(-0.7, 0.7), (-0.35, 0.1), (-1.0, 1.4), (-3e-3, 1e-4)],
                0,
                &spec(8, Schema::Symmetric),
                Origin::Calibrated,
            ),
        ),
        (
            "sym4",
            Kind::Param,
            Encoding::from_range(-0.7, 0.3, &spec(4, Schema::Symmetric), Origin::Calibrated),
        ),
        (
            "sym4_pc",
            Kind::Param,
            Encoding::from_ranges(
                &[(-0.7, 0.7), (-0.35, 0.1), (-1.0, 1.4)],
                0,
                &spec(4, Schema::Symmetric),
                Origin::Calibrated,
            ),
        ),
        (
            "sym2",
            Kind::Param,
            Encoding::from_range(-0.7, 0.3, &spec(2, Schema::Symmetric), Origin::Calibrated),
        ),
        (
            "bias32",
            Kind::Param,
            Encoding::int32_bias(vec![(0.0235294118f64 * 0.00551181) as f32, 7.038531e-26], true),
        ),
    ];
    let mut e = Encodings::default();
    for (name, kind, encoding) in entries {
        e.tensors.insert(name.to_string(), TensorEncoding { kind, encoding });
    }
    for (name, kind, bitwidth) in [("f16", Kind::Activation, 16), ("f32_w", Kind::Param, 32)] {
        e.floats.insert(name.to_string(), FloatTensor { kind, bitwidth, reason: FloatReason::Given });
    }
    e
}

/// Everything the writer writes reads back: scales bit-exact, zero points, bitwidth, signedness,
/// symmetry, strictness, per-channel-ness, section; float tensors as float entries.
#[test]
fn what_the_writer_writes_reads_back_exactly() {
    let enc = written();
    for version in JsonVersion::ALL {
        let text = to_json(&enc, &ARGS, version).unwrap();
        let (g, warnings) = parse_warn(&text);
        assert!(warnings.is_empty(), "{version}: {warnings:?}");
        assert_eq!(g.len(), enc.tensors.len() + enc.floats.len(), "{version}");
        for (name, t) in &enc.tensors {
            let want = &t.encoding;
            let got = fixed(&g, name);
            let bits = |s: &[f32]| s.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got.scales), bits(&want.scales), "{version} {name}: scales");
            assert_eq!(got.zero_points, want.zero_points, "{version} {name}: zero points");
            assert_eq!(
                (got.bitwidth, got.signed, got.symmetric, got.strict, got.is_per_channel()),
                (want.bitwidth, want.signed, want.symmetric, want.strict, want.is_per_channel()),
                "{version} {name}"
            );
            assert_eq!(got.axis, want.axis, "{version} {name}: axis");
            assert_eq!(got.origin, Origin::Override);
            let section = match t.kind {
                Kind::Activation => Section::Activation,
                Kind::Param => Section::Param,
            };
            assert_eq!(g[name].section, section, "{version} {name}");
        }
        for (name, f) in &enc.floats {
            assert_eq!(g[name].given, Given::Float { bitwidth: f.bitwidth }, "{version} {name}");
        }
    }
}

/// Found by fuzzing (`encodings_json`, once block entries were skipped instead of failing the
/// file): a 2.0.0 `int16` activation with zero point 200 is a signed asymmetric grid, which
/// 1.0.0 and 0.6.1 cannot spell (they know no signedness). Written and read back it is the
/// unsigned grid with the same values — the same encoding, not a changed one.
#[test]
fn fuzz_signed_asymmetric_16_bit_reads_back_as_the_same_grid() {
    let g =
        parse(&v2(r#"{"name": "input", "output_dtype": "int16", "y_scale": 0.009, "y_zero_point": 200}"#));
    let given = fixed(&g, "input").clone();
    assert!(given.signed && !given.symmetric);
    let mut enc = Encodings::default();
    enc.tensors.insert("input".into(), TensorEncoding { kind: Kind::Activation, encoding: given.clone() });
    for version in JsonVersion::ALL {
        let back = parse(&to_json(&enc, &ARGS, version).unwrap());
        let got = fixed(&back, "input");
        assert_eq!((got.bitwidth, got.scales[0].to_bits()), (16, given.scales[0].to_bits()), "{version}");
        assert_eq!(got.min_max(0), given.min_max(0), "{version}: the grid's values");
    }
}
