"""Reference SavedModel -> TFLite, through the conversion-friendly ``BertEncoderModule``.

Only the numeric part of the TF Hub signature is exported (``pooled_output`` and
``sequence_output``); recipes and bundles build on this (see the exporters issue).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from edgebert.exporters.encoder_graph import INPUT_NAMES, BertEncoderModule
from edgebert.exporters.sources.base import SourceModel

TFLITE_WEIGHT_MODES = ("fp32", "fp16", "dynamic_int8")


def convert(src: SourceModel, out_path: Path, *, seq_length: int | None = 128,
            weights: str = "fp32") -> Path:
    """Writes a ``.tflite`` with one signature ``serving_default``, atomically.

    Args:
      src: the model (usually the reference read back with ``load_source``).
      out_path: destination file.
      seq_length: fixed sequence length, or None for a dynamic one (batch is always dynamic).
      weights: ``fp32``, ``fp16`` (fp16 weights, fp32 compute) or ``dynamic_int8``
        (int8 weights, float activations).
    """
    import tensorflow as tf

    if weights not in TFLITE_WEIGHT_MODES:
        raise ValueError(f"weights must be one of {TFLITE_WEIGHT_MODES}, got {weights!r}")
    module = BertEncoderModule(src.config, src.weights)
    spec = {n: tf.TensorSpec([None, seq_length], tf.int32, name=n) for n in INPUT_NAMES}

    @tf.function(input_signature=[spec["input_word_ids"], spec["input_mask"], spec["input_type_ids"]])
    def serving(input_word_ids, input_mask, input_type_ids):
        out = module.encode(input_word_ids, input_mask, input_type_ids)
        return {"pooled_output": out["pooled_output"], "sequence_output": out["sequence_output"]}

    converter = tf.lite.TFLiteConverter.from_concrete_functions([serving.get_concrete_function()], module)
    if weights == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif weights == "dynamic_int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    flat = converter.convert()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out_path.parent, prefix=f".{out_path.name}-", suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(flat)
        os.replace(tmp, out_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out_path
