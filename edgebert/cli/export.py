"""The ``edgebert export`` command: a model to a TFLite / ONNX bundle (imports TensorFlow when run)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from edgebert.cli import common
from edgebert.errors import EdgebertError

if TYPE_CHECKING:  # the export side imports TensorFlow: only when the command runs
    from edgebert.exporters.pipelines.export import ExportRequest
    from edgebert.model.bundle import Manifest, ModelEntry


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    e = subparsers.add_parser("export", help="export a model to TFLite / ONNX (a bundle with vocab and manifest)")
    e.add_argument(
        "source",
        nargs="?",
        help="catalog handle (TF Hub or Kaggle Models), model directory or "
        "model archive (.tar.gz) downloaded by hand (default: the embedded all-MiniLM-L6-v2)",
    )
    e.add_argument("--int8", action="store_true", help="use the default int8 recipe (wi8_afp32)")
    e.add_argument(
        "--recipe",
        help="quantization recipe (see `edgebert recipes`), or a recipe file (FILE.json, from "
        "`edgebert recipes --show NAME`); default fp32",
    )
    e.add_argument("--format", default="tflite,onnx", help="comma-separated formats (default: %(default)s)")
    e.add_argument(
        "--seq-len",
        default="dynamic",
        help="'dynamic' (default: each batch runs at its longest sentence, up to the model's "
        "positions), a fixed length (Android, the GPU delegate), or length buckets such as "
        "16,32,64,128: one static TFLite signature per length, weights stored once, each batch "
        "run at the shortest that holds it (static-shape accelerators); ONNX stays dynamic",
    )
    e.add_argument(
        "--batch",
        default="dynamic",
        help="TFLite batch: 'dynamic' (default) or a fixed size; a fixed batch gives a static graph "
        "with no shape ops, as Android and the GPU delegate want",
    )
    e.add_argument(
        "--graph-form",
        default="gpu",
        choices=["gpu", "classic"],
        help="gpu (default): lookups spelled so the GPU delegate takes the whole graph; classic: "
        "2-D gathers and x[:, 0] (for comparison)",
    )
    e.add_argument(
        "--calibration",
        help="text file for calibration and the accuracy gate "
        "(one sentence a line, or id<TAB>score<TAB>text); default: the bundled corpus",
    )
    e.add_argument(
        "--allow-accuracy-loss",
        action="store_true",
        help="write the bundle even when the recipe's accuracy thresholds are missed",
    )
    e.add_argument(
        "--onnx-graph",
        choices=["fused", "standard"],
        help="fused: ONNX Runtime's fused operators (MultiHeadAttention or QAttention, "
        "BiasGelu/FastGelu, LayerNormalization), the default of fp32, fp16 and the per-row and "
        "block int8 recipes; standard: standard operators only (tf2onnx), for NPU execution "
        "providers such as NNAPI or QNN, the default of quantize_dynamic and static QDQ",
    )
    e.add_argument("-o", "--output", default="edgebert-out", help="bundle directory (default: %(default)s)")
    e.set_defaults(func=run)
    return e


def run(args: argparse.Namespace) -> int:
    with common.export_side("exporting"):
        from edgebert.exporters.pipelines.export import ExportRequest, export
        from edgebert.quantize import recipes

    if args.recipe and args.int8 and not recipes.get(args.recipe).int8:
        raise EdgebertError(
            f"--int8 asks for an int8 recipe but --recipe {args.recipe} is not one", "drop one of the two flags"
        )
    recipe = recipes.get(args.recipe or (recipes.DEFAULT_INT8 if args.int8 else recipes.DEFAULT_FLOAT))
    formats = tuple(f.strip() for f in args.format.split(",") if f.strip())
    for f in formats:
        if f not in ("tflite", "onnx"):
            raise EdgebertError(f"unknown format '{f}'", "use --format tflite,onnx")
    seq = args.seq_len
    buckets = None
    if "," in seq:  # length buckets: one static TFLite signature per length
        buckets = common.seq_lengths(seq)
        seq_length = None
    else:
        seq_length = None if seq == "dynamic" else common.positive_int(seq, "--seq-len")
    source, label = common.source_and_label(args)
    req = ExportRequest(
        source=source,
        source_label=label,
        output=Path(args.output),
        formats=formats,
        recipe=recipe,
        seq_length=seq_length,
        buckets=buckets,
        calibration_file=Path(args.calibration) if args.calibration else None,
        allow_accuracy_loss=args.allow_accuracy_loss,
        onnx_graph=args.onnx_graph,
        batch_size=None if args.batch == "dynamic" else common.positive_int(args.batch, "--batch", 1),
        graph_form=args.graph_form,
    )
    _print_bundle(export(req), req, label)
    return 0


def _print_bundle(m: Manifest, req: ExportRequest, label: str) -> None:
    """What was written: the model, its recipe, each file's size and accuracy, its inputs and outputs."""
    a, recipe, buckets, seq_length = m.architecture, req.recipe, req.buckets, req.seq_length
    print(f"bundle:    {req.output}")
    print(f"source:    {label} [{(m.source or {}).get('kind')}]")
    print(
        f"model:     L={a['num_layers']} H={a['hidden_size']} A={a['num_heads']} I={a['intermediate_size']} "
        f"vocab={a['vocab_size']} activation={a['activation']} do_lower_case={m.do_lower_case}"
    )
    ref = m.reference or {}
    print(f"reference: {ref['path']} (sha256 {ref['sha256'][:16]}...)")
    print(f"recipe:    {recipe.name}: {recipe.description}")
    for entry in m.models.values():
        print(_file_line(entry))
    if "tflite" in m.models and m.models["tflite"].gpu_compatibility:
        from edgebert.checks import gpu as gpu_compat

        print(f"  {gpu_compat.summary(m.models['tflite'].gpu_compatibility)}")
    if buckets:
        print(
            f"  tflite: one static signature per length bucket ({', '.join(f'seq_{n}' for n in buckets)}: "
            f"[{req.batch_size or 1}, n]); the runtime pads each batch to the shortest that holds it"
        )
    print(f"  inputs  int32 [batch, {seq_length or 'seq'}]: input_word_ids, input_mask, input_type_ids")
    print(
        f"  outputs pooled_output [batch, {a['hidden_size']}], sequence_output [batch, {seq_length or 'seq'}, "
        f"{a['hidden_size']}]"
        + (
            f", scores [batch, {m.head['units']}] ({m.head['activation']}; "
            f"labels {', '.join(m.labels or [])}: m.classify / m.scores)"
            if m.head
            else ""
        )
    )
    from edgebert.exporters.convert import costs

    print(f"cost:      {costs.summary(m.export_cost)}")


def _file_line(entry: ModelEntry) -> str:
    """A written file's size, accuracy against the reference and gate, as the export measured them."""
    acc, gate, size = entry.accuracy, entry.gate, entry.total_bytes
    if acc is None or gate is None or size is None:  # export() measures every file it writes
        raise EdgebertError(f"the export recorded no accuracy gate for {entry.file}", "export the bundle again")
    verdict = "passed" if gate["passed"] else "FAILED (kept: --allow-accuracy-loss)"
    return (
        f"  {entry.file:13s} {size / 1e6:7.1f} MB  cosine pooled {acc['pooled_output']['cosine']['mean']:.5f}"
        f"  mean-pooled {acc['mean_pooled']['cosine']['mean']:.5f}  gate {verdict}"
    )
