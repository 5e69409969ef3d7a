//! `ptq inspect`: text and `--json`, and what it says about operators ptq cannot run.

mod common;

use common::*;
use predicates::prelude::*;
use predicates::str::contains;
use serde_json::{Value, json};

fn inspect_json(work: &Work, model: &std::path::Path) -> Value {
    let out = work.ptq().arg("inspect").arg(model).arg("--json").assert().success().get_output().clone();
    serde_json::from_slice(&out.stdout).expect("inspect --json prints JSON on stdout")
}

#[test]
fn inspect_text_on_digits() {
    let work = Work::new();
    work.ptq().arg("inspect").arg(model("digits_cnn")).assert().success().stdout(
        contains("inputs:")
            .and(contains("input  float32 [1,1,8,8]"))
            .and(contains("outputs:"))
            .and(contains("logits  float32 [1,10]"))
            .and(contains("ai.onnx=13"))
            .and(contains("Conv 3"))
            .and(contains("Relu 4"))
            .and(contains("every operator is supported")),
    );
    assert!(work.entries().is_empty(), "inspect writes nothing");
}

#[test]
fn inspect_json_on_digits() {
    let work = Work::new();
    let j = inspect_json(&work, &model("digits_cnn"));
    assert_eq!(j["inputs"][0]["name"], "input");
    assert_eq!(j["inputs"][0]["dtype"], "float32");
    assert_eq!(j["inputs"][0]["shape"], "[1,1,8,8]");
    assert_eq!(j["inputs"].as_array().unwrap().len(), 1);
    assert_eq!(j["outputs"][0]["name"], "logits");
    assert_eq!(j["outputs"][0]["shape"], "[1,10]");
    assert_eq!(j["opsets"][""], 13);
    assert_eq!(j["nodes"], 13);
    let ops = j["operators"].as_object().unwrap();
    for (op, n) in [("Add", 1), ("BatchNormalization", 1), ("Conv", 3), ("Flatten", 1), ("Gemm", 1)] {
        assert_eq!(ops[op], n, "{op}");
    }
    assert_eq!(ops["Relu"], 4);
    assert_eq!(j["unsupported"], serde_json::json!({}));
    assert_eq!(j["engine_error"], Value::Null);
    assert_eq!(j["prepared"]["ready"]["inputs"], json!(["input float32 [1, 1, 8, 8]"]));
    assert_eq!(j["constants"]["initializers"], 14);
}

#[test]
fn inspect_json_shows_symbolic_dims() {
    let work = Work::new();
    let j = inspect_json(&work, &model("minilm_l3"));
    let names: Vec<&str> =
        j["inputs"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["input_ids", "attention_mask"]);
    assert_eq!(j["inputs"][0]["dtype"], "int64");
    let shape = j["inputs"][0]["shape"].as_str().unwrap();
    assert!(shape.contains("batch_size") && shape.contains("sequence_length"), "{shape}");
    assert_eq!(j["prepared"]["not_checked"]["unbound"], json!(["input_ids", "attention_mask"]));
}

#[test]
fn inspect_prepares_the_engine_for_bound_symbols() {
    let work = Work::new();
    let out = work
        .ptq()
        .args([
            "inspect",
            "--onnx_define_symbol",
            "batch_size",
            "1",
            "--onnx_define_symbol",
            "sequence_length",
            "16",
        ])
        .arg(model("minilm_l3"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("prepared   for input_ids int64 [1, 16], attention_mask int64 [1, 16]"), "{text}");
}

#[test]
fn inspect_lists_an_unsupported_operator_with_its_node() {
    let mut work = Work::new();
    let model = work.write("foobar.onnx", foobar_model());
    work.ptq().arg("inspect").arg(&model).assert().success().stdout(
        contains("unsupported operators")
            .and(contains("FooBar (ai.onnx opset 13): foo1"))
            .and(contains("export the model with other operators"))
            .and(contains("FooBar 1")),
    );
    let j = inspect_json(&work, &model);
    let foobar = &j["unsupported"]["FooBar"];
    assert_eq!(
        (&foobar["domain"], &foobar["opset"], &foobar["nodes"]),
        (&json!("ai.onnx"), &json!(13), &json!(["foo1"]))
    );
    assert!(foobar["advice"].as_str().unwrap().contains("standard operator"));
    assert_eq!(j["prepared"], "skipped");
    assert_eq!(j["operators"]["Relu"], 1);
}

#[test]
fn inspect_missing_model_fails() {
    let work = Work::new();
    work.ptq()
        .arg("inspect")
        .arg(work.path("nope.onnx"))
        .assert()
        .code(1)
        .stdout(predicate::str::is_empty())
        .stderr(contains("error:").and(contains("nope.onnx")));
}

#[test]
fn inspect_not_onnx_fails() {
    let mut work = Work::new();
    let model = work.write("model.onnx", "hello\n");
    work.ptq()
        .arg("inspect")
        .arg(&model)
        .arg("--json")
        .assert()
        .code(1)
        .stdout(predicate::str::is_empty())
        .stderr(contains("error:").and(contains("model.onnx")).and(contains("not an ONNX model")));
}

#[test]
fn inspect_without_model_is_a_usage_error() {
    let work = Work::new();
    work.ptq().arg("inspect").assert().code(2).stderr(contains("MODEL"));
}
