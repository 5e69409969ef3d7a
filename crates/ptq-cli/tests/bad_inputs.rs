//! Bad inputs across every command (issue 16, DESIGN.md Decision 13): one table of cases, one
//! runner. Each case writes its files into a scratch folder and runs `ptq`; the runner checks the
//! exit code (1, or 2 for usage errors), that stderr names the culprit and says what to do (the
//! case's fragments), that nothing panicked, and that the scratch folder is byte for byte what the
//! case wrote: no output, no partial file, no staging folder, inputs untouched. Ctrl-C cases
//! interrupt a run blocked on a named pipe in its list, so the moment is known, not guessed.
//!
//! Every failing case is reported, not just the first.

mod common;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use ptq_onnx::build;
use ptq_onnx::proto::type_proto::Value;

/// ptq's arguments, each anything that converts to an `OsString` (`&str`, `&PathBuf`, …).
macro_rules! args {
    ($($a:expr),* $(,)?) => { vec![$(OsString::from(&$a)),*] };
}

struct Case {
    name: &'static str,
    /// Writes the case's files into the scratch folder; returns ptq's arguments.
    setup: fn(&mut Work) -> Vec<OsString>,
    expect: Expect,
}

enum Expect {
    /// Exit `code`, every fragment on stderr.
    Fails { code: i32, stderr: &'static [&'static str] },
    /// The run blocks reading the named pipe `fifo` (made by the setup); Ctrl-C then exits 130.
    Interrupted { fifo: &'static str },
}

const fn fails(stderr: &'static [&'static str]) -> Expect {
    Expect::Fails { code: 1, stderr }
}

const fn usage(stderr: &'static [&'static str]) -> Expect {
    Expect::Fails { code: 2, stderr }
}

// ---- shared setups ----------------------------------------------------------------------------

/// `list.txt` with the first `n` digits evaluation samples.
fn digits_list(work: &mut Work, n: usize) -> &'static str {
    work.list("list.txt", &zoo_lines("digits_cnn", "eval.txt", n));
    "list.txt"
}

/// `quantize` of digits_cnn into `q.onnx`, calibrating on `list`.
fn quantize_digits(list: &str) -> Vec<OsString> {
    quantize_digits_into(list, "q.onnx")
}

/// `quantize` of digits_cnn into `out`, calibrating on `list`.
fn quantize_digits_into(list: &str, out: &str) -> Vec<OsString> {
    args!["quantize", "--input_model", model("digits_cnn"), "--input_list", list, "--output_model", out]
}

/// `quantize` of digits_cnn on two good samples with the overrides file `over.json`.
fn quantize_with_overrides(work: &mut Work, json: &str) -> Vec<OsString> {
    work.write("over.json", json);
    let mut args = quantize_digits(digits_list(work, 2));
    args.extend(args!["--quantization_overrides", "over.json"]);
    args
}

/// `convert` of digits_cnn into `c.onnx` with the overrides file `over.json`.
fn convert_with_overrides(work: &mut Work, json: &str) -> Vec<OsString> {
    work.write("over.json", json);
    args![
        "convert",
        "--input_network",
        model("digits_cnn"),
        "--quantization_overrides",
        "over.json",
        "--output_path",
        "c.onnx"
    ]
}

/// `evaluate` of digits_cnn quantized in memory on `list`, results into `ev/`.
fn evaluate_digits(list: &str) -> Vec<OsString> {
    args!["evaluate", "--input_model", model("digits_cnn"), "--input_list", list, "--output_dir", "ev"]
}

/// `evaluate` comparing digits_cnn with the model `quantized` on two samples, results into `ev/`.
fn compare_with(work: &mut Work, quantized: &str) -> Vec<OsString> {
    let list = digits_list(work, 2);
    args![
        "evaluate",
        "--float_model",
        model("digits_cnn"),
        "--quantized_model",
        quantized,
        "--input_list",
        list,
        "--output_dir",
        "ev"
    ]
}

/// `run` of digits_cnn on `list` into `out/`.
fn run_digits(list: &str) -> Vec<OsString> {
    args!["run", "--input_model", model("digits_cnn"), "--input_list", list, "--output_dir", "out"]
}

/// `quantize` of digits_cnn on a list of one sample file `x.<ext>` holding `bytes`.
fn quantize_sample(work: &mut Work, file: &'static str, bytes: Vec<u8>) -> Vec<OsString> {
    work.write(file, bytes);
    work.list("list.txt", &[file]);
    quantize_digits("list.txt")
}

/// `quantize` of the model `m.onnx` (written from `bytes`) on one [1,4] sample.
fn quantize_model(work: &mut Work, bytes: Vec<u8>) -> Vec<OsString> {
    work.write("m.onnx", bytes);
    work.write("x.raw", f32_raw(&[1.0, -2.0, 3.0, -4.0]));
    work.list("list.txt", &["x.raw"]);
    args!["quantize", "--input_model", "m.onnx", "--input_list", "list.txt", "--output_model", "q.onnx"]
}

/// digits_cnn's bytes with the first half kept.
fn truncated_digits() -> Vec<u8> {
    let bytes = fs::read(model("digits_cnn")).expect("read digits_cnn");
    bytes[..bytes.len() / 2].to_vec()
}

/// `x [1,4] → Relu → z`, changed by `edit` before encoding.
fn relu_model(edit: fn(&mut ptq_onnx::proto::ModelProto)) -> Vec<u8> {
    let mut m = ptq_onnx::decode(chain_model(&[("Relu", "relu1")]).into(), Path::new("m.onnx"))
        .expect("the chain model decodes");
    edit(&mut m);
    ptq_onnx::encode(&m)
}

