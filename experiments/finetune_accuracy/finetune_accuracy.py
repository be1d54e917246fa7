"""Fine-tuning end to end: ``edgebert finetune`` -> SavedModel -> fp32 / int8 / integer-only bundles, all scored
on the same held-out sentences, next to the frozen-embedding probe.

    .venv/bin/python experiments/finetune_accuracy/finetune_accuracy.py [--train FILE] [--epochs 3] [--reuse-bundles] [-o DIR]

Writes ``DIR/finetune_accuracy.json`` and ``.png`` (held-out accuracy per model, per epoch).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SENTIMENT = ROOT / "tests" / "data" / "sentiment" / "movieReviewSnippets_GroundTruth.txt"
RECIPES = ("fp32", "wi8_afp32", "wi8_ai8i16", "wi8_ai16")  # fp32 first: the int8 rows are compared with it


def _edgebert(*args: str) -> None:
    cmd = [str(Path(sys.executable).with_name("edgebert")), *args]
    print("$", " ".join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True)


def _saved_model_accuracy(model_dir: Path, texts, y) -> float:
    """The fine-tuned SavedModel itself, strings in (TensorFlow; in a subprocess to free its memory)."""
    code = (
        "import sys, json, numpy as np, tensorflow as tf, tensorflow_text; "
        "m = tf.saved_model.load(sys.argv[1]); s = m.signatures['serving_default']; "
        "t = json.load(open(sys.argv[2])); "
        "p = np.concatenate([list(s(text=tf.constant(t[i:i+64])).values())[0].numpy() for i in range(0, len(t), 64)]); "
        "print(json.dumps(p.argmax(1).tolist()))"
    )
    tmp = model_dir.parent / "texts.json"
    tmp.write_text(json.dumps(texts))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run(
        [sys.executable, "-c", code, str(model_dir), str(tmp)], check=True, capture_output=True, text=True, env=env
    ).stdout
    return float((np.asarray(json.loads(out.strip().splitlines()[-1])) == y).mean())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=Path, default=SENTIMENT)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--fresh", action="store_true", help="fine-tune again even if DIR/classifier exists")
    ap.add_argument(
        "--reuse-bundles", action="store_true", help="score the bundles already in DIR instead of exporting them again"
    )
    ap.add_argument("-o", "--out", type=Path, default=ROOT / "benchmarks" / "results" / "finetune")
    args = ap.parse_args()
    import edgebert
    from edgebert.eval.text_files import read_labelled

    args.out.mkdir(parents=True, exist_ok=True)
    model = args.out / "classifier"
    if args.fresh or not (model / "edgebert_finetune.json").exists():
        _edgebert("finetune", "--train", str(args.train), "--epochs", str(args.epochs), "-o", str(model))
    report = json.loads((model / "edgebert_finetune.json").read_text())
    minutes = report["train_seconds"] / 60
    texts, labels, names = read_labelled(model / "eval_split.tsv")
    y = np.asarray([report["labels"].index(names[i]) for i in labels])
    rows = {"SavedModel (TensorFlow)": _saved_model_accuracy(model, texts, y)}
    decisions: dict[str, np.ndarray] = {}
    for recipe in RECIPES:
        bundle = args.out / f"bundle_{recipe}"
        # Measured here, not gated: the numbers are the point (the export's gate still reports).
        if not (args.reuse_bundles and (bundle / "edgebert.json").exists()):
            _edgebert("export", str(model), "--recipe", recipe, "--allow-accuracy-loss", "-o", str(bundle))
        for backend in ("tflite", "onnx"):
            with edgebert.load(bundle, backend=backend) as m:
                decisions[f"{backend} {recipe}"] = m.classify(texts).argmax(1)
                rows[f"{backend} {recipe}"] = float((decisions[f"{backend} {recipe}"] == y).mean())
    probe = report["frozen_probe"]
    result = {
        "train_file": str(args.train),
        "train_sentences": report["train_sentences"],
        "held_out_sentences": len(y),
        "training_minutes": round(minutes, 1),
        "frozen_probe_accuracy": {k: v["accuracy"] for k, v in probe.items()},
        "held_out_accuracy": rows,
        "history": report["history"],
        "int8_loss_points": {
            f"{b} {r}": round(100 * (rows[f"{b} fp32"] - rows[f"{b} {r}"]), 2)
            for b in ("tflite", "onnx")
            for r in RECIPES[1:]
        },
        # The share of held-out sentences each int8 bundle decides as its format's fp32 bundle does.
        "same_decisions_as_fp32": {
            f"{b} {r}": float((decisions[f"{b} {r}"] == decisions[f"{b} fp32"]).mean())
            for b in ("tflite", "onnx")
            for r in RECIPES[1:]
        },
    }
    (args.out / "finetune_accuracy.json").write_text(json.dumps(result, indent=1))
    _plot(result, args.out / "finetune_accuracy.png")
    print(json.dumps(result, indent=1))
    return 0


def _plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    names = [f"probe ({k})" for k in result["frozen_probe_accuracy"]] + list(result["held_out_accuracy"])
    vals = list(result["frozen_probe_accuracy"].values()) + list(result["held_out_accuracy"].values())
    a.barh(
        names, vals, color=["#999"] * len(result["frozen_probe_accuracy"]) + ["#36c"] * len(result["held_out_accuracy"])
    )
    for i, v in enumerate(vals):
        a.text(v, i, f" {v:.4f}", va="center", fontsize=8)
    a.set_xlim(min(vals) - 0.05, 1.0)
    a.set_xlabel(f"held-out accuracy ({result['held_out_sentences']} sentences)")
    h = result["history"]
    b.plot([e["epoch"] for e in h], [e["held_out_accuracy"] for e in h], "o-", label="held-out accuracy")
    b.plot([e["epoch"] for e in h], [e["train_loss"] for e in h], "s--", label="train loss")
    b.set_xlabel("epoch")
    b.legend()
    fig.suptitle("edgebert finetune: default model, fine-tuned vs frozen probe, exported fp32 / int8")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    raise SystemExit(main())
