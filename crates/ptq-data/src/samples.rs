//! An input list bound to a model's inputs: every line checked against the inputs, every shape
//! made concrete, and samples read one at a time on demand.

use std::collections::BTreeSet;
use std::path::PathBuf;

use ptq_ir::{DataType, Dim, Tensor};

use crate::Error;
use crate::dims::{ShapeBindings, bind};
use crate::list::{InputList, Line};
use crate::read::{count_nonfinite, read_file, readable};

/// A graph input as the model declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputSpec {
    pub name: String,
    pub dtype: DataType,
    pub shape: Vec<Dim>,
}

/// A graph input with every dimension bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundInput {
    pub name: String,
    pub dtype: DataType,
    pub shape: Vec<usize>,
}

/// How to read data files (the flags of the same names).
#[derive(Debug, Default, Clone)]
pub struct ReadOptions {
    /// `--use_native_input_files`: raw files hold each input's own type instead of float32.
    pub native: bool,
    /// `--native_input_tensor_names`: when not empty, exactly these inputs are native.
    pub native_names: BTreeSet<String>,
    /// `--allow_nonfinite`: report NaN/Inf in float inputs instead of failing.
    pub allow_nonfinite: bool,
    /// `--input_dimensions`, `--onnx_define_symbol`, `--onnx_override_batch`.
    pub shapes: ShapeBindings,
}

/// The samples of an input list, read lazily: `read(i)` opens only line `i`'s files, so a run
/// never holds more samples than it is working on. `read` takes `&self`, so many threads may
/// read at once.
#[derive(Debug)]
pub struct Samples {
    list: InputList,
    inputs: Vec<BoundInput>,
    native: Vec<bool>,
    allow_nonfinite: bool,
    /// Per line, for each input (graph order), the index of its entry on that line.
    slots: Vec<Vec<usize>>,
}

/// One sample's tensors.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// In graph input order, each of its input's type and bound shape.
    pub tensors: Vec<Tensor>,
    /// Files holding NaN/Inf, with their count (only with `allow_nonfinite`; otherwise such a
    /// file is an error).
    pub nonfinite: Vec<(PathBuf, usize)>,
}

impl Samples {
    /// Checks every line against `inputs` (graph input order, initializers excluded) and binds
    /// every shape; reads no data beyond `.npy` headers of the first sample.
    pub fn new(list: InputList, inputs: &[InputSpec], opts: ReadOptions) -> Result<Samples, Error> {
        if list.lines.is_empty() {
            return Err(Error::ListEmpty { path: list.path });
        }
        let names: Vec<String> = inputs.iter().map(|i| i.name.clone()).collect();
        let unknown =
            |flag, name: &String| Error::FlagUnknownInput { flag, name: name.clone(), inputs: names.clone() };
        let inputs = &opts.shapes.declared(inputs)?;
        if let Some(name) = opts.native_names.iter().find(|n| !names.contains(n)) {
            return Err(unknown("--native_input_tensor_names", name));
        }
        if let Some(bad) = inputs.iter().find(|i| !readable(i.dtype)) {
            return Err(Error::UnsupportedType { input: bad.name.clone(), dtype: bad.dtype });
        }
        let slots =
            list.lines.iter().map(|line| assign(&list, line, &names)).collect::<Result<Vec<_>, _>>()?;
        let bound = bind(&list, &slots, inputs, &opts.shapes.dims)?;
        let native = names
            .iter()
            .map(|n| if opts.native_names.is_empty() { opts.native } else { opts.native_names.contains(n) })
            .collect();
        Ok(Samples { list, inputs: bound, native, allow_nonfinite: opts.allow_nonfinite, slots })
    }

    pub fn len(&self) -> usize {
        self.list.lines.len()
    }

