"""Does the GPU graph form cost anything on the CPU? GPU form vs the classic form, same weights.

Exports the default model's TFLite in both graph forms (fp32 and the default int8 recipe,
batch 1, seq 128: the Android / GPU shape), then on the CPU (XNNPACK, 2 threads):
outputs of the two forms on real sentences (max-abs), and latency at batch 1 with the
variants interleaved round by round so drift hits all alike.

    .venv/bin/python experiments/graph_form_cpu/graph_form_cpu.py [-o out/graph_form] [--rounds 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from edgebert.model.bundle import is_bundle

ROOT = Path(__file__).resolve().parents[2]
SENTENCES = ROOT / "tests" / "data" / "sentiment" / "movieReviewSnippets_GroundTruth.txt"


def export_variants(out: Path) -> dict[str, Path]:
    from edgebert.exporters.pipelines.export import ExportRequest, export
    from edgebert.hub import default_model
    from edgebert.quantize import recipes

    paths = {}
    for recipe in ("fp32", recipes.DEFAULT_INT8):
        for form in ("gpu", "classic"):
            dest = out / f"{recipe}_{form}"
            if not is_bundle(dest):
                export(
                    ExportRequest(
                        source=str(default_model.model_dir()),
                        source_label="default",
                        output=dest,
                        formats=("tflite",),
                        recipe=recipes.get(recipe),
                        seq_length=128,
                        batch_size=1,
                        graph_form=form,
                    )
                )
            paths[f"{recipe}/{form}"] = dest
    return paths


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", type=Path, default=ROOT / "out" / "graph_form")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--per-round", type=int, default=10)
    args = ap.parse_args(argv)
    from edgebert.runtime.edge_model import load

    paths = export_variants(args.output)
    models = {k: load(p, num_threads=2) for k, p in paths.items()}
    lines = [ln.split("\t")[2] for ln in SENTENCES.read_text(encoding="utf-8").splitlines() if ln.count("\t") >= 2]
    texts = lines[:64]
    outs = {k: m.encode(texts) for k, m in models.items()}
    diff = {}
    for recipe in sorted({k.split("/")[0] for k in models}):
        a, b = outs[f"{recipe}/gpu"], outs[f"{recipe}/classic"]
        diff[recipe] = {k: float(np.abs(a[k] - b[k]).max()) for k in ("pooled_output", "sequence_output")}
    feeds = models["fp32/gpu"].tokenize(lines[100])
    times = {k: [] for k in models}
    runners = {k: m._pool.get() for k, m in models.items()}
    for r in runners.values():
        r.run(feeds)  # warm-up
    for _ in range(args.rounds):
        for k, r in runners.items():
            t = time.perf_counter()
            for _ in range(args.per_round):
                r.run(feeds)
            times[k].append((time.perf_counter() - t) / args.per_round * 1e3)
    result = {
        "max_abs_gpu_vs_classic": diff,
        "latency_ms_median": {k: statistics.median(v) for k, v in times.items()},
        "latency_ms_p90": {k: float(np.percentile(v, 90)) for k, v in times.items()},
        "ops": {k: models[k].manifest.models["tflite"].gpu_compatibility["ops"] for k in models},
        "gpu_ready": {k: models[k].manifest.models["tflite"].gpu_compatibility["gpu_ready"] for k in models},
        "setup": "batch 1, seq 128, XNNPACK, 2 threads; medians of per-round means",
    }
    (args.output / "results.json").write_text(json.dumps(result, indent=1))
    md = ["| variant | ops | GPU-ready (static) | ms p50 | ms p90 |", "| --- | --- | --- | --- | --- |"]
    for k in models:
        md.append(
            f"| {k} | {result['ops'][k]} | {result['gpu_ready'][k]} | {result['latency_ms_median'][k]:.2f} | "
            f"{result['latency_ms_p90'][k]:.2f} |"
        )
    md.append("")
    md += [
        f"- {r}: max-abs GPU form vs classic: pooled {d['pooled_output']:.2e}, sequence {d['sequence_output']:.2e}"
        for r, d in diff.items()
    ]
    (args.output / "results.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
