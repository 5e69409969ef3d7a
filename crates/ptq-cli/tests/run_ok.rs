//! `ptq run` when everything is right: qnn-net-run's layout (Result_N/<name>.raw, outputs.json),
//! `.npy`, output selection with `#` / `%` lines, replacing an existing output folder.

mod common;

use std::fs;

use common::*;
use predicates::prelude::*;
use serde_json::Value;

fn outputs_json(dir: &std::path::Path) -> serde_json::Map<String, Value> {
    let text = fs::read_to_string(dir.join("outputs.json")).expect("outputs.json");
    match serde_json::from_str(&text).expect("outputs.json is JSON") {
        Value::Object(m) => m,
        other => panic!("outputs.json is not an object: {other}"),
    }
}

fn argmax(v: &[f32]) -> usize {
    (0..v.len()).fold(0, |best, i| if v[i] > v[best] { i } else { best })
}

#[test]
fn digits_eval_writes_128_results_with_40_byte_logits() {
    let work = Work::new();
    work.run(&model("digits_cnn"), &zoo_file("digits_cnn", "eval.txt")).assert().success();

    let out = work.out();
    let expected: std::collections::BTreeSet<String> = (0..128).map(|i| format!("Result_{i}")).collect();
    assert_eq!(names_in(&out), expected);
    for i in 0..128 {
        let dir = out.join(format!("Result_{i}"));
        assert_eq!(names_in(&dir), ["logits.raw", "outputs.json"].map(String::from).into());
        assert_eq!(fs::metadata(dir.join("logits.raw")).unwrap().len(), 40, "Result_{i}/logits.raw");
        let map = outputs_json(&dir);
        assert_eq!(map.len(), 1);
        assert_eq!(map["logits.raw"], "logits");
    }
    // The float model's own accuracy (float_reference.json: 126/128) — the run computed logits,
    // not just files of the right size.
    let labels = fs::read_to_string(zoo_file("digits_cnn", "eval_labels.txt")).unwrap();
    let labels: Vec<usize> = labels.split_whitespace().map(|l| l.parse().unwrap()).collect();
    assert_eq!(labels.len(), 128);
    let correct = (0..128)
        .filter(|&i| argmax(&read_f32(&out.join(format!("Result_{i}/logits.raw")))) == labels[i])
        .count();
    assert_eq!(correct, 126);
    // Results are ordinary folders, not the staging folder's private mode.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(fs::metadata(&out).unwrap().permissions().mode() & 0o777, 0o755);
    }
    assert!(names_in(&work.path("")).iter().all(|e| !e.starts_with(".ptq-")));
}

#[test]
fn npy_flag_writes_npy_next_to_raw() {
    let mut work = Work::new();
    let list = work.list("list.txt", &zoo_lines("digits_cnn", "eval.txt", 2));
    work.run(&model("digits_cnn"), &list).arg("--npy").assert().success();

    for i in 0..2 {
        let dir = work.out().join(format!("Result_{i}"));
        assert_eq!(names_in(&dir), ["logits.npy", "logits.raw", "outputs.json"].map(String::from).into());
        let npy_bytes = fs::read(dir.join("logits.npy")).unwrap();
        assert!(npy_bytes.starts_with(b"\x93NUMPY"), "not an .npy file");
        let header_len = u16::from_le_bytes([npy_bytes[8], npy_bytes[9]]) as usize;
        let header = std::str::from_utf8(&npy_bytes[10..10 + header_len]).unwrap();
        assert!(header.contains("<f4"), "dtype in {header}");
        let compact = header.replace(' ', "").replace(",)", ")");
        assert!(compact.contains("'shape':(1,10)"), "shape in {header}");
        // Same values as the .raw file.
        let raw = fs::read(dir.join("logits.raw")).unwrap();
        assert_eq!(&npy_bytes[10 + header_len..], &raw[..]);
    }
}

#[test]
fn default_output_dir_is_output_in_the_current_folder() {
    let mut work = Work::new();
    let list = work.list("list.txt", &zoo_lines("digits_cnn", "eval.txt", 1));
    work.ptq()
        .args(["run", "--input_model"])
        .arg(model("digits_cnn"))
        .arg("--input_list")
        .arg(&list)
        .assert()
        .success();
    assert!(work.path("output/Result_0/logits.raw").is_file());
}

#[test]
fn ppocr_cls_output_name_is_sanitized_like_qnn() {
    let mut work = Work::new();
    let list = work.list("list.txt", &zoo_lines("ppocr_cls", "eval.txt", 1));
    work.run(&model("ppocr_cls"), &list).args(["--input_dimensions", "x=1,3,48,192"]).assert().success();

    let dir = work.out().join("Result_0");
    let stem = "save_infer_model_scale_0_tmp_1";
    assert_eq!(names_in(&dir), [format!("{stem}.raw"), "outputs.json".into()].into());
    assert_eq!(outputs_json(&dir)[&format!("{stem}.raw")], "save_infer_model/scale_0.tmp_1");
    let probs = read_f32(&dir.join(format!("{stem}.raw")));
    assert_eq!(probs.len(), 2);
    assert!((probs[0] + probs[1] - 1.0).abs() < 1e-4, "softmax output {probs:?}");
}

#[test]
fn minilm_npy_int64_inputs_by_name() {
    let mut work = Work::new();
    let list = work.list("list.txt", &zoo_lines("minilm_l3", "eval.txt", 1));
    work.run(&model("minilm_l3"), &list).assert().success();
    let dir = work.out().join("Result_0");
    assert_eq!(
        fs::metadata(dir.join("sentence_embedding.raw")).unwrap().len(),
        384 * 4,
        "sentence_embedding [1,384]"
    );
    assert_eq!(fs::metadata(dir.join("last_hidden_state.raw")).unwrap().len(), 64 * 384 * 4);
}

