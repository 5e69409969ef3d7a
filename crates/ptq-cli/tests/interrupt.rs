//! Ctrl-C leaves nothing behind (DESIGN.md Decision 13): no output, no temporary files.

mod common;

use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::Duration;

use common::{Work, model, names_in, zoo_lines};

/// Starts `args`, sends SIGINT after `after`, and returns the exit code (`None`: killed).
fn interrupt(work: &Work, args: &[String], after: Duration) -> Option<i32> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ptq"))
        .args(args)
        .current_dir(work.path(""))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start ptq");
    sleep(after);
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill -INT");
    child.wait().expect("wait").code()
}

fn leftovers(work: &Work) -> Vec<String> {
    names_in(&work.path("")).into_iter().filter(|n| n.starts_with(".ptq-")).collect()
}

#[test]
fn interrupted_quantize_writes_no_model() {
    let mut work = Work::new();
    let list = work.list("calib.txt", &zoo_lines("minilm_l3", "calib.txt", 64));
    let out = work.path("q.onnx");
    let args: Vec<String> = ["quantize", "--input_model"]
        .iter()
        .map(|s| s.to_string())
        .chain([model("minilm_l3").display().to_string(), "--input_list".into(), list.display().to_string()])
        .chain(["--output_model".into(), out.display().to_string(), "--dump_encoding_json".into()])
        .collect();
    let code = interrupt(&work, &args, Duration::from_millis(700));
    match code {
        Some(130) => assert!(!out.exists() && !work.path("q_encoding.json").exists(), "output after Ctrl-C"),
        // A machine fast enough to finish first must have written everything.
        Some(0) => assert!(out.exists() && work.path("q_encoding.json").exists()),
        other => panic!("exit {other:?}"),
    }
    assert!(leftovers(&work).is_empty(), "{:?}", leftovers(&work));
}

#[test]
fn interrupted_run_writes_no_results() {
    let mut work = Work::new();
    let list = work.list("eval.txt", &zoo_lines("ppocr_det", "eval.txt", 8));
    let out = work.path("out");
    let args: Vec<String> = ["run", "--debug", "--input_dimensions", "x=1,3,256,256", "--input_model"]
        .iter()
        .map(|s| s.to_string())
        .chain([model("ppocr_det").display().to_string(), "--input_list".into(), list.display().to_string()])
        .chain(["--output_dir".into(), out.display().to_string()])
        .collect();
    match interrupt(&work, &args, Duration::from_millis(900)) {
        Some(130) => assert!(!out.exists(), "results after Ctrl-C"),
        Some(0) => assert_eq!(names_in(&out).iter().filter(|n| n.starts_with("Result_")).count(), 8),
        other => panic!("exit {other:?}"),
    }
    assert!(leftovers(&work).is_empty(), "{:?}", leftovers(&work));
}
