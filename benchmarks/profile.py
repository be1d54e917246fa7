"""Where a bundle spends its time, in both formats: each runtime's own profiler, per op type and layer.

``python -m benchmarks profile [--models default,base] [--recipe wi8_afp32] [--seq 128] [-o DIR]``
runs each model's exported ONNX and TFLite files at batch 1 on a real sentence of exactly
``--seq`` tokens with profiling on (ONNX Runtime's profiler; LiteRT's, through its C API:
``benchmarks/litert_profiler.py``) and writes ``profile.json``, ``profile.md`` and
``profile.png``: milliseconds per run by op type and by transformer layer, and the dense
products' rate against the same runtime's rate on one large int8 product profiled the same way
(the roofline), so the time outside the products, the next gap, stands out.
"""

from __future__ import annotations

import bisect
import collections
import json
import re
import statistics
from pathlib import Path

import numpy as np

from benchmarks import suite

LAYER = re.compile(r"layer_(\d+)/")
WARMUP, RUNS = 5, 30


def node_parts(model: Path) -> dict[str, str]:
    """Each node's part of the model: its ``layer_N`` scope, or, for the ops the Keras graph
    leaves unscoped (attention scores, GELU, LayerNorm statistics), the layer whose nodes
    precede it in the graph's topological order; ``embeddings`` before the first layer and
    ``pooler`` for the pooler's nodes."""
    import onnx

    parts, current = {}, "embeddings"
    for node in onnx.load(str(model), load_external_data=False).graph.node:
        m = LAYER.search(node.name)
        if m:
            current = f"layer_{int(m.group(1)):02d}"
        parts[node.name] = "pooler" if "pooler" in node.name else current
    return parts


def profile_onnx(model: Path, feeds: dict[str, np.ndarray], threads: int, work: Path) -> dict:
    """ONNX Runtime's per-node kernel times, as ms per run by op type and layer: the median over
    ``RUNS`` runs of each key's per-run total (as the TFLite profile reports them)."""
    import onnxruntime as ort

    from benchmarks.litert_profiler import median_per_run

    parts = node_parts(model)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.enable_profiling = True
    opts.profile_file_prefix = str(work / "ort_profile")
    from edgebert.formats import onnx_exact_int8

    sess, _ = onnx_exact_int8.cpu_session(model, opts)  # the form the runner runs on this CPU
    for _ in range(WARMUP):
        sess.run(None, feeds)
    for _ in range(RUNS):
        sess.run(None, feeds)
    events = json.loads(Path(sess.end_profiling()).read_text())
    # the warm-up runs are profiled too: node events are put in their run by time, the last RUNS kept
    windows = sorted(
        (e["ts"], e["ts"] + e["dur"]) for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"
    )
    starts = [w[0] for w in windows]
    tables = [
        {"by_op_type_ms": collections.defaultdict(float), "by_layer_ms": collections.defaultdict(float)}
        for _ in windows
    ]
    for e in events:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time"):
            continue
        run = bisect.bisect_right(starts, e["ts"]) - 1
        if run < 0 or e["ts"] > windows[run][1]:
            continue
        node = e["name"][: -len("_kernel_time")]
        tables[run]["by_op_type_ms"][e.get("args", {}).get("op_name", "?")] += e["dur"] / 1000
        tables[run]["by_layer_ms"][parts.get(node, "other")] += e["dur"] / 1000
    kept = tables[-RUNS:]
    by_op = median_per_run([t["by_op_type_ms"] for t in kept])
    return {
        "runs_profiled": len(kept),
        "model_run_ms_p50": statistics.median((b - a) / 1000 for a, b in windows[-RUNS:]),
        "kernel_ms_per_run": round(sum(by_op.values()), 4),
        "by_op_type_ms": dict(sorted(by_op.items(), key=lambda kv: -kv[1])),
        "by_layer_ms": dict(sorted(median_per_run([t["by_layer_ms"] for t in kept]).items())),
        "product_ms_best": min(product_ms("onnx", t["by_op_type_ms"]) for t in kept),
    }


