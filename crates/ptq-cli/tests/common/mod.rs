//! Helpers shared by the CLI tests: where the model zoo is, a scratch folder per test, sample
//! files written by hand (raw, .npy) and tiny ONNX models built in memory.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use ptq_onnx::build;

/// `<repo>/../shared/models`, the read-only model zoo.
pub fn models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/models")
}

/// `<zoo>/<name>/model.onnx`.
pub fn model(name: &str) -> PathBuf {
    models().join(name).join("model.onnx")
}

/// `<zoo>/<name>/<rel>` (a data file of the zoo, by absolute path).
pub fn zoo_file(name: &str, rel: &str) -> PathBuf {
    models().join(name).join(rel)
}

/// A scratch folder for one test. Every command runs inside it (so a stray default `output/`
/// would land here), and [`Work::assert_nothing_written`] checks that a failed run left nothing
/// behind: no output folder, no `.ptq-*` staging folder, nothing the test did not create.
pub struct Work {
    dir: tempfile::TempDir,
    created: BTreeSet<String>,
}

impl Work {
    pub fn new() -> Work {
        Work { dir: tempfile::tempdir().expect("tempdir"), created: BTreeSet::new() }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Where `ptq run` writes in these tests (`<tmp>/out`); absent until a run succeeds.
    pub fn out(&self) -> PathBuf {
        self.path("out")
    }

    /// Writes `bytes` to `<tmp>/<rel>` (creating folders) and remembers its top-level entry.
    pub fn write(&mut self, rel: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).expect("create folder");
        }
        fs::write(&p, bytes).expect("write test file");
        let top = Path::new(rel).components().next().expect("non-empty path");
        self.created.insert(top.as_os_str().to_string_lossy().into_owned());
        p
    }

    /// Writes an input list, one line per element.
    pub fn list<S: AsRef<str>>(&mut self, rel: &str, lines: &[S]) -> PathBuf {
        let mut text = String::new();
        for l in lines {
            text.push_str(l.as_ref());
            text.push('\n');
        }
        self.write(rel, text)
    }

    /// Creates an empty folder and remembers it.
    pub fn mkdir(&mut self, rel: &str) -> PathBuf {
        let p = self.path(rel);
        fs::create_dir_all(&p).expect("create folder");
        let top = Path::new(rel).components().next().expect("non-empty path");
        self.created.insert(top.as_os_str().to_string_lossy().into_owned());
        p
    }

    /// `ptq` with the scratch folder as its working directory.
    pub fn ptq(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ptq"));
        cmd.current_dir(self.dir.path());
        cmd
    }

    /// `ptq quantize --input_model MODEL --output_model <tmp>/OUT` (add the list or fallback).
    pub fn quantize(&self, model: &Path, out: &str) -> Command {
        let mut cmd = self.ptq();
        cmd.arg("quantize").arg("--input_model").arg(model).arg("--output_model").arg(self.path(out));
        cmd
    }

    /// A JSON file of the scratch folder (a report, an encodings file).
    pub fn json(&self, rel: &str) -> serde_json::Value {
        serde_json::from_slice(&fs::read(self.path(rel)).expect("the file was written")).expect("valid JSON")
    }

    /// `ptq run --input_model MODEL --input_list LIST --output_dir <tmp>/out`.
    pub fn run(&self, model: &Path, list: &Path) -> Command {
        self.run_into(model, list, &self.out())
    }

    /// `ptq run --input_model MODEL --input_list LIST --output_dir OUT`.
    pub fn run_into(&self, model: &Path, list: &Path, out: &Path) -> Command {
        let mut cmd = self.ptq();
        cmd.arg("run").arg("--input_model").arg(model).arg("--input_list").arg(list);
        cmd.arg("--output_dir").arg(out);
        cmd
    }

    /// The top-level names in the scratch folder.
    pub fn entries(&self) -> BTreeSet<String> {
        names_in(self.dir.path())
    }

    /// The scratch folder holds exactly what the test created: no output folder, no staging
    /// folder left behind.
    pub fn assert_nothing_written(&self) {
        let entries = self.entries();
        assert!(!self.out().exists(), "the output folder was created: {entries:?}");
        assert!(
            entries.iter().all(|e| !e.starts_with(".ptq-")),
            "a staging folder was left behind: {entries:?}"
        );
        assert_eq!(entries, self.created, "something besides the test's own files was written");
    }
}