    /// The first `n` samples (all of them when there are fewer), e.g. for a quick measurement.
    /// The indices of `n` samples spread evenly over the list (all of them when it has no more),
    /// so a figure measured on them stands for the whole list, not for its first lines.
    pub fn spread(&self, n: usize) -> Vec<usize> {
        let len = self.len();
        if len <= n {
            return (0..len).collect();
        }
        (0..n).map(|k| k * len / n).collect()
    }

    /// The samples at `indices` (in that order), as a list of their own.
    pub fn pick(&self, indices: &[usize]) -> Samples {
        let mut list = self.list.clone();
        list.lines = indices.iter().map(|&i| self.list.lines[i].clone()).collect();
        Samples {
            list,
            inputs: self.inputs.clone(),
            native: self.native.clone(),
            allow_nonfinite: self.allow_nonfinite,
            slots: indices.iter().map(|&i| self.slots[i].clone()).collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.list.lines.is_empty()
    }

    /// The inputs in graph input order, with their bound shapes.
    pub fn inputs(&self) -> &[BoundInput] {
        &self.inputs
    }

    pub fn list(&self) -> &InputList {
        &self.list
    }

    /// The list line of sample `i` (panics when `i >= len()`, like slice indexing).
    pub fn line(&self, i: usize) -> &Line {
        &self.list.lines[i]
    }

    /// Reads sample `i` (panics when `i >= len()`); errors name the list line, the input and
    /// the file.
    pub fn read(&self, i: usize) -> Result<Sample, Error> {
        let line = self.line(i);
        let mut sample = Sample { tensors: Vec::with_capacity(self.inputs.len()), nonfinite: Vec::new() };
        for ((input, &native), &slot) in self.inputs.iter().zip(&self.native).zip(&self.slots[i]) {
            let path = &line.entries[slot].path;
            let at = |error| in_sample(&self.list, line, &input.name, error);
            let tensor = read_file(path, input, native).map_err(at)?;
            let count = count_nonfinite(&tensor);
            if count > 0 {
                if !self.allow_nonfinite {
                    return Err(at(Error::NonFinite { path: path.clone(), count }));
                }
                sample.nonfinite.push((path.clone(), count));
            }
            sample.tensors.push(tensor);
        }
        Ok(sample)
    }
}

pub(crate) fn in_sample(list: &InputList, line: &Line, input: &str, error: Error) -> Error {
    Error::Sample {
        list: list.path.clone(),
        line: line.number,
        input: input.to_string(),
        error: Box::new(error),
    }
}

/// Maps a line's entries to inputs: bare paths in graph input order, or `name:=path` for each.
fn assign(list: &InputList, line: &Line, names: &[String]) -> Result<Vec<usize>, Error> {
    let at = list.path.clone();
    let number = line.number;
    let named = line.entries.iter().filter(|e| e.name.is_some()).count();
    if named > 0 && named < line.entries.len() {
        return Err(Error::MixedEntries { list: at, line: number });
    }
    let count_error = || Error::EntryCount {
        list: at.clone(),
        line: number,
        given: line.entries.len(),
        inputs: names.to_vec(),
    };
    if named == 0 {
        return if line.entries.len() == names.len() {
            Ok((0..names.len()).collect())
        } else {
            Err(count_error())
        };
    }
    let mut slots: Vec<Option<usize>> = vec![None; names.len()];
    for (j, entry) in line.entries.iter().enumerate() {
        let name = entry.name.as_deref().unwrap_or_default();
        let Some(k) = names.iter().position(|n| n == name) else {
            return Err(Error::UnknownInput {
                list: at,
                line: number,
                name: name.to_string(),
                inputs: names.to_vec(),
            });
        };
        if slots[k].replace(j).is_some() {
            return Err(Error::DuplicateInput { list: at, line: number, name: name.to_string() });
        }
    }
    slots.into_iter().collect::<Option<Vec<_>>>().ok_or_else(count_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::tests::{write_f32, write_npy};
    use std::fs;
    use std::path::Path;

    fn spec(name: &str, dtype: DataType, shape: Vec<Dim>) -> InputSpec {
        InputSpec { name: name.to_string(), dtype, shape }
    }

    fn sym(s: &str) -> Dim {
        Dim::Symbolic(s.to_string())
    }

    /// Two int64 inputs of shape [batch, seq], as in a BERT-like model.
    fn bert() -> Vec<InputSpec> {
        vec![
            spec("input_ids", DataType::Int64, vec![sym("batch"), sym("seq")]),
            spec("attention_mask", DataType::Int64, vec![sym("batch"), sym("seq")]),
        ]
    }

    fn list(dir: &Path, text: &str) -> InputList {
        let p = dir.join("list.txt");
        fs::write(&p, text).unwrap();
        InputList::parse(&p).unwrap()
    }

    fn new_err(l: InputList, inputs: &[InputSpec], opts: ReadOptions) -> String {
        Samples::new(l, inputs, opts).unwrap_err().to_string()
    }

    fn dims(pairs: &[(&str, &[usize])]) -> ReadOptions {
        let dims = pairs.iter().map(|(n, d)| (n.to_string(), d.to_vec())).collect();
        ReadOptions { shapes: ShapeBindings { dims, ..ShapeBindings::default() }, ..ReadOptions::default() }
    }

    /// A folder with `a.raw` (float32 [1,2]: 1, 2) and `b.raw` (float32 [1,2]: 1, 0).
    fn raw_pair() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        write_f32(&d.path().join("a.raw"), &[1.0, 2.0]);
        write_f32(&d.path().join("b.raw"), &[1.0, 0.0]);
        d
    }

    #[test]
    fn bare_paths_follow_graph_input_order() {
        let d = raw_pair();
        let l = list(d.path(), "a.raw b.raw\nb.raw a.raw\n");
        let s =
            Samples::new(l, &bert(), dims(&[("input_ids", &[1, 2]), ("attention_mask", &[1, 2])])).unwrap();
        assert_eq!(s.len(), 2);
        assert!(!s.is_empty());
        assert_eq!(
            s.inputs()[1],
            BoundInput { name: "attention_mask".into(), dtype: DataType::Int64, shape: vec![1, 2] }
        );
        assert_eq!(s.line(1).number, 2);
        assert_eq!(s.list().lines.len(), 2);
        let x = s.read(1).unwrap();
        assert_eq!(x.tensors, [Tensor::from_i64(vec![1, 2], &[1, 0]), Tensor::from_i64(vec![1, 2], &[1, 2])]);
        assert!(x.nonfinite.is_empty());
    }

    #[test]
    fn named_entries_in_any_order() {
        let d = raw_pair();
        let l = list(d.path(), "attention_mask:=b.raw input_ids:=a.raw\n");
        let s =
            Samples::new(l, &bert(), dims(&[("input_ids", &[1, 2]), ("attention_mask", &[1, 2])])).unwrap();
        let x = s.read(0).unwrap();
        assert_eq!(x.tensors[0], Tensor::from_i64(vec![1, 2], &[1, 2]));
        assert_eq!(x.tensors[1], Tensor::from_i64(vec![1, 2], &[1, 0]));
    }

    #[test]
    fn wrong_entry_count() {
        let d = raw_pair();
        let l = list(d.path(), "a.raw b.raw\n\na.raw\n");
        let m = new_err(l, &bert(), ReadOptions::default());
        assert!(m.contains("list.txt:3: 1 input given, the model has 2: input_ids, attention_mask"), "{m}");
        let l = list(d.path(), "input_ids:=a.raw\n");
        let m = new_err(l, &bert(), ReadOptions::default());
        assert!(m.contains("list.txt:1: 1 input given, the model has 2"), "{m}");
        let l = list(d.path(), "a.raw a.raw b.raw\n");
        let m = new_err(l, &bert(), ReadOptions::default());
        assert!(m.contains("list.txt:1: 3 inputs given"), "{m}");
    }

    #[test]
    fn unknown_name() {
        let d = raw_pair();
        let l = list(d.path(), "input_ids:=a.raw token_type_ids:=b.raw\n");
        let m = new_err(l, &bert(), ReadOptions::default());
        assert!(m.contains("list.txt:1: 'token_type_ids' is not an input of the model"), "{m}");
        assert!(m.contains("its inputs are: input_ids, attention_mask"), "{m}");
    }

    #[test]
    fn mixed_and_duplicate_entries() {
        let d = raw_pair();
        let l = list(d.path(), "input_ids:=a.raw b.raw\n");
        let m = new_err(l, &bert(), ReadOptions::default());
        assert!(m.contains("list.txt:1: the line mixes bare paths and name:=path entries"), "{m}");
        let l = list(d.path(), "input_ids:=a.raw input_ids:=b.raw\n");
        let m = new_err(l, &bert(), ReadOptions::default());
        assert!(m.contains("list.txt:1: input 'input_ids' is given twice"), "{m}");
    }

    #[test]
    fn unbound_dims_list_every_input() {
        let d = raw_pair();
        let l = list(d.path(), "a.raw b.raw\n");
        let mut inputs = bert();
        inputs[1].shape = vec![Dim::Fixed(1), Dim::Fixed(2)];
        let m = new_err(l, &inputs, ReadOptions::default());
        assert!(m.contains("  input_ids int64 [batch,seq]: unbound"), "{m}");
        assert!(m.contains("  attention_mask int64 [1,2]: bound to [1,2]"), "{m}");
        assert!(m.contains("--input_dimensions name=d0,d1,..."), "{m}");
    }

    #[test]
    fn input_dimensions_must_agree_with_fixed_dims() {
        let d = raw_pair();
        let inputs = [spec("x", DataType::Float, vec![Dim::Unknown, Dim::Fixed(2)])];
        let l = list(d.path(), "a.raw\n");
        let m = new_err(l.clone(), &inputs, dims(&[("x", &[1, 3])]));
        assert!(
            m.contains("input 'x': --input_dimensions gives shape [1,3], but the model declares [?,2]"),
            "{m}"
        );
        let m = new_err(l.clone(), &inputs, dims(&[("x", &[2])]));
        assert!(m.contains("gives shape [2]") && m.contains("[?,2]"), "{m}");
        let s = Samples::new(l, &inputs, dims(&[("x", &[1, 2])])).unwrap();
        assert_eq!(s.inputs()[0].shape, [1, 2]);
    }

    #[test]
    fn flags_naming_unknown_inputs() {
        let d = raw_pair();
        let inputs = [spec("x", DataType::Float, vec![Dim::Fixed(1), Dim::Fixed(2)])];
        let l = list(d.path(), "a.raw\n");
        let m = new_err(l.clone(), &inputs, dims(&[("y", &[1, 2])]));
        assert!(
            m.contains("--input_dimensions names 'y', which is not an input of the model; its inputs are: x"),
            "{m}"
        );
        let opts = ReadOptions { native_names: ["z".to_string()].into(), ..ReadOptions::default() };
        let m = new_err(l, &inputs, opts);
        assert!(m.contains("--native_input_tensor_names names 'z'") && m.contains("inputs are: x"), "{m}");
    }

    #[test]
    fn unsupported_input_type() {
        let d = raw_pair();
        let inputs = [spec("s", DataType::String, vec![Dim::Fixed(1)])];
        let m = new_err(list(d.path(), "a.raw\n"), &inputs, ReadOptions::default());
        assert!(m.contains("input 's' has type string"), "{m}");
    }

    #[test]
    fn npy_headers_bind_symbolic_dims() {
        let d = tempfile::tempdir().unwrap();
        write_npy(&d.path().join("ids.npy"), &[1, 3], &[101i64, 7, 102]);
        write_npy(&d.path().join("mask.npy"), &[1, 3], &[1i64, 1, 0]);
        let l = list(d.path(), "attention_mask:=mask.npy input_ids:=ids.npy\n");
        let s = Samples::new(l, &bert(), ReadOptions::default()).unwrap();
        assert_eq!(s.inputs()[0].shape, [1, 3]);
        assert_eq!(s.inputs()[1].shape, [1, 3]);
        let x = s.read(0).unwrap();
        assert_eq!(x.tensors[0], Tensor::from_i64(vec![1, 3], &[101, 7, 102]));
        assert_eq!(x.tensors[1], Tensor::from_i64(vec![1, 3], &[1, 1, 0]));
    }

    #[test]
    fn npy_header_must_agree_with_fixed_dims() {
        let d = tempfile::tempdir().unwrap();
        write_npy(&d.path().join("x.npy"), &[1, 3], &[1.0f32, 2.0, 3.0]);
        let inputs = [spec("x", DataType::Float, vec![sym("n"), Dim::Fixed(4)])];
        let m = new_err(list(d.path(), "x.npy\n"), &inputs, ReadOptions::default());
        assert!(m.contains("input 'x': the .npy header of") && m.contains("x.npy gives shape [1,3]"), "{m}");
        assert!(m.contains("declares [n,4]"), "{m}");
    }

    #[test]
    fn read_errors_name_list_line_and_input() {
        let d = raw_pair();
        fs::write(d.path().join("short.raw"), [0u8; 4]).unwrap();
        let inputs = [spec("x", DataType::Float, vec![Dim::Fixed(1), Dim::Fixed(2)])];
        let s =
            Samples::new(list(d.path(), "a.raw\n\nshort.raw\n"), &inputs, ReadOptions::default()).unwrap();
        let m = s.read(1).unwrap_err().to_string();
        assert!(
            m.contains("list.txt:3: input 'x':") && m.contains("short.raw has 4 bytes, expected 8"),
            "{m}"
        );
    }

    #[test]
    fn nonfinite_fails_unless_allowed() {
        let d = tempfile::tempdir().unwrap();
        let bad = d.path().join("nan.raw");
        write_f32(&bad, &[f32::NAN, f32::INFINITY]);
        let inputs = [spec("x", DataType::Float, vec![Dim::Fixed(2)])];
        let s = Samples::new(list(d.path(), "nan.raw\n"), &inputs, ReadOptions::default()).unwrap();
        let m = s.read(0).unwrap_err().to_string();
        assert!(m.contains("list.txt:1: input 'x':") && m.contains("nan.raw holds 2 NaN/Inf values"), "{m}");
        assert!(m.contains("--allow_nonfinite"), "{m}");
        let opts = ReadOptions { allow_nonfinite: true, ..ReadOptions::default() };
        let s = Samples::new(list(d.path(), "nan.raw\n"), &inputs, opts).unwrap();
        assert_eq!(s.read(0).unwrap().nonfinite, [(bad, 2)]);
    }

    #[test]
    fn native_flags_choose_inputs() {
        let d = tempfile::tempdir().unwrap();
        let ids: Vec<u8> = [5i64, 6].iter().flat_map(|v| v.to_le_bytes()).collect();
        fs::write(d.path().join("ids.raw"), ids).unwrap();
        write_f32(&d.path().join("mask.raw"), &[1.0, 1.0]);
        let opts = |native: bool, names: &[&str]| ReadOptions {
            native,
            native_names: names.iter().map(|n| n.to_string()).collect(),
            ..dims(&[("input_ids", &[1, 2]), ("attention_mask", &[1, 2])])
        };
        let text = "ids.raw mask.raw\n";
        let expected = [Tensor::from_i64(vec![1, 2], &[5, 6]), Tensor::from_i64(vec![1, 2], &[1, 1])];
        let s = Samples::new(list(d.path(), text), &bert(), opts(false, &["input_ids"])).unwrap();
        assert_eq!(s.read(0).unwrap().tensors, expected);
        // The name list narrows --use_native_input_files to the inputs it names.
        let s = Samples::new(list(d.path(), text), &bert(), opts(true, &["input_ids"])).unwrap();
        assert_eq!(s.read(0).unwrap().tensors, expected);
        // Every input native: the float32 mask file is then the wrong size.
        let s = Samples::new(list(d.path(), text), &bert(), opts(true, &[])).unwrap();
        let m = s.read(0).unwrap_err().to_string();
        assert!(
            m.contains("input 'attention_mask'") && m.contains("mask.raw has 8 bytes, expected 16"),
            "{m}"
        );
    }

    #[test]
    fn samples_are_sync() {
        fn sync<T: Sync + Send>() {}
        sync::<Samples>();
    }

    /// The zoo's folder, when this checkout sits next to `shared/`.
    fn zoo(model: &str) -> Option<PathBuf> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/models").join(model);
        if dir.join("calib.txt").exists() {
            Some(dir)
        } else {
            println!("skipped: {} not found", dir.display());
            None
        }
    }

