"""Where an ONNX bundle spends its time: ONNX Runtime's own profiler, per op type and per layer.

``python -m benchmarks profile [--models default,base] [--recipe wi8_afp32] [--seq 128] [-o DIR]``
runs each model's exported ONNX file at batch 1 on real sentences of exactly ``--seq`` tokens with
ONNX Runtime's profiling on, and writes ``profile.json``, ``profile.md`` and ``profile.png``:
milliseconds per run by op type and by transformer layer (from the node names' ``layer_N``).

TFLite has no counterpart here: LiteRT 2.3's Python API exposes no op profiler (the C++
``benchmark_model --enable_op_profiling`` is not in the wheel), so its profile is not measured.
"""

from __future__ import annotations

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
    """ONNX Runtime's per-node kernel times over ``RUNS`` runs, as ms per run by op type and layer."""
    import onnxruntime as ort

    parts = node_parts(model)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.enable_profiling = True
    opts.profile_file_prefix = str(work / "ort_profile")
    sess = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
    for _ in range(WARMUP):
        sess.run(None, feeds)
    for _ in range(RUNS):
        sess.run(None, feeds)
    events = json.loads(Path(sess.end_profiling()).read_text())
    by_op: dict[str, float] = collections.defaultdict(float)
    by_layer: dict[str, float] = collections.defaultdict(float)
    runs = []
    for e in events:
        if e.get("cat") == "Session" and e.get("name") == "model_run":
            runs.append(e["dur"])
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time"):
            continue
        node = e["name"][: -len("_kernel_time")]
        by_op[e.get("args", {}).get("op_name", "?")] += e["dur"]
        by_layer[parts.get(node, "other")] += e["dur"]
    n = len(runs)  # the warm-up runs are profiled too: node totals are averaged over all of them
    total_nodes = sum(by_op.values())
    per_run = statistics.median(runs[-RUNS:]) / 1000 if runs else None
    return {
        "runs_profiled": n,
        "model_run_ms_p50": per_run,
        "kernel_ms_per_run": total_nodes / 1000 / n if n else None,
        "by_op_type_ms": {k: round(v / 1000 / n, 4) for k, v in sorted(by_op.items(), key=lambda kv: -kv[1])},
        "by_layer_ms": {k: round(v / 1000 / n, 4) for k, v in sorted(by_layer.items())},
    }


def _feeds(bundle: Path, seq: int) -> dict[str, np.ndarray]:
    """One real sentence padded and cut to exactly ``seq`` tokens (as the latency probes use)."""
    from benchmarks.probes import exact_length_text
    from edgebert.runtime import load

    with load(bundle, backend="onnx") as m:
        feeds = m.tokenize([exact_length_text(seq)], seq_length=seq)
    assert int(feeds["input_mask"].sum()) == seq
    return {k: v.astype(np.int32) for k, v in feeds.items()}


def main(models: list[str], recipe: str, seq: int, threads: int, out: Path, command: str) -> dict:
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    res = {"command": command, "machine": suite.machine(threads), "recipe": recipe, "seq_length": seq, "models": {}}
    for key in models:
        bundle = suite.export_bundle(key, recipe, ["onnx"], work)
        path = bundle["path"]
        model_file = path / bundle["manifest"].models["onnx"].file
        res["models"][key] = {
            "name": suite.MODELS[key].name,
            **profile_onnx(model_file, _feeds(path, seq), threads, work),
        }
        print(json.dumps({key: res["models"][key]["by_op_type_ms"]}), flush=True)
    (out / "profile.json").write_text(json.dumps(res, indent=1))
    (out / "profile.md").write_text(markdown(res))
    plot(res, out / "profile.png")
    return res


def markdown(res: dict) -> str:
    m = res["machine"]
    lines = [
        f"# ONNX Runtime profile: recipe {res['recipe']}, seq {res['seq_length']}, batch 1",
        "",
        f"`{res['command']}` on {m['cpu']} ({m['int8_isa']}), {m['threads']} threads, {m['date']}; "
        f"onnxruntime {m.get('onnxruntime')}",
        "",
    ]
    for r in res["models"].values():
        total = r["kernel_ms_per_run"]
        lines += [f"## {r['name']}: run p50 {r['model_run_ms_p50']:.2f} ms, kernels {total:.2f} ms", ""]
        lines += ["| op type | ms per run | share |", "| --- | --- | --- |"]
        lines += [f"| {op} | {ms:.3f} | {ms / total:.1%} |" for op, ms in r["by_op_type_ms"].items()]
        lines += ["", "| part | ms per run |", "| --- | --- |"]
        lines += [f"| {k} | {ms:.3f} |" for k, ms in r["by_layer_ms"].items()]
        lines.append("")
    return "\n".join(lines)


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(res["models"]), figsize=(6 * len(res["models"]), 4), squeeze=False)
    for ax, r in zip(axes[0], res["models"].values()):
        ops = list(r["by_op_type_ms"].items())[:10]
        ax.barh([o for o, _ in ops][::-1], [ms for _, ms in ops][::-1])
        ax.set_xlabel("ms per run")
        ax.set_title(f"{r['name']}\n{res['recipe']}, seq {res['seq_length']}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
