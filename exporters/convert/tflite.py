"""Reference -> TFLite, through the conversion-friendly ``BertEncoderModule``.

Only the numeric part of the TF Hub signature is exported (``pooled_output`` and
``sequence_output``), with one signature ``serving_default``, or with length buckets one
static signature per length (``seq_16``, ``seq_32``...): the converter stores each weight
once for all of them (it deduplicates identical buffers), so the file barely grows.
"""

from __future__ import annotations

import gc
import tempfile
from pathlib import Path

from edgebert.exporters.convert.encoder_graph import INPUT_NAMES, BertEncoderModule, serving_outputs
from edgebert.files import atomic_write_bytes
from edgebert.model.source_model import SourceModel
from edgebert.runtime.runners import BUCKET_SIGNATURE


def convert(
    src: SourceModel,
    out_path: Path,
    *,
    seq_length: int | None = 128,
    recipe=None,
    calibration: list[dict] | None = None,
    batch_size: int | None = None,
    graph_form: str = "gpu",
    head: dict | None = None,
    release: bool = False,
    buckets: tuple[int, ...] | None = None,
) -> Path:
    """Writes a ``.tflite``, atomically.

    Args:
      src: the model (usually the reference read back with ``load_source``; smoothing
        scales, when a recipe uses them, are already folded into its weights).
      out_path: destination file.
      seq_length: fixed sequence length, or None for a dynamic one.
      batch_size: fixed batch (1 for Android and the GPU: a static graph has no shape ops),
        or None for a dynamic batch.
      graph_form: ``gpu`` (default) or ``classic`` (see ``encoder_graph``).
      head: a task output (``encoder_graph.serving_outputs``): an ``embedding``
        (``{"task": "embedder", "pooling": ...}``) or classifier scores (``{"task":
        "classifier", "pooling", "kernel", "bias", "activation", "output", "keep_encoder"}``).
      recipe: a ``quantize.recipes.Recipe`` (None: fp32).
      calibration: token feeds (dicts of int32 arrays) for recipes that calibrate.
      release: empty ``src.weights`` once the graph holds them (a worker that converts once
        keeps one copy of the weights instead of two).
      buckets: lengths for one static ``[batch_size or 1, length]`` signature each
        (``runners.BUCKET_SIGNATURE``) instead of ``serving_default``; ``seq_length`` is then
        not used.
    """
    import tensorflow as tf

    from edgebert.quantize import recipes, tflite_quant

    recipe = recipe or recipes.get("fp32")
    out_path = Path(out_path)
    smoothed = any(k.endswith("_smooth") for k in src.weights)
    module = BertEncoderModule(src.config, src.weights, target="tflite", graph_form=graph_form)
    if release:
        src.weights.clear()  # the module's variables hold the only copy from here on
    module.set_graph_options(recipe.graph)
    if buckets:
        signatures = {BUCKET_SIGNATURE.format(n): _signature(module, head, batch_size or 1, n) for n in buckets}
    else:
        signatures = {"serving_default": _signature(module, head, batch_size, seq_length)}
    with tempfile.TemporaryDirectory(dir=out_path.parent, prefix=".tflite-work-") as work:
        # Through a SavedModel, not from_concrete_functions: the converter then reads the
        # variables from disk in C++ instead of receiving a frozen GraphDef with every weight
        # copied into it (BERT-base peaked at 3.8 GB that way, 2.4 GB this way).
        saved = Path(work) / "saved_model"
        tf.saved_model.save(module, str(saved), signatures=signatures)
        keys = list(signatures)
        del module, signatures
        gc.collect()
        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved), signature_keys=keys)
        if smoothed:
            # Folding the smoothing MUL into the next FULLY_CONNECTED would undo it.
            converter._experimental_disable_fuse_mul_and_fc = True
        representative = None
        if calibration:

            def representative():
                for feeds in calibration:  # by input name: the signature orders its inputs itself
                    yield {n: feeds[n][:batch_size] if batch_size else feeds[n] for n in INPUT_NAMES}

        tflite_quant.configure(converter, recipe, representative)
        flat = converter.convert()
    return atomic_write_bytes(out_path, tflite_quant.after_conversion(flat, recipe, calibration))


def _signature(module: BertEncoderModule, head: dict | None, batch: int | None, length: int | None):
    """The serving function for inputs ``[batch, length]`` (None: dynamic), traced."""
    import tensorflow as tf

    spec = [tf.TensorSpec([batch, length], tf.int32, name=n) for n in INPUT_NAMES]

    @tf.function(input_signature=spec)
    def serving(input_word_ids, input_mask, input_type_ids):
        return serving_outputs(module, input_word_ids, input_mask, input_type_ids, head)

    return serving.get_concrete_function()
