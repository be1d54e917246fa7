"""The ``edgebert run`` command: embeddings of texts with a bundle (no TensorFlow)."""

from __future__ import annotations

import argparse
import json
import sys

from edgebert.errors import EdgebertError


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    r = subparsers.add_parser("run", prog="edgebert run", help="embed texts with a bundle (no TensorFlow needed)")
    r.add_argument("bundle", help="bundle directory written by `edgebert export`")
    r.add_argument("texts", nargs="*", help='texts (none or "-": one a line from stdin)')
    r.add_argument("--pairs", action="store_true", help="texts are text, pair, text, pair, ...")
    r.add_argument("--tab-pairs", action="store_true", help="stdin lines are text<TAB>pair")
    r.add_argument("--backend", default="auto", choices=["auto", "tflite", "onnx"])
    r.add_argument("--delegate", default="auto", choices=["auto", "cpu", "xnnpack", "gpu", "nnapi"])
    r.add_argument("--delegate-library", help="TFLite delegate .so for load_delegate")
    r.add_argument("--fallback", action="store_true", help="run on the CPU when the delegate is not there")
    r.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    r.add_argument(
        "--weight-cache",
        metavar="auto|FILE|:memory|off",
        default="auto",
        help="TFLite on the CPU: XNNPACK's packed weights in a cache file, built on the first run "
        "(default auto: in the edgebert cache; peak memory 1.4x an int8 BERT-base file instead of "
        "2.1x, same outputs); off: the LiteRT Interpreter",
    )
    r.add_argument(
        "--pooling", choices=["cls", "mean"], help="default: the pooling an embedder asset was built with, else cls"
    )
    r.add_argument("--normalize", action="store_true", help="L2-normalise the embeddings")
    r.add_argument("--json", action="store_true", help="print all embeddings as JSON")
    r.set_defaults(func=run)
    return r


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from edgebert.runtime.edge_model import load
    from edgebert.runtime.options import TfliteOptions

    texts = list(args.texts)
    if not texts or texts == ["-"]:
        if sys.stdin.isatty() and not texts:
            raise EdgebertError("no texts given", 'pass texts as arguments, or lines on stdin (use "-")')
        texts = [ln.rstrip("\n") for ln in sys.stdin if ln.strip()]
        if not texts:
            raise EdgebertError("stdin held no non-empty lines", "pipe one sentence a line")
    if args.pairs:
        if len(texts) % 2:
            raise EdgebertError(
                f"--pairs needs an even number of texts, got {len(texts)}",
                "pass text and pair alternately (or TAB-separated lines on stdin)",
            )
        inputs = list(zip(texts[0::2], texts[1::2]))
    elif all("\t" in t for t in texts) and args.tab_pairs:
        inputs = [tuple(t.split("\t", 1)) for t in texts]
    else:
        inputs = texts
    device = dict(backend=args.backend, delegate=args.delegate, fallback=args.fallback, num_threads=args.threads)
    tflite = TfliteOptions(weight_cache=args.weight_cache, delegate_library=args.delegate_library)
    m = load(args.bundle, tflite=tflite, **device)
    # An embedder asset pools as it was built; an encoder bundle gives the pooled (cls) output.
    pooling = args.pooling or (m.manifest.pooling if "embedding" in m.outputs else None) or "cls"
    emb = m.embed(inputs, pooling=pooling, normalize=args.normalize)
    if args.json:
        json.dump(
            {
                "bundle": str(m.bundle),
                "backend": m.backend,
                "delegate": m.delegate.to_json(),
                "pooling": pooling,
                "normalized": args.normalize,
                "inputs": [list(t) if isinstance(t, tuple) else t for t in inputs],
                "embeddings": np.round(emb.astype(np.float64), 7).tolist(),
            },
            sys.stdout,
        )
        print()
        return 0
    print(f"{m.backend} on {m.delegate.summary()}, {pooling} pooling, dim {emb.shape[1]}", file=sys.stderr)
    for t, e in zip(inputs, emb):
        label = " || ".join(t) if isinstance(t, tuple) else t
        head = " ".join(f"{v:+.4f}" for v in e[:4])
        print(f"[{head} ...] |e|={np.linalg.norm(e):.4f}  {label[:60]}")
    if len(emb) > 1:
        unit = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        sim = unit @ unit.T
        np.fill_diagonal(sim, -2)
        i, j = np.unravel_index(int(sim.argmax()), sim.shape)
        print(f"most similar: {i} and {j} (cosine {sim[i, j]:.4f})")
    return 0
