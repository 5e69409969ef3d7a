//! One configuration, built once from the command line (or any other front end), from which
//! every stage reads what it needs.

use ptq_quant::Schema;
use ptq_quant::json::{JsonVersion, QuantizerArgs};
use ptq_quant::rules::RuleOptions;

/// What a quantization run was asked to do.
#[derive(Debug, Clone)]
pub struct Config {
    /// Specs, bias and float bitwidths, and the encoding options.
    pub quant: ptq_quant::Config,
    /// Per-channel / per-row weights.
    pub rules: RuleOptions,
    /// The encodings JSON's format.
    pub json_version: JsonVersion,
    /// How many samples, spread over the list, the closing SQNR is measured on (without an
    /// evaluation list).
    pub sqnr_samples: usize,
    /// SmoothQuant before calibration (`None`: off, the default; see [`crate::smooth`]).
    pub smooth: Option<ptq_algos::SmoothOptions>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            quant: ptq_quant::Config::default(),
            rules: RuleOptions::default(),
            json_version: JsonVersion::V1_0_0,
            sqnr_samples: 16,
            smooth: None,
        }
    }
}

impl Config {
    /// The quantizer arguments the encodings JSON records, read from this configuration.
    pub fn quantizer_args(&self) -> QuantizerArgs {
        QuantizerArgs {
            activation_bitwidth: self.quant.act.bitwidth,
            param_bitwidth: self.quant.weight.bitwidth,
            act_symmetric: self.quant.act.schema != Schema::Asymmetric,
            param_symmetric: self.quant.weight.schema != Schema::Asymmetric,
            per_channel: self.rules.per_channel,
            per_row: self.rules.per_row,
            bias_bitwidth: self.quant.bias_bitwidth,
        }
    }
}
