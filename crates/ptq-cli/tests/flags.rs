//! Every flag is honoured or said not to be: each test is named after a case where a flag was
//! accepted and then silently did nothing (or something else), and checks what happens now.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{Work, f32_raw, i64_bytes, model, read_f32, stderr, zoo_lines};
use ptq_onnx::build;
use serde_json::{Value, json};

fn calib(work: &mut Work) -> PathBuf {
    work.list("calib.txt", &zoo_lines("digits_cnn", "calib.txt", 16))
}

/// Runs `cmd`, asserts its exit code, returns its stderr.
fn stderr_of(cmd: &mut assert_cmd::Command, code: i32) -> String {
    let out = cmd.output().expect("ptq runs");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(code), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

fn param_entry<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["param_encodings"].as_array().unwrap().iter().find(|e| e["name"] == name).expect("an entry")
}

fn opset(path: &Path) -> i64 {
    let m = ptq_onnx::decode(fs::read(path).unwrap().into(), path).unwrap();
    m.opset_import.iter().find(|o| o.domain().is_empty()).and_then(|o| o.version).unwrap()
}

#[test]
fn float_bitwidth_16_with_input_list_is_said_to_change_nothing() {
    let mut work = Work::new();
    let list = calib(&mut work);
    work.quantize(&model("digits_cnn"), "plain.onnx").arg("--input_list").arg(&list).assert().success();
    let err = stderr_of(
        work.quantize(&model("digits_cnn"), "q.onnx").args(["--float_bitwidth", "16", "-l"]).arg(&list),
        0,
    );
    assert!(err.contains("--float_bitwidth 16 has no effect in this run: no tensor was left float"), "{err}");
    assert!(fs::read(work.path("plain.onnx")).unwrap() == fs::read(work.path("q.onnx")).unwrap());
}

#[test]
fn encoding_version_without_dump_encoding_json_is_said() {
    let mut work = Work::new();
    let list = calib(&mut work);
    let err = stderr_of(
        work.quantize(&model("digits_cnn"), "q.onnx").args(["--encoding_version", "0.6.1", "-l"]).arg(&list),
        0,
    );
    assert!(err.contains("--encoding_version has no effect without --dump_encoding_json"), "{err}");
    assert!(!work.path("q_encoding.json").exists());
}

#[test]
fn convert_stripped_reads_checks_and_names_the_overrides_it_ignores() {
    let mut work = Work::new();
    let convert = |work: &Work, overrides: &Path| {
        let mut cmd = work.ptq();
        cmd.args(["convert", "--export_format", "stripped", "-i"]).arg(model("digits_cnn"));
        cmd.arg("-q").arg(overrides).arg("-o").arg(work.path("s.onnx"));
        cmd
    };
    // A file that does not exist, or names a tensor the model lacks, fails as without stripping.
    let err = stderr_of(&mut convert(&work, &work.path("missing.json")), 1);
    assert!(err.contains("missing.json"), "{err}");
    let unknown = json!({"activation_encodings": {"no_such_tensor": [{"bitwidth": 8, "dtype": "int"}]},
                         "param_encodings": {}});
    let bad = work.write("unknown.json", unknown.to_string());
    let err = stderr_of(&mut convert(&work, &bad), 1);
    assert!(err.contains("no_such_tensor"), "{err}");
    work.assert_nothing_written();
    // A good one is checked, then said to be ignored; so are the float flags.
    let good =
        json!({"activation_encodings": {"input": [{"bitwidth": 8, "dtype": "int"}]}, "param_encodings": {}});
    let good = work.write("good.json", good.to_string());
    let err = stderr_of(convert(&work, &good).args(["--float_bitwidth", "16"]), 0);
    assert!(err.contains("good.json has no effect with --export_format stripped"), "{err}");
    assert!(err.contains("--float_bitwidth has no effect with --export_format stripped"), "{err}");
    assert!(work.path("s.onnx").exists());
}

