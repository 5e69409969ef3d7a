//! Every command that writes files writes the same bytes on every run and with any number of
//! threads (`RAYON_NUM_THREADS=1` against the default). `quantize`'s model and encodings are
//! covered in quantize.rs; here its report, and `convert`, `run` and `evaluate`.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use assert_cmd::Command;
use common::{Work, model, zoo_lines};

/// Every file under `dir` (recursively) by its path relative to `dir`, with its bytes.
fn files_under(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(d) = pending.pop() {
        for e in fs::read_dir(&d).unwrap_or_else(|e| panic!("read {}: {e}", d.display())) {
            let path = e.expect("dir entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let rel = path.strip_prefix(dir).expect("under dir").display().to_string();
                files.insert(rel, fs::read(&path).expect("read an output file"));
            }
        }
    }
    files
}

/// Runs `command` (made afresh for each run) with the default thread count and with one
/// thread, each writing into an empty `<tmp>/written/`, and checks both wrote the same files.
fn assert_deterministic(work: &mut Work, command: impl Fn(&Work, &Path) -> Command) {
    let written = work.mkdir("written");
    let mut runs = Vec::new();
    for threads in [None, Some("1")] {
        fs::remove_dir_all(&written).expect("empty the output folder");
        fs::create_dir(&written).expect("empty the output folder");
        let mut cmd = command(work, &written);
        if let Some(n) = threads {
            cmd.env("RAYON_NUM_THREADS", n);
        }
        cmd.assert().success();
        runs.push(files_under(&written));
    }
    assert!(!runs[0].is_empty(), "the command wrote nothing");
    assert_eq!(runs[0].keys().collect::<Vec<_>>(), runs[1].keys().collect::<Vec<_>>(), "different files");
    for (name, bytes) in &runs[0] {
        assert!(*bytes == runs[1][name], "{name} differs between runs (default threads vs 1)");
    }
}

fn calib(work: &mut Work) -> std::path::PathBuf {
    work.list("calib.txt", &zoo_lines("digits_cnn", "calib.txt", 16))
}

#[test]
fn quantize_report_and_encodings_are_identical_across_runs_and_thread_counts() {
    let mut work = Work::new();
    let list = calib(&mut work);
    assert_deterministic(&mut work, |work, out| {
        let mut cmd = work.ptq();
        cmd.arg("quantize").arg("--input_model").arg(model("digits_cnn")).arg("--input_list").arg(&list);
        cmd.arg("--dump_encoding_json").arg("--output_model").arg(out.join("q.onnx"));
        cmd
    });
}

#[test]
fn convert_output_is_identical_across_runs_and_thread_counts() {
    let mut work = Work::new();
    let list = calib(&mut work);
    work.quantize(&model("digits_cnn"), "q.onnx")
        .args(["--dump_encoding_json", "--input_list"])
        .arg(&list)
        .assert()
        .success();
    let overrides = work.path("q_encoding.json");
    assert_deterministic(&mut work, |work, out| {
        let mut cmd = work.ptq();
        cmd.arg("convert").arg("--input_network").arg(model("digits_cnn"));
        cmd.arg("--quantization_overrides").arg(&overrides).arg("--output_path").arg(out.join("c.onnx"));
        cmd
    });
}

#[test]
fn run_outputs_are_identical_across_runs_and_thread_counts() {
    let mut work = Work::new();
    let list = calib(&mut work);
    assert_deterministic(&mut work, |work, out| work.run_into(&model("digits_cnn"), &list, &out.join("out")));
}

#[test]
fn evaluate_outputs_are_identical_across_runs_and_thread_counts() {
    let mut work = Work::new();
    let list = calib(&mut work);
    assert_deterministic(&mut work, |work, out| {
        let mut cmd = work.ptq();
        cmd.arg("evaluate").arg("--output_dir").arg(out.join("eval"));
        cmd.arg("--input_model").arg(model("digits_cnn")).arg("--input_list").arg(&list);
        cmd
    });
}
