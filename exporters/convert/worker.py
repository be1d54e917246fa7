"""Heavy export steps in a worker process (started by ``exporters.workers``).

``python -m edgebert.exporters.convert.worker TASK RESULT`` runs one step; ``... --serve FD`` runs
``TASK<TAB>RESULT`` lines from stdin one after another (a small model's whole export). TASK
is a JSON file; RESULT receives ``{"ok": true, ...}`` or ``{"ok": false, "error": ...}``.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from edgebert.errors import EdgebertError
from edgebert.exporters.convert import costs, tasks
from edgebert.exporters.convert.tasks import ConvertTask, ReferenceTask
from edgebert.runtime.runners import INPUT_NAMES


def _log(msg: str) -> None:
    print(f"  {msg}", file=sys.stderr, flush=True)


def _run_by_length(model, feeds: dict, encoder_outputs: bool, batch_size: int = 16) -> dict:
    """The reference's outputs, batches of similar length each run at its longest sentence (the
    mask keeps padding out of every real token's result), padded back to the feeds' width:
    500 movie sentences of about 28 tokens no longer pay for 128 positions each."""
    from edgebert.exporters.sources.tf2_saved_model import run_encoder

    lengths = feeds["input_mask"].sum(1).astype(int)
    n, width = feeds["input_word_ids"].shape
    order = np.argsort(-lengths, kind="stable")
    outputs: dict[str, np.ndarray] = {}
    layers: dict[int, list] = {}
    for i in range(0, n, batch_size):
        idx = order[i : i + batch_size]
        w = max(int(lengths[idx].max()), 1)
        out = run_encoder(model, *[feeds[k][idx, :w] for k in INPUT_NAMES])
        pooled, seq = np.asarray(out["pooled_output"]), np.asarray(out["sequence_output"])
        if not outputs:
            outputs["pooled_output"] = np.zeros((n, pooled.shape[1]), pooled.dtype)
            outputs["sequence_output"] = np.zeros((n, width, seq.shape[2]), seq.dtype)
        outputs["pooled_output"][idx] = pooled
        outputs["sequence_output"][idx, :w] = seq
        if encoder_outputs:
            for j, x in enumerate(out["encoder_outputs"]):
                rows = layers.setdefault(j, [None] * n)
                for r, s in enumerate(idx):
                    rows[s] = np.asarray(x[r, : lengths[s]])
    for j, rows in layers.items():
        # Each layer at the real tokens only, in sentence order: a fraction of the padded size.
        outputs[f"layer_{j}"] = np.concatenate(rows)
    return outputs


def task_reference(t: ReferenceTask) -> dict:
    """Imports the source into the reference and records its outputs on held-out text."""
    from edgebert.exporters.convert.reference import build_reference
    from edgebert.exporters.sources import load_source
    from edgebert.exporters.sources.saved_model_util import load_saved_model
    from edgebert.tokenizer.wordpiece import BertTokenizer

    src = load_source(t.source)
    ref = build_reference(src, Path(t.reference_dir), release=True)
    head = src.head  # a fine-tuned classifier's dense head, or None
    tok = BertTokenizer(ref.vocab_file, ref.do_lower_case)
    seq_length = _seq_length(t.seq_length, ref.config)
    if head is not None and head.seq_length and t.seq_length is None:
        seq_length = head.seq_length  # truncate where the classifier's own preprocessing does
    feeds = tok(t.texts, seq_length=seq_length)
    model = ref.model or load_saved_model(ref.path)
    outputs = _run_by_length(model, feeds, t.encoder_outputs)
    result = {
        "kind": src.kind,
        "source_path": str(src.path),
        "reference": str(ref.path),
        "sha256": ref.sha256,
        "max_abs_vs_source": ref.max_abs_vs_source,
        "config": json.loads(ref.config.to_json()),
        "do_lower_case": ref.do_lower_case,
        "vocab_file": str(ref.vocab_file),
    }
    if head is not None:
        from edgebert.exporters.sources import classifier

        feats = classifier.pooled_features(outputs, feeds["input_mask"], head.pooling)
        outputs["scores"] = classifier.scores(feats.astype(np.float64), head.kernel, head.bias, head.activation)
        npz = Path(t.outputs_npz).with_name("head.npz")
        np.savez(npz, kernel=head.kernel, bias=head.bias)
        result["head"] = {**head.meta(), "npz": str(npz)}
    np.savez(t.outputs_npz, **outputs, **feeds)
    return result


def task_convert(t: ConvertTask) -> dict:
    """Converts the reference to one format with one recipe."""
    from edgebert.exporters.convert import onnx_export, tflite
    from edgebert.exporters.sources import load_source
    from edgebert.quantize import embedding, recipes, smoothquant
    from edgebert.tokenizer.wordpiece import BertTokenizer

    recipe = recipes.get(t.recipe)
    src = load_source(t.reference)
    tok = BertTokenizer(src.vocab_file, src.do_lower_case)
    texts = t.calibration
    info: dict = {}
    # GPTQ's input statistics come from SmoothQuant's calibration pass when both read the same
    # sentences (one numpy forward instead of two: BERT-base 20 s); the second format of an
    # export reads both results from their caches instead.
    rounding_n = min(len(texts), recipe.rounding["sentences"]) if recipe.rounding else 0
    grams: dict | None = None
    if recipe.smoothing:
        n = min(len(texts), recipe.smoothing["calibration_sentences"])
        if rounding_n == n and not (t.rounding_cache and Path(t.rounding_cache).exists()):
            grams = {}
        ranges = _smoothing_ranges(src, tok, texts[:n], t.seq_length, t.smoothing_cache, grams)
        src = smoothquant.smooth(src, ranges, recipe.smoothing["alpha"], tuple(recipe.smoothing["layers"]))
        info["smoothing"] = {**recipe.smoothing, "sentences": n}
    if recipe.rounding:
        src = _rounded(src, tok, texts[:rounding_n], t.seq_length, recipe.rounding, t.rounding_cache, grams or None)
        info["rounding"] = {**recipe.rounding, "sentences": rounding_n}
    calibration = None
    if recipe.calibration:
        n = min(len(texts), recipe.calibration["sentences"])
        _log(f"calibrating activation ranges ({recipe.calibration['method']}) on {n} sentences")
        enc = tok(texts[:n], seq_length=_seq_length(t.seq_length, src.config))
        calibration = [{k: v[i : i + 1] for k, v in enc.items()} for i in range(n)]
        info["calibration"] = {**recipe.calibration, "sentences": n}
    if recipe.for_format(t.format).get("embedding") == "int8_per_row":
        src = embedding.int8_rows(src)
        info["embedding"] = "int8_per_row"
    t0 = time.perf_counter()
    kw = dict(seq_length=t.seq_length, recipe=recipe, calibration=calibration)
    head = t.head
    if head and head.get("npz"):  # classifier weights travel as a file
        with np.load(head["npz"]) as z:
            head = {**head, "kernel": z["kernel"], "bias": z["bias"]}
    kw["head"] = head
    kw["release"] = True  # this process converts once: the converter may take the only copy
    if t.format == "onnx":
        onnx_export.convert(src, Path(t.out), graph=t.onnx_graph, report=info, **kw)
        g = info["onnx_graph"]
        if g["form"] != "standard":
            ops = ", ".join(f"{k} x{v}" for k, v in g["fused_ops"].items())
            _log(f"ONNX graph {g['form']}: {ops}; max-abs {g['max_abs_vs_numpy']:.1e} vs the numpy BERT")
    else:
        buckets = tuple(t.buckets) if t.buckets else None
        tflite.convert(src, Path(t.out), batch_size=t.batch_size, graph_form=t.graph_form, buckets=buckets, **kw)
    info["seconds"] = round(time.perf_counter() - t0, 1)
    return info


def _smoothing_ranges(
    src, tok, texts: list[str], seq_length: int | None, cache: str | None, grams: dict | None = None
) -> dict:
    """SmoothQuant's activation ranges, computed once: the second format of an export, and any
    later export of the same model, recipe and text, reads what the first wrote to ``cache``
    (``export.calibration_cache``). A
    ``grams`` dict, when the ranges are computed, receives each dense input's ``X^T X`` too
    (``gptq.input_grams``, before smoothing)."""
    from edgebert.quantize import smoothquant

    if cache and Path(cache).exists():
        _log(f"SmoothQuant: activation ranges from the calibration cache ({len(texts)} sentences)")
        return _load_npz(cache)
    _log(f"calibrating SmoothQuant scales on {len(texts)} sentences")
    ranges = smoothquant.activation_ranges(src, _calibration_batches(src, tok, texts, seq_length), grams)
    _save_npz(cache, ranges)
    return ranges


def _rounded(src, tok, texts: list[str], seq_length: int | None, rounding: dict, cache: str | None, grams: dict | None):
    """``src`` with its dense kernels rounded as ``rounding`` says (GPTQ), computed once: later
    conversions of the same model, recipe and text read the kernels the first wrote to
    ``cache``. ``grams``: the
    inputs' ``X^T X`` from the smoothing pass (before smoothing, which ``src`` now has), else
    computed here."""
    import dataclasses

    from edgebert.quantize import gptq

    if rounding["method"] != "gptq":
        raise ValueError(f"rounding method {rounding['method']!r}: use gptq")
    if cache and Path(cache).exists():
        _log(f"GPTQ: rounded int8 kernels from the calibration cache ({len(texts)} sentences)")
        weights = dict(src.weights)
        src.weights.clear()  # as below: only the rounded model lives on
        with np.load(cache) as z:  # one kernel at a time, each float kernel freed as it is replaced
            for name in z.files:
                weights[name] = z[name]
        costs.return_freed_memory()
        return dataclasses.replace(src, weights=weights)
    _log(f"rounding the int8 kernels by GPTQ, input statistics from {len(texts)} sentences")
    if grams:
        gptq.smooth_grams(grams, src.weights)
    else:
        grams = gptq.input_grams(src, _calibration_batches(src, tok, texts, seq_length))
    out = gptq.round_weights(src, grams, float(rounding["damp"]))
    rounded = {k: v for k, v in out.weights.items() if v is not src.weights[k]}
    src.weights.clear()  # the caller keeps only the rounded model: let the float kernels go now
    _save_npz(cache, rounded)
    del grams, rounded
    costs.return_freed_memory()
    return out


def _calibration_batches(src, tok, texts: list[str], seq_length: int | None) -> list[tuple]:
    """Length-sorted batches of 32: calibration statistics (maxima, sums) do not depend on the
    order, and each batch is padded only to its own longest sentence."""
    length = _seq_length(seq_length, src.config)
    order = np.argsort(tok(texts, seq_length=length)["input_mask"].sum(1), kind="stable")
    texts = [texts[i] for i in order]
    return [_tuple(tok(texts[i : i + 32], seq_length=length, dynamic_padding=True)) for i in range(0, len(texts), 32)]


def _load_npz(path: str) -> dict:
    with np.load(path) as z:
        return dict(z)


def _save_npz(path: str | None, arrays: dict) -> None:
    """Writes ``arrays`` to ``path`` through a temporary file and a rename (streamed: no copy of
    the arrays in memory, which for BERT-base's rounded kernels would be 340 MB twice)."""
    if not path:
        return
    import os
    import tempfile

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=Path(path).parent, prefix=".npz-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _seq_length(requested: int | None, cfg) -> int:
    """The length to tokenize to: the export's fixed length, or (dynamic) TF Hub's 128."""
    if requested is None:
        return min(128, cfg.max_position)
    if requested > cfg.max_position:
        raise EdgebertError(
            f"--seq-len {requested} exceeds the model's {cfg.max_position} positions",
            f"use --seq-len {cfg.max_position} or less",
        )
    return requested


def _tuple(feeds: dict):
    return feeds["input_word_ids"], feeds["input_mask"], feeds["input_type_ids"]


RUNS = {ReferenceTask: task_reference, ConvertTask: task_convert}


def run_task(task_path: str, result_path: str) -> int:
    """Runs the task in ``task_path``; writes ``{"ok": ...}`` to ``result_path``; the exit code."""
    task = tasks.from_json(json.loads(Path(task_path).read_text()))
    try:
        result = {"ok": True, **RUNS[type(task)](task)}
        code = 0
    except EdgebertError as e:
        result, code = {"ok": False, "error": str(e)}, 1
    except Exception as e:  # report, with the trace for a bug report
        result = {
            "ok": False,
            "error": f"{type(e).__name__}: {str(e).strip().splitlines()[0][:500] if str(e).strip() else ''}",
            "traceback": traceback.format_exc(),
        }
        code = 1
    # The peak of this process's own memory map: wait4's ru_maxrss would also count the
    # exporting process's pages at the moment it forked this one.
    from edgebert.exporters.convert import costs

    result["own_peak_rss_gb"] = round(costs.peak_gb(), 3)
    Path(result_path).write_text(json.dumps(result))
    return code


def serve(done_fd: int) -> int:
    """Runs ``TASK<TAB>RESULT`` lines from stdin one after another (a shared ``workers.session``),
    writing a line to ``done_fd`` after each; each task's peak is measured from its start."""
    from edgebert.exporters.convert import costs

    with os.fdopen(done_fd, "w") as done:
        for line in sys.stdin:
            task_path, result_path = line.rstrip("\n").split("\t")
            costs.reset_peak()
            run_task(task_path, result_path)
            done.write("done\n")
            done.flush()
    return 0


def main(argv: list[str]) -> int:
    import logging

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # ONNX Runtime's quantizers log every skipped node at INFO; progress lines are ours.
    logging.getLogger("onnxruntime").setLevel(logging.WARNING)
    if argv[0] == "--serve":
        return serve(int(argv[1]))
    return run_task(argv[0], argv[1])


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