#[test]
fn output_lines_in_a_quantize_list_are_checked_and_said_to_be_ignored() {
    let mut work = Work::new();
    let samples = zoo_lines("digits_cnn", "calib.txt", 4);
    let mut lines = vec!["%logits relu1_out".to_string()];
    lines.extend(samples.iter().cloned());
    let list = work.list("outs.txt", &lines);
    let err = stderr_of(work.quantize(&model("digits_cnn"), "q.onnx").arg("-l").arg(&list), 0);
    assert!(err.contains("outs.txt: the `#`/`%` output lines are ignored for calibration"), "{err}");
    assert!(err.contains("keeps the model's outputs (logits); `relu1_out` is not one of them"), "{err}");
    // A name the model lacks fails, naming the line.
    let mut lines = vec!["#no_such_node".to_string()];
    lines.extend(samples);
    let list = work.list("bad.txt", &lines);
    let err = stderr_of(work.quantize(&model("digits_cnn"), "r.onnx").arg("-l").arg(&list), 1);
    assert!(err.contains("bad.txt:1: the `#` line names node `no_such_node`"), "{err}");
    assert!(!work.path("r.onnx").exists());
}

#[test]
fn preserve_io_datatype_naming_an_output_is_said_to_change_nothing() {
    let mut work = Work::new();
    let list = calib(&mut work);
    let err = stderr_of(
        work.quantize(&model("digits_cnn"), "q.onnx")
            .args(["--preserve_io_datatype", "logits", "-l"])
            .arg(&list),
        0,
    );
    assert!(err.contains("--preserve_io_datatype logits has no effect for an output"), "{err}");
}

/// `ids` int64 [1, 4] → Gather from a [5, 4] table, + `x` float [1, 4, 4] → `z`.
fn gather_model() -> Vec<u8> {
    let table: Vec<f32> = (0..20).map(|v| v as f32 / 10.0).collect();
    let m = build::model(
        13,
        vec![
            build::node("Gather", "gather", &["table", "ids"], &["emb"]),
            build::node("Add", "add", &["emb", "x"], &["z"]),
        ],
        vec![
            build::tensor_value("ids", build::INT64, &[1, 4]),
            build::tensor_value("x", build::FLOAT, &[1, 4, 4]),
        ],
        vec![build::tensor_value("z", build::FLOAT, &[1, 4, 4])],
        vec![build::f32_tensor("table", &[5, 4], &table)],
    );
    ptq_onnx::encode(&m)
}

#[test]
fn named_native_inputs_never_narrow_use_native_input_files() {
    let mut work = Work::new();
    let m = work.write("m.onnx", gather_model());
    work.write("ids.raw", i64_bytes(&[0, 1, 2, 4]));
    work.write("x.raw", f32_raw(&[0.5; 16]));
    let list = work.list("list.txt", &["ids:=ids.raw x:=x.raw"]);
    // Both flags: which one wins was silent; now it is a usage error.
    let err = stderr_of(
        work.quantize(&m, "q.onnx")
            .args(["--use_native_input_files", "--native_input_tensor_names", "x", "-l"])
            .arg(&list),
        2,
    );
    assert!(err.contains("--use_native_input_files") && err.contains("--native_input_tensor_names"), "{err}");
    // --preserve_io_datatype x keeps reading every input natively (ids is int64 on disk).
    work.quantize(&m, "q.onnx")
        .args(["--use_native_input_files", "--preserve_io_datatype", "x", "-l"])
        .arg(&list)
        .assert()
        .success();
}

#[test]
fn adjust_bias_encoding_without_per_channel_weights_is_said() {
    let mut work = Work::new();
    let list = calib(&mut work);
    let err = stderr_of(
        work.quantize(&model("digits_cnn"), "q.onnx").args(["--adjust_bias_encoding", "-l"]).arg(&list),
        0,
    );
    assert!(
        err.contains(
            "--adjust_bias_encoding has no effect without --use_per_channel_quantization or --use_per_row"
        ),
        "{err}"
    );
}