/// The names of the entries of `dir`.
pub fn names_in(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").file_name().to_string_lossy().into_owned())
        .collect()
}

/// Little-endian float32 bytes, the `.raw` format.
pub fn f32_raw(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Reads a float32 `.raw` file.
pub fn read_f32(path: &Path) -> Vec<f32> {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    assert_eq!(bytes.len() % 4, 0, "{} is not float32", path.display());
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

/// A version 1.0 `.npy` file: magic, header dict padded to a multiple of 64 bytes, data.
/// `descr` is numpy's type string (`<f4`, `<f8`, `<i8`, …); `data` is already little-endian.
pub fn npy(descr: &str, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape = if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    // magic (6) + version (2) + header length (2) + header + '\n' is a multiple of 64.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

pub fn i64_bytes(values: &[i64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

pub fn f64_bytes(values: &[f64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// `x [1,4] → FooBar (foo1) → Relu (relu1) → z`: a model that loads but that no engine can
/// run, since `FooBar` is no ONNX operator.
pub fn foobar_model() -> Vec<u8> {
    chain_model(&[("FooBar", "foo1"), ("Relu", "relu1")])
}

/// A chain of one-input nodes `(op_type, node name)` from input `x` [1,4] to output `z` [1,4].
pub fn chain_model(nodes: &[(&str, &str)]) -> Vec<u8> {
    let names: Vec<String> = (0..=nodes.len())
        .map(|i| match i {
            0 => "x".to_owned(),
            i if i == nodes.len() => "z".to_owned(),
            i => format!("t{i}"),
        })
        .collect();
    let node = nodes
        .iter()
        .enumerate()
        .map(|(i, (op, name))| build::node(op, name, &[&names[i]], &[&names[i + 1]]))
        .collect();
    let io = |name| build::tensor_value(name, build::FLOAT, &[1, 4]);
    let mut model = build::model(13, node, vec![io("x")], vec![io("z")], vec![]);
    model.producer_name = Some("ptq-cli tests".into());
    model.graph.as_mut().expect("a graph").name = Some("chain".into());
    ptq_onnx::encode(&model)
}

/// The sample lines of a zoo list with their paths made absolute (the first `n` lines).
pub fn zoo_lines(name: &str, list: &str, n: usize) -> Vec<String> {
    let text = fs::read_to_string(zoo_file(name, list)).expect("read zoo list");
    let dir = models().join(name);
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .take(n)
        .map(|l| {
            l.split_whitespace()
                .map(|tok| match tok.split_once(":=") {
                    Some((input, path)) => format!("{input}:={}", dir.join(path).display()),
                    None => dir.join(tok).display().to_string(),
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// stderr of a finished command as text.
pub fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `x / 0` (±Inf in every sample), a Sigmoid that is finite again, and `x + s`: a model with a
/// tensor that is never finite. `x` is [1, 4].
pub fn never_finite_model() -> Vec<u8> {
    let m = build::model(
        13,
        vec![
            build::node("Div", "div", &["x", "zero"], &["inf"]),
            build::node("Sigmoid", "sig", &["inf"], &["s"]),
            build::node("Add", "add", &["x", "s"], &["y"]),
        ],
        vec![build::tensor_value("x", build::FLOAT, &[1, 4])],
        vec![build::tensor_value("y", build::FLOAT, &[1, 4])],
        vec![build::f32_tensor("zero", &[1], &[0.0])],
    );
    ptq_onnx::encode(&m)
}
