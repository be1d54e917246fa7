"""Every recipe, both formats, on the default model: size, accuracy vs the fp32 reference
on real sentences, and batch-1 latency.

    .venv/bin/python benchmarks/quantization_accuracy.py [--sentences 1000] [--recipes a,b] [-o out/quant]

Exports with ``edgebert export`` machinery (workers, bundles; the gate is reported, not
enforced), then runs the first N movie-review sentences (the default calibration corpus is
the file's last 600, so they never overlap) through each file at batch 1 with 2 threads.
Writes results.json, results.md and accuracy_latency.png into the output directory.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edgebert.exporters.convert import onnx_external
from edgebert.exporters.convert.tasks import ReferenceTask
from edgebert.model.bundle import read_manifest

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "data" / "sentiment" / "movieReviewSnippets_GroundTruth.txt"
SLOW = {"wi8_ai16": 100}  # reference int16 kernels: ~0.5 s a sentence in TFLite


def main() -> None:
    from edgebert.exporters.convert import workers
    from edgebert.exporters.pipelines.export import ExportRequest, export, reference_dir_for
    from edgebert.hub import default_model
    from edgebert.quantize import recipes

    p = argparse.ArgumentParser()
    p.add_argument("--sentences", type=int, default=1000)
    p.add_argument("--recipes", default=",".join(recipes.all_recipes()))
    p.add_argument("-o", "--output", default=str(ROOT / "out" / "quantization"))
    args = p.parse_args()
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    texts = [l.split("\t")[2] for l in CORPUS.read_text(encoding="utf-8").splitlines() if l.count("\t") >= 2][
        : args.sentences
    ]
    src = default_model.model_dir()
    with tempfile.TemporaryDirectory() as work:
        ref = workers.run(
            ReferenceTask(
                source=str(src),
                reference_dir=str(reference_dir_for(src)),
                texts=texts[:8],
                outputs_npz=f"{work}/ref.npz",
            ),
            Path(work),
        )
    rows = []
    for name in args.recipes.split(","):
        recipe = recipes.get(name)
        bundle = out / f"bundle-{name}"
        t0 = time.perf_counter()
        export(
            ExportRequest(
                source=str(src),
                source_label="all-MiniLM-L6-v2",
                output=bundle,
                formats=recipe.formats,
                recipe=recipe,
                allow_accuracy_loss=True,
            )
        )
        export_s = time.perf_counter() - t0
        manifest = read_manifest(bundle)
        for fmt, entry in manifest.models.items():
            n = min(len(texts), SLOW.get(name, len(texts)))
            rows.append(evaluate(name, fmt, bundle / entry.file, texts[:n], ref, export_s))
            print(json.dumps(rows[-1]), flush=True)
    (out / "results.json").write_text(json.dumps(rows, indent=1))
    write_markdown(rows, out / "results.md", args.sentences)
    plot(rows, out / "accuracy_latency.png")


_REF_CACHE: dict = {}


def reference_outputs(ref: dict, texts: list[str]) -> dict:
    """fp32 reference outputs for ``texts`` (computed once, in a worker)."""
    from edgebert.exporters.convert import workers

    key = len(texts)
    if key not in _REF_CACHE:
        with tempfile.TemporaryDirectory() as work:
            workers.run(
                ReferenceTask(
                    source=ref["reference"], reference_dir=ref["reference"], texts=texts, outputs_npz=f"{work}/ref.npz"
                ),
                Path(work),
            )
            _REF_CACHE[key] = dict(np.load(f"{work}/ref.npz"))
    return _REF_CACHE[key]


def evaluate(recipe: str, fmt: str, path: Path, texts: list[str], ref: dict, export_s: float) -> dict:
    from edgebert.eval import metrics
    from edgebert.runtime import runners

    data = dict(reference_outputs(ref, texts))
    feeds = {k: data.pop(k) for k in runners.INPUT_NAMES}
    runner = runners.open_runner(path, num_threads=2)
    one = {k: v[:1] for k, v in feeds.items()}
    runner.run(one)  # warm-up
    t0 = time.perf_counter()
    got = runners.run_batches(runner, ({k: v[i : i + 1] for k, v in feeds.items()} for i in range(len(texts))))
    ms = (time.perf_counter() - t0) / len(texts) * 1000
    res = metrics.compare(got, data, feeds["input_mask"])
    return {
        "recipe": recipe,
        "format": fmt,
        "mb": round(onnx_external.stored_bytes(path) / 1e6, 1),
        "ms_batch1": round(ms, 2),
        "sentences": len(texts),
        "export_s": round(export_s, 1),
        "pooled_mean": res["pooled_output"]["cosine"]["mean"],
        "pooled_min": res["pooled_output"]["cosine"]["min"],
        "meanpool_mean": res["mean_pooled"]["cosine"]["mean"],
        "meanpool_min": res["mean_pooled"]["cosine"]["min"],
        "token_mean": res["sequence_output"]["cosine"]["mean"],
    }


def write_markdown(rows: list[dict], path: Path, n: int) -> None:
    lines = [
        f"all-MiniLM-L6-v2, first {n} movie-review sentences, seq 128, batch 1, 2 threads; "
        "cosine vs the fp32 reference SavedModel (pooled / mean-pooled sequence: mean, min)",
        "",
        "| recipe | format | MB | cos pooled mean/min | cos mean-pooled mean/min | ms | sentences |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['recipe']} | {r['format']} | {r['mb']} | {r['pooled_mean']:.5f} / {r['pooled_min']:.5f} | "
            f"{r['meanpool_mean']:.5f} / {r['meanpool_min']:.5f} | {r['ms_batch1']} | {r['sentences']} |"
        )
    path.write_text("\n".join(lines) + "\n")


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for r in rows:
        marker = "o" if r["format"] == "tflite" else "s"
        err = max(1 - r["meanpool_mean"], 1e-7)
        ax.scatter(r["ms_batch1"], err, marker=marker, s=20 + 2 * r["mb"])
        ax.annotate(
            f"{r['recipe']} ({r['format']}, {r['mb']} MB)",
            (r["ms_batch1"], err),
            fontsize=7,
            xytext=(4, 2),
            textcoords="offset points",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.axhline(1e-3, color="grey", lw=0.8, ls="--")
    ax.text(ax.get_xlim()[0], 1.1e-3, " gate of wi8_afp32 (cosine 0.999)", fontsize=7, color="grey")
    ax.set_xlabel("latency per sentence, batch 1, 2 threads (ms, log)")
    ax.set_ylabel("1 - mean cosine, mean-pooled (log, lower is better)")
    ax.set_title("all-MiniLM-L6-v2: every recipe, TFLite (o) and ONNX (s)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
