//! Op rules on the shared digits model, whose graph is small enough to check tensor by tensor.

use std::path::Path;

use ptq_ir::Graph;
use ptq_quant::rules::{Role, RuleOptions, layout};

fn digits() -> Graph {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/models/digits_cnn/model.onnx");
    let loaded = ptq_onnx::load(&path).expect("the shared model zoo beside the repository");
    Graph::new(&loaded.model, loaded.dir()).unwrap()
}

#[test]
fn digits_roles() {
    let g = digits();
    let l = layout(&g, RuleOptions { per_channel: true, per_row: false }, &|_| false);
    let role = |t: &str| l.roles.get(t).cloned();
    let class = |t: &str| match role(t) {
        Some(Role::Activation { class }) => class,
        other => panic!("{t}: {other:?}"),
    };
    assert_eq!(role("conv1.weight"), Some(Role::Weight { channel_axis: 0, per_channel: true }));
    assert_eq!(role("fc1.weight"), Some(Role::Weight { channel_axis: 0, per_channel: false }));
    assert_eq!(role("fc2.weight"), Some(Role::Weight { channel_axis: 1, per_channel: false }));
    assert_eq!(
        role("conv1.bias"),
        Some(Role::Bias { input: "input".into(), weight: "conv1.weight".into(), row_layer: false })
    );
    // BatchNormalization statistics are not data; the Conv before a lone Relu needs no encoding.
    assert_eq!(role("bn1.running_mean"), None);
    assert_eq!(role("dwconv_out"), None);
    assert_eq!(role("fc1_out"), None);
    // Data-invariant ops share their input's encoding; a constant added to data is quantized.
    assert_eq!(class("pool_out"), class("relu3_out"));
    assert_eq!(class("flat_out"), class("relu3_out"));
    assert_ne!(class("relu2_out"), class("relu3_out"));
    // MatMul + Add of a constant vector is a fully connected layer: the Add constant is its bias.
    assert_eq!(
        role("fc2.bias"),
        Some(Role::Bias { input: "relu4_out".into(), weight: "fc2.weight".into(), row_layer: true })
    );
    assert_eq!(role("fc2_mm"), None);
    class("logits");
    class("input");
    assert!(l.groups.is_empty());
}
