//! What a run says about the inputs it was given and then used otherwise than asked: warnings
//! through [`Events`], never a silent change.

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
