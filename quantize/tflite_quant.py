"""Applies a recipe's ``tflite`` section to a ``tf.lite.TFLiteConverter``.

``METHODS`` maps the section's ``method`` to what it does (as ONNX Runtime's registry maps op
types to quantizers): a recipe picks a method and its parameters in ``recipes.json``, no
recipe name is looked up here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from edgebert.quantize.recipes import Method, Recipe, method_of

Representative = Callable[[], Iterable] | None


def _float(converter, params: dict, representative: Representative) -> None:
    """No optimisation: a float flatbuffer (also what ai-edge-quantizer starts from)."""


def _float16_weights(converter, params: dict, representative: Representative) -> None:
    import tensorflow as tf

    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]


def _dynamic_range(converter, params: dict, representative: Representative) -> None:
    """Per-channel int8 kernels and an int8 embedding table; activations quantized on the fly."""
    import tensorflow as tf

    converter.optimizations = [tf.lite.Optimize.DEFAULT]


def _full_integer(converter, params: dict, representative: Representative) -> None:
    """Weights int8, activations int8 or int16 calibrated on ``representative``."""
    import tensorflow as tf

    if representative is None:
        raise ValueError("this recipe needs calibration data")
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    if params["activations"] == "int8":
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    elif params["activations"] == "int16":
        # Float fall-back where no int16 kernel exists (the ops stay listed in the report).
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8,
            tf.lite.OpsSet.TFLITE_BUILTINS,
        ]
    else:
        raise ValueError(f"activations {params['activations']!r}: use int8 or int16")


def _ai_edge_quantize(flat: bytes, params: dict, calibration: list[dict] | None) -> bytes:
    """Quantizes a float flatbuffer with ai-edge-quantizer, op by op: static int8 for
    ``static_int8_ops``, dynamic int8 for ops whose output name matches ``dynamic_regex`` (the
    layers measured to lose most with per-tensor activations)."""
    import os
    import tempfile

    from ai_edge_quantizer import qtyping, quantizer, recipe_manager

    rm = recipe_manager.RecipeManager()
    for op in params.get("static_int8_ops", []):
        rm.add_static_config(
            regex=".*", operation_name=getattr(qtyping.TFLOperationName, op), activation_num_bits=8, weight_num_bits=8
        )
    if params.get("dynamic_regex"):
        rm.add_dynamic_config(
            regex=f".*{params['dynamic_regex']}.*", operation_name=qtyping.TFLOperationName.FULLY_CONNECTED, num_bits=8
        )
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "float.tflite")
        with open(src, "wb") as f:
            f.write(flat)
        qt = quantizer.Quantizer(src)
        qt.load_quantization_recipe(rm.get_quantization_recipe())
        stats = None
        if qt.need_calibration:
            if not calibration:
                raise ValueError("this recipe needs calibration data")
            stats = qt.calibrate({"serving_default": list(calibration)})
        return bytes(qt.quantize(stats).quantized_model)


METHODS: dict[str, Method] = {
    "float": Method(_float),
    "float16_weights": Method(_float16_weights),
    "dynamic_range": Method(_dynamic_range),
    "full_integer": Method(_full_integer, params=("activations",), required=("activations",)),
    "ai_edge_quantizer": Method(_float, params=("static_int8_ops", "dynamic_regex"), after=_ai_edge_quantize),
}


def configure(converter, recipe: Recipe, representative: Representative) -> None:
    """Sets the converter's optimisation, types and representative dataset for ``recipe``."""
    method, params = method_of(recipe, "tflite", METHODS)
    method.apply(converter, params, representative)


def after_conversion(flat: bytes, recipe: Recipe, calibration: list[dict] | None) -> bytes:
    """The flatbuffer as the recipe leaves it: quantized again where its method works on the
    converted file (ai-edge-quantizer), unchanged otherwise."""
    method, params = method_of(recipe, "tflite", METHODS)
    return method.after(flat, params, calibration) if method.after else flat
