//! The encodings JSON writer (spec §4.1, §4.2). Golden numbers come from spec §3.2's worked
//! examples; min/max texts are the exact f64 ends of the f32 scale's grid, computed independently
//! (Python: `struct`-rounded f32 scale × grid end, `repr`).

use ptq_quant::json::{JsonError, JsonVersion, QuantizerArgs, to_json};
use ptq_quant::{Encoding, Encodings, Kind, Origin, QuantSpec, Schema, TensorEncoding};

const ARGS: QuantizerArgs = QuantizerArgs {
    activation_bitwidth: 8,
    param_bitwidth: 8,
    act_symmetric: false,
    param_symmetric: true,
    per_channel: true,
    per_row: false,
    bias_bitwidth: 32,
};

fn model(entries: Vec<(&str, Kind, Encoding)>) -> Encodings {
    let mut e = Encodings::default();
    for (name, kind, encoding) in entries {
        e.tensors.insert(name.to_string(), TensorEncoding { kind, encoding });
    }
    e
}

/// Spec §3.2 example 1: [-1.8, 0.5], 8-bit asymmetric → scale 0.00901960784, offset −200.
fn example_1() -> Encoding {
    Encoding::from_range(-1.8, 0.5, &QuantSpec::new(8, Schema::Asymmetric), Origin::Calibrated)
}

/// Spec §3.2 example 13: per-channel 4-bit symmetric, channel absmax 0.7 / 0.35 / 1.4.
fn example_13() -> Encoding {
    let spec = QuantSpec::new(4, Schema::Symmetric);
    Encoding::from_ranges(&[(-0.7, 0.7), (-0.35, 0.1), (-1.0, 1.4)], 0, &spec, Origin::Calibrated)
}

/// Spec §3.2 example 14: 32-bit bias, scale = input scale × weight scale, zero point 0.
fn bias() -> Encoding {
    Encoding::int32_bias(vec![(0.0235294118f64 * 0.00551181) as f32], false)
}

fn json(enc: &Encodings, v: JsonVersion) -> String {
    to_json(enc, &ARGS, v).unwrap()
}

#[test]
fn example_1_activation_in_1_0_0() {
    let text = json(&model(vec![("input", Kind::Activation, example_1())]), JsonVersion::V1_0_0);
    let want = r#"{
    "version": "1.0.0",
    "activation_encodings": [
        {
            "name": "input",
            "dtype": "INT",
            "enc_type": "PER_TENSOR",
            "is_sym": false,
            "bw": 8,
            "scale": [0.009019608],
            "offset": [-200]
        }
    ],
    "param_encodings": [],
    "quantizer_args": {
        "activation_bitwidth": 8,
        "dtype": "int",
        "is_symmetric": true,
        "param_bitwidth": 8,
        "per_channel_quantization": true,
        "quant_scheme": "post_training_tf",
        "activation_is_symmetric": false,
        "per_row_quantization": false,
        "bias_bitwidth": 32
    },
    "excluded_layers": []
}
"#;
    assert_eq!(text, want);
}

#[test]
fn example_1_activation_in_0_6_1() {
    let text = json(&model(vec![("input", Kind::Activation, example_1())]), JsonVersion::V0_6_1);
    // min = −200·Δ, max = 55·Δ with Δ = f32(2.3/255) (spec: −1.80392157, 0.496078431).
    let want = r#"{
    "version": "0.6.1",
    "activation_encodings": {
        "input": [
            {
                "bitwidth": 8,
                "dtype": "int",
                "is_symmetric": "False",
                "min": -1.8039215356111526,
                "max": 0.496078422293067,
                "offset": -200,
                "scale": 0.009019608
            }
        ]
    },
    "param_encodings": {},
    "quantizer_args": {
        "activation_bitwidth": 8,
        "dtype": "int",
        "is_symmetric": "True",
        "param_bitwidth": 8,
        "per_channel_quantization": "True",
        "quant_scheme": "post_training_tf",
        "activation_is_symmetric": "False",
        "per_row_quantization": "False",
        "bias_bitwidth": 32
    }
}
"#;
    assert_eq!(text, want);
}

#[test]
fn per_channel_weight_in_1_0_0() {
    let text = json(&model(vec![("conv.weight", Kind::Param, example_13())]), JsonVersion::V1_0_0);
    let want = r#"    "param_encodings": [
        {
            "name": "conv.weight",
            "dtype": "INT",
            "enc_type": "PER_CHANNEL",
            "is_sym": true,
            "bw": 4,
            "scale": [0.1, 0.05, 0.2],
            "offset": [-8, -8, -8]
        }
    ],
