"""What runs inside each fresh measurement process (``python -m benchmarks.probes KIND ...``).

Kept free of the suite's imports so a probe process loads only what a user's process would:
``runtime`` imports edgebert's device side (no TensorFlow), ``tensorflow`` the SavedModel.
Each prints one JSON line; the parent measures process start to first result itself.
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np


def _peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM). Not ``ru_maxrss``: Linux keeps the largest RSS across
    exec, and a child forked from a large benchmark process starts with the parent's pages
    counted (export-cost's runtime probe read 4.1-4.7x the int8 file that way; 1.1x measured alone)."""
    from edgebert.exporters.convert.costs import peak_gb

    return peak_gb() * 1e3


def _texts(path: str, n: int) -> list[str]:
    rows = [ln.split("\t") for ln in open(path, encoding="utf-8").read().splitlines()[1:]]
    texts = [r[2] for r in rows if len(r) >= 3 and r[2].strip()]
    step = max(1, len(texts) // n)  # an even sample keeps the corpus' length distribution
    return texts[::step][:n]


def _percentiles(times: list[float]) -> dict:
    ms = np.asarray(times) * 1e3
    return {"p50_ms": float(np.percentile(ms, 50)), "p90_ms": float(np.percentile(ms, 90))}


def _timed(call, reps: int, warmup: int = 3) -> dict:
    """p50/p90 of ``reps`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    return _percentiles(times)


def exact_length_text(n_tokens: int) -> str:
    # "hello" is one WordPiece in every BERT vocab edgebert meets; [CLS] and [SEP] add two.
    return " ".join(["hello"] * (n_tokens - 2))


def runtime(bundle: str, backend: str, threads: int, seqs: list[int], reps: int, corpus: str, n_texts: int) -> dict:
    import edgebert
    from edgebert.runtime import runners

    m = edgebert.load(bundle, backend=backend, num_threads=threads)
    m.embed("The movie was great")
    print("READY", flush=True)
    out: dict = {"latency": {}}
    for s in seqs:
        if s > m.max_seq_length:
            continue
        text = exact_length_text(s)
        assert int(m.tokenize(text)["input_mask"].sum()) == s
        out["latency"][s] = _timed(lambda text=text: m.encode(text), reps)
    texts = _texts(corpus, n_texts)
    m.embed(texts[:64])
    t = time.perf_counter()
    m.embed(texts)
    out["dynamic_sentences_per_s"] = len(texts) / (time.perf_counter() - t)
    # The same runner fed every sentence padded to 128, as a fixed-length export computes.
    feeds = m.tokenizer(texts, seq_length=min(128, m.max_seq_length))
    runner = runners.open_runner(m.model_path, num_threads=threads)
    runners.run_batches(runner, [{k: v[:32] for k, v in feeds.items()}])
    t = time.perf_counter()
    runners.run_batches(runner, ({k: v[i : i + 32] for k, v in feeds.items()} for i in range(0, len(texts), 32)))
    out["fixed128_sentences_per_s"] = len(texts) / (time.perf_counter() - t)
    out["sentences"] = len(texts)
    out["peak_rss_mb"] = _peak_rss_mb()
    out["tensorflow_imported"] = "tensorflow" in sys.modules
    return out


def _evict_page_cache(bundle: str) -> None:
    """Drops the bundle's model files from the page cache, as on a device that received a copy.

    A file this machine has just written sits in the page cache in large folios (Linux 6.18,
    ext4), and a mapping faults a whole folio in at each touch: the BERT-base int8 file then
    showed 65.6 MB of itself resident where the weight-cache runner reads only its small tensors,
    RSS 228 MB instead of 166 MB for the same process after this eviction (the pages are clean,
    shared and reclaimable, but RSS counts them)."""
    from pathlib import Path

    for f in Path(bundle).glob("model.*"):
        fd = os.open(f, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def rss_only(
    bundle: str,
    backend: str,
    threads: int,
    weight_cache: str = "off",
    cache_dir: str | None = None,
    page_cache: str = "cold",
) -> dict:
    """Peak RSS of a process that loads the bundle and embeds one sentence; then the peak after
    one more call at 128 tokens, and that call's median latency (timed after both readings).

    ``page_cache``: ``cold`` drops the model files from the page cache first (a device that
    received a copy); ``warm`` reads them through first (the machine that just exported them)."""
    if cache_dir:
        os.environ["EDGEBERT_CACHE"] = cache_dir
    if page_cache == "warm":
        from pathlib import Path

        for f in Path(bundle).glob("model.*"):
            with open(f, "rb") as fh:
                while fh.read(1 << 24):
                    pass
    else:
        _evict_page_cache(bundle)
    import edgebert

    m = edgebert.load(
        bundle, backend=backend, num_threads=threads, tflite=edgebert.TfliteOptions(weight_cache=weight_cache)
    )
    m.embed("The movie was great, and the actors were even better.")
    print("READY", flush=True)
    out = {"peak_rss_mb": _peak_rss_mb()}
    if m.max_seq_length >= 128:
        text = exact_length_text(128)
        m.encode(text)
        out["peak_rss_seq128_mb"] = _peak_rss_mb()
        out["p50_ms_seq128"] = _timed(lambda: m.encode(text), 20)["p50_ms"]
    out["runner"] = m.delegate.used
    return out


def tensorflow(
    saved_model: str, vocab: str, lower: bool, threads: int, seqs: list[int], reps: int, corpus: str, n_texts: int
) -> dict:
    """The baseline a user has: the fp32 SavedModel (TF Hub encoder interface) run by TensorFlow."""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    from edgebert.tokenizer.wordpiece import BertTokenizer

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    model = tf.saved_model.load(saved_model)
    tok = BertTokenizer(vocab, lower)

    def run(feeds):
        return model({k: tf.constant(v) for k, v in feeds.items()})["pooled_output"].numpy()

    run(tok(["The movie was great"], seq_length=128))
    print("READY", flush=True)
    out: dict = {"latency": {}}
    for s in seqs:
        feeds = tok([exact_length_text(s)], seq_length=s)
        out["latency"][s] = _timed(lambda feeds=feeds: run(feeds), reps)
    texts = _texts(corpus, n_texts)
    for key, dynamic in (("fixed128_sentences_per_s", False), ("dynamic_sentences_per_s", True)):
        feeds = tok(texts, seq_length=128)
        lengths = feeds["input_mask"].sum(1)
        order = np.argsort(-lengths) if dynamic else np.arange(len(texts))
        t = time.perf_counter()
        for i in range(0, len(texts), 32):
            idx = order[i : i + 32]
            w = int(lengths[idx].max()) if dynamic else 128
            run({k: v[idx, :w] for k, v in feeds.items()})
        out[key] = len(texts) / (time.perf_counter() - t)
    out["sentences"] = len(texts)
    out["peak_rss_mb"] = _peak_rss_mb()
    return out


def tflite_product_call(path: str, threads: int):
    """One run of a single-product ``.tflite`` (the roofline's) on LiteRT's Interpreter, its input
    set: the call to time."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=path, num_threads=threads)
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    it.set_tensor(inp["index"], np.random.default_rng(0).normal(0, 1, inp["shape"]).astype(np.float32))
    return it.invoke


def matmul_tflite(path: str, threads: int, reps: int) -> dict:
    call = tflite_product_call(path, threads)
    call()
    print("READY", flush=True)
    return _timed(call, reps, warmup=2)


def matmul_onnx(path: str, threads: int, reps: int) -> dict:
    import onnxruntime as ort

    from edgebert.formats import onnx_exact_int8

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    # In the form the runner runs it on this CPU (re-signed where u8 x s8 saturates).
    sess, resigned = onnx_exact_int8.cpu_session(path, so)
    i = sess.get_inputs()[0]
    x = np.random.default_rng(0).normal(0, 1, i.shape).astype(np.float32)
    sess.run(None, {i.name: x})
    print("READY", flush=True)
    return dict(_timed(lambda: sess.run(None, {i.name: x}), reps, warmup=2), resigned=resigned)


KINDS = {
    "runtime": runtime,
    "rss_only": rss_only,
    "tensorflow": tensorflow,
    "matmul_tflite": matmul_tflite,
    "matmul_onnx": matmul_onnx,
}

if __name__ == "__main__":
    kind, kwargs = sys.argv[1], json.loads(sys.argv[2])
    print(json.dumps(KINDS[kind](**kwargs)), flush=True)
