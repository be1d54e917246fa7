"""Applies a recipe to an fp32 ONNX file (ONNX Runtime's quantizers plus two graph passes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgebert.quantize.recipes import Recipe

MIN_ELEMENTS = 1024  # smaller tensors (biases, LayerNorm) stay float, as in TFLite


def apply(fp32_path: Path, out_path: Path, recipe: Recipe, calibration: list[dict] | None) -> Path:
    """Writes ``out_path`` quantized by ``recipe`` from ``fp32_path``."""
    import onnx

    name = recipe.name
    if name == "wfp16_afp32":
        model = onnx.load(str(fp32_path))
        _fp16_weights(model)
        onnx.save(model, str(out_path))
    elif name == "wi8_afp32_naive":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(str(fp32_path), str(out_path), weight_type=QuantType.QInt8,
                         per_channel=recipe.onnx.get("per_channel", True))
    elif name == "wi8_afp32":
        onnx.save(_matmul_nbits(onnx.load(str(fp32_path)), recipe.onnx), str(out_path))
    elif name in ("wi8_ai8", "wi8_ai16", "wi8_ai8_mixed"):
        _static_qdq(fp32_path, out_path, recipe, calibration)
    else:
        raise ValueError(f"recipe {name} has no ONNX form")
    return out_path


def _fp16_weights(model) -> None:
    """Stores large float initializers as float16 behind a Cast (ORT folds it at load)."""
    import onnx
    from onnx import helper, numpy_helper

    graph = model.graph
    for init in list(graph.initializer):
        if init.data_type != onnx.TensorProto.FLOAT or np.prod(init.dims) < MIN_ELEMENTS:
            continue
        arr = numpy_helper.to_array(init)
        half = numpy_helper.from_array(arr.astype(np.float16), init.name + "_fp16")
        graph.initializer.remove(init)
        graph.initializer.append(half)
        graph.node.insert(0, helper.make_node("Cast", [half.name], [init.name], to=onnx.TensorProto.FLOAT,
                                              name=init.name + "_cast"))


def _matmul_nbits(model, params: dict):
    """8-bit MatMulNBits: per-block int8 kernels, activations quantized per block at run time
    (accuracy_level 4), which keeps BERT's outlier channels from taking the whole range."""
    from onnxruntime.quantization.matmul_nbits_quantizer import (DefaultWeightOnlyQuantConfig,
                                                                 MatMulNBitsQuantizer)

    kw = dict(block_size=params["block_size"], is_symmetric=True, accuracy_level=params["accuracy_level"],
              bits=params["bits"], op_types_to_quantize=("MatMul",))
    q = MatMulNBitsQuantizer(model, nodes_to_exclude=[], algo_config=DefaultWeightOnlyQuantConfig(**kw), **kw)
    q.process()
    return q.model.model


class _Reader:
    def __init__(self, batches):
        self._it = iter(batches)

    def get_next(self):
        return next(self._it, None)


def _static_qdq(fp32_path: Path, out_path: Path, recipe: Recipe, calibration) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if not calibration:
        raise ValueError(f"recipe {recipe.name} needs calibration data")
    method = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
              "entropy": CalibrationMethod.Entropy}[recipe.calibration.get("method", "minmax")]
    act = QuantType.QUInt16 if recipe.name == "wi8_ai16" else QuantType.QUInt8
    extra = {"CalibPercentile": recipe.calibration.get("percentile", 99.999)}
    params = recipe.for_format("onnx")
    kw = {}
    if params.get("static_ops"):
        import re

        import onnx

        pattern = re.compile(params.get("float_regex") or "$^")
        kw["op_types_to_quantize"] = params["static_ops"]
        kw["nodes_to_exclude"] = [n.name for n in onnx.load(str(fp32_path)).graph.node if pattern.search(n.name)]
    quantize_static(str(fp32_path), str(out_path), _Reader(calibration), quant_format=QuantFormat.QDQ,
                    activation_type=act, weight_type=QuantType.QInt8, per_channel=True,
                    calibrate_method=method, extra_options=extra, **kw)