#[test]
fn asymmetric_param_schema_with_per_channel_weights_is_said_and_the_json_tells_the_truth() {
    let mut work = Work::new();
    let list = calib(&mut work);
    let run = |work: &Work, out: &str, flags: &[&str]| {
        let mut cmd = work.quantize(&model("digits_cnn"), out);
        cmd.args(["--param_quantizer_schema", "asymmetric", "--dump_encoding_json", "-l"])
            .arg(&list)
            .args(flags);
        stderr_of(&mut cmd, 0)
    };
    // Conv weights per channel (symmetric), Gemm/MatMul weights per tensor (asymmetric, as asked).
    let err = run(&work, "pc.onnx", &["--use_per_channel_quantization"]);
    assert!(err.contains("per-channel and per-row weights are always symmetric"), "{err}");
    let doc = work.json("pc_encoding.json");
    assert_eq!(param_entry(&doc, "conv1.weight")["is_sym"], true);
    assert_eq!(param_entry(&doc, "fc1.weight")["is_sym"], false);
    assert_eq!(doc["quantizer_args"]["is_symmetric"], false);
    // Every weight per channel or per row: all symmetric, and the header says so.
    run(&work, "all.onnx", &["--use_per_channel_quantization", "--use_per_row_quantization"]);
    let doc = work.json("all_encoding.json");
    assert_eq!(param_entry(&doc, "fc1.weight")["is_sym"], true);
    assert_eq!(doc["quantizer_args"]["is_symmetric"], true);
}

#[test]
fn float_fallback_names_each_ignored_flag_and_keeps_the_opset() {
    let mut work = Work::new();
    let list = calib(&mut work);
    work.quantize(&model("digits_cnn"), "q.onnx").arg("-l").arg(&list).assert().success();
    let q = work.path("q.onnx");
    work.quantize(&q, "plain.onnx").arg("-f").assert().success();
    let flags = [
        "--act_bitwidth",
        "16",
        "--use_native_input_files",
        "--weights_bitwidth",
        "4",
        "--use_per_channel_quantization",
        "--smoothquant",
    ];
    let err = stderr_of(work.quantize(&q, "f.onnx").arg("-f").args(flags), 0);
    for flag in ["--act_bitwidth", "--use_native_input_files", "--smoothquant"] {
        assert!(
            err.contains(&format!("{flag} has no effect with --enable_float_fallback:")),
            "{flag}: {err}"
        );
    }
    for flag in ["--weights_bitwidth", "--use_per_channel_quantization"] {
        assert!(
            err.contains(&format!("{flag} has no effect with --enable_float_fallback here")),
            "{flag}: {err}"
        );
    }
    assert_eq!(opset(&work.path("f.onnx")), 13, "nothing asked for 16-bit tensors");
    assert!(fs::read(work.path("plain.onnx")).unwrap() == fs::read(work.path("f.onnx")).unwrap());
}

#[test]
fn deprecated_aliases_warn() {
    let mut work = Work::new();
    let list = calib(&mut work);
    work.quantize(&model("digits_cnn"), "q.onnx").arg("-l").arg(&list).assert().success();
    let err = stderr_of(work.quantize(&work.path("q.onnx"), "f.onnx").arg("--float_fallback"), 0);
    assert!(
        err.contains("--float_fallback is deprecated and will be removed; use --enable_float_fallback"),
        "{err}"
    );
    let err = stderr_of(
        work.quantize(&model("digits_cnn"), "i.onnx").arg("--ignore_encodings").arg("-l").arg(&list),
        0,
    );
    assert!(err.contains(
        "--ignore_encodings is deprecated and will be removed; use --ignore_quantization_overrides"
    ));
    // Still the same flags: each excludes what the current spelling excludes.
    let err = stderr_of(
        work.quantize(&work.path("q.onnx"), "g.onnx").args(["--float_fallback", "--ignore_encodings"]),
        2,
    );
    assert!(err.contains("cannot be used together"), "{err}");
}

