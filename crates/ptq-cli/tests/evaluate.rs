//! `ptq evaluate` end to end on digits_cnn: both modes, the reports and chart, a model against
//! itself, and bad input.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use common::{Work, chain_model, model, stderr, zoo_file, zoo_lines};

/// digits_cnn quantized on its first 16 calibration samples (`<tmp>/q.onnx`); returns the list
/// and the SQNR of `logits` that quantize reported (measured on those same 16 samples).
fn quantized(work: &mut Work) -> (PathBuf, f64) {
    let list = work.list("calib.txt", &zoo_lines("digits_cnn", "calib.txt", 16));
    work.quantize(&model("digits_cnn"), "q.onnx").arg("--input_list").arg(&list).assert().success();
    let report = work.json("q_report.json");
    assert_eq!(report["sqnr_samples"], 16);
    (list, report["sqnr_db"]["logits"].as_f64().expect("a finite SQNR"))
}

fn evaluate(work: &Work) -> Command {
    let mut cmd = work.ptq();
    cmd.arg("evaluate").arg("--output_dir").arg(work.out());
    cmd
}

fn compare(work: &Work, float: &Path, quantized: &Path, list: &Path) -> Command {
    let mut cmd = evaluate(work);
    cmd.arg("--float_model").arg(float).arg("--quantized_model").arg(quantized).arg("--input_list").arg(list);
    cmd
}

fn json_of(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", stderr(out)))
}

fn db(v: &serde_json::Value) -> f64 {
    match v {
        serde_json::Value::String(s) if s == "inf" => f64::INFINITY,
        serde_json::Value::String(s) if s == "-inf" => f64::NEG_INFINITY,
        v => v.as_f64().unwrap_or_else(|| panic!("not a dB value: {v}")),
    }
}

