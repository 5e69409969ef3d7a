//! `ptq run` refusing bad input (DESIGN.md Decisions 6 and 13): exit 1 (2 for usage errors), an
//! `error:` line on stderr that names the culprit and says what to do, and nothing written.

mod common;

use std::fs;

use common::*;
use predicates::prelude::*;
use predicates::str::contains;

/// A list of one digits sample, by absolute path.
fn digits_list(work: &mut Work) -> std::path::PathBuf {
    work.list("list.txt", &zoo_lines("digits_cnn", "eval.txt", 1))
}

// ---- model file ----

#[test]
fn missing_model_file() {
    let mut work = Work::new();
    let list = digits_list(&mut work);
    work.run(&work.path("nope.onnx"), &list)
        .assert()
        .code(1)
        .stderr(contains("error:").and(contains("nope.onnx")).and(contains("No such file")));
    work.assert_nothing_written();
}

/// The OS message appears twice: ptq-onnx's `Error::Read` prints `{source}` in its own message
/// *and* exposes it as `source()`, and main.rs joins the whole chain.
#[test]
fn missing_model_file_message_is_not_repeated() {
    let mut work = Work::new();
    let list = digits_list(&mut work);
    let out = work.run(&work.path("nope.onnx"), &list).assert().code(1).get_output().clone();
    let err = stderr(&out);
    assert_eq!(err.matches("os error 2").count(), 1, "{err}");
}

#[test]
fn text_file_named_model_onnx_is_not_onnx() {
    let mut work = Work::new();
    let list = digits_list(&mut work);
    let model = work.write("model.onnx", "this is not a model\n");
    work.run(&model, &list)
        .assert()
        .code(1)
        .stderr(contains("error:").and(contains("model.onnx")).and(contains("not an ONNX model")));
    work.assert_nothing_written();
}

#[test]
fn truncated_onnx_is_refused() {
    let mut work = Work::new();
    let list = digits_list(&mut work);
    let bytes = fs::read(model("digits_cnn")).unwrap();
    let model = work.write("half.onnx", &bytes[..bytes.len() / 2]);
    work.run(&model, &list)
        .assert()
        .code(1)
        .stderr(contains("error:").and(contains("half.onnx")).and(contains("truncated or corrupt")));
    work.assert_nothing_written();
}

#[test]
fn unsupported_operator_fails_listing_op_and_node() {
    let mut work = Work::new();
    let model = work.write("foobar.onnx", foobar_model());
    work.write("x.raw", f32_raw(&[1.0, -2.0, 3.0, -4.0]));
    let list = work.list("list.txt", &["x.raw"]);
    work.run(&model, &list)
        .assert()
        .code(1)
        .stderr(contains("error:").and(contains("FooBar")).and(contains("foo1")).and(contains("cannot run")));
    work.assert_nothing_written();
}

/// One error lists every unsupported operator type with all its nodes.
#[test]
fn several_unsupported_operators_in_one_error() {
    let mut work = Work::new();
    let model = work.write(
        "m.onnx",
        chain_model(&[("FooBar", "foo1"), ("Relu", "relu1"), ("BazQux", "baz1"), ("FooBar", "foo2")]),
    );
    work.write("x.raw", f32_raw(&[1.0, -2.0, 3.0, -4.0]));
    let list = work.list("list.txt", &["x.raw"]);
    let out = work.run(&model, &list).assert().code(1).get_output().clone();
    let err = stderr(&out);
    assert_eq!(err.matches("error:").count(), 1, "one error: {err}");
    assert_eq!(err.lines().count(), 3, "one line per operator type: {err}");
    for s in ["BazQux", "baz1", "FooBar", "foo1", "foo2"] {
        assert!(err.contains(s), "{s} missing in: {err}");
    }
    assert!(!err.contains("relu1"), "{err}");
    work.assert_nothing_written();
}

/// A model whose operators all run: the chain helper itself is sound.
#[test]
fn chain_model_of_known_operators_runs() {
    let mut work = Work::new();
    let model = work.write("m.onnx", chain_model(&[("Relu", "relu1"), ("Neg", "neg1")]));
    work.write("x.raw", f32_raw(&[1.0, -2.0, 3.0, -4.0]));
    let list = work.list("list.txt", &["x.raw"]);
    work.run(&model, &list).assert().success();
    assert_eq!(read_f32(&work.out().join("Result_0/z.raw")), [-1.0, 0.0, -3.0, 0.0]);
}

