//! What a run says about the inputs it was given and then used otherwise than asked: warnings
//! through [`Events`], never a silent change.

use anyhow::Result;
use ptq_data::InputList;
use ptq_ir::Graph;
use ptq_quant::rules::{Layout, Role};
use ptq_quant::{Given, GivenEncodings};

use crate::{Config, Events};

/// Weight overrides at another bitwidth than the weights' do not take the grid of
/// --restrict_quantization_steps ([`ptq_quant::QuantSpec::at_bitwidth`]); said, since it was asked for.
pub(crate) fn warn_unrestricted(
    config: &Config,
    given: &GivenEncodings,
    layout: &Layout,
    events: &dyn Events,
) {
    let weights = config.quant.weight;
    if weights.restricted.is_none() {
        return;
    }
    for (name, g) in given {
        if let Given::Bitwidth { bitwidth, .. } = g.given
            && bitwidth != weights.bitwidth
            && matches!(layout.roles.get(name), Some(Role::Weight { .. }))
        {
            events.warn(&format!(
                "weight `{name}`: its override asks for {bitwidth} bits, but --restrict_quantization_steps \
                 describes a grid of the {}-bit weights; `{name}` gets the full symmetric {bitwidth}-bit grid",
                weights.bitwidth
            ));
        }
    }
}

/// The `#`/`%` output lines of a calibration list (qnn-net-run's) are checked against the model
/// as the user knows it, then ignored: calibration computes every tensor, and the quantized model
/// keeps the model's own outputs.
pub(crate) fn warn_output_lines(list: &InputList, graph: &Graph, events: &dyn Events) -> Result<()> {
    let requested = list.requested_outputs(graph)?;
    if requested.is_empty() {
        return Ok(());
    }
    let extra: Vec<String> =
        requested.iter().filter(|t| !graph.outputs.contains(t)).map(|t| format!("`{t}`")).collect();
    let extra = match extra.len() {
        0 => String::new(),
        1 => format!("; {} is not one of them (ptq run writes it)", extra[0]),
        _ => format!("; {} are not among them (ptq run writes them)", extra.join(", ")),
    };
    events.warn(&format!(
        "{}: the `#`/`%` output lines are ignored for calibration: every tensor is calibrated, and the \
         quantized model keeps the model's outputs ({}){extra}",
        list.path.display(),
        graph.outputs.join(", ")
    ));
    Ok(())
}