/// The per-tensor table: present, sorted worst first by cumulative SQNR, each entry complete.
fn check_tensors(doc: &serde_json::Value) -> Vec<String> {
    let tensors = doc["tensors"].as_array().expect("a tensor table");
    assert!(!tensors.is_empty(), "{doc:#}");
    let cumulative: Vec<f64> = tensors.iter().map(|t| db(&t["cumulative_sqnr_db"])).collect();
    assert!(cumulative.windows(2).all(|w| w[0] <= w[1]), "not worst first: {cumulative:?}");
    for t in tensors {
        assert!(db(&t["own_sqnr_db"]) > 0.0 && t["op_type"].is_string(), "{t}");
        assert_eq!(t["encoding"]["dtype"], "uint8", "{t}");
        assert!(t["encoding"]["scale"].as_f64().unwrap() > 0.0, "{t}");
        // Only this tensor's error can't exceed all the error up to it by much (same grid).
        assert!(db(&t["own_sqnr_db"]) + 1.0 >= db(&t["cumulative_sqnr_db"]), "{t}");
    }
    tensors.iter().map(|t| t["name"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn a_quantized_model_against_its_float_model() {
    let mut work = Work::new();
    let (list, reported) = quantized(&mut work);
    let out = compare(&work, &model("digits_cnn"), &work.path("q.onnx"), &list)
        .arg("--json")
        .assert()
        .success()
        .get_output()
        .clone();
    let doc = json_of(&out);
    assert_eq!(doc["samples"], 16);
    assert_eq!(
        (doc["float_model"].as_str(), doc["quantized_model"].as_str()),
        (Some("model.onnx"), Some("q.onnx"))
    );
    let logits = &doc["outputs"][0];
    assert_eq!(logits["name"], "logits");
    // quantize measured the prepared (BatchNormalization-folded) float model, evaluate the file:
    // the same samples give the same SQNR up to float rounding.
    let sqnr = db(&logits["sqnr_db"]);
    assert!((sqnr - reported).abs() < 0.05, "evaluate {sqnr} dB, quantize reported {reported} dB");
    let cosine = (logits["cosine_mean"].as_f64().unwrap(), logits["cosine_min"].as_f64().unwrap());
    assert!(cosine.0 < 1.0 && cosine.0 > 0.99 && cosine.1 <= cosine.0, "{cosine:?}");
    assert!(logits["top1"].is_null(), "no labels, no top-1");

    let names = check_tensors(&doc);
    // Every activation of digits_cnn's QDQ model is matched by name, the graph input and output too.
    for expected in ["input", "relu1_out", "pool_out", "logits"] {
        assert!(names.iter().any(|n| n == expected), "{expected} missing from {names:?}");
    }
    let input = doc["tensors"].as_array().unwrap().iter().find(|t| t["name"] == "input").unwrap();
    assert_eq!(db(&input["own_sqnr_db"]), db(&input["cumulative_sqnr_db"]), "nothing precedes the input");

    // The files: the same JSON, the Markdown table, a PNG and an SVG naming the tensors.
    let dir = work.out();
    assert_eq!(fs::read(dir.join("evaluate.json")).unwrap(), out.stdout);
    let md = fs::read_to_string(dir.join("evaluate.md")).unwrap();
    assert!(md.contains("| `logits` |") && md.contains(&format!("`{}`", names[0])), "{md}");
    assert!(fs::read(dir.join("evaluate.png")).unwrap().starts_with(b"\x89PNG\r\n\x1a\n"));
    let svg = fs::read_to_string(dir.join("evaluate.svg")).unwrap();
    assert!(svg.starts_with("<svg") || svg.starts_with("<?xml"), "{}", &svg[..100.min(svg.len())]);
    for name in &names {
        assert!(svg.contains(name.as_str()), "the chart does not name {name}");
    }
    let err = stderr(&out);
    assert!(err.contains("output `logits`: SQNR") && err.contains("worst tensors of"), "{err}");

    // Deterministic: a second run writes the same bytes.
    let again =
        compare(&work, &model("digits_cnn"), &work.path("q.onnx"), &list).arg("--json").output().unwrap();
    assert_eq!(again.stdout, out.stdout);
}

#[test]
fn quantize_in_memory_and_evaluate_with_labels() {
    let mut work = Work::new();
    let (calib, reported) = quantized(&mut work);
    // On the calibration list itself: quantize's own closing SQNR, nothing written but the reports.
    let out = evaluate(&work)
        .arg("--input_model")
        .arg(model("digits_cnn"))
        .arg("--input_list")
        .arg(&calib)
        .arg("--json")
        .assert()
        .success()
        .get_output()
        .clone();
    let doc = json_of(&out);
    assert!(doc["quantized_model"].is_null() && doc["calibration_list"] == "calib.txt", "{doc:#}");
    let sqnr = db(&doc["outputs"][0]["sqnr_db"]);
    assert!((sqnr - reported).abs() < 1e-6, "evaluate {sqnr} dB, quantize reported {reported} dB");
    check_tensors(&doc);

    // On the eval list with its labels: the float model's top-1 is models/README.md's 126/128.
    let out = evaluate(&work)
        .arg("--input_model")
        .arg(model("digits_cnn"))
        .arg("--input_list")
        .arg(&calib)
        .arg("--eval_list")
        .arg(zoo_file("digits_cnn", "eval.txt"))
        .arg("--labels")
        .arg(zoo_file("digits_cnn", "eval_labels.txt"))
        .arg("--json")
        .assert()
        .success()
        .get_output()
        .clone();
    let doc = json_of(&out);
    assert_eq!(doc["samples"], 128);
    let top1 = &doc["outputs"][0]["top1"];
    assert_eq!(top1["float"].as_f64(), Some(126.0 / 128.0), "{top1}");
    assert_eq!(top1["samples"], 128);
    let (q, agreement) = (top1["quantized"].as_f64().unwrap(), top1["agreement"].as_f64().unwrap());
    assert!(q > 0.9 && agreement > 0.9 && agreement <= 1.0, "{top1}");
    assert!(stderr(&out).contains("top-1 0.9844 float"), "{}", stderr(&out));
}

#[test]
fn a_model_against_itself_is_exact() {
    let mut work = Work::new();
    let list = work.list("eval.txt", &zoo_lines("digits_cnn", "eval.txt", 8));
    let out = compare(&work, &model("digits_cnn"), &model("digits_cnn"), &list)
        .arg("--json")
        .assert()
        .success()
        .get_output()
        .clone();
    let doc = json_of(&out);
    let logits = &doc["outputs"][0];
    assert_eq!(logits["sqnr_db"], "inf");
    assert_eq!((logits["cosine_mean"].as_f64(), logits["cosine_min"].as_f64()), (Some(1.0), Some(1.0)));
    assert_eq!(doc["tensors"].as_array().map(Vec::len), Some(0));
    let notes = doc["notes"].as_array().unwrap();
    assert!(notes.iter().any(|n| n.as_str().unwrap().contains("per-tensor table is empty")), "{notes:?}");
    assert!(stderr(&out).contains("no quantized tensor to compare"));
    assert!(fs::read(work.out().join("evaluate.png")).unwrap().starts_with(b"\x89PNG"));
}

// ---- bad input: exit 1 (2 for usage), the culprit named, nothing written -----------------------

fn fails(cmd: &mut Command, code: i32) -> String {
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(code), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    stderr(&out)
}

#[test]
fn a_missing_model_is_named() {
    let mut work = Work::new();
    let list = work.list("eval.txt", &zoo_lines("digits_cnn", "eval.txt", 2));
    let missing = work.path("nowhere/q.onnx");
    let err = fails(&mut compare(&work, &model("digits_cnn"), &missing, &list), 1);
    assert!(err.contains(&missing.display().to_string()), "{err}");
    work.assert_nothing_written();
}

#[test]
fn labels_must_match_the_list() {
    let mut work = Work::new();
    let list = work.list("eval.txt", &zoo_lines("digits_cnn", "eval.txt", 4));
    let labels = work.write("labels.txt", "1\n2\n3\n");
    let err = fails(
        compare(&work, &model("digits_cnn"), &model("digits_cnn"), &list).arg("--labels").arg(&labels),
        1,
    );
    assert!(err.contains("labels.txt has 3 label(s)") && err.contains("eval.txt has 4 sample(s)"), "{err}");
    work.assert_nothing_written();
}

#[test]
fn a_label_that_is_not_a_class_index_is_named_by_line() {
    let mut work = Work::new();
    let list = work.list("eval.txt", &zoo_lines("digits_cnn", "eval.txt", 3));
    let labels = work.write("labels.txt", "1\n2\ncat\n");
    let err = fails(
        compare(&work, &model("digits_cnn"), &model("digits_cnn"), &list).arg("--labels").arg(&labels),
        1,
    );
    assert!(err.contains("labels.txt:3: `cat` is not a class index"), "{err}");
    work.assert_nothing_written();
}

#[test]
fn a_quantized_model_with_other_inputs_is_refused() {
    let mut work = Work::new();
    let list = work.list("eval.txt", &zoo_lines("digits_cnn", "eval.txt", 2));
    let other = work.write("other.onnx", chain_model(&[("Relu", "relu1")]));
    let err = fails(&mut compare(&work, &model("digits_cnn"), &other, &list), 1);
    assert!(err.contains("has an input `x` that the float model") && err.contains("other.onnx"), "{err}");
    work.assert_nothing_written();
}

#[test]
fn mixing_the_two_modes_is_a_usage_error() {
    let mut work = Work::new();
    let list = work.list("eval.txt", &zoo_lines("digits_cnn", "eval.txt", 2));
    let m = model("digits_cnn");
    // A quantize flag with --float_model, --input_model with --float_model, half of mode A.
    let err = fails(compare(&work, &m, &m, &list).arg("--act_bitwidth").arg("16"), 2);
    assert!(err.contains("--act_bitwidth") && err.contains("--float_model"), "{err}");
    fails(compare(&work, &m, &m, &list).arg("--input_model").arg(&m), 2);
    fails(compare(&work, &m, &m, &list).arg("--eval_list").arg(&list), 2);
    fails(evaluate(&work).arg("--float_model").arg(&m).arg("--input_list").arg(&list), 2);
    fails(evaluate(&work).arg("--input_model").arg(&m), 2);
    work.assert_nothing_written();
}
