//! File names for tensors on disk (DESIGN.md Decision 7, qnn-net-run's own rule).

use std::collections::BTreeSet;

/// `name` with every character outside `[A-Za-z0-9_]` replaced by `_`, and `_` in front when it
/// starts with a digit.
pub fn sanitize(name: &str) -> String {
    let mut s: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    s
}

/// Sanitised names for `names`, made unique with `_1`, `_2`, … in the order given.
pub fn file_stems(names: &[String]) -> Vec<String> {
    let mut taken = BTreeSet::new();
    names
        .iter()
        .map(|n| {
            let base = sanitize(n);
            let mut stem = base.clone();
            let mut k = 0;
            while !taken.insert(stem.clone()) {
                k += 1;
                stem = format!("{base}_{k}");
            }
            stem
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qnn_style_names() {
        assert_eq!(sanitize("save_infer_model/scale_0.tmp_1"), "save_infer_model_scale_0_tmp_1");
        assert_eq!(sanitize("7"), "_7");
        assert_eq!(sanitize("logits"), "logits");
        assert_eq!(sanitize(""), "_");
    }

    #[test]
    fn collisions_get_suffixes_in_order() {
        let names = ["a.b", "a/b", "a_b", "a_b_1"].map(String::from);
        assert_eq!(file_stems(&names), ["a_b", "a_b_1", "a_b_2", "a_b_1_1"]);
    }
}
