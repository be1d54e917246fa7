"""Applies a recipe to a ``tf.lite.TFLiteConverter``."""

from __future__ import annotations

from typing import Callable, Iterable

from edgebert.quantize.recipes import Recipe


def configure(converter, recipe: Recipe, representative: Callable[[], Iterable] | None) -> None:
    """Sets the converter's optimisation, types and representative dataset for ``recipe``."""
    import tensorflow as tf

    name = recipe.name
    if name == "fp32" or recipe.for_format("tflite").get("engine") == "ai-edge-quantizer":
        return  # float flatbuffer; ai_edge_quantize() quantizes it afterwards
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if name == "wfp16_afp32":
        converter.target_spec.supported_types = [tf.float16]
    elif name.startswith("wi8_afp32"):  # the decoded name: int8 weights, float activations
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


def ai_edge_quantize(flat: bytes, recipe: Recipe, calibration: list[dict] | None) -> bytes:
    """Quantizes a float flatbuffer with ai-edge-quantizer, op by op as the recipe says:
    static int8 for ``static_int8_ops``, dynamic int8 for ops whose output name matches
    ``dynamic_regex`` (the layers measured to lose most with per-tensor activations)."""
    import os
    import tempfile

    from ai_edge_quantizer import qtyping, quantizer, recipe_manager

    params = recipe.for_format("tflite")
    rm = recipe_manager.RecipeManager()
    for op in params.get("static_int8_ops", []):
        rm.add_static_config(regex=".*", operation_name=getattr(qtyping.TFLOperationName, op),
                             activation_num_bits=8, weight_num_bits=8)
    if params.get("dynamic_regex"):
        rm.add_dynamic_config(regex=f".*{params['dynamic_regex']}.*",
                              operation_name=qtyping.TFLOperationName.FULLY_CONNECTED, num_bits=8)
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "float.tflite")
        with open(src, "wb") as f:
            f.write(flat)
        qt = quantizer.Quantizer(src)
        qt.load_quantization_recipe(rm.get_quantization_recipe())
        stats = None
        if qt.need_calibration:
            stats = qt.calibrate({"serving_default": list(_need(calibration, recipe.name))})
        return bytes(qt.quantize(stats).quantized_model)
