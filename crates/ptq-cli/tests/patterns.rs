//! Patterns handled by default, end to end on the shared models whose anchors they break
//! (anchors.md "Patterns that break the anchors", 1 and 3): named in the summary and the report,
//! with the MACs still at 8 bit.

mod common;

use common::{Work, model, stderr, zoo_lines};

/// `ptq quantize` of a zoo model on 16 calibration samples, per-channel/per-row weights, into
/// `<tmp>/q.onnx`; returns stderr and the report.
fn quantize(name: &str) -> (String, serde_json::Value, Work) {
    let mut work = Work::new();
    let list = work.list("calib.txt", &zoo_lines(name, "calib.txt", 16));
    let mut cmd = work.ptq();
    cmd.arg("quantize").arg("--input_model").arg(model(name)).arg("--input_list").arg(&list);
    cmd.args(["--use_per_channel_quantization", "--use_per_row_quantization"]);
    cmd.arg("--output_model").arg(work.path("q.onnx"));
    let out = cmd.assert().success().get_output().clone();
    let report = work.json("q_report.json");
    (stderr(&out), report, work)
}

#[test]
fn silero_stft_power_is_quantized_at_16_bit_and_its_magnitude_at_8() {
    let (err, report, work) = quantize("silero_vad_16k");
    let stft = |t: &str| format!("F0::If_0_then_branch__Inline_0__/stft/{t}");
    let patterns = report["patterns"].as_array().unwrap();
    assert_eq!(patterns.len(), 1, "{patterns:?}");
    assert_eq!(patterns[0]["pattern"], "square sum before a square root");
    assert_eq!(patterns[0]["at"], stft("Sqrt"));
    let power = [stft("Pow_output_0"), stft("Pow_1_output_0"), stft("Add_output_0")];
    assert_eq!(patterns[0]["tensors"], serde_json::json!(power));
    for t in &power {
        assert_eq!(report["tensors"][t]["bitwidth"], 16, "{t}");
        assert_eq!(report["tensors"][t]["dtype"], "int", "{t}");
    }
    assert_eq!(report["tensors"][stft("Sqrt_output_0")]["bitwidth"], 8);
    assert_eq!(report["precision"]["mac_share"]["int8"], 1.0);
    assert!(err.contains("pattern    square sum before a square root:"), "{err}");
    assert!(err.contains("MACs (") && err.contains("100.0 % at 8 bit"), "{err}");
    // uint16 Q/DQ need opset 21 (DESIGN.md Decision 3).
    let bytes = std::fs::read(work.path("q.onnx")).unwrap();
    let qdq = ptq_onnx::decode(bytes.into(), &work.path("q.onnx")).unwrap();
    let opset = qdq.opset_import.iter().find(|o| o.domain().is_empty()).unwrap().version();
    assert!(opset >= 21, "opset {opset}");
}

#[test]
fn minilm_attention_mask_stays_float() {
    let (err, report, _work) = quantize("minilm_l3");
    let p = |t: &str| format!("/model/model.0/auto_model/{t}");
    let all = report["patterns"].as_array().unwrap();
    let patterns: Vec<&serde_json::Value> = all.iter().filter(|f| f["pattern"] == "masking value").collect();
    assert_eq!(patterns.len(), 1, "{all:?}");
    assert_eq!(patterns[0]["at"], p("Constant_13_output_0"));
    let adds: Vec<String> =
        (0..3).map(|l| p(&format!("encoder/layer.{l}/attention/self/Add_output_0"))).collect();
    let mut float = vec![p("Constant_13_output_0"), p("Mul_1_output_0")];
    float.extend(adds);
    assert_eq!(patterns[0]["tensors"], serde_json::json!(float));
    for t in &float {
        assert_eq!(report["tensors"][t]["dtype"], "float", "{t}");
        assert_eq!(report["tensors"][t]["origin"], "masking value", "{t}");
    }
    // Around the mask everything keeps its grid: the scores, the mask arithmetic, the softmax.
    for t in [
        "encoder/layer.0/attention/self/Div_output_0",
        "Sub_output_0",
        "encoder/layer.0/attention/self/Softmax_output_0",
    ] {
        assert_eq!(report["tensors"][p(t)]["bitwidth"], 8, "{t}");
    }
    assert_eq!(report["precision"]["mac_share"]["int8"], 1.0);
    // The residual stream (outlier channel 99 on [CLS]/[SEP], anchors.md pattern 2) goes to 16
    // bit in every layer, and so do layer 0's other tensors with isolated outliers outside MatMul
    // operands; no MatMul operand does (every MAC stays 8-bit, checked just above).
    let with = |pattern: &str, tensor: &str| {
        all.iter()
            .any(|f| f["pattern"] == pattern && f["tensors"].as_array().unwrap().contains(&tensor.into()))
    };
    for l in 0..3 {
        let residual = p(&format!("encoder/layer.{l}/output/Add_output_0"));
        assert!(with("residual stream", &residual), "{residual}");
        assert_eq!(report["tensors"][&residual]["bitwidth"], 16);
    }
    let gelu = p("encoder/layer.0/intermediate/intermediate_act_fn/Mul_output_0");
    assert!(with("isolated outliers outside multiply-accumulate inputs", &gelu), "{gelu}");
    assert!(
        err.contains(
            "pattern    masking value: `/model/model.0/auto_model/Constant_13_output_0` and 4 tensors"
        ),
        "{err}"
    );
}
