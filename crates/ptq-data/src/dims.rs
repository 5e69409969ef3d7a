//! Shapes: the `--input_dimensions` flag and checking a concrete shape against a declared one.

use ptq_ir::{Dim, format_shape};

use crate::Error;

/// Parses one `--input_dimensions` value: `name=d0,d1,...`, or qairt's `name d0,d1,...`.
pub fn parse_input_dimensions(arg: &str) -> Result<(String, Vec<usize>), Error> {
    let bad =
        |reason: &str| Error::InputDimensionsSyntax { arg: arg.to_string(), reason: reason.to_string() };
    let trimmed = arg.trim();
    // The last '=' splits, so a name may itself contain '='; dims never do. The qairt form splits
    // at the first blank, so blanks after the commas are harmless.
    let (name, list) = trimmed
        .rsplit_once('=')
        .or_else(|| trimmed.split_once(char::is_whitespace))
        .ok_or_else(|| bad("no '=' between the input name and its dimensions"))?;
    let name = name.trim();
    if name.is_empty() {
        return Err(bad("the input name is empty"));
    }
    let list = list.trim();
    if list.is_empty() {
        return Err(bad("no dimensions after the name"));
    }
    let dims = list
        .split(',')
        .map(|d| match d.trim().parse::<usize>() {
            Ok(0) => Err(bad("a dimension is 0; every dimension must be at least 1")),
            Ok(v) => Ok(v),
            Err(_) => Err(bad(&format!("'{}' is not a whole number", d.trim()))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((name.to_string(), dims))
}

/// The declared shape when every dim is fixed.
pub(crate) fn fixed_shape(declared: &[Dim]) -> Option<Vec<usize>> {
    declared.iter().map(Dim::fixed).collect()
}

/// Accepts `given` for an input declared as `declared` when the ranks match and every fixed dim
/// agrees; `from` says where `given` came from, for the error.
pub(crate) fn check_shape(
    input: &str,
    declared: &[Dim],
    given: &[usize],
    from: &str,
) -> Result<Vec<usize>, Error> {
    let agrees = given.len() == declared.len()
        && declared.iter().zip(given).all(|(d, g)| d.fixed().is_none_or(|f| f == *g));
    if agrees {
        Ok(given.to_vec())
    } else {
        Err(Error::ShapeMismatch {
            input: input.to_string(),
            from: from.to_string(),
            given: given.to_vec(),
            declared: format_shape(declared),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_err(arg: &str) -> String {
        parse_input_dimensions(arg).unwrap_err().to_string()
    }

    #[test]
    fn equals_form() {
        assert_eq!(parse_input_dimensions("x=1,3,48,192").unwrap(), ("x".to_string(), vec![1, 3, 48, 192]));
        assert_eq!(parse_input_dimensions(" a:b = 1, 64 ").unwrap(), ("a:b".to_string(), vec![1, 64]));
    }

    #[test]
    fn qairt_space_form() {
        assert_eq!(parse_input_dimensions("input_ids 1,64").unwrap(), ("input_ids".to_string(), vec![1, 64]));
        assert_eq!(parse_input_dimensions("x 1, 3").unwrap(), ("x".to_string(), vec![1, 3]));
    }

    #[test]
    fn malformed_values() {
        let m = parse_err("x=1,a");
        assert!(
            m.contains("'x=1,a'") && m.contains("'a' is not a whole number") && m.contains("name=d0,d1"),
            "{m}"
        );
        let m = parse_err("x");
        assert!(m.contains("'x'") && m.contains("no '='"), "{m}");
        let m = parse_err("=1,2");
        assert!(m.contains("'=1,2'") && m.contains("name is empty"), "{m}");
        let m = parse_err("x=");
        assert!(m.contains("no dimensions"), "{m}");
        let m = parse_err("x=1,,2");
        assert!(m.contains("'' is not a whole number"), "{m}");
        let m = parse_err("x=1,0");
        assert!(m.contains("at least 1"), "{m}");
        let m = parse_err("x=1,-3");
        assert!(m.contains("'-3'"), "{m}");
    }

    #[test]
    fn fixed_shape_needs_every_dim() {
        assert_eq!(fixed_shape(&[Dim::Fixed(1), Dim::Fixed(4)]), Some(vec![1, 4]));
        assert_eq!(fixed_shape(&[Dim::Fixed(1), Dim::Unknown]), None);
        assert_eq!(fixed_shape(&[Dim::Symbolic("n".into())]), None);
    }

    #[test]
    fn check_shape_keeps_fixed_dims_and_rank() {
        let declared = [Dim::Unknown, Dim::Fixed(3), Dim::Symbolic("h".into())];
        assert_eq!(check_shape("x", &declared, &[1, 3, 8], "--input_dimensions").unwrap(), vec![1, 3, 8]);
        let m = check_shape("x", &declared, &[1, 4, 8], "--input_dimensions").unwrap_err().to_string();
        assert!(m.contains("input 'x'") && m.contains("--input_dimensions gives shape [1,4,8]"), "{m}");
        assert!(m.contains("declares [?,3,h]"), "{m}");
        let m = check_shape("x", &declared, &[1, 3], "the header").unwrap_err().to_string();
        assert!(m.contains("[1,3]") && m.contains("[?,3,h]"), "{m}");
    }
}
