"""``edgebert export``: source -> reference -> TFLite / ONNX with a recipe -> gated bundle.

The heavy steps (import, each conversion) run in worker processes; this process only
orchestrates, runs the exported files with the device runtimes and writes the bundle.
A bundle directory appears by one rename once everything in it is written and measured.
"""

from __future__ import annotations

import dataclasses
import datetime
import shutil
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np

from edgebert.checks import registry as static_checks
from edgebert.errors import EdgebertError
from edgebert.eval import metrics
from edgebert.exporters.convert import costs, onnx_external, workers
from edgebert.exporters.convert.tasks import ConvertTask, ReferenceTask
from edgebert.exporters.pipelines.progress import Ticker
from edgebert.exporters.pipelines.progress import say as _progress
from edgebert.exporters.sources.resolve import resolve_source
from edgebert.files import file_sha256, replace_dir, tree_sha256
from edgebert.model.bundle import MODEL_FILES, VOCAB, Manifest, is_bundle, write_manifest
from edgebert.quantize import calibration as calib
from edgebert.quantize.recipes import Recipe
from edgebert.runtime import delegates, runners

TOOLS = ("edgebert", "tensorflow", "tensorflow-text", "tf2onnx", "onnx", "onnxruntime", "ai-edge-litert", "numpy")


@dataclasses.dataclass
class ExportRequest:
    source: str
    source_label: str
    output: Path
    formats: tuple[str, ...]
    recipe: Recipe
    seq_length: int | None = 128
    calibration_file: Path | None = None
    allow_accuracy_loss: bool = False
    onnx_graph: str | None = None  # "standard" (tf2onnx operators only) or "fused"; None: the recipe's
    held_out: int = 64
    batch_size: int | None = None  # TFLite only: a fixed batch makes a static graph (GPU, Android)
    graph_form: str = "gpu"
    # TFLite: one static [batch_size or 1, n] signature per length (accelerators take static
    # shapes only); ONNX stays dynamic-length (ONNX Runtime runs any length). seq_length: None.
    buckets: tuple[int, ...] | None = None


def reference_dir_for(source_path: Path) -> Path:
    """Where the reference of a non-SavedModel source is kept: the cache, by content."""
    from edgebert.cache import cache_dir

    return cache_dir() / "references" / tree_sha256(source_path)[:20]


