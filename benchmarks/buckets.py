"""Length buckets vs one fixed length, on real text at batch 1 (what a static-shape accelerator,
MediaPipe or the Task Library runs): ``python -m benchmarks buckets [--sentences 1000] [-o DIR]``.

Exports the default model with ``--batch 1`` at a fixed ``--seq-len 128`` and with
``--seq-len 16,32,64,128`` (TFLite; fp32 and the default int8 recipe), then runs the same real
sentences through each bundle in a fresh process, one sentence a call, interleaved over rounds.
Writes ``buckets.json``, ``buckets.md`` and ``buckets.png`` (throughput, and where the
sentences' lengths fall between the buckets). Bundles are kept under ``DIR/work``.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.suite import CORPUS, RESULTS, machine
from edgebert.model.bundle import is_bundle, read_manifest

BUCKETS = (16, 32, 64, 128)
RECIPES = ("fp32", "wi8_afp32")

PROBE = r"""
import json, sys, time
import numpy as np
import edgebert
from edgebert.exporters.convert.costs import peak_gb  # VmHWM: ru_maxrss keeps a forking parent's pages
m = edgebert.load(sys.argv[1], backend="tflite", num_threads=int(sys.argv[2]), tflite=edgebert.TfliteOptions(weight_cache=sys.argv[4] or None))
texts = json.loads(open(sys.argv[3]).read())
for t in texts[:100]:
    m.embed(t)  # warm-up: every bucket these sentences reach is prepared
t0 = time.perf_counter()
for t in texts:
    m.embed(t)
rate = len(texts) / (time.perf_counter() - t0)
peak_mb = peak_gb() * 1e3
# Each signature alone, at its own length: the model's cost per bucket without tokenizer or runtime.
from edgebert.runtime import runners
r = runners.open_runner(m.model_path, num_threads=int(sys.argv[2]))
per = {}
for n in (r.buckets or [r.seq_length]):
    f = {k: np.ones((1, n), np.int32) for k in runners.INPUT_NAMES}
    for _ in range(5):
        r.run(f)
    t0 = time.perf_counter()
    for _ in range(100):
        r.run(f)
    per[n] = (time.perf_counter() - t0) * 10