// ---- input list ----

#[test]
fn missing_list_file() {
    let work = Work::new();
    work.run(&model("digits_cnn"), &work.path("nope.txt"))
        .assert()
        .code(1)
        .stderr(contains("error:").and(contains("nope.txt")).and(contains("--input_list")));
    work.assert_nothing_written();
}

#[test]
fn list_of_blank_lines_has_no_samples() {
    let mut work = Work::new();
    let list = work.list("empty.txt", &["", "   ", ""]);
    work.run(&model("digits_cnn"), &list)
        .assert()
        .code(1)
        .stderr(contains("error:").and(contains("empty.txt")).and(contains("no samples")));
    work.assert_nothing_written();
}

#[test]
fn too_few_inputs_on_a_line_names_file_and_line() {
    let mut work = Work::new();
    let silero = models().join("silero_vad_16k");
    let full = zoo_lines("silero_vad_16k", "eval.txt", 1).remove(0);
    let one = format!("input:={}", silero.join("eval/001_input.raw").display());
    let list = work.list("s.txt", &[full, one]);
    work.run(&model("silero_vad_16k"), &list)
        .assert()
        .code(1)
        .stderr(contains("error:").and(contains("s.txt:2")).and(contains("input, state")));
    work.assert_nothing_written();
}

#[test]
fn too_many_inputs_on_a_line_names_file_and_line() {
    let mut work = Work::new();
    let a = zoo_file("digits_cnn", "eval/000.raw");
    let list = work.list("two.txt", &[format!("{} {}", a.display(), a.display())]);
    work.run(&model("digits_cnn"), &list)
        .assert()
        .code(1)
        .stderr(contains("error:").and(contains("two.txt:1")).and(contains("the model has 1")));
    work.assert_nothing_written();
}

#[test]
fn unknown_input_name_lists_the_model_inputs() {
    let mut work = Work::new();
    let a = zoo_file("digits_cnn", "eval/000.raw");
    let list = work.list("u.txt", &[format!("bogus:={}", a.display())]);
    work.run(&model("digits_cnn"), &list).assert().code(1).stderr(
        contains("error:")
            .and(contains("u.txt:1"))
            .and(contains("'bogus'"))
            .and(contains("inputs are: input")),
    );
    work.assert_nothing_written();
}

#[test]
fn missing_data_file_names_both_paths_tried() {
    let mut work = Work::new();
    let list = work.list("lists/l.txt", &["data/missing.raw"]);
    work.run(&model("digits_cnn"), &list).assert().code(1).stderr(
        contains("error:")
            .and(contains("l.txt:1"))
            .and(contains(format!("lists{}data", std::path::MAIN_SEPARATOR)))
            .and(contains("missing.raw")),
    );
    work.assert_nothing_written();
}

#[test]
fn hash_line_after_a_sample_is_out_of_place() {
    let mut work = Work::new();
    let mut lines = zoo_lines("digits_cnn", "eval.txt", 1);
    lines.push("#conv1".into());
    let list = work.list("late.txt", &lines);
    work.run(&model("digits_cnn"), &list)
        .assert()
        .code(1)
        .stderr(contains("error:").and(contains("late.txt:2")).and(contains("'#'")));
    work.assert_nothing_written();
}

#[test]
fn hash_line_naming_a_missing_node() {
    let mut work = Work::new();
    let mut lines = vec!["#no_such_node".to_owned()];
    lines.extend(zoo_lines("digits_cnn", "eval.txt", 1));
    let list = work.list("h.txt", &lines);
    work.run(&model("digits_cnn"), &list)
        .assert()
        .code(1)
        .stderr(contains("error:").and(contains("h.txt")).and(contains("`no_such_node`")));
    work.assert_nothing_written();
}

#[test]
fn percent_line_naming_a_missing_tensor() {
    let mut work = Work::new();
    let mut lines = vec!["%no_such_tensor".to_owned()];
    lines.extend(zoo_lines("digits_cnn", "eval.txt", 1));
    let list = work.list("p.txt", &lines);
    work.run(&model("digits_cnn"), &list)
        .assert()
        .code(1)
        .stderr(contains("error:").and(contains("p.txt")).and(contains("`no_such_tensor`")));
    work.assert_nothing_written();
}

// ---- data files ----

