"""Per-layer sensitivity of integer-only TFLite on the default model: which op groups need
int16 activations. The table ``wi8_ai8i16``'s ``precision`` section was decided from.

    .venv/bin/python experiments/integer_sensitivity/integer_sensitivity.py [--sentences 60] [-o benchmarks/results/integer_sensitivity]

Starts from every op int16 (int8 weights) and moves one op group at a time to int8, then runs
the recipe itself and every op int8. Each row is quantized with ai-edge-quantizer from the
same float file (SmoothQuant on Q/K/V and FFN-in, attention mask bias -100, static [1, 128]),
calibrated on 64 sentences of the default corpus, and scored against the fp32 numpy BERT on the
first N movie-review sentences (never used for calibration). Writes results.json / results.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "data" / "sentiment" / "movieReviewSnippets_GroundTruth.txt"
L = r"layer_\d+/"
GROUPS = {  # op groups by name scope (exporters/convert/encoder_graph.py)
    "Q/K/V dense": L + "attention/self/(query|key|value)/",
    "attention scores": L + "attention/self/scores/",
    "softmax": L + "attention/self/softmax/",
    "attention context": L + "attention/self/context/",
    "attention-output dense": L + "attention/output/dense/",
    "FFN-in dense": L + "intermediate/dense/",
    "GELU": L + "intermediate/activation/",
    "FFN-out dense": L + "output/dense/",
    "residual sums": L + "(attention/)?output/residual/",
    "LayerNorms": L + "(attention/)?output/LayerNorm/",
    "SmoothQuant scales": L + "(attention/self/qkv|intermediate/ffn)_smooth/",
    "embeddings (+ LayerNorm)": "embeddings/",
    # Not pooler/cls: the [CLS] slice reads the sequence output, and an int8 reader of a
    # signature output makes ai-edge-quantizer 0.10 point the signature at the requantized
    # int8 tensor (mean-pooled cosine 0.69), so the recipe keeps that slice int16.
    "pooler dense": "pooler/(dense|activation)/",
    "attention mask": "attention_mask/",
}


def _rules(base: int, group: str | None) -> list[dict]:
    rules = [{"select": ".*", "ops": "all", "activations": base}]
    if group:
        rules.append({"select": "^" + group, "ops": "all", "activations": 24 - base})
    return rules


def main() -> int:
    from edgebert.eval import metrics
    from edgebert.exporters.convert import tflite
    from edgebert.exporters.sources import load_source
    from edgebert.hub import default_model
    from edgebert.model import numpy_bert
    from edgebert.quantize import calibration, recipes, smoothquant, tflite_quant
    from edgebert.runtime import runners
    from edgebert.tokenizer.wordpiece import BertTokenizer

    p = argparse.ArgumentParser()
    p.add_argument("--sentences", type=int, default=60)
    p.add_argument("--runs", help="run names to redo, separated by ;, merged into an existing results.json")
    p.add_argument("-o", "--output", default=str(ROOT / "benchmarks" / "results" / "integer_sensitivity"))
    args = p.parse_args()
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    recipe = recipes.get("wi8_ai8i16")
    src = load_source(str(default_model.model_dir()))
    tok = BertTokenizer(src.vocab_file, src.do_lower_case)
    cal_texts, _ = calibration.split(calibration.read_texts())
    inputs = runners.INPUT_NAMES
    batches = [
        tuple(tok(cal_texts[i : i + 32], seq_length=128, dynamic_padding=True)[k] for k in inputs)
        for i in range(0, 256, 32)
    ]
    src = smoothquant.smooth(src, smoothquant.activation_ranges(src, batches), 0.5, ("qkv", "ffn_in"))
    enc = tok(cal_texts[:64], seq_length=128)
    cal = [{k: v[i : i + 1] for k, v in enc.items()} for i in range(64)]
    texts = [ln.split("\t")[2] for ln in CORPUS.read_text(encoding="utf-8").splitlines() if ln.count("\t") >= 2]
    feeds = tok(texts[: args.sentences], seq_length=128)
    ref = numpy_bert.forward(src.config, src.weights, *(feeds[k] for k in inputs), dtype=np.float32)
    rows = []
    with tempfile.TemporaryDirectory() as work:
        flt = Path(work) / "float.tflite"
        tflite.convert(
            src,
            flt,
            seq_length=128,
            batch_size=1,
            recipe=dataclasses.replace(recipes.get("fp32"), graph=recipe.graph),
        )
        flat = flt.read_bytes()
        runs = [("every op int16", _rules(16, None))]
        runs += [(f"int16, {name} int8", _rules(16, g)) for name, g in GROUPS.items()]
        runs += [("wi8_ai8i16 (the recipe)", tflite_quant.precision_rules(recipe.precision))]
        runs += [("every op int8", _rules(8, None))]
        if args.runs:
            wanted = set(args.runs.split(";"))
            runs = [r for r in runs if r[0] in wanted]
            old = json.loads((out / "results.json").read_text())
            assert old["sentences"] == args.sentences, "the same --sentences as the stored table"
            rows = old["rows"]
        for name, rules in runs:
            path = Path(work) / "q.tflite"
            path.write_bytes(tflite_quant.ai_edge_quantize(flat, {"rules": rules}, cal, None))
            runner = runners.open_runner(path, num_threads=2)
            t0 = time.perf_counter()
            got = runners.run_batches(
                runner, ({k: v[i : i + 1] for k, v in feeds.items()} for i in range(len(texts[: args.sentences])))
            )
            ms = (time.perf_counter() - t0) / args.sentences * 1000
            r = metrics.compare(got, ref, feeds["input_mask"])
            row = {
                "run": name,
                "mb": round(path.stat().st_size / 1e6, 1),
                "pooled_mean": round(r["pooled_output"]["cosine"]["mean"], 5),
                "pooled_min": round(r["pooled_output"]["cosine"]["min"], 5),
                "meanpool_mean": round(r["mean_pooled"]["cosine"]["mean"], 5),
                "meanpool_min": round(r["mean_pooled"]["cosine"]["min"], 5),
                "ms": round(ms, 1),
            }
            at = [i for i, r in enumerate(rows) if r["run"] == name]
            if at:
                rows[at[0]] = row
            else:
                rows.append(row)
            print(json.dumps(row), flush=True)
    (out / "results.json").write_text(json.dumps({"sentences": args.sentences, "rows": rows}, indent=1))
    lines = [
        f"all-MiniLM-L6-v2, TFLite static [1, 128], first {args.sentences} movie-review sentences; cosine vs fp32 "
        "(pooled / mean-pooled: mean, min); ms per sentence at batch 1, 2 threads (int16 ops run on "
        "reference kernels)",
        "",
        "| run | MB | cos pooled mean/min | cos mean-pooled mean/min | ms |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| {r['run']} | {r['mb']} | {r['pooled_mean']:.5f} / {r['pooled_min']:.5f} | "
        f"{r['meanpool_mean']:.5f} / {r['meanpool_min']:.5f} | {r['ms']} |"
        for r in rows
    ]
    (out / "results.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