# ONNX op types that are dense products (in the fused graph attention's products are inside
# MultiHeadAttention / Attention, so a MatMul here is a dense layer)
ONNX_PRODUCTS = (
    "MatMulIntegerToFloat",
    "MatMulInteger",
    "DynamicQuantizeMatMul",
    "MatMulNBits",
    "QLinearMatMul",
    "MatMul",
)
ROOFLINE_SHAPE = (128, 1024, 4096)  # the suite's largest roofline product


def _feeds(bundle: Path, seq: int) -> dict[str, np.ndarray]:
    """One real sentence padded and cut to exactly ``seq`` tokens (as the latency probes use)."""
    from benchmarks.probes import exact_length_text
    from edgebert.runtime.edge_model import load

    with load(bundle, backend="onnx") as m:
        feeds = m.tokenize([exact_length_text(seq)], seq_length=seq)
    assert int(feeds["input_mask"].sum()) == seq
    return {k: v.astype(np.int32) for k, v in feeds.items()}


def product_ms(fmt: str, by_op: dict[str, float]) -> float:
    """Milliseconds per run in the dense products of a profile's op types."""
    from benchmarks.litert_profiler import is_product

    if fmt == "tflite":
        return sum(ms for op, ms in by_op.items() if is_product(op))
    return sum(ms for op, ms in by_op.items() if op in ONNX_PRODUCTS)


def dense_macs(cfg: dict, seq: int) -> float:
    """Multiply-accumulates of the dense layers of one [1, seq] pass (attention's products excluded)."""
    H, I, L = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_layers"]
    return float(L * (4 * seq * H * H + 2 * seq * H * I) + H * H)


def _profile(fmt: str, model: Path, feeds: dict[str, np.ndarray], threads: int, layers: int, work: Path) -> dict:
    from benchmarks.litert_profiler import profile_tflite

    if fmt == "tflite":
        return profile_tflite(model, feeds, threads, layers, WARMUP, RUNS)
    return profile_onnx(model, feeds, threads, work)


def roofline(threads: int, work: Path) -> dict:
    """Each runtime's rate on one large int8 product (the suite's roofline model, quantized as
    the recipe quantizes BERT), profiled like the models: the product kernel's time in the
    fastest of the runs (the models' products are medians, so their share of it is a lower bound)."""
    m, k, n = ROOFLINE_SHAPE
    paths = suite.matmul_models(work, m, k, n)
    x = {"x": np.random.default_rng(0).normal(0, 1, (m, k)).astype(np.float32)}
    out = {}
    for fmt in ("tflite", "onnx"):  # the int8 products (the paths hold fp32 ones too)
        r = _profile(fmt, paths[fmt], x, threads, 0, work)
        ms = r["product_ms_best"]  # a roofline is a best case: the fastest run, not the median
        out[fmt] = {"shape": [m, k, n], "product_ms": ms, "gmacs_per_s": m * k * n / (ms / 1e3) / 1e9}
    return out


def main(models: list[str], recipe: str, seq: int, threads: int, out: Path, command: str) -> dict:
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    res = {"command": command, "machine": suite.machine(threads), "recipe": recipe, "seq_length": seq, "models": {}}
    before = roofline(threads, work)
    for key in models:
        bundle = suite.export_bundle(key, recipe, ["tflite", "onnx"], work)
        path, manifest = bundle["path"], bundle["manifest"]
        cfg, feeds = manifest.architecture, _feeds(path, seq)
        entry = res["models"][key] = {"name": suite.MODELS[key].name, "dense_gmac": dense_macs(cfg, seq) / 1e9}
        for fmt in ("tflite", "onnx"):
            r = _profile(fmt, path / manifest.models[fmt].file, feeds, threads, cfg["num_layers"], work)
            ms = product_ms(fmt, r["by_op_type_ms"])
            r["products"] = {
                "ms": ms,
                "gmacs_per_s": entry["dense_gmac"] / (ms / 1e3),
                "outside_ms": r["kernel_ms_per_run"] - ms,
            }
            entry[fmt] = r
    # measured before and after the models, the faster kept: a shared VM has slow spells, and
    # a roofline caught in one would flatter every ratio
    after = roofline(threads, work)
    res["roofline"] = {f: min(before[f], after[f], key=lambda r: r["product_ms"]) for f in before}
    res["roofline_runs_gmacs_per_s"] = {f: [before[f]["gmacs_per_s"], after[f]["gmacs_per_s"]] for f in before}
    for key, entry in res["models"].items():
        for fmt in ("tflite", "onnx"):
            prod = entry[fmt]["products"]
            prod["of_roofline"] = prod["gmacs_per_s"] / res["roofline"][fmt]["gmacs_per_s"]
            print(json.dumps({key: {fmt: prod}}), flush=True)
    (out / "profile.json").write_text(json.dumps(res, indent=1))
    (out / "profile.md").write_text(markdown(res))
    plot(res, out / "profile.png")
    return res


