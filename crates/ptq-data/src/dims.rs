//! Shapes: the flags that bind input dimensions (`--input_dimensions`, `--onnx_define_symbol`,
//! `--onnx_override_batch`), binding every input's shape (flags, the model, `.npy` headers), and
//! checking a concrete shape against a declared one.

use std::collections::{BTreeMap, BTreeSet};

use ptq_ir::{Dim, format_shape};

use crate::list::InputList;
use crate::read::{is_npy, npy_shape};
use crate::samples::in_sample;
use crate::{BoundInput, Error, InputSpec};

/// Input dimensions given on the command line, before any data is read.
#[derive(Debug, Default, Clone)]
pub struct ShapeBindings {
    /// `--input_dimensions` (or qairt's `-s`): whole shapes, by input name.
    pub dims: BTreeMap<String, Vec<usize>>,
    /// `--onnx_define_symbol`: a value for a symbolic dimension, in every input that names it.
    pub symbols: BTreeMap<String, usize>,
    /// `--onnx_override_batch`: the first dimension of every input.
    pub batch: Option<usize>,
}

impl ShapeBindings {
    /// The inputs as declared, with the symbols defined and the batch overridden; fails on a
    /// name that is not an input or a symbol no input declares.
    pub fn declared(&self, inputs: &[InputSpec]) -> Result<Vec<InputSpec>, Error> {
        let names: Vec<String> = inputs.iter().map(|i| i.name.clone()).collect();
        if let Some(name) = self.dims.keys().find(|n| !names.contains(n)) {
            return Err(Error::FlagUnknownInput {
                flag: "--input_dimensions",
                name: name.clone(),
                inputs: names,
            });
        }
        let declared: BTreeSet<&str> = inputs
            .iter()
            .flat_map(|i| &i.shape)
            .filter_map(|d| match d {
                Dim::Symbolic(s) => Some(s.as_str()),
                _ => None,
            })
            .collect();
        if let Some(symbol) = self.symbols.keys().find(|s| !declared.contains(s.as_str())) {
            return Err(Error::UnknownSymbol {
                symbol: symbol.clone(),
                declared: declared.iter().map(|s| s.to_string()).collect(),
            });
        }
        Ok(inputs
            .iter()
            .map(|spec| {
                let mut shape: Vec<Dim> = spec
                    .shape
                    .iter()
                    .map(|d| match d {
                        Dim::Symbolic(s) => self.symbols.get(s).map_or_else(|| d.clone(), |&v| Dim::Fixed(v)),
                        _ => d.clone(),
                    })
                    .collect();
                if let (Some(batch), Some(first)) = (self.batch, shape.first_mut()) {
                    *first = Dim::Fixed(batch);
                }
                InputSpec { shape, ..spec.clone() }
            })
            .collect())
    }

    /// Every input whose shape the flags and the model fix without reading data (an input list's
    /// `.npy` headers may bind the others).
    pub fn bind(&self, inputs: &[InputSpec]) -> Result<Vec<BoundInput>, Error> {
        let mut bound = Vec::new();
        for spec in self.declared(inputs)? {
            let shape = match self.dims.get(&spec.name) {
                Some(dims) => Some(check_shape(&spec.name, &spec.shape, dims, "--input_dimensions")?),
                None => fixed_shape(&spec.shape),
            };
            if let Some(shape) = shape {
                bound.push(BoundInput { name: spec.name, dtype: spec.dtype, shape });
            }
        }
        Ok(bound)
    }
}

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

/// Binds each input's shape: `--input_dimensions` first, then the model's own fixed shape, then
/// the `.npy` header of the first sample; any input left unbound fails with one error listing all.
pub(crate) fn bind(
    list: &InputList,
    slots: &[Vec<usize>],
    inputs: &[InputSpec],
    given: &BTreeMap<String, Vec<usize>>,
) -> Result<Vec<BoundInput>, Error> {
    let first = &list.lines[0];
    let mut shapes = Vec::with_capacity(inputs.len());
    let mut sources = Vec::with_capacity(inputs.len());
    for (k, spec) in inputs.iter().enumerate() {
        let (shape, source) = if let Some(dims) = given.get(&spec.name) {
            (
                Some(check_shape(&spec.name, &spec.shape, dims, "--input_dimensions")?),
                "--input_dimensions".into(),
            )
        } else if let Some(shape) = fixed_shape(&spec.shape) {
            (Some(shape), "the model".into())
        } else {
            let path = &first.entries[slots[0][k]].path;
            if is_npy(path) {
                let in_first = |e| in_sample(list, first, &spec.name, e);
                let header = npy_shape(path).map_err(in_first)?;
                let from = format!("the .npy header of {}", path.display());
                (Some(check_shape(&spec.name, &spec.shape, &header, &from).map_err(in_first)?), from)
            } else {
                (None, String::new())
            }
        };
        shapes.push(shape);
        sources.push(source);
    }
    check_shared_dims(inputs, &shapes, &sources).map_err(|(input, e)| in_sample(list, first, &input, *e))?;
    if shapes.iter().any(Option::is_none) {
        let listing = inputs
            .iter()
            .zip(&shapes)
            .map(|(spec, shape)| {
                let state = match shape {
                    Some(s) => format!("bound to {}", crate::error::dims(s)),
                    None => "unbound".to_string(),
                };
                format!("  {} {} {}: {state}", spec.name, spec.dtype, format_shape(&spec.shape))
            })
            .collect();
        return Err(Error::UnboundDims { inputs: listing });
    }
    Ok(inputs
        .iter()
        .zip(shapes)
        .filter_map(|(spec, shape)| {
            shape.map(|shape| BoundInput { name: spec.name.clone(), dtype: spec.dtype, shape })
        })
        .collect())
}