#[test]
fn raw_file_of_wrong_size_says_both_sizes() {
    let mut work = Work::new();
    work.write("short.raw", vec![0u8; 200]);
    let list = work.list("l.txt", &["short.raw"]);
    work.run(&model("digits_cnn"), &list).assert().code(1).stderr(
        contains("error:")
            .and(contains("l.txt:1"))
            .and(contains("short.raw"))
            .and(contains("200 bytes"))
            .and(contains("expected 256"))
            .and(contains("[1,1,8,8]")),
    );
    work.assert_nothing_written();
}

/// A bad sample late in the list: the run has started writing (staged), and must still leave
/// nothing behind.
#[test]
fn bad_sample_late_in_the_list_leaves_nothing() {
    let mut work = Work::new();
    work.write("short.raw", vec![0u8; 252]);
    let mut lines = zoo_lines("digits_cnn", "eval.txt", 50);
    lines.push("short.raw".into());
    lines.extend(zoo_lines("digits_cnn", "eval.txt", 3));
    let list = work.list("l.txt", &lines);
    work.run(&model("digits_cnn"), &list)
        .assert()
        .code(1)
        .stderr(contains("l.txt:51").and(contains("252 bytes")).and(contains("expected 256")));
    work.assert_nothing_written();
}

/// The same into an existing output folder: what was there stays, nothing is added.
#[test]
fn failed_run_leaves_an_existing_output_dir_untouched() {
    let mut work = Work::new();
    work.write("short.raw", vec![0u8; 252]);
    work.write("out/Result_0/old.raw", b"old");
    let mut lines = zoo_lines("digits_cnn", "eval.txt", 20);
    lines.push("short.raw".into());
    let list = work.list("l.txt", &lines);
    work.run(&model("digits_cnn"), &list).assert().code(1).stderr(contains("l.txt:21"));
    assert_eq!(names_in(&work.out()), ["Result_0".to_owned()].into());
    assert_eq!(names_in(&work.out().join("Result_0")), ["old.raw".to_owned()].into());
    assert_eq!(fs::read(work.out().join("Result_0/old.raw")).unwrap(), b"old");
}

#[test]
fn nan_in_data_fails_with_the_count_and_the_flag() {
    let mut work = Work::new();
    let mut values = vec![0.5f32; 64];
    values[0] = f32::NAN;
    values[5] = f32::NEG_INFINITY;
    values[63] = f32::NAN;
    work.write("nan.raw", f32_raw(&values));
    let list = work.list("l.txt", &["nan.raw"]);
    work.run(&model("digits_cnn"), &list).assert().code(1).stderr(
        contains("error:")
            .and(contains("l.txt:1"))
            .and(contains("nan.raw"))
            .and(contains("3 NaN/Inf"))
            .and(contains("--allow_nonfinite")),
    );
    work.assert_nothing_written();
}

#[test]
fn npy_of_wrong_dtype_for_int64_input() {
    let mut work = Work::new();
    work.write("ids.npy", npy("<f8", &[1, 64], &f64_bytes(&[1.0; 64])));
    let mask = zoo_file("minilm_l3", "eval/000_attention_mask.npy");
    let list = work.list("m.txt", &[format!("input_ids:=ids.npy attention_mask:={}", mask.display())]);
    work.run(&model("minilm_l3"), &list).assert().code(1).stderr(
        contains("error:")
            .and(contains("m.txt:1"))
            .and(contains("input_ids"))
            .and(contains("ids.npy"))
            .and(contains("float64"))
            .and(contains("int64")),
    );
    work.assert_nothing_written();
}

#[test]
fn npy_of_wrong_shape_for_fixed_dims() {
    let mut work = Work::new();
    // Same element count as [1,1,8,8], other shape.
    work.write("x.npy", npy("<f4", &[1, 1, 4, 16], &f32_raw(&[0.5; 64])));
    let list = work.list("l.txt", &["x.npy"]);
    work.run(&model("digits_cnn"), &list).assert().code(1).stderr(
        contains("error:")
            .and(contains("l.txt:1"))
            .and(contains("x.npy"))
            .and(contains("[1,1,4,16]"))
            .and(contains("[1,1,8,8]")),
    );
    work.assert_nothing_written();
}