RUNTIME = {"tflite": "LiteRT (CompiledModel, XNNPACK)", "onnx": "ONNX Runtime (CPU)"}


def markdown(res: dict) -> str:
    m = res["machine"]
    lines = [
        f"# Profile: recipe {res['recipe']}, seq {res['seq_length']}, batch 1",
        "",
        f"`{res['command']}` on {m['cpu']} ({m['int8_isa']}), {m['threads']} threads, {m['date']}; "
        f"ai-edge-litert {m.get('ai-edge-litert')}, onnxruntime {m.get('onnxruntime')}",
        "",
        f"Roofline (one {'x'.join(map(str, ROOFLINE_SHAPE))} int8 product profiled the same way, its fastest run; "
        "measured before and after the models, the faster kept): "
        + "; ".join(
            f"{f} {r['gmacs_per_s']:.0f} GMAC/s (before / after: "
            + " / ".join(f"{v:.0f}" for v in res["roofline_runs_gmacs_per_s"][f])
            + ")"
            for f, r in res["roofline"].items()
        ),
        "",
    ]
    for r in res["models"].values():
        for fmt in ("tflite", "onnx"):
            p = r[fmt]
            total, prod = p["kernel_ms_per_run"], p["products"]
            lines += [
                f"## {r['name']}, {RUNTIME[fmt]}: run p50 {p['model_run_ms_p50']:.2f} ms, ops {total:.2f} ms",
                "",
                f"Dense products {prod['ms']:.2f} ms = {prod['gmacs_per_s']:.0f} GMAC/s "
                f"({prod['of_roofline']:.0%} of the roofline); outside them {prod['outside_ms']:.2f} ms.",
                "",
                "| op type | ms per run | share |",
                "| --- | --- | --- |",
            ]
            lines += [f"| {op} | {ms:.3f} | {ms / total:.1%} |" for op, ms in p["by_op_type_ms"].items()]
            if p.get("product_ms_by_position"):
                lines += ["", "| dense product's position in a layer | ms (mean over layers) |", "| --- | --- |"]
                lines += [f"| {j + 1} | {ms:.3f} |" for j, ms in enumerate(p["product_ms_by_position"])]
            lines += ["", "| part | ms per run |", "| --- | --- |"]
            lines += [f"| {k} | {ms:.3f} |" for k, ms in p["by_layer_ms"].items()]
            lines.append("")
    return "\n".join(lines)


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(res["models"].values())
    fig, axes = plt.subplots(2, len(models), figsize=(8 * len(models), 8), squeeze=False)
    for row, fmt in enumerate(("tflite", "onnx")):
        for ax, r in zip(axes[row], models):
            ops = list(r[fmt]["by_op_type_ms"].items())[:10]
            ax.barh([o[:40] for o, _ in ops][::-1], [ms for _, ms in ops][::-1])
            ax.set_xlabel("ms per run")
            prod = r[fmt]["products"]
            ax.set_title(
                f"{r['name']}, {fmt}: {r[fmt]['model_run_ms_p50']:.1f} ms\n"
                f"products {prod['of_roofline']:.0%} of roofline, {prod['outside_ms']:.1f} ms outside them",
                fontsize=10,
            )
    fig.suptitle(f"{res['recipe']}, seq {res['seq_length']}, batch 1, {res['machine']['threads']} threads")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
