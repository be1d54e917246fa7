"""Applies a recipe's ``onnx`` section to an fp32 ONNX file (ONNX Runtime's quantizers plus a
float16 pass).

``METHODS`` maps the section's ``method`` to the function that writes the quantized file, as
ONNX Runtime's ``quantization/registry.py`` maps op types to quantizers: a new recipe is a
``recipes.json`` entry that names a method and its parameters.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgebert.errors import EdgebertError
from edgebert.quantize.recipes import Method, Recipe, method_of

MIN_ELEMENTS = 1024  # smaller tensors (biases, LayerNorm) stay float, as in TFLite

# The encoder graphs a method can quantize (``exporters.convert``): ONNX Runtime's fused
# operators with the Q/K/V projection as a MatMul before MultiHeadAttention (every MatMul
# quantizer reaches it) or inside Attention (which quantize_dynamic turns into QAttention);
# or tf2onnx's standard operators, which static QDQ tooling and NPU execution providers
# (NNAPI, QNN) read.
FUSED_MHA, FUSED_ATTENTION, STANDARD = "fused_mha", "fused_attention", "standard"
GRAPHS = (FUSED_MHA, FUSED_ATTENTION, STANDARD)


def apply(fp32_path: Path, out_path: Path, recipe: Recipe, calibration: list[dict] | None) -> Path:
    """Writes ``out_path`` quantized by ``recipe`` from ``fp32_path``."""
    method, params = method_of(recipe, "onnx", METHODS)
    method.apply(fp32_path, out_path, params, recipe, calibration)
    return out_path


def graph_of(recipe: Recipe, asked: str | None = None) -> str:
    """The encoder graph (one of ``GRAPHS``) ``recipe``'s ONNX method quantizes: its default, or
    the ``standard`` / ``fused`` form ``asked`` for.

    Raises:
      EdgebertError: the method cannot quantize the asked form.
    """
    forms = method_of(recipe, "onnx", METHODS)[0].graphs
    if asked is None:
        return forms[0]
    found = [f for f in forms if (f == STANDARD) == (asked == STANDARD)]
    if asked not in ("standard", "fused") or not found:
        raise EdgebertError(
            f"recipe {recipe.name} cannot quantize the {asked} ONNX graph",
            f"use --onnx-graph {' or '.join(sorted({'standard' if f == STANDARD else 'fused' for f in forms}))}",
        )
    return found[0]


def reads_external_data(recipe: Recipe) -> bool:
    """Whether ``recipe``'s ONNX method reads an fp32 file with external data. ONNX Runtime's own
    quantizers copy the model to temporary folders (shape inference), where a relative data file
    is not found: their methods get a self-contained file."""
    return method_of(recipe, "onnx", METHODS)[0].reads_external_data


def is_float(recipe: Recipe) -> bool:
    """Whether ``recipe`` leaves the ONNX graph float32 (the converter writes it directly)."""
    return method_of(recipe, "onnx", METHODS)[0] is METHODS["float"]


def _copy(fp32_path: Path, out_path: Path, params: dict, recipe: Recipe, calibration) -> None:
    import shutil

    shutil.copyfile(fp32_path, out_path)


def _float16_weights(fp32_path: Path, out_path: Path, params: dict, recipe: Recipe, calibration) -> None:
    """Stores large float initializers as float16 behind a Cast (ORT folds it at load)."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(fp32_path))
    graph = model.graph
    for init in list(graph.initializer):
        if init.data_type != onnx.TensorProto.FLOAT or np.prod(init.dims) < MIN_ELEMENTS:
            continue
        arr = numpy_helper.to_array(init)
        half = numpy_helper.from_array(arr.astype(np.float16), init.name + "_fp16")
        graph.initializer.remove(init)
        graph.initializer.append(half)
        graph.node.insert(
            0, helper.make_node("Cast", [half.name], [init.name], to=onnx.TensorProto.FLOAT, name=init.name + "_cast")
        )
    onnx.save(model, str(out_path))


