"""Two bundles timed side by side through the runtime: ``python -m benchmarks ab A B [--backend
tflite|onnx] [--seq 128] [--rounds 15] [--calls 10]``.

Both load in one process and alternate round by round (the order reversed every other round),
so a machine that slows down mid-run slows both alike; this VM's speed swings by 1.3-2x between
minutes, which separate runs cannot tell from a change of the file. Batch 1, one sentence of
exactly ``--seq`` tokens ([CLS] random word pieces [SEP]), 5 warm-up calls each. Prints, and
returns, the median and 10th percentile ms per bundle, with the machine.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from benchmarks import suite

WARMUP = 5


def run(bundles: list[str], backend: str, seq: int, rounds: int, calls: int, threads: int = 2) -> dict:
    from edgebert.runtime import edge_model as runtime

    ids = np.random.default_rng(0).integers(1000, 20000, (1, seq)).astype(np.int32)
    ids[0, 0], ids[0, -1] = 101, 102
    feeds = {"input_word_ids": ids, "input_mask": np.ones_like(ids), "input_type_ids": np.zeros_like(ids)}
    models = {b: runtime.load(b, backend=backend, num_threads=threads) for b in bundles}

    def call(model) -> None:
        for _ in model._run(feeds):
            pass

    for m in models.values():
        for _ in range(WARMUP):
            call(m)
    times: dict[str, list[float]] = {b: [] for b in models}
    order = list(models.items())
    for r in range(rounds):
        for b, m in order if r % 2 == 0 else order[::-1]:
            for _ in range(calls):
                t0 = time.perf_counter()
                call(m)
                times[b].append(time.perf_counter() - t0)
    out = {
        "machine": suite.machine(threads),
        "backend": backend,
        "seq": seq,
        "rounds": rounds,
        "calls": calls,
        "ms": {
            b: {"median": round(statistics.median(t) * 1000, 2), "p10": round(float(np.percentile(t, 10)) * 1000, 2)}
            for b, t in times.items()
        },
    }
    m = out["machine"]
    print(f"{backend}, seq {seq}, batch 1, {threads} threads, {m.get('cpu')} ({m.get('int8_isa')}), {rounds} x {calls}")
    for b, v in out["ms"].items():
        print(f"  {b}: median {v['median']:.2f} ms, p10 {v['p10']:.2f} ms")
    return out