#[test]
fn unfolded_batch_normalization_is_reported() {
    let mut work = Work::new();
    let c = |name: &str, v: f32| build::f32_tensor(name, &[2], &[v, v]);
    let m = build::model(
        13,
        vec![
            build::node("Relu", "relu", &["x"], &["r"]),
            build::node("BatchNormalization", "bn", &["r", "s", "b", "mean", "var"], &["z"]),
        ],
        vec![build::tensor_value("x", build::FLOAT, &[1, 2, 2, 2])],
        vec![build::tensor_value("z", build::FLOAT, &[1, 2, 2, 2])],
        vec![c("s", 2.0), c("b", 0.5), c("mean", 0.1), c("var", 1.0)],
    );
    let m = work.write("bn.onnx", ptq_onnx::encode(&m));
    work.write("x.raw", f32_raw(&[-1.0, 0.5, 1.0, 2.0, 0.0, 3.0, -2.0, 1.5]));
    let list = work.list("list.txt", &["x.raw"]);
    let err = stderr_of(work.quantize(&m, "q.onnx").arg("-l").arg(&list), 0);
    assert!(
        err.contains("not folded BatchNormalization `bn`: its input `r` comes from Relu `relu`"),
        "{err}"
    );
}

#[test]
fn bitwidth_override_below_a_restricted_weight_grid_gets_its_own_grid() {
    let mut work = Work::new();
    let list = calib(&mut work);
    let overrides = json!({"activation_encodings": {}, "param_encodings": {"fc1.weight": [{"bitwidth": 8, "dtype": "int"}]}});
    let overrides = work.write("over.json", overrides.to_string());
    let mut cmd = work.quantize(&model("digits_cnn"), "q.onnx");
    cmd.args([
        "--weights_bitwidth",
        "16",
        "--restrict_quantization_steps",
        "-0x8000 0x7F7F",
        "--dump_encoding_json",
    ]);
    cmd.arg("-q").arg(&overrides).arg("-l").arg(&list);
    let err = stderr_of(&mut cmd, 0);
    assert!(err.contains("weight `fc1.weight`: its override asks for 8 bits"), "{err}");
    let doc = work.json("q_encoding.json");
    let fc1 = param_entry(&doc, "fc1.weight");
    assert_eq!((fc1["bw"].as_u64(), fc1["offset"][0].as_i64()), (Some(8), Some(-128)));
    // The other weights keep the restricted 16-bit grid.
    assert_eq!(param_entry(&doc, "fc2.weight")["offset"][0].as_i64(), Some(-0x8000));
    // The written model computes what the float one does (wrapped int8 weights gave noise).
    let logits = |m: &Path, out: &str| {
        work.run_into(m, &list, &work.path(out)).assert().success();
        read_f32(&work.path(out).join("Result_0").join("logits.raw"))
    };
    let (q, f) = (logits(&work.path("q.onnx"), "q_out"), logits(&model("digits_cnn"), "f_out"));
    let noise: f32 = q.iter().zip(&f).map(|(a, b)| (a - b) * (a - b)).sum();
    let signal: f32 = f.iter().map(|b| b * b).sum();
    assert!(noise < signal / 100.0, "{q:?} vs {f:?}");
}

#[test]
fn qairt_short_options() {
    let mut work = Work::new();
    let list = calib(&mut work);
    let out = work.path("q.onnx");
    let mut cmd = work.ptq();
    cmd.args(["quantize", "-i"]).arg(model("digits_cnn")).arg("-o").arg(&out).arg("-l").arg(&list);
    cmd.arg("--dump_encoding_json").assert().success();
    // convert: -q is qairt's --quantization_overrides; quiet is -Q.
    let mut cmd = work.ptq();
    cmd.args(["convert", "-Q", "-i"]).arg(model("digits_cnn"));
    cmd.arg("-q").arg(work.path("q_encoding.json")).arg("-o").arg(work.path("c.onnx"));
    let err = stderr_of(&mut cmd, 0);
    assert!(err.is_empty(), "{err}");
    assert!(work.path("c.onnx").exists());
}
