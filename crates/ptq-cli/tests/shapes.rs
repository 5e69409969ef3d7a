//! Binding symbolic input dimensions: every spelling (ptq's and qairt-converter's), symbols that
//! reach through the model's declared shapes, and the errors when they cannot.

mod common;

use std::fs;

use common::*;
use predicates::prelude::*;
use predicates::str::contains;
use ptq_onnx::build::{self, FLOAT, symbolic_value};

/// `x [batch,4] → Relu → a → Sigmoid → z`, declaring `a` as `a_dims` (the way torch and
/// paddle2onnx declare intermediate shapes).
fn symbolic_model(a_dims: &[&str]) -> Vec<u8> {
    let mut m = build::model(
        13,
        vec![build::node("Relu", "relu", &["x"], &["a"]), build::node("Sigmoid", "sigmoid", &["a"], &["z"])],
        vec![symbolic_value("x", FLOAT, &["batch", "4"])],
        vec![symbolic_value("z", FLOAT, &["batch", "4"])],
        vec![],
    );
    m.graph.as_mut().unwrap().value_info = vec![symbolic_value("a", FLOAT, a_dims)];
    ptq_onnx::encode(&m)
}

/// A model and a list of two samples of 2×4 floats.
fn two_by_four(work: &mut Work, model: Vec<u8>) -> (std::path::PathBuf, std::path::PathBuf) {
    let model = work.write("m.onnx", model);
    work.write("a.raw", f32_raw(&[-1.0, 0.0, 1.0, 2.0, -3.0, 4.0, 0.5, -0.5]));
    work.write("b.raw", f32_raw(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]));
    let list = work.list("l.txt", &["a.raw", "b.raw"]);
    (model, list)
}

