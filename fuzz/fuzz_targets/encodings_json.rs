//! Encodings / overrides JSON in every version ptq reads (0.4.0–0.6.1 dicts, 1.0.0 lists,
//! 2.x flat lists), then the check against a model's tensor names; and for what parses, the
//! round trip the reader promises: every integer encoding written by ptq's writer (1.0.0 and
//! 0.6.1) reads back to the same scales and grid.
#![no_main]

use std::collections::BTreeSet;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use ptq_quant::json::{JsonVersion, QuantizerArgs, to_json};
use ptq_quant::overrides_json::{check_names, parse_overrides_with_warnings};
use ptq_quant::{Encodings, Given, GivenEncodings, Kind, Section, TensorEncoding};

const TENSORS: [&str; 5] = ["input", "conv.weight", "conv.bias", "fc.weight", "conv2_out"];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let file = Path::new("overrides.json");
    let Ok((given, _warnings)) = parse_overrides_with_warnings(file, text) else { return };
    let names: BTreeSet<String> = TENSORS.iter().map(|s| s.to_string()).collect();
    let _ = check_names(&given, &names, &|_, _| Some(2), true);
    round_trip(&given);
});

fn round_trip(given: &GivenEncodings) {
    let mut encodings = Encodings::default();
    for (name, g) in given {
        if let Given::Fixed(e) = &g.given {
            let kind = if g.section == Section::Activation { Kind::Activation } else { Kind::Param };
            encodings.tensors.insert(name.clone(), TensorEncoding { kind, encoding: e.clone() });
        }
    }
    let args = QuantizerArgs {
        activation_bitwidth: 8,
        param_bitwidth: 8,
        act_symmetric: false,
        param_symmetric: true,
        per_channel: false,
        per_row: false,
        bias_bitwidth: 32,
    };
    for version in JsonVersion::ALL {
        // Unwritable encodings (a zero scale, say) are refused by the writer with a message.
        let Ok(written) = to_json(&encodings, &args, version) else { return };
        let (again, _) = parse_overrides_with_warnings(Path::new("written.json"), &written)
            .unwrap_or_else(|e| panic!("ptq's own {version} file does not read back: {e}\n{written}"));
        for (name, t) in &encodings.tensors {
            let Some(Given::Fixed(e)) = again.get(name).map(|g| &g.given) else {
                panic!("`{name}` lost in the {version} round trip:\n{written}")
            };
            // The grid must come back, not its spelling: 1.0.0 and 0.6.1 know no signedness, so
            // a signed asymmetric grid reads back as the unsigned one with the same values.
            let grid =
                |e: &ptq_quant::Encoding| (0..e.scales.len()).map(|c| e.min_max(c)).collect::<Vec<_>>();
            let same = e.scales.iter().map(|s| s.to_bits()).eq(t.encoding.scales.iter().map(|s| s.to_bits()))
                && e.bitwidth == t.encoding.bitwidth
                && grid(e) == grid(&t.encoding);
            assert!(
                same,
                "`{name}` changed in the {version} round trip: {:?} → {e:?}\n{written}",
                t.encoding
            );
        }
    }
}
