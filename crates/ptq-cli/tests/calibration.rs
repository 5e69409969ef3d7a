//! Range setting (issue 15): the calibration methods end to end on the digits model, and the
//! flags' bad input.

mod common;

use std::fs;

use assert_cmd::Command;
use common::{Work, model, zoo_lines};
use predicates::prelude::*;
use predicates::str::contains;

/// `ptq quantize` on digits_cnn with 16 calibration samples, writing `<tmp>/<out>` and its JSON.
fn quantize(work: &mut Work, out: &str) -> Command {
    let list = work.list("calib.txt", &zoo_lines("digits_cnn", "calib.txt", 16));
    let mut cmd = work.ptq();
    cmd.arg("quantize").arg("--input_model").arg(model("digits_cnn")).arg("--input_list").arg(&list);
    cmd.arg("--output_model").arg(work.path(out)).arg("--dump_encoding_json");
    cmd
}

fn report(work: &Work, out: &str) -> serde_json::Value {
    let stem = out.trim_end_matches(".onnx");
    serde_json::from_slice(&fs::read(work.path(&format!("{stem}_report.json"))).unwrap()).unwrap()
}

fn encodings(work: &Work, out: &str) -> Vec<u8> {
    let stem = out.trim_end_matches(".onnx");
    fs::read(work.path(&format!("{stem}_encoding.json"))).unwrap()
}

#[test]
fn every_method_quantizes_and_the_report_says_which() {
    for method in ["auto", "min-max", "sqnr", "mse", "percentile", "entropy"] {
        let mut work = Work::new();
        quantize(&mut work, "q.onnx")
            .args(["--act_quantizer_calibration", method, "--param_quantizer_calibration", method])
            .assert()
            .success()
            .stderr(contains(format!("activations {method}")));
        let r = report(&work, "q.onnx");
        let expected =
            if method == "percentile" { "percentile 99.99".to_string() } else { method.to_string() };
        assert_eq!(r["calibration"]["activations"], expected.as_str());
        assert_eq!(r["calibration"]["weights"], expected.as_str());
        let t = &r["tensors"]["relu1_out"];
        let (o, c) = (&t["observed_range"], &t["chosen_range"]);
        // The chosen range lies within the observed one.
        assert!(c[0].as_f64() >= o[0].as_f64() && c[1].as_f64() <= o[1].as_f64(), "{method}: {o} {c}");
    }
}

/// A 90th percentile clips every ReLU output's top; min-max never clips.
#[test]
fn percentile_clips_and_min_max_does_not() {
    let mut work = Work::new();
    quantize(&mut work, "p.onnx")
        .args(["--act_quantizer_calibration", "percentile", "--percentile_calibration_value", "90"])
        .assert()
        .success();
    let r = report(&work, "p.onnx");
    assert_eq!(r["calibration"]["activations"], "percentile 90");
    let t = &r["tensors"]["relu1_out"];
    assert!(t["chosen_range"][1].as_f64() < t["observed_range"][1].as_f64(), "{t}");
    assert!(r["calibration"]["clipped_activations"].as_u64().unwrap() > 0);
    quantize(&mut work, "m.onnx").args(["--act_quantizer_calibration", "min-max"]).assert().success();
    assert_eq!(report(&work, "m.onnx")["calibration"]["clipped_activations"], 0);
}

/// The legacy names are the current methods (spec §1.0): `enhanced` is sqnr, `tf` min-max.
#[test]
fn legacy_quantizers_equal_their_current_methods() {
    let mut work = Work::new();
    quantize(&mut work, "legacy.onnx")
        .args(["--act_quantizer", "tf_enhanced", "--param_quantizer", "tf"])
        .assert()
        .success();
    quantize(&mut work, "current.onnx")
        .args(["--act_quantizer_calibration", "sqnr", "--param_quantizer_calibration", "min-max"])
        .assert()
        .success();
    assert_eq!(encodings(&work, "legacy.onnx"), encodings(&work, "current.onnx"));
}

#[test]
fn percentile_outside_its_range_is_a_usage_error() {
    for value in ["89.9", "100.5", "abc"] {
        let mut work = Work::new();
        quantize(&mut work, "q.onnx")
            .args(["--act_quantizer_calibration", "percentile", "--percentile_calibration_value", value])
            .assert()
            .code(2)
            .stderr(contains("--percentile_calibration_value").and(contains("[90, 100]")));
        assert!(!work.path("q.onnx").exists());
    }
}

#[test]
fn percentile_value_without_the_percentile_method_is_a_usage_error() {
    let mut work = Work::new();
    quantize(&mut work, "q.onnx")
        .args(["--act_quantizer_calibration", "sqnr", "--percentile_calibration_value", "99.9"])
        .assert()
        .code(2)
        .stderr(contains("--percentile_calibration_value needs").and(contains("percentile")));
}

#[test]
fn unknown_method_lists_the_methods_and_the_legacy_names() {
    let mut work = Work::new();
    quantize(&mut work, "q.onnx")
        .args(["--act_quantizer_calibration", "tf"])
        .assert()
        .code(2)
        .stderr(contains("min-max, sqnr, mse, percentile, entropy").and(contains("enhanced (tf_enhanced)")));
    quantize(&mut work, "q.onnx")
        .args(["--param_quantizer", "kl"])
        .assert()
        .code(2)
        .stderr(contains("tf, enhanced (tf_enhanced), symmetric, adjusted"));
}

#[test]
fn legacy_and_current_flags_together_are_a_usage_error() {
    let mut work = Work::new();
    quantize(&mut work, "q.onnx")
        .args(["--act_quantizer", "enhanced", "--param_quantizer_schema", "asymmetric"])
        .assert()
        .code(2)
        .stderr(contains("--act_quantizer cannot be combined with --param_quantizer_schema"))
        // A user has no spec to look up: messages say the rule itself.
        .stderr(contains("spec").not());
    quantize(&mut work, "q.onnx")
        .args(["--act_quantizer", "adjusted"])
        .assert()
        .code(2)
        .stderr(contains("weight quantizer"));
}

/// A tensor that is never finite stays float, named, whatever the method (the histogram
/// methods skip NaN/Inf as min-max does).
#[test]
fn a_never_finite_tensor_stays_float_under_every_method() {
    for method in ["sqnr", "mse", "percentile", "entropy", "auto"] {
        let mut work = Work::new();
        let model = work.write("m.onnx", common::never_finite_model());
        work.write("a.raw", common::f32_raw(&[1.0, -2.0, 3.0, 4.0]));
        work.write("b.raw", common::f32_raw(&[5.0, 6.0, -7.0, 8.0]));
        let list = work.list("l.txt", &["a.raw", "b.raw"]);
        work.quantize(&model, "q.onnx")
            .arg("--input_list")
            .arg(&list)
            .args(["--act_quantizer_calibration", method])
            .assert()
            .success()
            .stderr(contains("warning: `inf` holds 8 NaN or Inf values").and(contains("stays float")));
        let r = work.json("q_report.json");
        assert!(r["tensors"].get("inf").is_none_or(|t| t["dtype"] == "float"), "{method}");
        assert_eq!(r["tensors"]["s"]["dtype"], "int", "{method}");
    }
}
