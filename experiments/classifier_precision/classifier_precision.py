"""Which activations a fine-tuned classifier needs in int16 to keep its decisions integer-only:
recipe variants of ``wi8_ai8i16`` / ``wi8_ai16`` as recipe files, exported in ONNX (QDQ; the
format whose 16-bit ops run fastest here), each scored against the fp32 bundle on the held-out
sentences of ``experiments/finetune_accuracy/finetune_accuracy.py``'s classifier (run that first).

    .venv/bin/python experiments/classifier_precision/classifier_precision.py [--runs "name;name"] [-o benchmarks/results/classifier_precision]

Writes results.json / results.md / results.png: per variant the share of identical decisions, the probability
max-abs, and the export gate's pooled cosine on its 64 held-out calibration-corpus sentences.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
FT = ROOT / "benchmarks" / "results" / "finetune"
CORPUS = ROOT / "tests" / "data" / "sentiment" / "movieReviewSnippets_GroundTruth.txt"
ALL = ".*"
QKV = r"^layer_\d+/attention/self/(query|key|value)/"
CHEAP = r"^(layer_\d+/attention/(self/(query|key|value|context)|output/dense)|attention_mask|pooler/dense)/"


def variants() -> dict[str, dict]:
    """{name: changes to a base recipe}: ``base``, ``int16_select`` (or ``add16`` appended to
    the base's), ``int8`` (groups taken back to int8), ``alpha`` (None: no SmoothQuant),
    ``calibration`` ("movie": in-domain sentences not held out)."""
    return {
        "wi8_ai8i16 (the recipe)": {"base": "wi8_ai8i16"},
        "+ classifier and pooler int16": {"base": "wi8_ai8i16", "add16": r"^(classifier|pooler)/"},
        "+ FFN-in dense int16": {"base": "wi8_ai8i16", "add16": r"^layer_\d+/intermediate/dense/"},
        "SmoothQuant alpha 0.7": {"base": "wi8_ai8i16", "alpha": 0.7},
        "SmoothQuant alpha 0.85": {"base": "wi8_ai8i16", "alpha": 0.85},
        "calibrated on movie sentences": {"base": "wi8_ai8i16", "calibration": "movie"},
        "every op int16, alpha 0.5": {"base": "wi8_ai16", "alpha": 0.5},
        "every op int16, alpha 0.7": {"base": "wi8_ai16", "alpha": 0.7},
        "every op int16, Q/K/V int8": {"base": "wi8_ai16", "alpha": 0.5, "int8": QKV},
        "every op int16, Q/K/V, context, attention-out, mask, pooler int8": {
            "base": "wi8_ai16",
            "alpha": 0.5,
            "int8": CHEAP,
        },
        "wi8_ai16 (every op int16, no SmoothQuant)": {"base": "wi8_ai16"},
    }


def recipe_file(name: str, change: dict, work: Path) -> Path:
    from edgebert.quantize import recipes

    r = recipes.get(change["base"]).to_json()
    r["name"] = "variant_" + "".join(c if c.isalnum() else "_" for c in name)[:40]
    select = r["precision"]["int16_select"]
    if "add16" in change:
        select += "|" + change["add16"]
    if "int8" in change:
        select = f"^(?!{change['int8']})(?:{select})"  # anchored: re.search tries every position
    r["precision"]["int16_select"] = select
    if "alpha" in change:
        if change["alpha"] is None:
            r.pop("smoothing", None)
        else:
            smoothing = r.get("smoothing") or {"layers": ["qkv", "ffn_in"], "calibration_sentences": 256}
            r["smoothing"] = {**smoothing, "alpha": change["alpha"]}
    path = work / f"{r['name']}.json"
    path.write_text(json.dumps(r, indent=1))
    return path


def main() -> int:
    import edgebert
    from edgebert.eval.text_files import read_labelled

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", help="variant names to redo, separated by ;, merged into an existing results.json")
    p.add_argument("--report-only", action="store_true", help="write the table and plot from results.json again")
    p.add_argument("-o", "--output", type=Path, default=ROOT / "benchmarks" / "results" / "classifier_precision")
    args = p.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    if not (FT / "bundle_fp32" / "edgebert.json").exists():
        print(
            "run experiments/finetune_accuracy/finetune_accuracy.py first (it fine-tunes the classifier)",
            file=sys.stderr,
        )
        return 2
    texts, _, _ = read_labelled(FT / "classifier" / "eval_split.tsv")
    with edgebert.load(FT / "bundle_fp32", backend="onnx") as m:
        ref = m.classify(texts)
    held = set(texts)
    lines = [ln.split("\t")[2] for ln in CORPUS.read_text(encoding="utf-8").splitlines() if ln.count("\t") >= 2]
    results_path = args.output / "results.json"
    keep = (args.runs or args.report_only) and results_path.exists()
    rows = json.loads(results_path.read_text())["rows"] if keep else []
    todo = {} if args.report_only else variants()
    if args.runs:
        todo = {k: v for k, v in todo.items() if k in set(args.runs.split(";"))}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        movie = work / "movie.txt"
        movie.write_text("\n".join([t for t in lines if t not in held][:400]) + "\n")
        for name, change in todo.items():
            bundle = work / "bundle"
            cmd = [str(Path(sys.executable).with_name("edgebert")), "export", str(FT / "classifier")]
            cmd += ["--recipe", str(recipe_file(name, change, work)), "--format", "onnx"]
            cmd += ["--allow-accuracy-loss", "-o", str(bundle)]
            if change.get("calibration") == "movie":
                cmd += ["--calibration", str(movie)]
            print("$", " ".join(cmd), file=sys.stderr, flush=True)
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            entry = json.loads((bundle / "edgebert.json").read_text())["models"]["onnx"]
            with edgebert.load(bundle, backend="onnx") as m:
                got = m.classify(texts)
            row = {
                "run": name,
                "same_decisions": round(float((got.argmax(1) == ref.argmax(1)).mean()), 4),
                "probability_max_abs": round(float(np.abs(got - ref).max()), 3),
                "gate_pooled_mean": round(entry["accuracy"]["pooled_output"]["cosine"]["mean"], 5),
                "gate_pooled_min": round(entry["accuracy"]["pooled_output"]["cosine"]["min"], 5),
                "integer_only": entry["integer_ops"]["integer_only"],
            }
            print(json.dumps(row), flush=True)
            rows = [r for r in rows if r["run"] != name] + [row]
            results_path.write_text(json.dumps({"sentences": len(texts), "rows": rows}, indent=1))
            shutil.rmtree(bundle)
    order = list(variants())
    rows.sort(key=lambda r: order.index(r["run"]) if r["run"] in order else len(order))
    md = [
        f"Fine-tuned movie-sentiment classifier (experiments/finetune_accuracy/finetune_accuracy.py), ONNX integer-only (QDQ), "
        f"{len(texts)} held-out sentences: identical decisions with the fp32 bundle; the export gate's pooled "
        "cosine on its 64 held-out calibration-corpus sentences",
        "",
        "| variant | identical decisions | probability max-abs | gate pooled mean / min | integer-only |",
        "| --- | --- | --- | --- | --- |",
    ]
    md += [
        f"| {r['run']} | {100 * r['same_decisions']:.2f}% | {r['probability_max_abs']} | "
        f"{r['gate_pooled_mean']:.5f} / {r['gate_pooled_min']:.5f} | {'yes' if r['integer_only'] else 'no'} |"
        for r in rows
    ]
    (args.output / "results.md").write_text("\n".join(md) + "\n")
    _plot(rows, len(texts), args.output / "results.png")
    print("\n".join(md))
    return 0


def _plot(rows: list[dict], n: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 0.45 * len(rows) + 1.2))
    vals = [100 * r["same_decisions"] for r in rows]
    ax.barh([r["run"] for r in rows], vals, color=["#2a7" if v >= 99 else "#c63" for v in vals])
    for i, v in enumerate(vals):
        ax.text(v, i, f" {v:.2f}%", va="center", fontsize=8)
    ax.axvline(99, color="k", ls="--", lw=1)
    ax.set_xlim(min(vals) - 0.5, 100)
    ax.invert_yaxis()
    ax.set_xlabel(f"identical decisions with fp32 (%), {n} held-out sentences, ONNX; bar 99%")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