    #[test]
    fn zoo_minilm_binds_from_npy_headers() {
        let Some(dir) = zoo("minilm_l3") else { return };
        let l = InputList::parse(&dir.join("calib.txt")).unwrap();
        let dims = vec![sym("batch_size"), sym("sequence_length")];
        let inputs =
            [spec("input_ids", DataType::Int64, dims.clone()), spec("attention_mask", DataType::Int64, dims)];
        let s = Samples::new(l, &inputs, ReadOptions::default()).unwrap();
        assert_eq!(s.len(), 64);
        assert!(s.inputs().iter().all(|i| i.shape == [1, 64]));
        let x = s.read(0).unwrap();
        assert_eq!(x.tensors.len(), 2);
        assert!(x.tensors.iter().all(|t| t.dtype == DataType::Int64 && t.shape == [1, 64]));
    }

    #[test]
    fn zoo_ppocr_cls_binds_from_input_dimensions() {
        let Some(dir) = zoo("ppocr_cls") else { return };
        let l = InputList::parse(&dir.join("calib.txt")).unwrap();
        let inputs =
            [spec("x", DataType::Float, vec![Dim::Unknown, Dim::Fixed(3), Dim::Unknown, Dim::Unknown])];
        let m = new_err(l.clone(), &inputs, ReadOptions::default());
        assert!(m.contains("  x float32 [?,3,?,?]: unbound"), "{m}");
        let s = Samples::new(l, &inputs, dims(&[("x", &[1, 3, 48, 192])])).unwrap();
        let x = s.read(0).unwrap();
        assert_eq!(x.tensors[0].shape, [1, 3, 48, 192]);
        assert_eq!(x.tensors[0].data.len(), 110_592);
    }

    #[test]
    fn spread_samples_cover_the_whole_list() {
        let Some(dir) = zoo("digits_cnn") else { return };
        let l = InputList::parse(&dir.join("calib.txt")).unwrap();
        let shape = vec![Dim::Fixed(1), Dim::Fixed(1), Dim::Fixed(8), Dim::Fixed(8)];
        let s = Samples::new(l, &[spec("input", DataType::Float, shape)], dims(&[])).unwrap();
        let n = s.len();
        assert!(n > 16, "digits_cnn has {n} calibration samples");
        let picked = s.spread(16);
        assert_eq!(picked.len(), 16);
        assert_eq!(picked[0], 0);
        assert!(picked[15] >= n - n / 16, "the last pick {} is near the end of {n}", picked[15]);
        assert!(picked.windows(2).all(|w| w[0] < w[1]));
        let sub = s.pick(&picked);
        assert_eq!(sub.len(), 16);
        assert_eq!(sub.read(1).unwrap(), s.read(picked[1]).unwrap());
        assert_eq!(sub.line(1).number, s.line(picked[1]).number);
        // A short list is measured whole.
        assert_eq!(s.pick(&[0, 1, 2]).spread(16), [0, 1, 2]);
    }
}