"#;
    assert!(text.contains(want), "{text}");
    assert!(text.contains("\"activation_encodings\": [],"), "{text}");
}

#[test]
fn per_channel_weight_in_0_6_1_is_a_list_of_channels() {
    let text = json(&model(vec![("conv.weight", Kind::Param, example_13())]), JsonVersion::V0_6_1);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let channels = v["param_encodings"]["conv.weight"].as_array().unwrap();
    assert_eq!(channels.len(), 3);
    // (scale text, min, max) per channel: min = −8·Δ, max = 7·Δ, Δ as f32.
    let want = [
        ("0.1", "-0.800000011920929", "0.7000000104308128"),
        ("0.05", "-0.4000000059604645", "0.3500000052154064"),
        ("0.2", "-1.600000023841858", "1.4000000208616257"),
    ];
    for (scale, min, max) in want {
        let entry = format!(
            "{{
                \"bitwidth\": 4,
                \"dtype\": \"int\",
                \"is_symmetric\": \"True\",
                \"min\": {min},
                \"max\": {max},
                \"offset\": -8,
                \"scale\": {scale}
            }}"
        );
        assert!(text.contains(&entry), "missing {entry} in {text}");
    }
}

#[test]
fn bias_32_bit_has_offset_0() {
    let enc = model(vec![("conv.bias", Kind::Param, bias())]);
    let text = json(&enc, JsonVersion::V1_0_0);
    assert!(
        text.contains("\"bw\": 32,\n            \"scale\": [0.00012968965],\n            \"offset\": [0]\n"),
        "{text}"
    );
    let text = json(&enc, JsonVersion::V0_6_1);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let e = &v["param_encodings"]["conv.bias"][0];
    assert_eq!(e["offset"], 0);
    assert_eq!(e["bitwidth"], 32);
    assert_eq!(e["is_symmetric"], "True");
    // The signed int32 range times the scale.
    assert!(text.contains("\"min\": -278506.40625,\n"), "{text}");
    assert!(text.contains("\"max\": 278506.40612031036,\n"), "{text}");
}

#[test]
fn symmetric_8_bit_offsets_minus_128_strict_minus_127() {
    // Spec §3.2 examples 5 and 6: [-1.8, 0.5] 8-bit symmetric / strict symmetric, Δ = 1.8/127.
    let sym = Encoding::from_range(-1.8, 0.5, &QuantSpec::new(8, Schema::Symmetric), Origin::Calibrated);
    let strict_spec = QuantSpec { strict: true, ..QuantSpec::new(8, Schema::Symmetric) };
    let strict = Encoding::from_range(-1.8, 0.5, &strict_spec, Origin::Calibrated);
    let enc = model(vec![("a", Kind::Param, sym), ("b", Kind::Param, strict)]);
    let v: serde_json::Value = serde_json::from_str(&json(&enc, JsonVersion::V1_0_0)).unwrap();
    let p = v["param_encodings"].as_array().unwrap();
    assert_eq!(
        (&p[0]["name"], &p[0]["offset"][0], &p[0]["is_sym"]),
        (&"a".into(), &(-128).into(), &true.into())
    );
    assert_eq!((&p[1]["name"], &p[1]["offset"][0]), (&"b".into(), &(-127).into()));
    let text = json(&enc, JsonVersion::V0_6_1);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["param_encodings"]["a"][0]["offset"], -128);
    assert_eq!(v["param_encodings"]["b"][0]["offset"], -127);
    // Strict: the range is ±127·Δ = ±1.8 (up to the f32 scale).
    let (min, max) = (
        v["param_encodings"]["b"][0]["min"].as_f64().unwrap(),
        v["param_encodings"]["b"][0]["max"].as_f64().unwrap(),
    );
    assert!((min + 1.8).abs() < 1e-6 && (max - 1.8).abs() < 1e-6, "{min} {max}");
    assert!(text.contains("\"scale\": 0.014173228\n"), "{text}");
}

