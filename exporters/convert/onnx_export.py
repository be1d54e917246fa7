"""Reference -> ONNX through tf2onnx, from the same ``BertEncoderModule`` as TFLite."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from edgebert.exporters.convert.encoder_graph import INPUT_NAMES, BertEncoderModule, graph_weights, serving_outputs
from edgebert.files import atomic_write_bytes
from edgebert.metrics import FLOAT_TOLERANCE
from edgebert.model.source_model import SourceModel

OPSET = 17
OUTPUTS = ("pooled_output", "sequence_output")


def convert(
    src: SourceModel,
    out_path: Path,
    *,
    recipe=None,
    seq_length: int | None = 128,
    optimize: bool = False,
    calibration: list[dict] | None = None,
    report: dict | None = None,
    head: dict | None = None,
    release: bool = False,
) -> Path:
    """Writes a ``.onnx`` (inputs ``INPUT_NAMES``, outputs ``OUTPUTS`` and the ``head``'s, dynamic
    batch), atomically. ``head`` and ``release`` are as in ``tflite.convert``.

    With ``optimize``, ONNX Runtime's transformer optimizer fuses the fp32 graph, and the
    fused graph is kept only if it reproduces the unfused one to ``FLOAT_TOLERANCE``
    (the optimizer silently swaps Q and K on some graphs); ``report`` records the outcome.
    """
    from edgebert.quantize import onnx_quant, recipes

    recipe = recipe or recipes.get("fp32")
    out_path = Path(out_path)
    proto = _fp32_model(src, seq_length, (recipe.graph or {}).get("mask_bias"), head, release)
    if optimize and head is None:
        proto = _optimized_if_exact(proto, src, seq_length, report if report is not None else {})
    if onnx_quant.is_float(recipe):
        return atomic_write_bytes(out_path, proto.SerializeToString())
    with tempfile.TemporaryDirectory(dir=out_path.parent, prefix=".onnx-work-") as work:
        fp32 = Path(work) / "fp32.onnx"
        fp32.write_bytes(proto.SerializeToString())
        del proto
        quantized = onnx_quant.apply(fp32, Path(work) / "quantized.onnx", recipe, calibration)
        os.replace(quantized, out_path)  # same directory, so the rename is atomic
    return out_path


def _fp32_model(
    src: SourceModel,
    seq_length: int | None,
    mask_bias: float | None = None,
    head: dict | None = None,
    release: bool = False,
):
    """The encoder graph as ONNX, with the weights attached as initializers afterwards.

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

    weights = graph_weights(src.config, src.weights)
    names = list(weights)
    if release:
        src.weights.clear()  # each array is freed once its initializer holds it
    module = BertEncoderModule(src.config, {}, target="onnx")
    if mask_bias is not None:
        module.mask_bias = mask_bias
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


def _optimized_if_exact(proto, src: SourceModel, seq_length: int | None, report: dict):
    import numpy as np
    import onnxruntime as ort
    from onnxruntime.transformers.optimizer import optimize_model

    from edgebert.exporters.sources.probe import output_max_abs, probe_inputs

    candidate = type(proto)()
    candidate.CopyFrom(proto)  # the optimizer edits its input in place; keep the original to compare
    fused = optimize_model(
        candidate, model_type="bert_tf", num_heads=src.config.num_heads, hidden_size=src.config.hidden_size, opt_level=0
    ).model  # 0: python fusions only (the ORT pass imports torch)
    ids, mask, types = probe_inputs(src.config, batch=2, seq=seq_length or 16)
    feeds = dict(zip(INPUT_NAMES, (ids, mask, types)))

    def run(model):
        sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        return dict(zip(OUTPUTS, sess.run(list(OUTPUTS), feeds)))

    err = output_max_abs(run(fused), run(proto), mask)
    fused_ops = sorted({n.op_type for n in fused.graph.node} - {n.op_type for n in proto.graph.node})
    report["onnx_optimizer"] = {
        "max_abs_vs_unfused": err,
        "new_ops": fused_ops,
        "kept": bool(err <= FLOAT_TOLERANCE and np.isfinite(err)),
    }
    return fused if report["onnx_optimizer"]["kept"] else proto