def export(req: ExportRequest) -> Manifest:
    """Runs the export; returns the manifest written to ``req.output``."""
    for fmt in req.formats:
        if fmt not in req.recipe.formats:
            raise EdgebertError(
                f"recipe {req.recipe.name} has no {fmt} form", f"it supports {', '.join(req.recipe.formats)}"
            )
    if req.buckets:
        _check_buckets(req)
    texts = calib.read_texts(req.calibration_file)
    cal_texts, held_out = calib.split(texts, req.held_out)
    source_path = resolve_source(req.source)
    out = Path(req.output)
    _check_replaceable(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.partial-"))
    try:
        with workers.session(source_path):
            return _export(req, source_path, out, staging, cal_texts, held_out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def import_reference(source_path: Path, texts: list[str], seq_length: int | None, work: Path) -> tuple[dict, dict]:
    """The first step of every pipeline: the checked reference SavedModel of ``source_path``
    (written once, then reused from the cache) and its outputs on ``texts``, in a worker
    process. Returns the worker's result and the outputs (with the inputs) by name."""
    task = ReferenceTask(
        source=str(source_path),
        reference_dir=str(reference_dir_for(source_path)),
        texts=texts,
        seq_length=seq_length,
        outputs_npz=str(work / "reference.npz"),
    )
    ref = workers.run(task, work)
    return ref, dict(np.load(work / "reference.npz"))


# Bump when SmoothQuant's ranges or GPTQ's kernels come out differently for the same inputs.
CALIBRATION_CACHE_FORMAT = 1


def calibration_cache(kind: str, ref: dict, sections: list, texts: list[str], seq_length: int | None) -> str:
    """Where a conversion worker keeps what it calibrated (``smoothing`` ranges, ``rounding``'s
    GPTQ kernels), named by all it depends on: the checked reference's digest, the recipe
    sections, the calibration text and length. The first format of an export writes it, the
    second reads it, and so does a later export of the same model with the same recipe (another
    format, length or bundle): BERT-base's GPTQ is 19 s of rounding and a 20 s calibration pass.
    """
    import hashlib
    import json

    from edgebert.cache import cache_dir

    # A dynamic length calibrates at TF Hub's 128 (``worker._seq_length``), as a fixed 128 does.
    key = [CALIBRATION_CACHE_FORMAT, kind, ref["sha256"], sections, texts, seq_length or 128]
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    return str(cache_dir() / "calibration" / f"{kind}-{digest}.npz")


@dataclasses.dataclass
class _Run:
    """What the export's steps hand on: the request, where the bundle is built, the reference's
    outputs on the held-out sentences (the gate's expectations) and each format's manifest entry."""

    req: ExportRequest
    staging: Path
    work: Path  # staging's scratch folder, removed before the bundle is written
    n_steps: int
    ref: dict
    expected: dict
    feeds: dict
    head: dict | None  # a fine-tuned classifier's head, from the reference
    step_costs: list
    models: dict = dataclasses.field(default_factory=dict)


def _export(
    req: ExportRequest, source_path: Path, out: Path, staging: Path, cal_texts: list[str], held_out: list[str]
) -> Manifest:
    """The export's steps, building the bundle in ``staging``; renames it to ``out`` when it passed."""
    run = _import_step(req, source_path, staging, held_out)
    for step, fmt in enumerate(req.formats, start=2):
        _convert_step(run, step, fmt, cal_texts)
    failed = _gate_step(run, len(held_out))
    if failed and not req.allow_accuracy_loss:
        raise EdgebertError(
            f"accuracy gate of recipe {req.recipe.name} failed ({'; '.join(failed)}); no bundle written",
            "use another recipe, or --allow-accuracy-loss to keep it",
        )
    return _write_bundle(run, out, len(cal_texts), len(held_out))


def _import_step(req: ExportRequest, source_path: Path, staging: Path, held_out: list[str]) -> _Run:
    """Step 1: the reference, and its outputs on the held-out sentences."""
    work = staging / ".work"
    work.mkdir()
    n_steps = 2 + len(req.formats)
    _progress(f"[1/{n_steps}] importing {req.source_label}")
    ref, expected = import_reference(source_path, held_out, max(req.buckets) if req.buckets else req.seq_length, work)
    step_costs = [costs.StepCost(**ref.pop("step"))]
    feeds = {k: expected.pop(k) for k in runners.INPUT_NAMES}
    head = ref.get("head")
    if head:
        _progress(
            f"  fine-tuned classifier: {head['units']}-unit head ({head['activation']}) on the "
            f"{'pooled' if head['pooling'] == 'cls' else 'mean-pooled'} output, "
            f"{head['inputs']} in"
            + (f", packed to {head['seq_length']} tokens" if head["seq_length"] else "")
            + f"; edgebert reproduces its scores to {head['max_abs_vs_source']:.1e}"
        )
    return _Run(req, staging, work, n_steps, ref, expected, feeds, head, step_costs)


def _convert_step(run: _Run, step: int, fmt: str, cal_texts: list[str]) -> None:
    """One conversion, in a worker process, into the bundle's file for ``fmt``."""
    req = run.req
    _progress(f"[{step}/{run.n_steps}] converting to {fmt} with recipe {req.recipe.name}")
    path = run.staging / MODEL_FILES[fmt]
    conv = workers.run(_convert_task(run, fmt, path, cal_texts), run.work)
    run.step_costs.append(costs.StepCost(**conv.pop("step")))
    run.models[fmt] = {"file": path.name, "conversion": conv}
    if fmt == "onnx":  # the gate measures the pair of files the bundle ships
        run.models[fmt]["data_file"] = onnx_external.move_weights_out(path).name


def _convert_task(run: _Run, fmt: str, path: Path, cal_texts: list[str]) -> ConvertTask:
    req, ref = run.req, run.ref
    rec = req.recipe
    return ConvertTask(
        format=fmt,
        recipe=rec.ref,
        reference=ref["reference"],
        out=str(path),
        seq_length=req.seq_length,
        calibration=cal_texts,
        smoothing_cache=calibration_cache("smoothing", ref, [rec.smoothing], cal_texts, req.seq_length),
        rounding_cache=calibration_cache("rounding", ref, [rec.smoothing, rec.rounding], cal_texts, req.seq_length),
        onnx_graph=req.onnx_graph,
        batch_size=req.batch_size,
        buckets=list(req.buckets) if req.buckets and fmt == "tflite" else None,
        graph_form=req.graph_form,
        head=_bundle_head(run.head),
    )


def _gate_step(run: _Run, n_held: int) -> list[str]:
    """The last step: every file measured against the reference; returns the gate's misses."""
    _progress(f"[{run.n_steps}/{run.n_steps}] measuring against the reference on {n_held} held-out sentences")
    costs.reset_peak()
    t_gate = time.perf_counter()
    failed = []
    for fmt, entry in run.models.items():
        failed += [f"{fmt}: {x}" for x in _gate_model(run, fmt, entry)]
    run.step_costs.append(costs.StepCost("gate", round(time.perf_counter() - t_gate, 1), round(costs.peak_gb(), 3)))
    _progress(f"  cost: {costs.summary(costs.totals(run.step_costs))}")
    return failed


def _gate_model(run: _Run, fmt: str, entry: dict) -> list[str]:
    """Runs one file with its device runtime, fills in its manifest entry; returns its misses."""
    req, head = run.req, run.head
    path = run.staging / entry["file"]
    runner = runners.open_runner(path, num_threads=2)
    ticker = Ticker(f"{fmt} gate", len(run.feeds["input_word_ids"]))
    got = runners.run_batches(
        runner, _batches(run.feeds, runner.batch_size or 8, trim=req.seq_length is None, ticker=ticker)
    )
    result, misses = _compare(got, run.expected, run.feeds["input_mask"], head, req.recipe.thresholds)
    entry.update(static_checks.run(path, fmt, req.recipe.int8, lambda line, fmt=fmt: _progress(f"  {fmt}: {line}")))
    if runner.report.used == "xnnpack" and runner.report.nodes_total is not None:
        entry["xnnpack_delegation"] = delegates.delegation_counts(runner.report)
    entry.update(
        _file_entry(path, runner, req.seq_length, head),
        **_data_entry(path, entry.get("data_file")),
        accuracy=result,
        gate={"thresholds": req.recipe.thresholds, "passed": not misses, "misses": misses},
    )
    _progress(_gate_line(fmt, entry, result, head, misses))
    return misses


def _compare(got: dict, expected: dict, mask: np.ndarray, head: dict | None, thresholds: dict) -> tuple[dict, list]:
    """The accuracy of one file's outputs, and the recipe's thresholds it misses."""
    result = metrics.compare(got, expected, mask)
    gated = ("pooled_output", "mean_pooled")
    if head:  # a classifier promises its scores: gate the features its head reads, and its decisions
        gated = ("pooled_output",) if head["pooling"] == "cls" else ("mean_pooled",)
    misses = metrics.gate(result, thresholds, gated)
    if head:
        result["scores"] = metrics.compare_scores(got["scores"], expected["scores"], head["activation"])
        misses += metrics.gate_scores(result["scores"], thresholds)
    return result, misses


def _gate_line(fmt: str, entry: dict, result: dict, head: dict | None, misses: list[str]) -> str:
    p, m = result["pooled_output"]["cosine"], result["mean_pooled"]["cosine"]
    return (
        f"  {fmt}: {(entry['bytes'] + entry.get('data_bytes', 0)) / 1e6:.1f} MB, cosine pooled {p['mean']:.5f} "
        f"(min {p['min']:.5f}), mean-pooled {m['mean']:.5f} (min {m['min']:.5f}), "
        f"pooled max-abs {result['pooled_output']['max_abs']:.2e}"
        + (
            f", scores max-abs {result['scores']['max_abs']:.2e}, decisions "
            f"{result['scores']['decision_agreement']:.4f}"
            if head
            else ""
        )
        + ("" if not misses else "  FAILS: " + "; ".join(misses))
    )


def _write_bundle(run: _Run, out: Path, n_cal: int, n_held: int) -> Manifest:
    """The vocab and manifest next to the models; the bundle renamed into place."""
    shutil.copyfile(run.ref["vocab_file"], run.staging / VOCAB)
    shutil.rmtree(run.work)
    manifest = _manifest(run.req, run.ref, run.models, n_cal, n_held)
    manifest = write_manifest(
        run.staging, Manifest.from_json({**manifest, "export_cost": costs.totals(run.step_costs)})
    )
    replace_dir(run.staging, out)
    return manifest


def _batches(feeds: dict, size: int, trim: bool = False, ticker: Ticker | None = None):
    """``feeds`` in batches of ``size``; with ``trim`` (a dynamic-length model) each batch is cut
    to its longest sentence, as the runtime runs it: the padding is not computed (BERT-base's
    gate took 28 s at 128 positions). The comparison reads real tokens only."""
    n = len(feeds["input_word_ids"])
    for i in range(0, n, size):
        batch = {k: v[i : i + size] for k, v in feeds.items()}
        if trim:
            width = max(int(batch["input_mask"].sum(1).max()), 1)
            batch = {k: v[:, :width] for k, v in batch.items()}
        yield batch
        if ticker:  # the consumer has run the batch by the time it asks for the next
            ticker.add(len(batch["input_word_ids"]))


def _data_entry(path: Path, data_file: str | None) -> dict:
    if not data_file:
        return {}
    data = path.with_name(data_file)
    return {"data_sha256": file_sha256(data), "data_bytes": data.stat().st_size}


def _file_entry(path: Path, runner, seq_length, head: dict | None = None) -> dict:
    shape = [runner.batch_size or -1, seq_length if seq_length else -1]
    buckets = getattr(runner, "buckets", None)  # a bucketed .tflite: [batch, n] for each n listed
    outputs = [
        {"name": "pooled_output", "dtype": "float32", "shape": [-1, "hidden"]},
        {"name": "sequence_output", "dtype": "float32", "shape": shape + ["hidden"]},
    ]
    if head:
        outputs.append({"name": "scores", "dtype": "float32", "shape": [-1, head["units"]]})
    return {
        "sha256": file_sha256(path),
        "bytes": path.stat().st_size,
        "runtime": runner.runtime,
        "inputs": [{"name": n, "dtype": "int32", "shape": shape} for n in runners.INPUT_NAMES],
        "outputs": outputs,
        **({"buckets": list(buckets)} if buckets else {}),
    }


# Activation ranges calibrated per signature are not wired for several signatures, and
# ai-edge-quantizer rewrites one; float and dynamic-range recipes quantize weights only.
def _check_buckets(req: ExportRequest) -> None:
    runners.check_buckets(req.buckets)
    if req.seq_length is not None:
        raise EdgebertError("length buckets replace a fixed --seq-len", "pass the lengths as --seq-len 16,32,64,128")
    rec = req.recipe
    if rec.calibration or rec.for_format("tflite").get("method") == "ai_edge_quantizer":
        raise EdgebertError(
            f"recipe {rec.name} calibrates activations per graph, which length buckets do not support yet",
            "use a weight-only recipe (--int8 picks wi8_afp32), or one --seq-len",
        )


def _bundle_head(head: dict | None) -> dict | None:
    """A fine-tuned classifier's head as the converters take it: its scores as the SavedModel
    returns them (``scores``), next to the encoder outputs."""
    if not head:
        return None
    return {
        "task": "classifier",
        "pooling": head["pooling"],
        "activation": head["activation"],
        "npz": head["npz"],
        "output": "scores",
        "keep_encoder": True,
    }


def default_labels(units: int) -> list[str]:
    """Class names for a head that came without any (a one-unit head has two classes)."""
    return ["0", "1"] if units == 1 else [str(i) for i in range(units)]


def _manifest(req: ExportRequest, ref: dict, models: dict, n_cal: int, n_held: int) -> dict:
    return {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "source": {"spec": req.source_label, "kind": ref["kind"], "path": ref["source_path"]},
        "reference": {"path": ref["reference"], "sha256": ref["sha256"], "max_abs_vs_source": ref["max_abs_vs_source"]},
        "architecture": ref["config"],
        "tokenizer": {
            "vocab": VOCAB,
            "do_lower_case": ref["do_lower_case"],
            "casing": "uncased" if ref["do_lower_case"] else "cased",
        },
        "seq_length": req.seq_length,
        **({"buckets": list(req.buckets), "max_seq_length": max(req.buckets)} if req.buckets else {}),
        **_classifier_manifest(req, ref.get("head")),
        "graph_form": req.graph_form,
        "recipe": req.recipe.to_json(),
        "calibration": {
            "source": str(req.calibration_file) if req.calibration_file else "default corpus",
            "sentences": n_cal,
            "held_out": n_held,
        },
        "models": models,
        "tools": {t: _version(t) for t in TOOLS},
    }


def _classifier_manifest(req: ExportRequest, head: dict | None) -> dict:
    if not head:
        return {}
    meta = {k: v for k, v in head.items() if k != "npz"}
    out = {"task": "classifier", "head": meta, "labels": head["labels"] or default_labels(head["units"])}
    if req.seq_length is None and head["seq_length"]:
        out["max_seq_length"] = head["seq_length"]  # truncate long texts where the SavedModel did
    return out


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _check_replaceable(dest: Path) -> None:
    if dest.exists() and not is_bundle(dest) and any(dest.iterdir()):
        raise EdgebertError(f"{dest} exists and is not an edgebert bundle", "choose another -o directory")