#[test]
fn npy_of_wrong_rank_for_symbolic_dims() {
    let mut work = Work::new();
    work.write("ids.npy", npy("<i8", &[64], &i64_bytes(&[1; 64])));
    let mask = zoo_file("minilm_l3", "eval/000_attention_mask.npy");
    let list = work.list("m.txt", &[format!("input_ids:=ids.npy attention_mask:={}", mask.display())]);
    work.run(&model("minilm_l3"), &list)
        .assert()
        .code(1)
        .stderr(contains("error:").and(contains("input_ids")).and(contains("ids.npy")).and(contains("[64]")));
    work.assert_nothing_written();
}

/// Decision 13: the culprit is named by file:line. The rank error above names the .npy but not
/// the list line it came from.
#[test]
fn npy_of_wrong_rank_names_the_list_line() {
    let mut work = Work::new();
    work.write("ids.npy", npy("<i8", &[64], &i64_bytes(&[1; 64])));
    let mask = zoo_file("minilm_l3", "eval/000_attention_mask.npy");
    let list = work.list("m.txt", &[format!("input_ids:=ids.npy attention_mask:={}", mask.display())]);
    work.run(&model("minilm_l3"), &list).assert().code(1).stderr(contains("m.txt:1"));
    work.assert_nothing_written();
}

/// `input_ids` and `attention_mask` share the symbolic dims `batch_size` and `sequence_length`;
/// .npy files that bind `sequence_length` to 32 and 64 cannot both be right.
#[test]
fn npy_shapes_that_disagree_on_a_shared_symbolic_dim() {
    let mut work = Work::new();
    work.write("ids.npy", npy("<i8", &[1, 32], &i64_bytes(&[1; 32])));
    let mask = zoo_file("minilm_l3", "eval/000_attention_mask.npy");
    let list = work.list("m.txt", &[format!("input_ids:=ids.npy attention_mask:={}", mask.display())]);
    work.run(&model("minilm_l3"), &list)
        .assert()
        .code(1)
        .stderr(contains("m.txt:1").and(contains("sequence_length")).and(contains("ids.npy")));
    work.assert_nothing_written();
}

/// As above for `batch_size`: [2,64] against [1,64] is even accepted (exit 0).
#[test]
fn npy_shapes_that_disagree_on_batch_size() {
    let mut work = Work::new();
    work.write("ids.npy", npy("<i8", &[2, 64], &i64_bytes(&[1; 128])));
    let mask = zoo_file("minilm_l3", "eval/000_attention_mask.npy");
    let list = work.list("m.txt", &[format!("input_ids:=ids.npy attention_mask:={}", mask.display())]);
    work.run(&model("minilm_l3"), &list)
        .assert()
        .code(1)
        .stderr(contains("m.txt:1").and(contains("batch_size")));
    work.assert_nothing_written();
}

#[test]
fn npy_float32_with_fractions_for_int64_input() {
    let mut work = Work::new();
    work.write("ids.npy", npy("<f4", &[1, 64], &f32_raw(&[1.5; 64])));
    let mask = zoo_file("minilm_l3", "eval/000_attention_mask.npy");
    let list = work.list("m.txt", &[format!("input_ids:=ids.npy attention_mask:={}", mask.display())]);
    work.run(&model("minilm_l3"), &list).assert().code(1).stderr(
        contains("m.txt:1").and(contains("input_ids")).and(contains("1.5")).and(contains("whole number")),
    );
    work.assert_nothing_written();
}

// ---- output folder ----

#[test]
fn output_dir_under_a_regular_file() {
    let mut work = Work::new();
    let list = digits_list(&mut work);
    work.write("file", "I am a file\n");
    work.run_into(&model("digits_cnn"), &list, &work.path("file/out"))
        .assert()
        .code(1)
        .stderr(contains("error:").and(contains("file/out")));
    work.assert_nothing_written();
    assert!(work.path("file").is_file());
}

// ---- shapes and flags ----

#[test]
fn unbound_symbolic_dims_list_the_input_and_the_flag() {
    let mut work = Work::new();
    let list = work.list("l.txt", &zoo_lines("ppocr_cls", "eval.txt", 1));
    work.run(&model("ppocr_cls"), &list).assert().code(1).stderr(
        contains("error:")
            .and(contains("x float32 [?,3,?,?]"))
            .and(contains("unbound"))
            .and(contains("--input_dimensions")),
    );
    work.assert_nothing_written();
}