print(json.dumps({"sentences_per_s": rate, "ms_per_length": per, "peak_rss_mb": peak_mb}))
"""


def _probe(bundle: Path, threads: int, text_file: Path, weight_cache: str) -> dict:
    p = subprocess.run(
        [sys.executable, "-c", PROBE, str(bundle), str(threads), str(text_file), weight_cache],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(p.stdout.strip().splitlines()[-1])


def _export(out: Path, recipe: str, seq_len: str) -> Path:
    if is_bundle(out):
        return out
    subprocess.run(
        [
            sys.executable,
            "-m",
            "edgebert",
            "export",
            "--recipe",
            recipe,
            "--format",
            "tflite",
            "--batch",
            "1",
            "--seq-len",
            seq_len,
            "-o",
            str(out),
        ],
        check=True,
    )
    return out


def _texts(n: int) -> list[str]:
    lines = CORPUS.read_text(encoding="utf-8").splitlines()[1:]
    texts = [ln.split("\t")[2] for ln in lines if ln.count("\t") >= 2]
    return texts[:: max(1, len(texts) // n)][:n]  # spread over the file (it is sorted by sentiment)


def main(out: Path, sentences: int = 1000, rounds: int = 3, threads: int = 2, command: str = "") -> dict:
    from edgebert.runtime.edge_model import load

    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    texts = _texts(sentences)
    text_file = work / "texts.json"
    text_file.write_text(json.dumps(texts))
    bundles = {}
    for recipe in RECIPES:
        bundles[(recipe, "fixed 128")] = _export(work / f"{recipe}-fixed128", recipe, "128")
        bundles[(recipe, "buckets")] = _export(work / f"{recipe}-buckets", recipe, ",".join(map(str, BUCKETS)))
    runs: dict = {k: [] for k in bundles}
    memory: dict = {}
    for _ in range(rounds):
        for key, bundle in bundles.items():
            runs[key].append(_probe(bundle, threads, text_file, ""))
    for key, bundle in bundles.items():
        # Peak RSS of a process that ran every sentence: the Interpreter (XNNPACK packs the weights
        # for each signature it prepares) vs XNNPACK's weight cache (one packed copy, mapped).
        cache = work / f"{bundle.name}.xnnpack"
        cache.unlink(missing_ok=True)
        _probe(bundle, threads, text_file, str(cache))  # builds the cache file
        memory[key] = {
            "interpreter": statistics.median(r["peak_rss_mb"] for r in runs[key]),
            "weight_cache": _probe(bundle, threads, text_file, str(cache))["peak_rss_mb"],
        }
    lengths = load(bundles[(RECIPES[0], "buckets")]).tokenize(texts)["input_mask"].sum(1)
    share = {n: float(((lengths <= n) & (lengths > lo)).mean()) for lo, n in zip((0,) + BUCKETS, BUCKETS)}
    rows = {}
    for (recipe, kind), values in runs.items():
        m = read_manifest(bundles[(recipe, kind)])
        ms = {int(n): statistics.median(v["ms_per_length"][n] for v in values) for n in values[0]["ms_per_length"]}
        rows[f"{recipe} {kind}"] = {
            "recipe": recipe,
            "kind": kind,
            "sentences_per_s": statistics.median(v["sentences_per_s"] for v in values),
            "rounds": [v["sentences_per_s"] for v in values],
            "ms_per_length": ms,
            "peak_rss_mb": memory[(recipe, kind)],
            "file_mb": m.models["tflite"].bytes / 1e6,
        }
    for recipe in RECIPES:
        b, f = rows[f"{recipe} buckets"], rows[f"{recipe} fixed 128"]
        b["speedup_vs_fixed128"] = b["sentences_per_s"] / f["sentences_per_s"]
        b["size_vs_fixed128"] = b["file_mb"] / f["file_mb"]
        # What the model alone allows with these buckets and these sentences: its time at 128 over
        # its time per sentence at the bucket each one lands in (no tokenizer, no runtime).
        b["model_bound_vs_fixed128"] = f["ms_per_length"][128] / sum(share[n] * b["ms_per_length"][n] for n in BUCKETS)
    res = {
        "machine": machine(threads),
        "command": command,
        "sentences": len(texts),
        "rounds": rounds,
        "buckets": list(BUCKETS),
        "tokens": {
            "mean": float(lengths.mean()),
            "median": float(statistics.median(lengths)),
            "max": int(lengths.max()),
        },
        "share_per_bucket": share,
        "variants": rows,
        "wall_minutes": round((time.time() - t_start) / 60, 1),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "buckets.json").write_text(json.dumps(res, indent=1))
    md = markdown(res)
    (out / "buckets.md").write_text(md)
    plot(res, lengths, out / "buckets.png")
    print(md)
    return res


def markdown(res: dict) -> str:
    m = res["machine"]
    t = res["tokens"]
    lines = [
        f"Machine: {m['cpu']} ({m['int8_isa']}), {m['threads']} threads; ai-edge-litert {m['ai-edge-litert']}; "
        f"{m['date']}. Command: `{res['command']}` ({res['wall_minutes']} min).",
        "",
        f"{res['sentences']} real movie-review sentences, one a call (batch 1, static shapes), median of "
        f"{res['rounds']} fresh processes. Tokens per sentence: mean {t['mean']:.1f}, median {t['median']:.0f}, "
        f"max {t['max']}; share per bucket: "
        + ", ".join(f"<= {n}: {s:.0%}" for n, s in res["share_per_bucket"].items())
        + ".",
        "",
        "| bundle | MB | sentences/s | x fixed 128 | model-only bound | size x fixed 128 | model ms per length "
        "| peak RSS MB: Interpreter / weight cache |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in res["variants"].items():
        ms = ", ".join(f"{n}: {v:.2f}" for n, v in r["ms_per_length"].items())
        bound = r.get("model_bound_vs_fixed128")
        rss = r["peak_rss_mb"]
        lines.append(
            f"| {name} | {r['file_mb']:.1f} | {r['sentences_per_s']:.1f} | "
            f"{r.get('speedup_vs_fixed128', 1.0):.2f} | {'-' if bound is None else f'{bound:.2f}'} | "
            f"{r.get('size_vs_fixed128', 1.0):.3f} | {ms} | {rss['interpreter']:.0f} / {rss['weight_cache']:.0f} |"
        )
    lines += [
        "",
        "Model-only bound: the model's time at 128 over its mean time per sentence at the bucket each "
        "sentence lands in (each signature timed alone, 100 calls): what buckets can give before tokenizer "
        "and runtime overhead. At batch 1 a short signature still reads every weight once per call.",
    ]
    return "\n".join(lines) + "\n"


def plot(res: dict, lengths, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4))
    names = list(res["variants"])
    a.bar(
        names,
        [res["variants"][n]["sentences_per_s"] for n in names],
        color=["#999999" if "fixed" in n else "#1f77b4" for n in names],
    )
    a.set_ylabel("sentences / s (batch 1)")
    a.set_title(f"real text, {res['machine']['cpu'][:40]} ({res['machine']['int8_isa']})", fontsize=9)
    a.tick_params(axis="x", labelrotation=15)
    b.hist(lengths, bins=range(0, 130, 4), color="#555555")
    for n in res["buckets"]:
        b.axvline(n, color="red", linestyle="--")
    b.set_xlabel("tokens per sentence (red: bucket lengths)")
    b.set_ylabel("sentences")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    main(RESULTS / "buckets")
