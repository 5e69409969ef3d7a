//! Class labels for top-1 accuracy: one class index per line, aligned with the input list's
//! samples (models/README.md, `eval_labels.txt`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// The labels file and its class indices, in sample order.
#[derive(Debug, Clone)]
pub struct Labels {
    pub path: PathBuf,
    pub classes: Vec<usize>,
}

impl Labels {
    pub fn read(path: &Path) -> Result<Labels> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read --labels {}", path.display()))?;
        Labels::parse(path, &text)
    }

    /// Every line holds a whole number ≥ 0 (surrounding spaces allowed); blank lines may only end
    /// the file.
    pub fn parse(path: &Path, text: &str) -> Result<Labels> {
        let lines: Vec<&str> = text.lines().collect();
        let used = lines.iter().rposition(|l| !l.trim().is_empty()).map_or(0, |last| last + 1);
        let classes = lines[..used]
            .iter()
            .enumerate()
            .map(|(i, line)| match line.trim().parse::<usize>() {
                Ok(class) => Ok(class),
                Err(_) => bail!(
                    "{}:{}: `{}` is not a class index; each line of a labels file holds one whole number \
                     ≥ 0, the class of the sample on the same line of the input list",
                    path.display(),
                    i + 1,
                    line.trim()
                ),
            })
            .collect::<Result<Vec<_>>>()?;
        if classes.is_empty() {
            bail!("{} holds no labels: give one class index per sample of the input list", path.display());
        }
        Ok(Labels { path: path.to_owned(), classes })
    }

    /// Sample `i`'s label must index one of the `values` values of the first output, or top-1
    /// would count a class the model cannot give as a miss.
    pub(crate) fn check(&self, i: usize, output: &str, values: usize) -> Result<()> {
        let class = self.classes[i];
        if class >= values {
            bail!(
                "{}:{}: class {class}, but the first output `{output}` has {values} value(s), classes 0 to {}; \
                 check that the labels belong to this model and list",
                self.path.display(),
                i + 1,
                values.saturating_sub(1)
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_class_per_line() {
        let l = Labels::parse(Path::new("l.txt"), "3\n 0 \n12\n\n").unwrap();
        assert_eq!(l.classes, [3, 0, 12]);
    }

    #[test]
    fn a_bad_line_is_named_with_its_number() {
        for (text, line) in [("1\n2\nx\n", 3), ("1\n-1\n", 2), ("1.5\n", 1), ("1\n\n2\n", 2)] {
            let e = Labels::parse(Path::new("l.txt"), text).unwrap_err().to_string();
            assert!(e.starts_with(&format!("l.txt:{line}: ")), "{text:?}: {e}");
        }
        assert!(Labels::parse(Path::new("l.txt"), "\n\n").unwrap_err().to_string().contains("no labels"));
    }
}