/// Inputs that name the same symbolic dimension (`batch_size`, `sequence_length`) must be bound
/// to the same value: the model computes with one value per name.
fn check_shared_dims(
    inputs: &[InputSpec],
    shapes: &[Option<Vec<usize>>],
    sources: &[String],
) -> Result<(), (String, Box<Error>)> {
    let mut seen: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for (k, (spec, shape)) in inputs.iter().zip(shapes).enumerate() {
        let Some(shape) = shape else { continue };
        for (dim, &value) in spec.shape.iter().zip(shape) {
            let Dim::Symbolic(symbol) = dim else { continue };
            match seen.get(symbol.as_str()) {
                Some(&(v, j)) if v != value => {
                    let e = Error::SharedDim {
                        symbol: symbol.clone(),
                        first: format!("{v} for input '{}' (from {})", inputs[j].name, sources[j]),
                        second: format!("{value} for input '{}' (from {})", spec.name, sources[k]),
                    };
                    return Err((spec.name.clone(), Box::new(e)));
                }
                Some(_) => {}
                None => {
                    seen.insert(symbol, (value, k));
                }
            }
        }
    }
    Ok(())
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

    fn input(name: &str, shape: &[Dim]) -> InputSpec {
        InputSpec { name: name.into(), dtype: ptq_ir::DataType::Float, shape: shape.to_vec() }
    }

    fn sym(s: &str) -> Dim {
        Dim::Symbolic(s.into())
    }

    fn shapes(bound: &[BoundInput]) -> Vec<(&str, &[usize])> {
        bound.iter().map(|b| (b.name.as_str(), b.shape.as_slice())).collect()
    }

    #[test]
    fn defined_symbols_bind_every_input_that_names_them() {
        let inputs = [
            input("ids", &[sym("batch"), sym("seq")]),
            input("mask", &[sym("batch"), sym("seq")]),
            input("x", &[sym("batch"), Dim::Fixed(3), sym("h")]),
        ];
        let b = ShapeBindings {
            symbols: [("batch".to_string(), 1), ("seq".to_string(), 64)].into_iter().collect(),
            ..ShapeBindings::default()
        };
        // `h` stays open: x is left to --input_dimensions or a .npy header.
        assert_eq!(shapes(&b.bind(&inputs).unwrap()), [("ids", &[1, 64][..]), ("mask", &[1, 64][..])]);
        let declared = b.declared(&inputs).unwrap();
        assert_eq!(declared[2].shape, [Dim::Fixed(1), Dim::Fixed(3), sym("h")]);
    }

    #[test]
    fn override_batch_sets_every_first_dim() {
        let inputs =
            [input("x", &[Dim::Fixed(1), Dim::Fixed(3)]), input("s", &[Dim::Unknown, Dim::Fixed(2)])];
        let b = ShapeBindings { batch: Some(4), ..ShapeBindings::default() };
        assert_eq!(shapes(&b.bind(&inputs).unwrap()), [("x", &[4, 3][..]), ("s", &[4, 2][..])]);
    }

    #[test]
    fn input_dimensions_win_and_are_checked() {
        let inputs = [input("x", &[sym("n"), Dim::Fixed(3)])];
        let dims = |d: &[usize]| ShapeBindings {
            dims: [("x".to_string(), d.to_vec())].into_iter().collect(),
            ..ShapeBindings::default()
        };
        assert_eq!(shapes(&dims(&[2, 3]).bind(&inputs).unwrap()), [("x", &[2, 3][..])]);
        let m = dims(&[2, 4]).bind(&inputs).unwrap_err().to_string();
        assert!(m.contains("[2,4]") && m.contains("[n,3]"), "{m}");
    }

    #[test]
    fn unknown_names_and_symbols_are_errors_that_list_the_known_ones() {
        let inputs = [input("x", &[sym("batch"), sym("p2o.DynamicDimension.0")])];
        let b =
            ShapeBindings { symbols: [("btach".to_string(), 1)].into_iter().collect(), ..Default::default() };
        let m = b.declared(&inputs).unwrap_err().to_string();
        assert!(m.contains("'btach'") && m.contains("batch, p2o.DynamicDimension.0"), "{m}");
        let b =
            ShapeBindings { dims: [("y".to_string(), vec![1])].into_iter().collect(), ..Default::default() };
        let m = b.declared(&inputs).unwrap_err().to_string();
        assert!(m.contains("'y'") && m.contains("inputs are: x"), "{m}");
    }
}
