"""Reference -> ONNX through tf2onnx, from the same ``BertEncoderModule`` as TFLite."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from edgebert.exporters.encoder_graph import INPUT_NAMES, BertEncoderModule
from edgebert.exporters.files import atomic_write_bytes
from edgebert.exporters.sources.base import SourceModel

OPSET = 17
OUTPUTS = ("pooled_output", "sequence_output")


def convert(src: SourceModel, out_path: Path, *, seq_length: int | None = 128, recipe=None,
            calibration: list[dict] | None = None) -> Path:
    """Writes a ``.onnx`` (inputs ``INPUT_NAMES``, outputs ``OUTPUTS``, dynamic batch), atomically."""
    from edgebert.quantize import onnx_quant, recipes

    recipe = recipe or recipes.get("fp32")
    out_path = Path(out_path)
    proto = _fp32_model(src, seq_length, (recipe.graph or {}).get("mask_bias"))
    if recipe.name == "fp32":
        return atomic_write_bytes(out_path, proto.SerializeToString())
    with tempfile.TemporaryDirectory(dir=out_path.parent, prefix=".onnx-work-") as work:
        fp32 = Path(work) / "fp32.onnx"
        fp32.write_bytes(proto.SerializeToString())
        del proto
        quantized = onnx_quant.apply(fp32, Path(work) / "quantized.onnx", recipe, calibration)
        os.replace(quantized, out_path)  # same directory, so the rename is atomic
    return out_path


def _fp32_model(src: SourceModel, seq_length: int | None, mask_bias: float | None = None):
    import tensorflow as tf
    import tf2onnx

    module = BertEncoderModule(src.config, src.weights, target="onnx")
    if mask_bias is not None:
        module.mask_bias = mask_bias
    spec = [tf.TensorSpec([None, seq_length], tf.int32, name=n) for n in INPUT_NAMES]

    @tf.function(input_signature=spec)
    def serving(input_word_ids, input_mask, input_type_ids):
        out = module.encode(input_word_ids, input_mask, input_type_ids)
        return {k: tf.identity(out[k], name=k) for k in OUTPUTS}

    proto, _ = tf2onnx.convert.from_function(serving, input_signature=spec, opset=OPSET)
    # tf2onnx names outputs "name:0"; rename them to the signature's names.
    rename = {f"{k}:0": k for k in OUTPUTS}
    for node in proto.graph.node:
        node.output[:] = [rename.get(n, n) for n in node.output]
        node.input[:] = [rename.get(n, n) for n in node.input]
    for o in proto.graph.output:
        o.name = rename.get(o.name, o.name)
    return proto
