"""Applies a recipe to a ``tf.lite.TFLiteConverter``."""

from __future__ import annotations

from typing import Callable, Iterable

from edgebert.quantize.recipes import Recipe


def configure(converter, recipe: Recipe, representative: Callable[[], Iterable] | None) -> None:
    """Sets the converter's optimisation, types and representative dataset for ``recipe``."""
    import tensorflow as tf

    name = recipe.name
    if name == "fp32":
        return
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if name == "wfp16_afp32":
        converter.target_spec.supported_types = [tf.float16]
    elif name in ("wi8_afp32", "wi8_afp32_naive"):
        pass  # dynamic range: per-channel int8 kernels, int8 embedding table
    elif name == "wi8_ai8":
        converter.representative_dataset = _need(representative, name)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    elif name == "wi8_ai16":
        converter.representative_dataset = _need(representative, name)
        # Float fall-back where no int16 kernel exists (the ops stay listed in the report).
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8,
            tf.lite.OpsSet.TFLITE_BUILTINS]
    else:
        raise ValueError(f"recipe {name} has no TFLite form")


def _need(representative, name):
    if representative is None:
        raise ValueError(f"recipe {name} needs calibration data")
    return representative
