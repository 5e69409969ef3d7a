//! The qnn-net-run input-list syntax (spec §2.1): an optional `#` line of output layer names, an
//! optional `%` line of output tensor names, then one sample per line of `path` or `name:=path`
//! entries.

use std::path::{Path, PathBuf};

use ptq_ir::Graph;

use crate::Error;

/// A parsed input list; every path in it has been checked to exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputList {
    /// The list file as given.
    pub path: PathBuf,
    /// Node names from an optional first line `#a b c`.
    pub output_layers: Vec<String>,
    /// Tensor names from an optional line `%t1 t2` (after the `#` line if both).
    pub output_tensors: Vec<String>,
    /// The line numbers of the `#` and `%` lines, for messages about the names on them.
    pub header_lines: HeaderLines,
    /// One per sample, in file order; blank lines are skipped.
    pub lines: Vec<Line>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeaderLines {
    pub layers: Option<usize>,
    pub tensors: Option<usize>,
}

/// One sample: the files on one line of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// 1-based line number in the list file.
    pub number: usize,
    pub entries: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `Some` for `name:=path` entries.
    pub name: Option<String>,
    /// The resolved path (list folder first, then the current directory); it exists.
    pub path: PathBuf,
}

impl InputList {
    pub fn parse(path: &Path) -> Result<InputList, Error> {
        let text =
            std::fs::read_to_string(path).map_err(|err| Error::ListRead { path: path.to_path_buf(), err })?;
        let mut list = InputList {
            path: path.to_path_buf(),
            output_layers: Vec::new(),
            output_tensors: Vec::new(),
            header_lines: HeaderLines::default(),
            lines: Vec::new(),
        };
        // Which header lines may still come: '#' only first, '%' first or right after '#'.
        let mut hash_ok = true;
        let mut percent_ok = true;
        // `lines()` also strips the '\r' of CRLF endings.
        for (i, raw) in text.lines().enumerate() {
            let number = i + 1;
            let line = raw.trim();
            if line.is_empty() {
                continue;
            }
            let misplaced =
                |marker| Error::MisplacedHeader { list: path.to_path_buf(), line: number, marker };
            if let Some(rest) = line.strip_prefix('#') {
                if !hash_ok {
                    return Err(misplaced('#'));
                }
                list.output_layers = words(rest);
                list.header_lines.layers = Some(number);
                hash_ok = false;
            } else if let Some(rest) = line.strip_prefix('%') {
                if !percent_ok {
                    return Err(misplaced('%'));
                }
                list.output_tensors = words(rest);
                list.header_lines.tensors = Some(number);
                hash_ok = false;
                percent_ok = false;
            } else {
                hash_ok = false;
                percent_ok = false;
                let entries = line
                    .split_whitespace()
                    .map(|token| entry(path, number, token))
                    .collect::<Result<_, _>>()?;
                list.lines.push(Line { number, entries });
            }
        }
        if list.lines.is_empty() {
            return Err(Error::ListEmpty { path: path.to_path_buf() });
        }
        Ok(list)
    }
}

impl InputList {
    /// The tensors the `#` line (node names: their outputs) and the `%` line (tensor names) ask
    /// for, in that order, each name checked against `graph`; empty without those lines.
    pub fn requested_outputs(&self, graph: &Graph) -> Result<Vec<String>, Error> {
        let unknown = |line: Option<usize>, what: &'static str, name: &str| Error::UnknownOutput {
            list: self.path.clone(),
            line: line.unwrap_or(1),
            what,
            name: name.to_string(),
        };
        let mut names = Vec::new();
        for node in &self.output_layers {
            let n =
                graph.node_by_name(node).ok_or_else(|| unknown(self.header_lines.layers, "node", node))?;
            names.extend(n.outputs.iter().filter(|o| !o.is_empty()).cloned());
        }
        for tensor in &self.output_tensors {
            graph.tensor(tensor).ok_or_else(|| unknown(self.header_lines.tensors, "tensor", tensor))?;
            names.push(tensor.clone());
        }
        Ok(names)
    }
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