#[test]
fn f32_scales_are_written_shortest() {
    let e = Encoding {
        bitwidth: 8,
        signed: true,
        symmetric: true,
        strict: false,
        restricted: None,
        scales: vec![0.1, 0.007_843_138],
        zero_points: vec![0, 0],
        axis: Some(0),
        origin: Origin::Calibrated,
    };
    let enc = model(vec![("w", Kind::Param, e)]);
    let text = json(&enc, JsonVersion::V1_0_0);
    assert!(text.contains("\"scale\": [0.1, 0.007843138],"), "{text}");
    assert!(!text.contains("0.10000000149011612"), "{text}");
    let text = json(&enc, JsonVersion::V0_6_1);
    assert!(text.contains("\"scale\": 0.1\n") && text.contains("\"scale\": 0.007843138\n"), "{text}");
    // Read back, the text gives the identical f32.
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["param_encodings"]["w"][1]["scale"].as_f64().unwrap() as f32, 0.007_843_138f32);
}

#[test]
fn output_is_deterministic_sorted_and_valid_json() {
    let build = || {
        model(vec![
            ("z_out", Kind::Activation, example_1()),
            ("conv.weight", Kind::Param, example_13()),
            ("a_in", Kind::Activation, example_1()),
            ("conv.bias", Kind::Param, bias()),
        ])
    };
    for version in JsonVersion::ALL {
        let text = json(&build(), version);
        assert_eq!(text, json(&build(), version), "{version}");
        assert!(text.ends_with("}\n"));
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["version"], version.as_str());
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        let mut want = vec!["version", "activation_encodings", "param_encodings", "quantizer_args"];
        if version == JsonVersion::V1_0_0 {
            want.push("excluded_layers");
        }
        assert_eq!(keys, want);
        let names = |section: &str| -> Vec<String> {
            match &v[section] {
                serde_json::Value::Array(a) => {
                    a.iter().map(|e| e["name"].as_str().unwrap().to_string()).collect()
                }
                serde_json::Value::Object(o) => o.keys().cloned().collect(),
                other => panic!("{section}: {other}"),
            }
        };
        assert_eq!(names("activation_encodings"), ["a_in", "z_out"], "{version}");
        assert_eq!(names("param_encodings"), ["conv.bias", "conv.weight"], "{version}");
    }
}

#[test]
fn names_are_escaped() {
    let text = json(&model(vec![("odd \"name\"\\/x", Kind::Activation, example_1())]), JsonVersion::V1_0_0);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["activation_encodings"][0]["name"], "odd \"name\"\\/x");
}

#[test]
fn unwritable_encodings_are_refused_by_tensor_name() {
    for bad in [f32::NAN, f32::INFINITY, 0.0, -0.5] {
        let mut e = example_13();
        e.scales[1] = bad;
        let err =
            to_json(&model(vec![("conv.weight", Kind::Param, e)]), &ARGS, JsonVersion::V1_0_0).unwrap_err();
        assert!(
            matches!(&err, JsonError::BadScale { tensor, channel: 1, .. } if tensor == "conv.weight"),
            "{err:?}"
        );
        assert!(err.to_string().contains("`conv.weight`"), "{err}");
    }
    let mut e = example_1();
    e.zero_points.push(0);
    let err = to_json(&model(vec![("x", Kind::Activation, e)]), &ARGS, JsonVersion::V0_6_1).unwrap_err();
    assert!(matches!(err, JsonError::Mismatched { scales: 1, zero_points: 2, .. }), "{err:?}");
    let mut e = example_1();
    e.bitwidth = 0;
    let err = to_json(&model(vec![("x", Kind::Activation, e)]), &ARGS, JsonVersion::V1_0_0).unwrap_err();
    assert!(matches!(err, JsonError::BadBitwidth { bitwidth: 0, .. }), "{err:?}");
}

#[test]
fn version_parses_from_its_string() {
    assert_eq!("1.0.0".parse::<JsonVersion>().unwrap(), JsonVersion::V1_0_0);
    assert_eq!("0.6.1".parse::<JsonVersion>().unwrap(), JsonVersion::V0_6_1);
    let err = "2.0.0".parse::<JsonVersion>().unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("`2.0.0`") && msg.contains("1.0.0") && msg.contains("0.6.1"), "{msg}");
    for v in JsonVersion::ALL {
        assert_eq!(v.to_string().parse::<JsonVersion>().unwrap(), v);
    }
}

#[test]
fn empty_encodings_are_a_valid_file() {
    let text = json(&Encodings::default(), JsonVersion::V0_6_1);
    assert!(text.contains("\"activation_encodings\": {},\n    \"param_encodings\": {},\n"), "{text}");
    serde_json::from_str::<serde_json::Value>(&text).unwrap();
}