/// A 0.6.1 overrides file: `tensor` in `section` with the encodings `channels` (JSON objects).
fn v0(section: &str, tensor: &str, channels: &str) -> String {
    format!(r#"{{"version": "0.6.1", "{section}": {{"{tensor}": [{channels}]}}}}"#)
}

/// A 1.0.0 overrides file with the activation entries `entries` (JSON objects).
fn v1(entries: &str) -> String {
    format!(r#"{{"version": "1.0.0", "param_encodings": [], "activation_encodings": [{entries}]}}"#)
}

/// A 2.0.0 overrides file with one entry (`fields` without the braces).
fn v2(fields: &str) -> String {
    format!(r#"{{"version": "2.0.0", "encodings": [{{{fields}}}]}}"#)
}

/// One channel of a symmetric 8-bit 0.6.1 weight encoding.
const CHANNEL: &str = r#"{"bitwidth": 8, "is_symmetric": "True", "scale": 0.1, "offset": -128}"#;

/// A two-node pipe: a run blocks reading it until someone writes.
fn fifo(work: &mut Work, rel: &str) {
    let path = work.path(rel);
    let ok = std::process::Command::new("mkfifo").arg(&path).status().expect("mkfifo").success();
    assert!(ok, "mkfifo {}", path.display());
}

// ---- the table --------------------------------------------------------------------------------

const INPUT_LISTS: &[Case] = &[
    Case {
        name: "quantize: the input list does not exist",
        setup: |_| quantize_digits("nope.txt"),
        expect: fails(&["nope.txt", "--input_list"]),
    },
    Case {
        name: "quantize: the input list is empty",
        setup: |w| {
            w.write("empty.txt", "");
            quantize_digits("empty.txt")
        },
        expect: fails(&["empty.txt", "no samples"]),
    },
    Case {
        name: "evaluate: the input list is a folder",
        setup: |w| {
            w.mkdir("lists");
            evaluate_digits("lists")
        },
        expect: fails(&["lists", "--input_list"]),
    },
    Case {
        name: "quantize: the input list is not text",
        setup: |w| {
            w.write("bin.txt", [0xffu8, 0xfe, 0x00, 0x81, b'\n']);
            quantize_digits("bin.txt")
        },
        expect: fails(&["bin.txt", "valid UTF-8"]),
    },
    Case {
        name: "quantize: a name with no path (`input:=`)",
        setup: |w| {
            w.list("l.txt", &["input:="]);
            quantize_digits("l.txt")
        },
        expect: fails(&["l.txt:1", "'input:=' has no path", "write name:=path"]),
    },
    Case {
        name: "quantize: a path with no name (`:=x.raw`)",
        setup: |w| {
            w.write("x.raw", f32_raw(&[0.5; 64]));
            w.list("l.txt", &[":=x.raw"]);
            quantize_digits("l.txt")
        },
        expect: fails(&["l.txt:1", "no input name", "write name:=path"]),
    },
    Case {
        name: "quantize: an input name the model does not have",
        setup: |w| {
            w.write("x.raw", f32_raw(&[0.5; 64]));
            w.list("l.txt", &["pixels:=x.raw"]);
            quantize_digits("l.txt")
        },
        expect: fails(&["l.txt:1", "'pixels'", "inputs are: input"]),
    },
    Case {
        name: "quantize: one input given twice on a line",
        setup: |w| {
            w.write("x.raw", f32_raw(&[0.5; 64]));
            w.list("l.txt", &["input:=x.raw input:=x.raw"]);
            quantize_digits("l.txt")
        },
        expect: fails(&["l.txt:1", "'input' is given twice", "give each input once"]),
    },
    Case {
        name: "evaluate: two files on a line of a one-input model",
        setup: |w| {
            w.write("x.raw", f32_raw(&[0.5; 64]));
            w.list("l.txt", &["x.raw x.raw"]);
            evaluate_digits("l.txt")
        },
        expect: fails(&["l.txt:1", "the model has 1"]),
    },
    Case {
        name: "quantize: silero's `state` missing on line 2",
        setup: |w| {
            let mut lines = zoo_lines("silero_vad_16k", "calib.txt", 1);
            lines.push(format!("input:={}", zoo_file("silero_vad_16k", "calib/001_input.raw").display()));
            w.list("s.txt", &lines);
            args![
                "quantize",
                "--input_model",
                model("silero_vad_16k"),
                "--input_list",
                "s.txt",
                "--output_model",
                "q.onnx"
            ]
        },
        expect: fails(&["s.txt:2", "state"]),
    },
    Case {
        name: "quantize: the data file of line 3 is missing",
        setup: |w| {
            let mut lines = zoo_lines("digits_cnn", "calib.txt", 2);
            lines.push("gone.raw".into());
            w.list("l.txt", &lines);
            quantize_digits("l.txt")
        },
        expect: fails(&["l.txt:3", "gone.raw", "fix the path"]),
    },
    Case {
        name: "evaluate: --eval_list does not exist",
        setup: |w| {
            let mut args = evaluate_digits(digits_list(w, 2));
            args.extend(args!["--eval_list", "nope.txt"]);
            args
        },
        expect: fails(&["--eval_list nope.txt", "check the path"]),
    },
    Case {
        name: "quantize: --eval_list is a folder",
        setup: |w| {
            w.mkdir("eval");
            let mut args = quantize_digits(digits_list(w, 2));
            args.extend(args!["--eval_list", "eval"]);
            args
        },
        expect: fails(&["--eval_list eval is a folder", "give the input list file"]),
    },
    Case {
        name: "evaluate: --labels does not exist",
        setup: |w| {
            let mut args = compare_with(w, "q.onnx");
            // A quantized model that exists: the labels are the only culprit.
            w.write("q.onnx", fs::read(model("digits_cnn")).expect("read digits_cnn"));
            args.extend(args!["--labels", "labels.txt"]);
            args
        },
        expect: fails(&["--labels labels.txt", "No such file"]),
    },
    Case {
        name: "evaluate: a negative label",
        setup: |w| {
            let mut args = evaluate_digits(digits_list(w, 2));
            w.write("labels.txt", "3\n-1\n");
            args.extend(args!["--labels", "labels.txt"]);
            args
        },
        expect: fails(&["labels.txt:2", "-1"]),
    },
    Case {
        name: "run: a data line before the `%` line",
        setup: |w| {
            let mut lines = zoo_lines("digits_cnn", "eval.txt", 1);
            lines.push("%logits".into());
            w.list("l.txt", &lines);
            run_digits("l.txt")
        },
        expect: fails(&["l.txt:2", "'%'"]),
    },
    Case {
        name: "evaluate: a label beyond the first output's classes",
        setup: |w| {
            let mut args = evaluate_digits(digits_list(w, 2));
            w.write("labels.txt", "3\n12\n");
            args.extend(args!["--labels", "labels.txt"]);
            args
        },
        expect: fails(&["labels.txt:2", "class 12", "`logits` has 10 value(s)", "check that the labels"]),
    },
    Case {
        name: "run: --native_input_tensor_names names no input",
        setup: |w| {
            let mut args = run_digits(digits_list(w, 1));
            args.extend(args!["--native_input_tensor_names", "pixels"]);
            args
        },
        expect: fails(&["--native_input_tensor_names", "'pixels'", "inputs are: input"]),
    },
];

const DATA_FILES: &[Case] = &[
    Case {
        name: "quantize: a raw file of the wrong size",
        setup: |w| quantize_sample(w, "x.raw", f32_raw(&[0.5; 63])),
        expect: fails(&["list.txt:1", "x.raw", "252 bytes", "expected 256"]),
    },
    Case {
        name: "evaluate: an empty raw file",
        setup: |w| {
            w.write("x.raw", b"");
            w.list("l.txt", &["x.raw"]);
            evaluate_digits("l.txt")
        },
        expect: fails(&["l.txt:1", "x.raw", "0 bytes"]),
    },
    Case {
        name: "quantize: NaN in a sample",
        setup: |w| {
            let mut v = vec![0.5f32; 64];
            v[7] = f32::NAN;
            quantize_sample(w, "x.raw", f32_raw(&v))
        },
        expect: fails(&["list.txt:1", "x.raw", "NaN", "--allow_nonfinite"]),
    },
    Case {
        name: "evaluate: Inf in a sample of the evaluation list",
        setup: |w| {
            let mut v = vec![0.5f32; 64];
            v[0] = f32::INFINITY;
            w.write("x.raw", f32_raw(&v));
            w.list("e.txt", &["x.raw"]);
            let mut args = evaluate_digits(digits_list(w, 2));
            args.extend(args!["--eval_list", "e.txt"]);
            args
        },
        expect: fails(&["e.txt:1", "x.raw", "--allow_nonfinite"]),
    },
    Case {
        name: "quantize: a .npy header cut short",
        setup: |w| {
            let full = npy("<f4", &[1, 1, 8, 8], &f32_raw(&[0.5; 64]));
            quantize_sample(w, "x.npy", full[..30].to_vec())
        },
        expect: fails(&["list.txt:1", "x.npy is not a readable .npy file", "numpy.save"]),
    },
    Case {
        name: "quantize: a .npy without its magic",
        setup: |w| quantize_sample(w, "x.npy", f32_raw(&[0.5; 64])),
        expect: fails(&["list.txt:1", "x.npy is not a readable .npy file", "numpy.save"]),
    },
    Case {
        name: "quantize: a .npy with less data than its shape",
        setup: |w| quantize_sample(w, "x.npy", npy("<f4", &[1, 1, 8, 8], &f32_raw(&[0.5; 60]))),
        expect: fails(&["list.txt:1", "x.npy", "header promises 256 data bytes", "holds 240"]),
    },
    Case {
        name: "quantize: a .npy of strings",
        setup: |w| quantize_sample(w, "x.npy", npy("<U1", &[1, 1, 8, 8], &[b'a'; 256])),
        expect: fails(&["list.txt:1", "x.npy holds numpy dtype '<U1'", "save it as float32"]),
    },
    Case {
        name: "evaluate: a .npy of the wrong shape",
        setup: |w| {
            w.write("x.npy", npy("<f4", &[1, 64], &f32_raw(&[0.5; 64])));
            w.list("l.txt", &["x.npy"]);
            evaluate_digits("l.txt")
        },
        expect: fails(&["l.txt:1", "x.npy", "[1,64]", "[1,1,8,8]"]),
    },
    Case {
        name: "run: a data file that is a folder",
        setup: |w| {
            w.mkdir("x.raw");
            w.list("l.txt", &["x.raw"]);
            run_digits("l.txt")
        },
        expect: fails(&["l.txt:1", "x.raw is a folder", ".raw or .npy file"]),
    },
    Case {
        name: "run: an int32 .npy for an int64 input",
        setup: |w| {
            w.write("ids.npy", npy("<i4", &[1, 64], &[0u8; 256]));
            let mask = zoo_file("minilm_l3", "eval/000_attention_mask.npy");
            w.list("m.txt", &[format!("input_ids:=ids.npy attention_mask:={}", mask.display())]);
            args!["run", "--input_model", model("minilm_l3"), "--input_list", "m.txt", "--output_dir", "out"]
        },
        expect: fails(&["m.txt:1", "input_ids", "ids.npy", "int32", "int64"]),
    },
];

const ONNX_FILES: &[Case] = &[
    Case {
        name: "quantize: the model does not exist",
        setup: |w| {
            let list = digits_list(w, 1);
            args!["quantize", "--input_model", "nope.onnx", "--input_list", list, "--output_model", "q.onnx"]
        },
        expect: fails(&["nope.onnx", "No such file"]),
    },
    Case {
        name: "convert: an empty model file",
        setup: |w| {
            w.write("m.onnx", b"");
            args!["convert", "--input_network", "m.onnx", "--output_path", "c.onnx"]
        },
        expect: fails(&["m.onnx", "empty"]),
    },
    Case {
        name: "quantize: a truncated model",
        setup: |w| quantize_model(w, truncated_digits()),
        expect: fails(&["m.onnx", "truncated or corrupt"]),
    },
    Case {
        name: "inspect: a truncated model",
        setup: |w| {
            w.write("m.onnx", truncated_digits());
            args!["inspect", "m.onnx"]
        },
        expect: fails(&["m.onnx", "truncated or corrupt"]),
    },
    Case {
        name: "evaluate: garbage bytes as the float model",
        setup: |w| {
            w.write(
                "m.onnx",
                (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8).collect::<Vec<_>>(),
            );
            let list = digits_list(w, 2);
            args!["evaluate", "--input_model", "m.onnx", "--input_list", list, "--output_dir", "ev"]
        },
        expect: fails(&["m.onnx", "not an ONNX model"]),
    },
    Case {
        name: "evaluate: a truncated quantized model",
        setup: |w| {
            w.write("q.onnx", truncated_digits());
            compare_with(w, "q.onnx")
        },
        expect: fails(&["q.onnx", "truncated or corrupt"]),
    },
    Case {
        name: "run: the model is a folder",
        setup: |w| {
            w.mkdir("m.onnx");
            let list = digits_list(w, 1);
            args!["run", "--input_model", "m.onnx", "--input_list", list, "--output_dir", "out"]
        },
        expect: fails(&["m.onnx", "Is a directory", "check the path"]),
    },
    Case {
        name: "quantize: a model without IR version",
        setup: |w| quantize_model(w, relu_model(|m| m.ir_version = None)),
        expect: fails(&["m.onnx", "no IR version"]),
    },
    Case {
        name: "quantize: a model of a future IR version",
        setup: |w| quantize_model(w, relu_model(|m| m.ir_version = Some(99))),
        expect: fails(&["m.onnx", "IR version 99", "IR version 14 or lower"]),
    },
    Case {
        name: "convert: a model without graph",
        setup: |w| {
            w.write("m.onnx", relu_model(|m| m.graph = None));
            args!["convert", "--input_network", "m.onnx", "--output_path", "c.onnx"]
        },
        expect: fails(&["m.onnx", "no graph"]),
    },
    Case {
        name: "quantize: a node reads a tensor nothing produces",
        setup: |w| {
            quantize_model(
                w,
                relu_model(|m| {
                    let g = m.graph.as_mut().expect("graph");
                    g.node[0].input = vec!["ghost".into()];
                }),
            )
        },
        expect: fails(&["node `relu1`", "reads `ghost`", "export it again"]),
    },
    Case {
        name: "inspect: a node reads a tensor nothing produces",
        setup: |w| {
            w.write(
                "m.onnx",
                relu_model(|m| {
                    let g = m.graph.as_mut().expect("graph");
                    g.node[0].input = vec!["ghost".into()];
                }),
            );
            args!["inspect", "m.onnx"]
        },
        expect: fails(&["node `relu1`", "reads `ghost`", "export it again"]),
    },
    Case {
        name: "quantize: two nodes write the same tensor",
        setup: |w| {
            quantize_model(
                w,
                relu_model(|m| {
                    let g = m.graph.as_mut().expect("graph");
                    g.node.push(build::node("Neg", "neg1", &["x"], &["z"]));
                }),
            )
        },
        expect: fails(&["node `neg1`", "writes `z`", "node `relu1`", "export it again"]),
    },
    Case {
        name: "quantize: a cycle",
        setup: |w| {
            let m = build::model(
                13,
                vec![
                    build::node("Add", "add1", &["x", "b"], &["a"]),
                    build::node("Relu", "relu1", &["a"], &["b"]),
                    build::node("Neg", "neg1", &["b"], &["z"]),
                ],
                vec![build::tensor_value("x", build::FLOAT, &[1, 4])],
                vec![build::tensor_value("z", build::FLOAT, &[1, 4])],
                vec![],
            );
            quantize_model(w, ptq_onnx::encode(&m))
        },
        expect: fails(&["cycle"]),
    },
    Case {
        name: "quantize: no default-domain opset",
        setup: |w| quantize_model(w, relu_model(|m| m.opset_import.clear())),
        expect: fails(&["m.onnx", "opset"]),
    },
    Case {
        name: "quantize: an opset ptq does not know",
        setup: |w| quantize_model(w, relu_model(|m| m.opset_import = vec![build::opset("", 99)])),
        expect: fails(&["m.onnx", "opset 99", "opset 28 or lower"]),
    },
    Case {
        name: "quantize: an initializer shorter than its shape",
        setup: |w| {
            let m = build::model(
                13,
                vec![build::node("Add", "add1", &["x", "w"], &["z"])],
                vec![build::tensor_value("x", build::FLOAT, &[1, 4])],
                vec![build::tensor_value("z", build::FLOAT, &[1, 4])],
                vec![build::raw_tensor("w", build::FLOAT, &[1, 4], vec![0; 12])],
            );
            quantize_model(w, ptq_onnx::encode(&m))
        },
        expect: fails(&["`w`", "holds 12 bytes", "needs 16", "export it again"]),
    },
    Case {
        name: "quantize: an operator no engine runs",
        setup: |w| quantize_model(w, foobar_model()),
        expect: fails(&["FooBar", "foo1"]),
    },
    Case {
        name: "quantize: a graph output nothing computes",
        setup: |w| {
            quantize_model(
                w,
                relu_model(|m| {
                    let g = m.graph.as_mut().expect("graph");
                    g.output.push(build::tensor_value("lost", build::FLOAT, &[1, 4]));
                }),
            )
        },
        expect: fails(&["`lost`", "is a graph output", "export it again"]),
    },
    Case {
        name: "quantize: an input without element type",
        setup: |w| {
            quantize_model(
                w,
                relu_model(|m| m.graph.as_mut().expect("graph").input = vec![build::untyped_value("x")]),
            )
        },
        expect: fails(&["`x`", "no element type"]),
    },
    Case {
        name: "run: an input without shape",
        setup: |w| {
            w.write(
                "m.onnx",
                relu_model(|m| {
                    let input = &mut m.graph.as_mut().expect("graph").input[0];
                    if let Some(Value::TensorType(t)) = input.r#type.as_mut().and_then(|t| t.value.as_mut()) {
                        t.shape = None;
                    }
                }),
            );
            w.write("x.raw", f32_raw(&[1.0, -2.0, 3.0, -4.0]));
            w.list("list.txt", &["x.raw"]);
            args!["run", "--input_model", "m.onnx", "--input_list", "list.txt", "--output_dir", "out"]
        },
        expect: fails(&["`x`", "declares no shape", "--input_dimensions x="]),
    },
    Case {
        name: "quantize: an initializer of an unknown element type",
        setup: |w| {
            let m = build::model(
                13,
                vec![build::node("Add", "add1", &["x", "w"], &["z"])],
                vec![build::tensor_value("x", build::FLOAT, &[1, 4])],
                vec![build::tensor_value("z", build::FLOAT, &[1, 4])],
                vec![build::raw_tensor("w", 99, &[1, 4], vec![0; 16])],
            );
            w.write("m.onnx", ptq_onnx::encode(&m));
            args![
                "quantize",
                "--input_model",
                "m.onnx",
                "--enable_float_fallback",
                "--output_model",
                "q.onnx"
            ]
        },
        expect: fails(&["`w`", "element type 99", "export it again"]),
    },
    Case {
        name: "inspect: an empty model file",
        setup: |w| {
            w.write("m.onnx", b"");
            args!["inspect", "m.onnx", "--json"]
        },
        expect: fails(&["m.onnx", "the file is empty", "pass a .onnx file"]),
    },
    Case {
        name: "inspect: the model is a folder",
        setup: |w| {
            w.mkdir("m.onnx");
            args!["inspect", "m.onnx"]
        },
        expect: fails(&["m.onnx", "Is a directory", "check the path"]),
    },
    Case {
        name: "inspect: a model of a future opset",
        setup: |w| {
            w.write("m.onnx", relu_model(|m| m.opset_import = vec![build::opset("", 40)]));
            args!["inspect", "m.onnx"]
        },
        expect: fails(&["m.onnx", "opset 40", "opset 28 or lower"]),
    },
];

/// Overrides and encodings files in every version ptq reads (0.6.1, 1.0.0, 2.0.0).
const ENCODINGS: &[Case] = &[
    Case {
        name: "quantize: 1.0.0 overrides with a syntax error on line 3",
        setup: |w| {
            quantize_with_overrides(w, "{\n  \"version\": \"1.0.0\",\n  \"activation_encodings\": [,]\n}\n")
        },
        expect: fails(&["over.json:3:"]),
    },
    Case {
        name: "convert: 0.6.1 overrides cut short",
        setup: |w| {
            convert_with_overrides(w, "{\"version\": \"0.6.1\", \"activation_encodings\": {\"input\": [")
        },
        expect: fails(&["over.json:1:"]),
    },
    Case {
        name: "evaluate: 2.0.0 overrides with a trailing comma on line 2",
        setup: |w| {
            w.write("over.json", "{\"version\": \"2.0.0\",\n \"encodings\": [],\n}\n");
            let mut args = evaluate_digits(digits_list(w, 2));
            args.extend(args!["--quantization_overrides", "over.json"]);
            args
        },
        expect: fails(&["over.json:3:"]),
    },
    Case {
        name: "quantize: an empty overrides file",
        setup: |w| quantize_with_overrides(w, ""),
        expect: fails(&["over.json:1:", "malformed JSON"]),
    },
    Case {
        name: "quantize: the overrides file does not exist",
        setup: |w| {
            let mut args = quantize_digits(digits_list(w, 2));
            args.extend(args!["--quantization_overrides", "nope.json"]);
            args
        },
        expect: fails(&["nope.json", "--quantization_overrides"]),
    },
    Case {
        name: "convert: overrides that are a JSON list",
        setup: |w| convert_with_overrides(w, "[]"),
        expect: fails(&["over.json", "a JSON object"]),
    },
    Case {
        name: "convert: a JSON object that is no encodings file",
        setup: |w| convert_with_overrides(w, "{\"layers\": {}}"),
        expect: fails(&["over.json", "not an encodings file"]),
    },
    Case {
        name: "quantize: an unknown encodings version",
        setup: |w| quantize_with_overrides(w, "{\"version\": \"3.0.0\", \"encodings\": []}"),
        expect: fails(&["over.json", "3.0.0", "1.0.0"]),
    },
    Case {
        name: "quantize: 1.0.0 with a bitwidth that is a string",
        setup: |w| quantize_with_overrides(w, &v1(r#"{"name": "input", "dtype": "INT", "bw": "eight"}"#)),
        expect: fails(&["over.json", "`input`", "`bw` must be an integer"]),
    },
    Case {
        name: "quantize: 1.0.0 with an unknown tensor",
        setup: |w| quantize_with_overrides(w, &v1(r#"{"name": "relu_1_out", "dtype": "INT", "bw": 8}"#)),
        expect: fails(&["relu_1_out", "relu1_out", "--allow_unknown_override_names"]),
    },
    Case {
        name: "convert: 0.6.1 with an unknown tensor",
        setup: |w| convert_with_overrides(w, &v0("param_encodings", "conv9.weight", r#"{"bitwidth": 8}"#)),
        expect: fails(&["conv9.weight", "--allow_unknown_override_names"]),
    },
    Case {
        name: "quantize: 2.0.0 with an unknown tensor",
        setup: |w| quantize_with_overrides(w, &v2(r#""name": "logit", "output_dtype": "uint8""#)),
        expect: fails(&["logit", "logits"]),
    },
    Case {
        name: "quantize: 1.0.0 bitwidth 3",
        setup: |w| quantize_with_overrides(w, &v1(r#"{"name": "input", "dtype": "INT", "bw": 3}"#)),
        expect: fails(&["over.json", "`input`", "bw 3 is not supported", "2, 4, 8, 16 or 32"]),
    },
    Case {
        name: "convert: 0.6.1 bitwidth 64",
        setup: |w| {
            convert_with_overrides(
                w,
                &v0("activation_encodings", "input", r#"{"bitwidth": 64, "min": 0.0, "max": 1.0}"#),
            )
        },
        expect: fails(&["over.json", "`input`", "bitwidth 64 is not supported", "2, 4, 8, 16 or 32"]),
    },
    Case {
        name: "quantize: 2.0.0 with an unknown output_dtype",
        setup: |w| {
            quantize_with_overrides(w, &v2(r#""name": "input", "output_dtype": "int7", "y_scale": 0.1"#))
        },
        expect: fails(&["over.json", "`input`", "`int7`", "expected int2/4/8/16/32"]),
    },
    Case {
        name: "quantize: 1.0.0 with a negative scale",
        setup: |w| {
            quantize_with_overrides(
                w,
                &v1(r#"{"name": "input", "dtype": "INT", "bw": 8, "is_sym": false,
                        "scale": [-0.01], "offset": [0]}"#),
            )
        },
        expect: fails(&["over.json", "`input`", "scale -0.01", "must be positive"]),
    },
    Case {
        name: "convert: 2.0.0 with a zero scale",
        setup: |w| {
            convert_with_overrides(
                w,
                &v2(r#""name": "input", "output_dtype": "uint8", "y_scale": 0.0, "y_zero_point": 0"#),
            )
        },
        expect: fails(&["over.json", "`input`", "scale 0", "must be positive"]),
    },
    Case {
        name: "quantize: 0.6.1 with min above max",
        setup: |w| {
            quantize_with_overrides(
                w,
                &v0("activation_encodings", "input", r#"{"bitwidth": 8, "min": 1.0, "max": -1.0}"#),
            )
        },
        expect: fails(&["over.json", "`input`", "`min` 1 is greater than `max` -1"]),
    },
    Case {
        name: "quantize: 0.6.1 with min and no max",
        setup: |w| {
            quantize_with_overrides(w, &v0("activation_encodings", "input", r#"{"bitwidth": 8, "min": 0.0}"#))
        },
        expect: fails(&["over.json", "input", "`max`"]),
    },
    Case {
        name: "quantize: 1.0.0 with an 8-bit offset out of range",
        setup: |w| {
            quantize_with_overrides(
                w,
                &v1(r#"{"name": "input", "dtype": "INT", "bw": 8, "is_sym": false,
                        "scale": [0.01], "offset": [-300]}"#),
            )
        },
        expect: fails(&["over.json", "`input`", "offset -300 is outside [-255, 0]"]),
    },
    Case {
        name: "quantize: 1.0.0 naming a tensor twice",
        setup: |w| {
            quantize_with_overrides(
                w,
                &v1(r#"{"name": "input", "dtype": "INT", "bw": 8},
                        {"name": "input", "dtype": "INT", "bw": 16}"#),
            )
        },
        expect: fails(&["over.json", "`input`", "twice"]),
    },
    Case {
        name: "convert: 1.0.0 lists under version 0.6.1",
        setup: |w| {
            convert_with_overrides(
                w,
                "{\"version\": \"0.6.1\", \"activation_encodings\": [{\"name\": \"input\", \"bw\": 8}]}",
            )
        },
        expect: fails(&["over.json", "activation_encodings", "0.6.1"]),
    },
    Case {
        name: "quantize: the 2.0.0 layout under version 1.0.0",
        setup: |w| quantize_with_overrides(w, "{\"version\": \"1.0.0\", \"encodings\": []}"),
        expect: fails(&["over.json", "2.0.0", "1.0.0"]),
    },
    Case {
        name: "convert: 2.0.0 per-channel scales without axis",
        setup: |w| {
            convert_with_overrides(
                w,
                &v2(r#""name": "pwconv.weight", "output_dtype": "int8", "y_scale": [0.1, 0.2]"#),
            )
        },
        expect: fails(&["over.json", "pwconv.weight", "axis"]),
    },
    Case {
        name: "quantize: 0.6.1 per-channel weight with the wrong channel count",
        setup: |w| {
            quantize_with_overrides(w, &v0("param_encodings", "pwconv.weight", &[CHANNEL; 2].join(", ")))
        },
        expect: fails(&["pwconv.weight", "2 per-channel encodings", "channels"]),
    },
    Case {
        name: "quantize: 2.0.0 zero point outside uint8",
        setup: |w| {
            quantize_with_overrides(
                w,
                &v2(r#""name": "input", "output_dtype": "uint8", "y_scale": 0.1, "y_zero_point": 300"#),
            )
        },
        expect: fails(&["over.json", "`input`", "zero point 300", "[0, 255]"]),
    },
    Case {
        name: "convert: 1.0.0 float entry at 8 bits",
        setup: |w| convert_with_overrides(w, &v1(r#"{"name": "input", "dtype": "FLOAT", "bw": 8}"#)),
        expect: fails(&["over.json", "`input`", "float bw 8", "16 or 32"]),
    },
    Case {
        name: "quantize: a version that is a number",
        setup: |w| quantize_with_overrides(w, r#"{"version": 1, "activation_encodings": []}"#),
        expect: fails(&["over.json", "`version` must be a string"]),
    },
    Case {
        name: "quantize: 1.0.0 entry without name",
        setup: |w| quantize_with_overrides(w, &v1(r#"{"dtype": "INT", "bw": 8}"#)),
        expect: fails(&["over.json", "entry 0 of `activation_encodings`", "no `name`"]),
    },
    Case {
        name: "quantize: 1.0.0 symmetric with offset 5",
        setup: |w| {
            quantize_with_overrides(
                w,
                &v1(r#"{"name": "input", "dtype": "INT", "bw": 8, "is_sym": true,
                        "scale": [0.1], "offset": [5]}"#),
            )
        },
        expect: fails(&["over.json", "`input`", "offset 5", "-128"]),
    },
];

/// Flags: usage errors exit 2 and name the flag.
const FLAGS: &[Case] = &[
    Case {
        name: "evaluate: --act_bitwidth 12",
        setup: |w| {
            let mut args = evaluate_digits(digits_list(w, 2));
            args.extend(args!["--act_bitwidth", "12"]);
            args
        },
        expect: usage(&["--act_bitwidth", "12", "8, 16"]),
    },
    Case {
        name: "convert: --float_bitwidth 8",
        setup: |_| {
            args![
                "convert",
                "--input_network",
                model("digits_cnn"),
                "--output_path",
                "c.onnx",
                "--float_bitwidth",
                "8"
            ]
        },
        expect: usage(&["--float_bitwidth", "16, 32"]),
    },
    Case {
        name: "convert: an unknown --export_format",
        setup: |_| {
            args![
                "convert",
                "--input_network",
                model("digits_cnn"),
                "--output_path",
                "c.onnx",
                "--export_format",
                "tflite"
            ]
        },
        expect: usage(&["--export_format", "tflite", "stripped"]),
    },
    Case {
        name: "convert: --output_path missing",
        setup: |_| args!["convert", "--input_network", model("digits_cnn")],
        expect: usage(&["--output_path"]),
    },
    Case {
        name: "convert: the output is the input",
        setup: |w| {
            w.write("m.onnx", chain_model(&[("Relu", "relu1")]));
            args!["convert", "--input_network", "m.onnx", "--output_path", "./m.onnx"]
        },
        expect: usage(&[
            "./m.onnx, written for --output_path, is the --input_network file",
            "another --output_path",
        ]),
    },
    Case {
        name: "evaluate: --quantization_overrides with --ignore_quantization_overrides",
        setup: |w| {
            w.write("over.json", "{\"version\": \"1.0.0\", \"activation_encodings\": []}");
            let mut args = evaluate_digits(digits_list(w, 2));
            args.extend(args!["--quantization_overrides", "over.json", "--ignore_quantization_overrides"]);
            args
        },
        expect: usage(&["--quantization_overrides", "--ignore_quantization_overrides"]),
    },
    Case {
        name: "evaluate: --percentile_calibration_value 101",
        setup: |w| {
            let mut args = evaluate_digits(digits_list(w, 2));
            args.extend(args![
                "--act_quantizer_calibration",
                "percentile",
                "--percentile_calibration_value",
                "101"
            ]);
            args
        },
        expect: usage(&["--percentile_calibration_value", "101", "[90, 100]"]),
    },
    Case {
        name: "quantize: --smoothquant_alpha without --smoothquant",
        setup: |w| {
            let mut args = quantize_digits(digits_list(w, 2));
            args.extend(args!["--smoothquant_alpha", "0.5"]);
            args
        },
        expect: usage(&["--smoothquant_alpha", "--smoothquant"]),
    },
    Case {
        name: "quantize: --smoothquant_alpha 2",
        setup: |w| {
            let mut args = quantize_digits(digits_list(w, 2));
            args.extend(args!["--smoothquant", "--smoothquant_alpha", "2"]);
            args
        },
        expect: usage(&["--smoothquant_alpha", "[0, 1]"]),
    },
    Case {
        name: "evaluate: --top 0",
        setup: |w| {
            let mut args = evaluate_digits(digits_list(w, 2));
            args.extend(args!["--top", "0"]);
            args
        },
        expect: usage(&["--top", "0"]),
    },
    Case {
        name: "run: --onnx_override_batch 0",
        setup: |w| {
            let mut args = run_digits(digits_list(w, 1));
            args.extend(args!["--onnx_override_batch", "0"]);
            args
        },
        expect: usage(&["--onnx_override_batch", "0"]),
    },
    Case {
        name: "quantize: --act_quantizer adjusted",
        setup: |w| {
            let mut args = quantize_digits(digits_list(w, 2));
            args.extend(args!["--act_quantizer", "adjusted"]);
            args
        },
        expect: usage(&["--act_quantizer adjusted", "--param_quantizer adjusted"]),
    },
    Case {
        name: "quantize: --restrict_quantization_steps wider than 8-bit weights",
        setup: |w| {
            let mut args = quantize_digits(digits_list(w, 2));
            args.extend(args!["--restrict_quantization_steps", "-0x8000 0x7FFF"]);
            args
        },
        expect: usage(&["--restrict_quantization_steps", "8-bit", "--weights_bitwidth"]),
    },
    Case {
        name: "evaluate: --preserve_io_datatype names no input or output",
        setup: |w| {
            let mut args = evaluate_digits(digits_list(w, 2));
            args.extend(args!["--preserve_io_datatype", "pixels"]);
            args
        },
        expect: usage(&["--preserve_io_datatype", "`pixels`", "input"]),
    },
    Case {
        name: "inspect: --onnx_define_symbol of a symbol no input has",
        setup: |_| args!["inspect", model("digits_cnn"), "--onnx_define_symbol", "batch", "1"],
        expect: fails(&["--onnx_define_symbol", "batch"]),
    },
    Case {
        name: "convert: --input_dimensions contradicting a fixed dimension",
        setup: |_| {
            args![
                "convert",
                "--input_network",
                model("digits_cnn"),
                "--output_path",
                "c.onnx",
                "--input_dimensions",
                "input=1,1,4,16"
            ]
        },
        expect: fails(&["'input'", "[1,1,4,16]", "[1,1,8,8]"]),
    },
    Case {
        name: "run: -s with one value",
        setup: |w| {
            let mut args = run_digits(digits_list(w, 1));
            args.extend(args!["-s", "input"]);
            args
        },
        expect: usage(&["--source_model_input_shape"]),
    },
    Case {
        name: "inspect: an unknown flag",
        setup: |_| args!["inspect", model("digits_cnn"), "--jsn"],
        expect: usage(&["--jsn", "--json"]),
    },
    Case {
        name: "evaluate: neither mode",
        setup: |w| {
            let list = digits_list(w, 2);
            args!["evaluate", "--input_list", list, "--output_dir", "ev"]
        },
        expect: usage(&["--float_model", "--input_model"]),
    },
    Case {
        name: "quantize: --float_bias_bitwidth 8",
        setup: |w| {
            let mut args = quantize_digits(digits_list(w, 2));
            args.extend(args!["--float_bias_bitwidth", "8"]);
            args
        },
        expect: usage(&["--float_bias_bitwidth", "16, 32"]),
    },
    Case {
        name: "quantize: --encoding_version 2.0.0",
        setup: |w| {
            let mut args = quantize_digits(digits_list(w, 2));
            args.extend(args!["--encoding_version", "2.0.0", "--dump_encoding_json"]);
            args
        },
        expect: usage(&["--encoding_version", "2.0.0", "1.0.0"]),
    },
    Case {
        name: "evaluate: --top that is no number",
        setup: |w| {
            let mut args = evaluate_digits(digits_list(w, 2));
            args.extend(args!["--top", "abc"]);
            args
        },
        expect: usage(&["--top", "abc"]),
    },
    Case {
        name: "inspect: --onnx_define_symbol with a value that is no number",
        setup: |_| args!["inspect", model("minilm_l3"), "--onnx_define_symbol", "batch_size", "x"],
        expect: fails(&["--onnx_define_symbol batch_size x", "whole number"]),
    },
    Case {
        name: "quantize: --output_model is the input list",
        setup: |w| quantize_digits_into(digits_list(w, 2), "list.txt"),
        expect: usage(&["list.txt, written for --output_model, is the --input_list file"]),
    },
    Case {
        name: "quantize: the dumped encodings would replace the overrides",
        setup: |w| {
            w.write("q_encoding.json", v1(r#"{"name": "input", "dtype": "INT", "bw": 16}"#));
            let mut args = quantize_digits(digits_list(w, 2));
            args.extend(args!["--quantization_overrides", "q_encoding.json", "--dump_encoding_json"]);
            args
        },
        expect: usage(&["q_encoding.json, written for --output_model, is the --quantization_overrides file"]),
    },
    Case {
        name: "quantize: the report would replace the input list",
        setup: |w| {
            w.list("q_report.json", &zoo_lines("digits_cnn", "eval.txt", 2));
            quantize_digits("q_report.json")
        },
        expect: usage(&["q_report.json, written for --output_model, is the --input_list file"]),
    },
    Case {
        name: "convert: the output is the overrides file",
        setup: |w| {
            w.write("over.json", v1(r#"{"name": "input", "dtype": "INT", "bw": 16}"#));
            args![
                "convert",
                "--input_network",
                model("digits_cnn"),
                "--quantization_overrides",
                "over.json",
                "--output_path",
                "over.json"
            ]
        },
        expect: usage(&["over.json, written for --output_path, is the --quantization_overrides file"]),
    },
];

/// Where outputs cannot go, and inputs that are not files.
const FILE_SYSTEM: &[Case] = &[
    Case {
        name: "quantize: the output model under a regular file",
        setup: |w| {
            w.write("file", "I am a file\n");
            quantize_digits_into(digits_list(w, 2), "file/q.onnx")
        },
        expect: fails(&[
            "--output_model file/q.onnx",
            "file is a file, not a folder",
            "choose a path in a folder",
        ]),
    },
    Case {
        name: "quantize: the output model is a folder",
        setup: |w| {
            w.mkdir("q.onnx");
            quantize_digits(digits_list(w, 2))
        },
        expect: fails(&["--output_model q.onnx is a folder", "path of the .onnx file"]),
    },
    Case {
        name: "convert: the output is a folder",
        setup: |w| {
            w.mkdir("c.onnx");
            args!["convert", "--input_network", model("digits_cnn"), "--output_path", "c.onnx"]
        },
        expect: fails(&["--output_path c.onnx is a folder", "path of the .onnx file"]),
    },
    Case {
        name: "evaluate: the output folder is a file",
        setup: |w| {
            w.write("ev", "I am a file\n");
            evaluate_digits(digits_list(w, 2))
        },
        expect: fails(&["--output_dir ev is a file", "another --output_dir"]),
    },
    Case {
        name: "run: the output folder is a file",
        setup: |w| {
            w.write("out", "I am a file\n");
            run_digits(digits_list(w, 2))
        },
        expect: fails(&["--output_dir out is a file", "another --output_dir"]),
    },
    Case {
        name: "convert: the input model is a folder",
        setup: |w| {
            w.mkdir("m.onnx");
            args!["convert", "--input_network", "m.onnx", "--output_path", "c.onnx"]
        },
        expect: fails(&["m.onnx", "Is a directory", "check the path"]),
    },
    Case {
        name: "quantize: a failing run into a missing folder leaves no folder",
        setup: |w| {
            w.write("x.raw", f32_raw(&[0.5; 10]));
            w.list("l.txt", &["x.raw"]);
            let mut args = quantize_digits_into("l.txt", "new/sub/q.onnx");
            args.push("--dump_encoding_json".into());
            args
        },
        expect: fails(&["l.txt:1", "x.raw"]),
    },
    Case {
        name: "evaluate: a bad sample late in the list leaves no folder",
        setup: |w| {
            let mut lines = zoo_lines("digits_cnn", "eval.txt", 12);
            w.write("x.raw", f32_raw(&[0.5; 10]));
            lines.push("x.raw".into());
            w.list("l.txt", &lines);
            let mut args = evaluate_digits(digits_list(w, 2));
            args.extend(args!["--eval_list", "l.txt"]);
            args
        },
        expect: fails(&["l.txt:13", "x.raw"]),
    },
];

/// Ctrl-C while a run waits for its last sample: exit 130, nothing left behind.
const INTERRUPTS: &[Case] = &[
    Case {
        name: "run: Ctrl-C with results staged",
        setup: |w| {
            let mut lines = zoo_lines("digits_cnn", "eval.txt", 16);
            lines.push("late.npy".into());
            w.list("l.txt", &lines);
            fifo(w, "late.npy");
            run_digits("l.txt")
        },
        expect: Expect::Interrupted { fifo: "late.npy" },
    },
    Case {
        name: "quantize: Ctrl-C while calibrating",
        setup: |w| {
            let mut lines = zoo_lines("digits_cnn", "calib.txt", 8);
            lines.push("late.npy".into());
            w.list("l.txt", &lines);
            fifo(w, "late.npy");
            let mut args = quantize_digits("l.txt");
            args.push("--dump_encoding_json".into());
            args
        },
        expect: Expect::Interrupted { fifo: "late.npy" },
    },
    Case {
        name: "evaluate: Ctrl-C while evaluating",
        setup: |w| {
            let mut lines = zoo_lines("digits_cnn", "eval.txt", 8);
            lines.push("late.npy".into());
            w.list("l.txt", &lines);
            fifo(w, "late.npy");
            let mut args = evaluate_digits(digits_list(w, 4));
            args.extend(args!["--eval_list", "l.txt"]);
            args
        },
        expect: Expect::Interrupted { fifo: "late.npy" },
    },
    Case {
        name: "convert: Ctrl-C while reading the model",
        setup: |w| {
            fifo(w, "m.onnx");
            args!["convert", "--input_network", "m.onnx", "--output_path", "c.onnx"]
        },
        expect: Expect::Interrupted { fifo: "m.onnx" },
    },
    Case {
        name: "inspect: Ctrl-C while reading the model",
        setup: |w| {
            fifo(w, "m.onnx");
            args!["inspect", "m.onnx", "--json"]
        },
        expect: Expect::Interrupted { fifo: "m.onnx" },
    },
];

// ---- the runner -------------------------------------------------------------------------------

/// What a scratch folder holds: every path under it with the bytes of regular files (folders and
/// pipes as `None`).
type Snapshot = BTreeMap<PathBuf, Option<Vec<u8>>>;

fn snapshot(root: &Path) -> Snapshot {
    let mut out = Snapshot::new();
    let mut todo = vec![root.to_owned()];
    while let Some(dir) = todo.pop() {
        for entry in fs::read_dir(&dir).expect("read scratch folder") {
            let path = entry.expect("dir entry").path();
            let kind = fs::symlink_metadata(&path).expect("stat").file_type();
            let rel = path.strip_prefix(root).expect("under the root").to_owned();
            if kind.is_dir() {
                todo.push(path);
                out.insert(rel, None);
            } else if kind.is_file() {
                out.insert(rel, Some(fs::read(&path).expect("read scratch file")));
            } else {
                out.insert(rel, None);
            }
        }
    }
    out
}

/// How `after` differs from `before`, in words (empty: identical).
fn changes(before: &Snapshot, after: &Snapshot) -> Vec<String> {
    let mut out = Vec::new();
    for (path, content) in after {
        match before.get(path) {
            None => out.push(format!("wrote {}", path.display())),
            Some(old) if old != content => out.push(format!("changed the input {}", path.display())),
            Some(_) => {}
        }
    }
    out.extend(before.keys().filter(|p| !after.contains_key(*p)).map(|p| format!("removed {}", p.display())));
    out
}

/// What is wrong with one case's outcome (empty: it passed).
fn check(case: &Case) -> Vec<String> {
    let mut work = Work::new();
    let args = (case.setup)(&mut work);
    let before = snapshot(&work.path(""));
    let (code, err) = match case.expect {
        Expect::Fails { .. } => {
            let out = work.ptq().args(&args).timeout(Duration::from_secs(60)).output().expect("start ptq");
            (out.status.code(), stderr(&out))
        }
        Expect::Interrupted { fifo } => interrupt(&work, &args, fifo),
    };
    let mut problems = Vec::new();
    let wanted = match case.expect {
        Expect::Fails { code, .. } => code,
        Expect::Interrupted { .. } => 130,
    };
    if code != Some(wanted) {
        problems.push(format!("exit {code:?}, expected {wanted}"));
    }
    if let Expect::Fails { stderr: fragments, .. } = case.expect {
        if !err.contains("error:") {
            problems.push("no `error:` line".into());
        }
        for f in fragments.iter().filter(|f| !err.contains(**f)) {
            problems.push(format!("stderr lacks `{f}`"));
        }
    }
    for p in ["panicked", "RUST_BACKTRACE", "stack backtrace"].iter().filter(|p| err.contains(**p)) {
        problems.push(format!("stderr has `{p}`"));
    }
    problems.extend(changes(&before, &snapshot(&work.path(""))));
    if !problems.is_empty() {
        problems.push(format!("stderr was:\n{}", err.trim_end()));
    }
    problems
}

/// Starts `ptq args`, waits until it opens the pipe `fifo` (its last sample), holds the pipe open
/// without writing so the run stays blocked, and sends SIGINT. Returns the exit code and stderr.
fn interrupt(work: &Work, args: &[OsString], fifo: &str) -> (Option<i32>, String) {
    use std::process::{Command, Stdio};
    use std::sync::mpsc;
    let mut child = Command::new(env!("CARGO_BIN_EXE_ptq"))
        .args(args)
        .current_dir(work.path(""))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ptq");
    // Opening a pipe for writing blocks until a reader opens it: ptq reaching the sample.
    let pipe = work.path(fifo);
    let (tx, rx) = mpsc::channel();
    let opener = std::thread::spawn({
        let pipe = pipe.clone();
        move || {
            let writer = fs::OpenOptions::new().write(true).open(&pipe);
            let _ = tx.send(());
            writer
        }
    });
    let start = Instant::now();
    let reached = loop {
        if rx.try_recv().is_ok() {
            break true;
        }
        let exited = child.try_wait().expect("poll ptq").is_some();
        if exited || start.elapsed() > Duration::from_secs(60) {
            break false;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    if !reached {
        // ptq never read the pipe: open its read end ourselves to release the opener.
        let _ = fs::File::open(&pipe);
    }
    let writer = opener.join().expect("opener thread");
    let sent = Instant::now();
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill -INT");
    let out = child.wait_with_output().expect("wait for ptq");
    drop(writer);
    let mut err = String::from_utf8_lossy(&out.stderr).into_owned();
    if !reached {
        err.push_str("\n(the run never opened the pipe)");
    }
    if sent.elapsed() > Duration::from_secs(10) {
        err.push_str("\n(the run took over 10 s to stop)");
    }
    (out.status.code(), err)
}

#[test]
fn every_bad_input_is_refused_cleanly() {
    let tables = [INPUT_LISTS, DATA_FILES, ONNX_FILES, ENCODINGS, FLAGS, FILE_SYSTEM, INTERRUPTS];
    let cases: Vec<&Case> = tables.iter().flat_map(|t| t.iter()).collect();
    let mut names = std::collections::BTreeSet::new();
    for case in &cases {
        assert!(names.insert(case.name), "two cases are named `{}`", case.name);
    }
    assert!(cases.len() >= 60, "issue 16 asks for at least 60 bad inputs, the table has {}", cases.len());
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|case| {
            let problems = check(case);
            (!problems.is_empty()).then(|| format!("{}:\n  {}", case.name, problems.join("\n  ")))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}
