"""Tokenizer throughput on the movie-review corpus: edgebert (Rust WordPiece), edgebert's
plain-Python path, and TF Text (TF Hub's preprocessing SavedModel, as users run it).

    .venv/bin/python benchmarks/tokenizer_throughput.py [--repeats 3] [--plot out/tokenizer.png]

Prints sentences/second for batches of 256 at seq_length 128 (best of --repeats) and
checks that all three produce identical ids while timing them.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def sentences() -> list[str]:
    path = ROOT / "tests" / "data" / "sentiment" / "movieReviewSnippets_GroundTruth.txt"
    if not path.exists():
        raise SystemExit(f"corpus not found at {path}")
    return [l.split("\t")[2] for l in path.read_text(encoding="utf-8").splitlines() if l.count("\t") >= 2]


def timed(make_fn, texts, batch, repeats):
    """Best time of ``repeats`` passes, each with a fresh tokenizer (cold word-piece cache)."""
    best, out = float("inf"), []
    for _ in range(repeats):
        fn = make_fn()
        t0 = time.perf_counter()
        out = [fn(texts[i : i + batch]) for i in range(0, len(texts), batch)]
        best = min(best, time.perf_counter() - t0)
    return len(texts) / best, np.concatenate(out)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--plot", default=str(ROOT / "out" / "tokenizer_throughput.png"))
    args = p.parse_args()

    import preprocess_reference

    from edgebert.hub import default_model
    from edgebert.tokenizer.wordpiece import BertTokenizer

    texts = sentences()
    vocab = default_model.vocab_file()
    BertTokenizer(vocab)("builds the shared Unicode tables once, outside the timing")

    def edgebert(use_fast):
        def make():
            tok = BertTokenizer(vocab, use_fast=use_fast)
            return lambda b: tok(b)["input_word_ids"]

        return make

    with tempfile.TemporaryDirectory() as d:
        pre = preprocess_reference.build(vocab, True, Path(d) / "pre")
        runs = {
            "edgebert (tokenizers WordPiece, use_fast=True)": edgebert(True),
            "edgebert (Python WordPiece, default)": edgebert(False),
            "TF Text (TF Hub preprocess SavedModel)": lambda: (
                lambda b: preprocess_reference.run(pre, b)["input_word_ids"]
            ),
        }
        results = {}
        ids = {}
        for name, fn in runs.items():
            results[name], ids[name] = timed(fn, texts, args.batch, args.repeats)
    ref = ids["TF Text (TF Hub preprocess SavedModel)"]
    for name, arr in ids.items():
        assert np.array_equal(arr, ref), f"{name} ids differ from TF Text"
    print(
        f"{len(texts)} sentences, batch {args.batch}, seq_length 128, best of {args.repeats} cold passes; ids identical"
    )
    for name, sps in results.items():
        print(f"  {name:42s} {sps:10.0f} sentences/s")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 2.6))
    ax.barh(list(results), list(results.values()), color=["#2a7", "#999", "#e83"])
    ax.set_xlabel("sentences / second (higher is better)")
    ax.set_title(f"BERT tokenization, {len(texts)} movie-review sentences")
    fig.tight_layout()
    fig.savefig(args.plot, dpi=110)
    print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