#[test]
fn percent_line_selects_an_intermediate_tensor() {
    let mut work = Work::new();
    let samples = zoo_lines("digits_cnn", "eval.txt", 2);

    // Find an intermediate tensor name from a --debug run.
    let debug_list = work.list("debug.txt", &samples[..1]);
    let debug_out = work.path("debug_out");
    work.run_into(&model("digits_cnn"), &debug_list, &debug_out).arg("--debug").assert().success();
    let all = outputs_json(&debug_out.join("Result_0"));
    assert!(all.len() > 1, "--debug writes intermediate tensors: {all:?}");
    let (file, tensor) = all.iter().find(|(_, t)| *t != "logits").expect("an intermediate tensor");
    let tensor = tensor.as_str().unwrap().to_owned();
    let debug_bytes = fs::read(debug_out.join("Result_0").join(file)).unwrap();

    let mut lines = vec![format!("%{tensor}")];
    lines.extend(samples);
    let list = work.list("list.txt", &lines);
    work.run(&model("digits_cnn"), &list).assert().success();
    for i in 0..2 {
        let dir = work.out().join(format!("Result_{i}"));
        assert_eq!(names_in(&dir), [file.clone(), "outputs.json".into()].into(), "only the `%` tensor");
        assert_eq!(outputs_json(&dir)[file], tensor.as_str());
    }
    assert_eq!(fs::read(work.out().join("Result_0").join(file)).unwrap(), debug_bytes);
}

#[test]
fn hash_line_selects_a_node_outputs() {
    let mut work = Work::new();
    let mut lines = vec!["#relu2".to_owned()];
    lines.extend(zoo_lines("digits_cnn", "eval.txt", 1));
    let list = work.list("list.txt", &lines);
    work.run(&model("digits_cnn"), &list).assert().success();
    let dir = work.out().join("Result_0");
    assert_eq!(names_in(&dir), ["outputs.json", "relu2_out.raw"].map(String::from).into());
    // relu2 follows the depthwise conv: [1,16,8,8] float32, all ≥ 0.
    let v = read_f32(&dir.join("relu2_out.raw"));
    assert_eq!(v.len(), 16 * 8 * 8);
    assert!(v.iter().all(|&x| x >= 0.0));
}

#[test]
fn hash_and_percent_lines_together_write_both() {
    let mut work = Work::new();
    let mut lines = vec!["#relu1".to_owned(), "%logits".to_owned()];
    lines.extend(zoo_lines("digits_cnn", "eval.txt", 1));
    let list = work.list("list.txt", &lines);
    work.run(&model("digits_cnn"), &list).assert().success();
    let dir = work.out().join("Result_0");
    assert_eq!(names_in(&dir), ["logits.raw", "outputs.json", "relu1_out.raw"].map(String::from).into());
}

#[test]
fn existing_output_dir_result_is_replaced() {
    let mut work = Work::new();
    let list = work.list("list.txt", &zoo_lines("digits_cnn", "eval.txt", 1));
    work.write("out/Result_0/old.raw", b"old");
    work.write("out/Result_7/keep.txt", b"unrelated");
    work.write("out/notes.txt", b"mine");
    work.run(&model("digits_cnn"), &list).assert().success();

    let out = work.out();
    assert_eq!(names_in(&out.join("Result_0")), ["logits.raw", "outputs.json"].map(String::from).into());
    assert_eq!(fs::metadata(out.join("Result_0/logits.raw")).unwrap().len(), 40);
    // Entries the run did not produce are left alone; no staging folder remains.
    assert_eq!(names_in(&out), ["Result_0", "Result_7", "notes.txt"].map(String::from).into());
}

#[test]
fn relative_paths_resolve_against_the_list_folder() {
    let mut work = Work::new();
    let sample = fs::read(zoo_file("digits_cnn", "eval/000.raw")).unwrap();
    work.write("lists/data/a.raw", &sample);
    let list = work.list("lists/l.txt", &["data/a.raw"]);
    work.run(&model("digits_cnn"), &list).assert().success();
    assert!(work.out().join("Result_0/logits.raw").is_file());
}

#[test]
fn silero_two_inputs_as_bare_paths_in_graph_order() {
    let mut work = Work::new();
    let dir = models().join("silero_vad_16k");
    let line =
        format!("{} {}", dir.join("eval/000_input.raw").display(), dir.join("eval/000_state.raw").display());
    let list = work.list("list.txt", &[line]);
    work.run(&model("silero_vad_16k"), &list).assert().success();
    let res = work.out().join("Result_0");
    let p = read_f32(&res.join("output.raw"));
    assert_eq!(p.len(), 1);
    assert!((0.0..=1.0).contains(&p[0]), "speech probability {p:?}");
}

#[test]
fn allow_nonfinite_continues_with_a_warning_and_the_count() {
    let mut work = Work::new();
    let mut values = vec![0.25f32; 64];
    values[3] = f32::NAN;
    values[10] = f32::INFINITY;
    values[20] = f32::NAN;
    work.write("nan.raw", f32_raw(&values));
    let list = work.list("list.txt", &["nan.raw"]);
    work.run(&model("digits_cnn"), &list).arg("--allow_nonfinite").assert().success().stderr(
        predicate::str::contains("warning:")
            .and(predicate::str::contains("nan.raw"))
            .and(predicate::str::contains("3 NaN/Inf")),
    );
    assert!(work.out().join("Result_0/logits.raw").is_file());
}
