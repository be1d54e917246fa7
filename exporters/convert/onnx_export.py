"""Reference -> ONNX: ONNX Runtime's fused operators written directly (``onnx_graph``), or the
standard-operator graph through tf2onnx from the same ``BertEncoderModule`` as TFLite."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from edgebert.errors import EdgebertError
from edgebert.eval.metrics import FLOAT_TOLERANCE
from edgebert.exporters.convert import costs
from edgebert.model.source_model import SourceModel
from edgebert.runtime.runners import INPUT_NAMES

OPSET = 17
OUTPUTS = ("pooled_output", "sequence_output")


def convert(
    src: SourceModel,
    out_path: Path,
    *,
    recipe=None,
    seq_length: int | None = 128,
    calibration: list[dict] | None = None,
    report: dict | None = None,
    head: dict | None = None,
    release: bool = False,
    graph: str | None = None,
) -> Path:
    """Writes a ``.onnx`` (inputs ``INPUT_NAMES``, outputs ``OUTPUTS`` and the ``head``'s, dynamic
    batch), atomically. ``head`` and ``release`` are as in ``tflite.convert``.

    The encoder graph is the one the recipe's method quantizes (``onnx_quant.graph_of``), or
    ``graph``: ``standard`` (tf2onnx, standard operators only: for NPU execution providers)
    or ``fused`` (``onnx_graph``: ONNX Runtime's fused operators). A fused graph is kept only
    if it reproduces the numpy BERT to ``FLOAT_TOLERANCE``; ``report["onnx_graph"]`` records
    the form, the fused operators and that error.
    """
    from edgebert.quantize import onnx_quant, recipes

    recipe = recipe or recipes.get("fp32")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    form = onnx_quant.graph_of(recipe, graph)
    mask_bias = (recipe.graph or {}).get("mask_bias")
    info = report if report is not None else {}
    check = None
    if form == onnx_quant.STANDARD:
        proto = _fp32_model(src, seq_length, recipe.graph, head, release)
        info["onnx_graph"] = {"form": form}
    else:
        proto, check = _fused_model(src, seq_length, mask_bias, head, release, form, info)
    float_only = onnx_quant.is_float(recipe)
    # The graph is written out, and the protobuf freed, before anything else reads it (the fused
    # graph's check, the quantizer): in memory together, the protobuf, its serialized bytes and
    # ONNX Runtime's copy held BERT-large's weights three times (NOTES.md, "Memory").
    with tempfile.TemporaryDirectory(dir=out_path.parent, prefix=".onnx-work-") as work:
        fp32 = Path(work) / "fp32.onnx"
        _write(proto, fp32, external=not float_only and onnx_quant.reads_external_data(recipe))
        del proto
        costs.return_freed_memory()
        if check is not None:
            check(fp32)
        if float_only:
            os.replace(fp32, out_path)  # same directory, so the rename is atomic
            return out_path
        quantized = onnx_quant.apply(fp32, Path(work) / "quantized.onnx", recipe, calibration)
        os.replace(quantized, out_path)  # same directory, so the rename is atomic
    return out_path


def _write(proto, path: Path, external: bool) -> None:
    """Writes ``proto`` to ``path``: self-contained (one serialization), or with its weights in
    ``path``'s data file, streamed tensor by tensor (no serialized copy of the weights at all)."""
    if not external:
        path.write_bytes(proto.SerializeToString())
        return
    from edgebert.exporters.convert import onnx_external

    onnx_external.save_with_external_data(proto, path)


def _fused_model(
    src: SourceModel,
    seq_length: int | None,
    mask_bias: float | None,
    head: dict | None,
    release: bool,
    form: str,
    report: dict,
):
    """``onnx_graph.encoder_model``, and the check that keeps it: a function of the written
    file that runs it on probe ids against the numpy BERT (computed here, before the weights
    move into the graph) and raises if they differ."""
    import numpy as np

    from edgebert.exporters.convert import onnx_graph
    from edgebert.exporters.sources import classifier
    from edgebert.exporters.sources.config_recovery import output_max_abs, probe_inputs
    from edgebert.model import numpy_bert
    from edgebert.quantize import onnx_quant

    cfg = src.config
    ids, mask, types = probe_inputs(cfg, batch=2, seq=seq_length or 16)
    expected = numpy_bert.forward(cfg, src.weights, ids, mask, types, dtype=np.float32)
    if head is not None:
        feats = classifier.pooled_features(expected, mask, head.get("pooling", "cls"))
        task = head.get("output", "probability") if head["task"] == "classifier" else "embedding"
        expected[task] = (
            feats
            if head["task"] == "embedder"
            else classifier.scores(
                feats, np.asarray(head["kernel"]), np.asarray(head["bias"]), head.get("activation", "softmax")
            )
        )
    attention = "Attention" if form == onnx_quant.FUSED_ATTENTION else "MultiHeadAttention"
    proto = onnx_graph.encoder_model(
        cfg, src.weights, seq_length=seq_length, mask_bias=mask_bias, attention=attention, head=head, release=release
    )
    counts = {op: sum(n.op_type == op for n in proto.graph.node) for op in onnx_graph.fused_op_counts(cfg, attention)}

    def check(path: Path) -> None:
        import onnxruntime as ort

        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [o.name for o in sess.get_outputs()]
        got = dict(zip(names, sess.run(names, dict(zip(INPUT_NAMES, (ids, mask, types))))))
        del sess
        errors = [output_max_abs(got, expected, mask)] if "sequence_output" in got else []
        errors += [float(np.abs(got[k] - expected[k]).max()) for k in names if k not in OUTPUTS]
        err = max(errors)
        report["onnx_graph"] = {"form": form, "fused_ops": counts, "max_abs_vs_numpy": err}
        if not err <= FLOAT_TOLERANCE:
            raise EdgebertError(
                f"the fused ONNX graph differs from the numpy BERT by {err:.2e} (more than {FLOAT_TOLERANCE:g})",
                "export with --onnx-graph standard and report this model",
            )

    return proto, check


def _fp32_model(
    src: SourceModel,
    seq_length: int | None,
    graph_options: dict | None = None,
    head: dict | None = None,
    release: bool = False,
):
    """The encoder graph as ONNX (``graph_options``: the recipe's ``graph`` section), with the
    weights attached as initializers afterwards.

    tf2onnx converts a function whose weights are *inputs*, not frozen constants: it then
    handles a graph of a few megabytes instead of copying every weight through a frozen
    GraphDef, grappler and its own constant folding (BERT-base peaked at 13-16 GB that way).
    The inputs become initializers under their canonical names, so the graph is the one
    tf2onnx would have written, and ONNX Runtime folds the few weight-only ops (the token-type
    rows, the position slice) at load time.
    """
    import tensorflow as tf
    import tf2onnx
    from onnx import numpy_helper

    from edgebert.exporters.convert.encoder_graph import BertEncoderModule, graph_weights, serving_outputs

    weights = graph_weights(src.config, src.weights)
    names = list(weights)
    if release:
        src.weights.clear()  # each array is freed once its initializer holds it
    module = BertEncoderModule(src.config, {}, target="onnx")
    module.set_graph_options(graph_options)
    spec = [tf.TensorSpec([None, seq_length], tf.int32, name=n) for n in INPUT_NAMES]
    weight_spec = [
        tf.TensorSpec(weights[k].shape, tf.as_dtype(weights[k].dtype), name=f"weight_{i}") for i, k in enumerate(names)
    ]

    @tf.function(input_signature=spec + weight_spec)
    def serving(input_word_ids, input_mask, input_type_ids, *weight_inputs):
        module.bind(dict(zip(names, weight_inputs)))
        out = serving_outputs(module, input_word_ids, input_mask, input_type_ids, head)
        return {k: tf.identity(v, name=k) for k, v in out.items()}

    proto, _ = tf2onnx.convert.from_function(serving, input_signature=spec + weight_spec, opset=OPSET)
    # tf2onnx names tensors "name:0"; outputs take the signature's names, weights their own.
    rename = {o.name: o.name.split(":")[0] for o in proto.graph.output}
    by_arg = {f"weight_{i}": k for i, k in enumerate(names)}
    weight_inputs = [i for i in proto.graph.input if i.name.split(":")[0] in by_arg]
    rename.update({i.name: by_arg[i.name.split(":")[0]] for i in weight_inputs})
    for node in proto.graph.node:
        node.output[:] = [rename.get(n, n) for n in node.output]
        node.input[:] = [rename.get(n, n) for n in node.input]
    for o in proto.graph.output:
        o.name = rename.get(o.name, o.name)
    for i in weight_inputs:
        proto.graph.input.remove(i)
    for k in names:
        proto.graph.initializer.append(numpy_helper.from_array(weights.pop(k), k))
    return proto
