use std::io;
use std::path::{Path, PathBuf};

use ptq_ir::DataType;

/// Everything that can go wrong between an input list and a sample.
///
/// Each message names the culprit (list file and line, data file, input or flag) and says what to
/// do. Messages are complete on their own: I/O errors are part of the text rather than a
/// `source()`, so a chained report does not print them twice.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read input list {}: {err}; check the --input_list path", path.display())]
    ListRead { path: PathBuf, err: io::Error },

    #[error(
        "input list {} has no samples: write one line per sample, with one file per model input",
        path.display()
    )]
    ListEmpty { path: PathBuf },

    #[error(
        "{}:{line}: a line starting with '{marker}' is out of place: the '#' line (output layer \
         names) may only be the first line, and the '%' line (output tensor names) only the first \
         or right after the '#' line; move or remove it (a sample path cannot start with '{marker}')",
        list.display()
    )]
    MisplacedHeader { list: PathBuf, line: usize, marker: char },

    #[error(
        "{}:{line}: the `{}` line names {what} `{name}`, which the model does not have; correct or \
         remove the name",
        list.display(), if *what == "node" { '#' } else { '%' }
    )]
    UnknownOutput { list: PathBuf, line: usize, what: &'static str, name: String },

    #[error("{}:{line}: entry '{token}' {reason}; write name:=path", list.display())]
    BadEntry { list: PathBuf, line: usize, token: String, reason: &'static str },

    #[error("{}", missing_file(list, *line, candidates))]
    MissingFile { list: PathBuf, line: usize, candidates: Vec<PathBuf> },

    #[error(
        "{}:{line}: {given} input{} given, the model has {}: {}; give one file per input \
         (bare paths in this order, or name:=path for each)",
        list.display(), plural(*given), inputs.len(), inputs.join(", ")
    )]
    EntryCount { list: PathBuf, line: usize, given: usize, inputs: Vec<String> },

    #[error(
        "{}:{line}: '{name}' is not an input of the model; its inputs are: {}",
        list.display(), inputs.join(", ")
    )]
    UnknownInput { list: PathBuf, line: usize, name: String, inputs: Vec<String> },

    #[error(
        "{}:{line}: the line mixes bare paths and name:=path entries; use one form for the whole line",
        list.display()
    )]
    MixedEntries { list: PathBuf, line: usize },

    #[error("{}:{line}: input '{name}' is given twice; give each input once", list.display())]
    DuplicateInput { list: PathBuf, line: usize, name: String },

    #[error("--input_dimensions '{arg}': {reason}; write name=d0,d1,... (for example x=1,3,224,224)")]
    InputDimensionsSyntax { arg: String, reason: String },

    #[error("{flag} names '{name}', which is not an input of the model; its inputs are: {}", inputs.join(", "))]
    FlagUnknownInput { flag: &'static str, name: String, inputs: Vec<String> },

    #[error(
        "--onnx_define_symbol names '{symbol}', which no input of the model declares; the inputs' symbolic \
         dimensions are: {}",
        if declared.is_empty() { "none".to_string() } else { declared.join(", ") }
    )]
    UnknownSymbol { symbol: String, declared: Vec<String> },

    #[error(
        "input '{input}': {from} gives shape {}, but the model declares {declared}; give a shape \
         of the same rank that keeps every fixed dimension",
        dims(given)
    )]
    ShapeMismatch { input: String, from: String, given: Vec<usize>, declared: String },

    /// `first` and `second` read like "64 for input 'x' (from the model)".
    #[error(
        "dimension '{symbol}' is {first} but {second}; inputs that share a dimension name must \
         agree: fix the data or --input_dimensions"
    )]
    SharedDim { symbol: String, first: String, second: String },

    #[error(
        "cannot bind every input shape: raw files carry no shape, so each dimension the model does \
         not fix must be given:\n{}\npass --input_dimensions name=d0,d1,... for each unbound input \
         (one flag per input)",
        inputs.join("\n")
    )]
    UnboundDims { inputs: Vec<String> },

    #[error(
        "input '{input}' has type {dtype}, which ptq cannot read from input files (float and \
         integer inputs only)"
    )]
    UnsupportedType { input: String, dtype: DataType },

    #[error("{}:{line}: input '{input}': {error}", list.display())]
    Sample { list: PathBuf, line: usize, input: String, error: Box<Error> },

    #[error("cannot read {}: {err}", path.display())]
    FileRead { path: PathBuf, err: io::Error },

    #[error("{} is a folder, not a data file; give the input's .raw or .npy file", path.display())]
    NotAFile { path: PathBuf },

    #[error(
        "{} has {actual} bytes, expected {expected} (shape {} of {dtype}, {} bytes each){hint}",
        path.display(), dims(shape), dtype.size_of().unwrap_or(0)
    )]
    RawSize { path: PathBuf, actual: u64, expected: u64, shape: Vec<usize>, dtype: DataType, hint: String },

    #[error(
        "{}: element {index} is {value}, which is not a whole number in the range of {dtype}; \
         files are read as float32 and cast to the input's type: fix the data, or store {dtype} \
         values and pass --use_native_input_files",
        path.display()
    )]
    NotWhole { path: PathBuf, index: usize, value: f32, dtype: DataType },

    #[error("{} is not a readable .npy file: {reason}; write it with numpy.save", path.display())]
    Npy { path: PathBuf, reason: String },

    #[error(
        "{} is stored in Fortran order; save it in C order (numpy: np.save(f, np.ascontiguousarray(a)))",
        path.display()
    )]
    NpyFortran { path: PathBuf },

    #[error(
        "{} holds {found}, the input is {expected}; save it as {expected}{}",
        path.display(),
        if *expected == DataType::Float { "" } else { " (or float32, which is cast)" }
    )]
    NpyDtype { path: PathBuf, found: String, expected: DataType },

    #[error(
        "{} has shape {}, the input is bound to {}; save it with that shape (or change \
         --input_dimensions)",
        path.display(), dims(found), dims(expected)
    )]
    NpyShape { path: PathBuf, found: Vec<usize>, expected: Vec<usize> },

    #[error(
        "{} holds {count} NaN/Inf value{}; fix the data, or pass --allow_nonfinite to let the run \
         continue",
        path.display(), plural(*count)
    )]
    NonFinite { path: PathBuf, count: usize },
}

/// `[1,3,48,192]`, the same form `format_shape` gives declared shapes.
pub(crate) fn dims(shape: &[usize]) -> String {
    let parts: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", parts.join(","))
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn missing_file(list: &Path, line: usize, candidates: &[PathBuf]) -> String {
    let at = format!("{}:{line}", list.display());
    match candidates {
        [list_dir, cwd] => format!(
            "{at}: file not found: tried {} (relative to the list's folder) and {} (relative to \
             the current directory); fix the path, or run from the folder it is relative to",
            list_dir.display(),
            cwd.display()
        ),
        _ => {
            let tried: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
            format!("{at}: file not found: {}; fix the path", tried.join(", "))
        }
    }
}
