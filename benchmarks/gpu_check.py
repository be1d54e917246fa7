"""Runs bundles on LiteRT's GPU accelerator and on the CPU, and reports what the GPU took.

For each bundle's ``model.tflite``: the static check (``edgebert.checks.gpu``), whether LiteRT
says the graph is fully accelerated, whether a strict (GPU-only) compile is accepted, and, on
real sentences, token cosine / pooled max-abs of the GPU run against the CPU (XNNPACK) run,
with both GPU precisions (LiteRT's default, and ``enforce_f32``), plus median latency.

Needs only numpy and ai-edge-litert (no TensorFlow); run it on a machine with a GPU:

    python benchmarks/gpu_check.py out/gpu/* --texts tests/data/sentiment/movieReviewSnippets_GroundTruth.txt \\
        --n 200 -o out/gpu_check

``--accelerator cpu`` runs the same code path on LiteRT's CPU accelerator (a dry run here).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgebert.checks import gpu as gpu_compat  # noqa: E402
from edgebert.errors import EdgebertError  # noqa: E402
from edgebert.eval.metrics import cosine  # noqa: E402
from edgebert.runtime.edge_model import load  # noqa: E402
from edgebert.runtime.runners import LiteRtAcceleratedRunner  # noqa: E402


def read_texts(path: Path, n: int) -> list[str]:
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    texts = [ln.split("\t")[2] if ln.count("\t") >= 2 else ln for ln in lines]
    return texts[:n]


def _latency(fn, feeds, repeats: int) -> float:
    fn(feeds)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn(feeds)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def check_bundle(bundle: Path, texts: list[str], accelerator: str, repeats: int) -> dict:
    cpu = load(bundle, backend="tflite", delegate="cpu")
    row: dict = {
        "bundle": bundle.name,
        "seq_length": cpu.seq_length or "dynamic",
        "batch": cpu.model_batch or "dynamic",
        "recipe": cpu.manifest.recipe["name"],
        "graph_form": cpu.manifest.graph_form or "gpu",
        "static_check": gpu_compat.check_tflite(cpu.model_path),
    }
    feeds = cpu.tokenize(texts)
    n = len(texts)
    step = cpu.model_batch or 1
    rows = [{k: v[i : i + step] for k, v in feeds.items()} for i in range(0, n, step)]
    if cpu.seq_length is None:  # cut each row to its length, as the runtime does
        rows = [{k: v[:, : max(1, int(r["input_mask"].sum(1).max()))] for k, v in r.items()} for r in rows]
    cpu_runner = cpu._pool.get()
    want = [cpu_runner.run(r) for r in rows]
    try:
        strict = LiteRtAcceleratedRunner(cpu.model_path, cpu.hidden_size, strict=True, accelerator=accelerator)
        row["strict_accepted"] = True
        del strict
    except EdgebertError as e:
        row["strict_accepted"], row["strict_error"] = False, e.problem[:200]
    for precision in ("default", "f32"):
        key = f"gpu_{precision}"
        try:
            gpu = LiteRtAcceleratedRunner(
                cpu.model_path, cpu.hidden_size, accelerator=accelerator, enforce_f32=precision == "f32"
            )
        except EdgebertError as e:
            row[key] = {"error": e.problem[:300]}
            continue
        got = [gpu.run(r) for r in rows]
        tok_cos, pooled_abs, pooled_cos = [], [], []
        for r, g, w in zip(rows, got, want):
            m = r["input_mask"].astype(bool)
            tok_cos.append(cosine(g["sequence_output"][m], w["sequence_output"][m]))
            pooled_abs.append(np.abs(g["pooled_output"] - w["pooled_output"]).max())
            pooled_cos.append(cosine(g["pooled_output"], w["pooled_output"]))
        tok = np.concatenate(tok_cos)
        row[key] = {
            "fully_accelerated": gpu.report.fully_accelerated,
            "token_cosine_mean": float(tok.mean()),
            "token_cosine_min": float(tok.min()),
            "pooled_cosine_min": float(np.concatenate(pooled_cos).min()),
            "pooled_max_abs": float(max(pooled_abs)),
            "ms": round(_latency(gpu.run, rows[0], repeats), 3),
        }
        del gpu
    row["cpu_ms"] = round(_latency(cpu_runner.run, rows[0], repeats), 3)
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundles", nargs="+", type=Path)
    ap.add_argument("--texts", type=Path, required=True)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--accelerator", default="gpu", choices=["gpu", "cpu"])
    ap.add_argument("-o", "--output", type=Path, default=Path("out/gpu_check"))
    args = ap.parse_args(argv)
    texts = read_texts(args.texts, args.n)
    args.output.mkdir(parents=True, exist_ok=True)
    results = []
    for b in args.bundles:
        print(f"checking {b} ...", file=sys.stderr, flush=True)
        try:
            results.append(check_bundle(b, texts, args.accelerator, args.repeats))
        except Exception as e:  # report and go on: one broken variant must not hide the others
            results.append({"bundle": b.name, "error": f"{type(e).__name__}: {e}"[:400]})
        print(json.dumps(results[-1]), flush=True)
    (args.output / "gpu_check.json").write_text(json.dumps(results, indent=1))
    lines = [
        "| bundle | recipe | batch x seq | static check | strict | fully acc. | token cos min (default / f32) "
        "| pooled max-abs (default / f32) | GPU ms | CPU ms |",
        "|" + " --- |" * 10,
    ]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['bundle']} | error: {r['error'][:120]} |" + " |" * 8)
            continue
        g, f = r.get("gpu_default", {}), r.get("gpu_f32", {})
        sc = r["static_check"]
        static = "ready" if sc["gpu_ready"] else f"{len(sc['refused'])} refused, {len(sc['wrong'])} wrong"
        lines.append(
            f"| {r['bundle']} | {r['recipe']} | {r['batch']} x {r['seq_length']} | {static} | "
            f"{r['strict_accepted']} | {g.get('fully_accelerated', g.get('error', '-'))} | "
            f"{g.get('token_cosine_min', float('nan')):.6f} / {f.get('token_cosine_min', float('nan')):.6f} | "
            f"{g.get('pooled_max_abs', float('nan')):.2e} / {f.get('pooled_max_abs', float('nan')):.2e} | "
            f"{g.get('ms', '-')} | {r['cpu_ms']} |"
        )
    (args.output / "gpu_check.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
