//! ptq never writes over a file it reads (DESIGN.md Decision 13: a failed or finished run leaves
//! its inputs as they were): the model, but also the input list and the overrides, which an
//! output path or a side file (`<stem>_report.json`, `<stem>_encoding.json`) can name.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use crate::UsageError;

/// Refuses, as a usage error, any of `written` (the files `output_flag` makes ptq write) that is
/// one of `inputs` (the flag that gave it, its path; `None`: not given).
pub fn check(output_flag: &str, written: &[PathBuf], inputs: &[(&str, Option<&Path>)]) -> Result<()> {
    for w in written {
        for (flag, input) in inputs {
            if let Some(input) = input
                && same_file(w, input)
            {
                bail!(UsageError(format!(
                    "{}, written for {output_flag}, is the {flag} file; ptq never overwrites its input: \
                     choose another {output_flag}",
                    w.display()
                )));
            }
        }
    }
    Ok(())
}

/// By canonical path where both exist (`./m.onnx` is `m.onnx`), else by the paths as given.
fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}