def _quantize_dynamic(fp32_path: Path, out_path: Path, params: dict, recipe: Recipe, calibration) -> None:
    """ONNX Runtime's ``quantize_dynamic``: QInt8 weights, MatMulInteger / DynamicQuantizeMatMul."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(fp32_path),
        str(out_path),
        weight_type=QuantType.QInt8,
        per_channel=params.get("per_channel", True),
        # Fused contrib ops carry no type information the quantizer can read.
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )


def _matmul_nbits(fp32_path: Path, out_path: Path, params: dict, recipe: Recipe, calibration) -> None:
    """8-bit MatMulNBits: per-block int8 kernels, activations quantized per block at run time
    (accuracy_level 4), which keeps BERT's outlier channels from taking the whole range."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

    kw = dict(
        block_size=params["block_size"],
        is_symmetric=True,
        accuracy_level=params["accuracy_level"],
        bits=params["bits"],
        op_types_to_quantize=("MatMul",),
    )
    q = MatMulNBitsQuantizer(
        onnx.load(str(fp32_path)), nodes_to_exclude=[], algo_config=DefaultWeightOnlyQuantConfig(**kw), **kw
    )
    q.process()
    onnx.save(q.model.model, str(out_path))


def _dynamic_per_row(fp32_path: Path, out_path: Path, params: dict, recipe: Recipe, calibration) -> None:
    """int8 weights per channel, uint8 activations per row (``onnx_row_int8``)."""
    from edgebert.quantize import onnx_row_int8

    onnx_row_int8.quantize(
        fp32_path,
        out_path,
        fixed_zero_points=params.get("fixed_zero_points"),
        normalized_rows=params.get("normalized_rows"),
        float_products=params.get("float_products"),
    )


class _Reader:
    def __init__(self, batches):
        self._it = iter(batches)

    def get_next(self):
        return next(self._it, None)


def _qdq_static(fp32_path: Path, out_path: Path, params: dict, recipe: Recipe, calibration) -> None:
    """Static QDQ: weights QInt8 per channel, activations ``uint8`` or ``uint16`` with ranges
    calibrated on text; ``static_ops`` limits the op types, ``float_regex`` keeps nodes float."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if not calibration:
        raise ValueError("this recipe needs calibration data")
    method = {
        "minmax": CalibrationMethod.MinMax,
        "percentile": CalibrationMethod.Percentile,
        "entropy": CalibrationMethod.Entropy,
    }[(recipe.calibration or {}).get("method", "minmax")]
    act = {"uint8": QuantType.QUInt8, "uint16": QuantType.QUInt16}[params["activations"]]
    extra = {"CalibPercentile": (recipe.calibration or {}).get("percentile", 99.999)}
    kw = {}
    if params.get("static_ops"):
        import re

        import onnx

        pattern = re.compile(params.get("float_regex") or "$^")
        kw["op_types_to_quantize"] = params["static_ops"]
        kw["nodes_to_exclude"] = [n.name for n in onnx.load(str(fp32_path)).graph.node if pattern.search(n.name)]
    quantize_static(
        str(fp32_path),
        str(out_path),
        _Reader(calibration),
        quant_format=QuantFormat.QDQ,
        activation_type=act,
        weight_type=QuantType.QInt8,
        per_channel=True,
        calibrate_method=method,
        extra_options=extra,
        **kw,
    )


def _qdq_mixed(fp32_path: Path, out_path: Path, params: dict, recipe: Recipe, calibration) -> None:
    """Static QDQ around every op, uint8 / uint16 by the recipe's ``precision`` (``onnx_qdq_mixed``)."""
    from edgebert.quantize import onnx_qdq_mixed

    if not calibration:
        raise ValueError("this recipe needs calibration data")
    if not recipe.precision:
        raise ValueError(f"recipe {recipe.name}: the qdq_mixed method needs a precision section")
    onnx_qdq_mixed.quantize(fp32_path, out_path, recipe.precision, _Reader(calibration))


METHODS: dict[str, Method] = {
    "float": Method(_copy, graphs=(FUSED_MHA, STANDARD)),
    "float16_weights": Method(_float16_weights, graphs=(FUSED_MHA, STANDARD)),
    # The converters' default route (tf2onnx, then quantize_dynamic); fused, it becomes QAttention.
    "quantize_dynamic": Method(_quantize_dynamic, params=("per_channel",), graphs=(STANDARD, FUSED_ATTENTION)),
    "matmul_nbits": Method(
        _matmul_nbits,
        params=("bits", "block_size", "accuracy_level"),
        required=("bits", "block_size", "accuracy_level"),
        graphs=(FUSED_MHA, STANDARD),
    ),
    "dynamic_per_row": Method(
        _dynamic_per_row,
        params=("fixed_zero_points", "normalized_rows", "float_products"),
        graphs=(FUSED_MHA, STANDARD),
        reads_external_data=True,  # onnx.load brings the weights in
    ),
    "qdq_static": Method(
        _qdq_static, params=("activations", "static_ops", "float_regex"), required=("activations",), graphs=(STANDARD,)
    ),
    "qdq_mixed": Method(_qdq_mixed, graphs=(STANDARD,)),
}