#[test]
fn every_spelling_binds_the_same_shape() {
    for flags in [
        &["--input_dimensions", "x=2,4"][..],
        &["-s", "x", "2,4"],
        &["--source_model_input_shape", "x", "2,4"],
        &["-d", "x", "2,4"],
        &["--input_dim", "x", "2,4"],
        &["--onnx_define_symbol", "batch", "2"],
        &["--onnx_override_batch", "2"],
    ] {
        let mut work = Work::new();
        let (model, list) = two_by_four(&mut work, symbolic_model(&["batch", "4"]));
        let out = work.run(&model, &list).args(flags).output().unwrap();
        assert!(out.status.success(), "{flags:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains("warning"), "{flags:?}: {}", stderr(&out));
        let z = read_f32(&work.out().join("Result_1/z.raw"));
        assert_eq!(z.len(), 8, "{flags:?}");
        assert!((z[0] - 1.0 / (1.0 + (-1.0f32).exp())).abs() < 1e-6);
    }
}

#[test]
fn a_contradicting_declared_shape_is_a_warning_naming_the_tensor() {
    let mut work = Work::new();
    let (model, list) = two_by_four(&mut work, symbolic_model(&["batch", "5"]));
    work.run(&model, &list)
        .args(["--input_dimensions", "x=2,4"])
        .assert()
        .success()
        .stderr(contains("warning").and(contains("`a`")).and(contains("[2,5]")).and(contains("[2,4]")));
    assert!(work.out().join("Result_0/z.raw").is_file());
}

#[test]
fn quantize_takes_exporter_symbols_and_expressions() {
    let mut work = Work::new();
    let (model, list) = two_by_four(&mut work, symbolic_model(&["batch", "floor(batch*8/2) - 4*batch + 4"]));
    let out = work.path("q.onnx");
    work.quantize(&model, "q.onnx")
        .arg("--input_list")
        .arg(&list)
        .args(["-s", "x", "2,4"])
        .assert()
        .success()
        .stderr(contains("warning").not());
    assert!(out.is_file());
}

#[test]
fn a_symbol_no_input_declares_is_an_error_listing_the_symbols() {
    let mut work = Work::new();
    let (model, list) = two_by_four(&mut work, symbolic_model(&["batch", "4"]));
    work.run(&model, &list)
        .args(["--onnx_define_symbol", "batch_size", "2"])
        .assert()
        .code(1)
        .stderr(contains("error:").and(contains("'batch_size'")).and(contains("dimensions are: batch")));
    assert!(!work.out().exists());
}

#[test]
fn malformed_symbol_values_and_repeated_names_are_errors() {
    let mut work = Work::new();
    let (model, list) = two_by_four(&mut work, symbolic_model(&["batch", "4"]));
    for (flags, says) in [
        (&["--onnx_define_symbol", "batch", "0"][..], "whole number"),
        (&["--onnx_define_symbol", "batch", "two"], "whole number"),
        (&["--onnx_define_symbol", "batch", "1", "--onnx_define_symbol", "batch", "2"], "twice"),
        (&["-s", "x", "2,4", "--input_dimensions", "x=2,4"], "twice"),
    ] {
        work.run(&model, &list).args(flags).assert().code(1).stderr(contains("error:").and(contains(says)));
    }
    work.run(&model, &list).args(["--onnx_override_batch", "0"]).assert().code(2);
    assert!(!work.out().exists());
}

#[test]
fn a_fixed_dimension_the_bound_shape_contradicts_names_the_node_and_both_shapes() {
    let mut work = Work::new();
    let m = build::model(
        13,
        vec![build::node("Reshape", "to_1x12", &["x", "shape"], &["z"])],
        vec![symbolic_value("x", FLOAT, &["1", "h"])],
        vec![build::untyped_value("z")],
        vec![build::i64_tensor("shape", &[2], &[1, 12])],
    );
    let model = work.write("m.onnx", ptq_onnx::encode(&m));
    work.write("a.raw", f32_raw(&[0.0; 8]));
    let list = work.list("l.txt", &["a.raw"]);
    work.run(&model, &list).args(["--input_dimensions", "x=1,8"]).assert().code(1).stderr(
        contains("error:")
            .and(contains("node `to_1x12` (Reshape)"))
            .and(contains("[1,8]"))
            .and(contains("--input_dimensions")),
    );
    assert!(!work.out().exists());
}

#[test]
fn convert_takes_the_shape_flags() {
    let mut work = Work::new();
    let model = work.write("m.onnx", symbolic_model(&["batch", "4"]));
    let out = work.path("c.onnx");
    let convert = |flags: &[&str]| {
        let mut c = work.ptq();
        c.args(["convert", "--input_network"]).arg(&model).arg("--output_path").arg(&out).args(flags);
        c
    };
    convert(&["-s", "x", "1,4"]).assert().success();
    assert!(fs::metadata(&out).is_ok());
    fs::remove_file(&out).unwrap();
    convert(&["--input_dimensions", "y=1,4"])
        .assert()
        .code(1)
        .stderr(contains("error:").and(contains("'y'")).and(contains("inputs are: x")));
    assert!(!out.exists());
}

#[test]
fn a_symbol_bound_to_two_values_by_two_inputs_is_an_error_naming_both() {
    let mut work = Work::new();
    let value = |n: &str| symbolic_value(n, FLOAT, &["n", "4"]);
    let m = build::model(
        13,
        vec![build::node("Add", "add", &["x", "y"], &["z"])],
        vec![value("x"), value("y")],
        vec![value("z")],
        vec![],
    );
    let model = work.write("m.onnx", ptq_onnx::encode(&m));
    work.write("a.raw", f32_raw(&[0.0; 8]));
    work.write("b.raw", f32_raw(&[0.0; 12]));
    let list = work.list("l.txt", &["x:=a.raw y:=b.raw"]);
    work.run(&model, &list)
        .args(["--input_dimensions", "x=2,4", "--input_dimensions", "y=3,4"])
        .assert()
        .code(1)
        .stderr(
            contains("error:").and(contains("'n'")).and(contains("input 'x'")).and(contains("input 'y'")),
        );
    assert!(!work.out().exists());
}