fn entry(list: &Path, line: usize, token: &str) -> Result<Entry, Error> {
    let bad = |reason| Error::BadEntry { list: list.to_path_buf(), line, token: token.to_string(), reason };
    // The first ':=' splits, so input names may contain ':' (and paths ":=").
    let (name, file) = match token.split_once(":=") {
        Some(("", _)) => return Err(bad("has no input name before ':='")),
        Some((_, "")) => return Err(bad("has no path after ':='")),
        Some((name, file)) => (Some(name.to_string()), file),
        None => (None, token),
    };
    Ok(Entry { name, path: resolve(list, line, Path::new(file))? })
}

/// Relative paths: the list's folder first (lists are usually written next to their data), then
/// the current directory (what qnn-net-run does).
fn resolve(list: &Path, line: usize, file: &Path) -> Result<PathBuf, Error> {
    let candidates = if file.is_absolute() {
        vec![file.to_path_buf()]
    } else {
        let folder = list.parent().unwrap_or(Path::new(""));
        vec![folder.join(file), file.to_path_buf()]
    };
    match candidates.iter().find(|p| p.exists()) {
        Some(found) => Ok(found.clone()),
        None => Err(Error::MissingFile { list: list.to_path_buf(), line, candidates }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        fs::write(&p, text).unwrap();
        p
    }

    fn err(list: &Path) -> String {
        InputList::parse(list).unwrap_err().to_string()
    }

    #[test]
    fn bare_paths_one_sample_per_line() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "a.raw", "");
        write(d.path(), "b.raw", "");
        let list = write(d.path(), "list.txt", "a.raw\n\nb.raw a.raw\n");
        let l = InputList::parse(&list).unwrap();
        assert_eq!(l.path, list);
        assert_eq!(l.lines.len(), 2);
        assert_eq!(l.lines[0].number, 1);
        assert_eq!(l.lines[1].number, 3);
        assert_eq!(l.lines[1].entries.len(), 2);
        assert_eq!(l.lines[1].entries[0], Entry { name: None, path: d.path().join("b.raw") });
        assert!(l.output_layers.is_empty() && l.output_tensors.is_empty());
    }

    #[test]
    fn named_entries_split_on_first_marker() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "x.raw", "");
        write(d.path(), "odd:=name.raw", "");
        let list = write(d.path(), "list.txt", "in:put:=x.raw\tb:=odd:=name.raw\n");
        let l = InputList::parse(&list).unwrap();
        let e = &l.lines[0].entries;
        assert_eq!(e[0].name.as_deref(), Some("in:put"));
        assert_eq!(e[0].path, d.path().join("x.raw"));
        assert_eq!(e[1].name.as_deref(), Some("b"));
        assert_eq!(e[1].path, d.path().join("odd:=name.raw"));
    }

    #[test]
    fn header_lines_crlf_and_hash_inside_paths() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "dir/0-0#e6fb51.rawtensor", "");
        let text = "#conv1 fc\r\n%out1 out2\r\nInput_1:=dir/0-0#e6fb51.rawtensor\r\n\r\n";
        let list = write(d.path(), "list.txt", text);
        let l = InputList::parse(&list).unwrap();
        assert_eq!(l.output_layers, ["conv1", "fc"]);
        assert_eq!(l.output_tensors, ["out1", "out2"]);
        assert_eq!(l.lines.len(), 1);
        assert_eq!(l.lines[0].number, 3);
        assert_eq!(l.lines[0].entries[0].path, d.path().join("dir/0-0#e6fb51.rawtensor"));
    }

    #[test]
    fn percent_line_alone() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "a.raw", "");
        let list = write(d.path(), "list.txt", "%t\na.raw\n");
        let l = InputList::parse(&list).unwrap();
        assert_eq!(l.output_tensors, ["t"]);
        assert!(l.output_layers.is_empty());
    }

    #[test]
    fn header_line_after_sample_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "a.raw", "");
        let list = write(d.path(), "list.txt", "a.raw\n#late\n");
        let m = err(&list);
        assert!(m.contains("list.txt:2:"), "{m}");
        assert!(m.contains("'#'") && m.contains("first line"), "{m}");
        let list = write(d.path(), "list2.txt", "a.raw\n%late\n");
        let m = err(&list);
        assert!(m.contains("list2.txt:2:") && m.contains("'%'"), "{m}");
    }

    #[test]
    fn hash_after_percent_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "a.raw", "");
        let list = write(d.path(), "list.txt", "%t\n#l\na.raw\n");
        let m = err(&list);
        assert!(m.contains("list.txt:2:") && m.contains("'#'"), "{m}");
    }

    #[test]
    fn empty_name_or_path_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let list = write(d.path(), "list.txt", ":=a.raw\n");
        let m = err(&list);
        assert!(m.contains("list.txt:1:") && m.contains("':=a.raw'") && m.contains("no input name"), "{m}");
        let list = write(d.path(), "list2.txt", "\nx:=\n");
        let m = err(&list);
        assert!(m.contains("list2.txt:2:") && m.contains("no path"), "{m}");
    }

    #[test]
    fn relative_paths_prefer_the_list_folder_then_the_current_directory() {
        let d = tempfile::tempdir().unwrap();
        // Cargo runs unit tests in the crate folder, so Cargo.toml exists relative to the current
        // directory; a copy next to the list must win, and without it the current one is used.
        let list = write(d.path(), "list.txt", "Cargo.toml\n");
        let l = InputList::parse(&list).unwrap();
        assert_eq!(l.lines[0].entries[0].path, PathBuf::from("Cargo.toml"));
        write(d.path(), "Cargo.toml", "");
        let l = InputList::parse(&list).unwrap();
        assert_eq!(l.lines[0].entries[0].path, d.path().join("Cargo.toml"));
    }

    #[test]
    fn missing_relative_file_names_both_candidates() {
        let d = tempfile::tempdir().unwrap();
        let list = write(d.path(), "list.txt", "\n\nsub/missing.raw\n");
        let m = err(&list);
        assert!(m.contains("list.txt:3:"), "{m}");
        assert!(m.contains(&d.path().join("sub/missing.raw").display().to_string()), "{m}");
        assert!(m.contains("and sub/missing.raw (relative to the current directory)"), "{m}");
    }

    #[test]
    fn missing_absolute_file_is_named() {
        let d = tempfile::tempdir().unwrap();
        let gone = d.path().join("gone.raw");
        let list = write(d.path(), "list.txt", &format!("{}\n", gone.display()));
        let m = err(&list);
        assert!(m.contains("list.txt:1:") && m.contains(&gone.display().to_string()), "{m}");
        assert!(!m.contains("current directory"), "{m}");
    }

    #[test]
    fn absolute_path_is_used_as_is() {
        let d = tempfile::tempdir().unwrap();
        let data = write(d.path(), "data/a.raw", "");
        let list = write(d.path(), "lists/list.txt", &format!("{}\n", data.display()));
        let l = InputList::parse(&list).unwrap();
        assert_eq!(l.lines[0].entries[0].path, data);
    }

    #[test]
    fn missing_list_file() {
        let d = tempfile::tempdir().unwrap();
        let m = err(&d.path().join("nope.txt"));
        assert!(m.contains("cannot read input list") && m.contains("nope.txt"), "{m}");
        assert!(m.contains("--input_list"), "{m}");
    }

    #[test]
    fn list_without_samples() {
        let d = tempfile::tempdir().unwrap();
        let list = write(d.path(), "list.txt", "#a\n%b\n\n  \r\n");
        let m = err(&list);
        assert!(m.contains("list.txt") && m.contains("has no samples"), "{m}");
    }
}