#[test]
fn malformed_input_dimensions_value() {
    let mut work = Work::new();
    let list = work.list("l.txt", &zoo_lines("ppocr_cls", "eval.txt", 1));
    work.run(&model("ppocr_cls"), &list)
        .args(["--input_dimensions", "x=1,3,a,192"])
        .assert()
        .code(1)
        .stderr(contains("error:").and(contains("--input_dimensions")).and(contains("'a'")));
    work.assert_nothing_written();
}

#[test]
fn input_dimensions_without_equals_sign() {
    let mut work = Work::new();
    let list = work.list("l.txt", &zoo_lines("ppocr_cls", "eval.txt", 1));
    work.run(&model("ppocr_cls"), &list)
        .args(["--input_dimensions", "1,3,48,192"])
        .assert()
        .code(1)
        .stderr(contains("error:").and(contains("--input_dimensions")).and(contains("name=d0,d1")));
    work.assert_nothing_written();
}

#[test]
fn input_dimensions_for_an_unknown_input() {
    let mut work = Work::new();
    let list = work.list("l.txt", &zoo_lines("ppocr_cls", "eval.txt", 1));
    work.run(&model("ppocr_cls"), &list)
        .args(["--input_dimensions", "y=1,3,48,192"])
        .assert()
        .code(1)
        .stderr(contains("error:").and(contains("'y'")).and(contains("inputs are: x")));
    work.assert_nothing_written();
}

#[test]
fn input_dimensions_of_wrong_rank() {
    let mut work = Work::new();
    let list = work.list("l.txt", &zoo_lines("ppocr_cls", "eval.txt", 1));
    work.run(&model("ppocr_cls"), &list).args(["--input_dimensions", "x=1,3,48"]).assert().code(1).stderr(
        contains("error:")
            .and(contains("--input_dimensions"))
            .and(contains("[1,3,48]"))
            .and(contains("[?,3,?,?]")),
    );
    work.assert_nothing_written();
}

#[test]
fn input_dimensions_contradicting_a_fixed_dim() {
    let mut work = Work::new();
    let list = digits_list(&mut work);
    work.run(&model("digits_cnn"), &list)
        .args(["--input_dimensions", "input=1,1,4,16"])
        .assert()
        .code(1)
        .stderr(
            contains("error:")
                .and(contains("'input'"))
                .and(contains("[1,1,4,16]"))
                .and(contains("[1,1,8,8]")),
        );
    work.assert_nothing_written();
}

#[test]
fn input_dimensions_given_twice_for_one_input() {
    let mut work = Work::new();
    let list = digits_list(&mut work);
    work.run(&model("digits_cnn"), &list)
        .args(["--input_dimensions", "input=1,1,8,8", "--input_dimensions", "input=1,1,8,8"])
        .assert()
        .code(1)
        .stderr(contains("error:").and(contains("--input_dimensions")).and(contains("twice")));
    work.assert_nothing_written();
}

#[test]
fn batch_from_input_dimensions_checks_the_file_size() {
    let mut work = Work::new();
    let list = work.list("l.txt", &zoo_lines("ppocr_cls", "eval.txt", 1));
    work.run(&model("ppocr_cls"), &list)
        .args(["--input_dimensions", "x=2,3,48,192"])
        .assert()
        .code(1)
        .stderr(contains("l.txt:1").and(contains("110592 bytes")).and(contains("expected 221184")));
    work.assert_nothing_written();
}

#[test]
fn unknown_flag_is_a_usage_error() {
    let mut work = Work::new();
    let list = digits_list(&mut work);
    work.run(&model("digits_cnn"), &list)
        .arg("--bogus_flag")
        .assert()
        .code(2)
        .stderr(contains("error:").and(contains("--bogus_flag")));
    work.assert_nothing_written();
}

#[test]
fn missing_required_flag_is_a_usage_error() {
    let work = Work::new();
    work.ptq()
        .args(["run", "--input_model"])
        .arg(model("digits_cnn"))
        .assert()
        .code(2)
        .stderr(contains("--input_list"));
    work.assert_nothing_written();
}

#[test]
fn no_subcommand_is_a_usage_error() {
    let work = Work::new();
    work.ptq().assert().code(2);
    work.assert_nothing_written();
}

#[test]
fn help_exits_zero() {
    let work = Work::new();
    work.ptq().args(["run", "--help"]).assert().success().stdout(contains("--input_list"));
}
