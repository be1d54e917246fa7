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


def float_products(flat: bytes, params: dict, calibration, precision) -> bytes:
    """The flatbuffer with the dynamic-range FULLY_CONNECTEDs whose weight name (the dense
    layer's scope, e.g. ``pooler/dense/MatMul``) matches ``params["float_products"]`` made float
    again: their int8 weights dequantized (``q * scale`` per output channel). The converter has
    no per-op switch for dynamic range, so this runs after it.

    Why: a hybrid product quantizes its input per row, and a product that sees one row per
    sentence (the pooler's [CLS] vector) loses more to that than all of a layer's products do,
    at a cost in time that a single row never repays (README, int8 accuracy).
    """
    import re

    import flatbuffers
    import numpy as np

    from edgebert.formats.tflite_graph import load_schema

    pattern = params.get("float_products")
    if not pattern:
        return flat
    schema = load_schema()
    model = schema.ModelT.InitFromPackedBuf(flat, 0)
    fc = [i for i, c in enumerate(model.operatorCodes) if max(c.builtinCode, c.deprecatedBuiltinCode) == 9]
    changed: dict[int, int] = {}  # buffer -> tensors; length buckets share one weight buffer
    for sg in model.subgraphs:
        for op in sg.operators:
            if op.opcodeIndex not in fc:
                continue
            w = sg.tensors[op.inputs[1]]
            if w.type != schema.TensorType.INT8 or not re.search(pattern, w.name.decode()):
                continue
            if w.buffer not in changed:
                buf = model.buffers[w.buffer]
                values = np.frombuffer(bytes(buf.data), np.int8).reshape(w.shape).astype(np.float32)
                scale = np.asarray(w.quantization.scale, np.float32).reshape([-1] + [1] * (values.ndim - 1))
                buf.data = np.frombuffer((values * scale).astype("<f4").tobytes(), np.uint8)
            w.type, w.quantization = schema.TensorType.FLOAT32, None
            changed[w.buffer] = changed.get(w.buffer, 0) + 1
    if not changed:  # a graph without the product (a task head that drops the pooler)
        return flat
    builder = flatbuffers.Builder(len(flat) + (1 << 20))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


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


# The op types an "ops": "all" rule quantizes: every compute op an encoder graph holds. The
# graph's INPUT / OUTPUT are not in it, so the file keeps float outputs (a DEQUANTIZE at the
# boundary) and int32 token inputs.
ALL_OPS = (
    "ADD",
    "SUB",
    "MUL",
    "MEAN",
    "RSQRT",
    "FULLY_CONNECTED",
    "BATCH_MATMUL",
    "SOFTMAX",
    "GELU",
    "TANH",
    "LOGISTIC",
    "SUM",
    "DIV",
    "RESHAPE",
    "TRANSPOSE",
    "SLICE",
    "STRIDED_SLICE",
    "MAXIMUM",
    "GATHER",
    "CONCATENATION",
    "SPLIT",
)
RULE_KEYS = {"select", "ops", "mode", "activations"}


def _rule_scopes(select: str, outputs: dict[str, str]) -> str:
    """The regex a rule matches op names with: ai-edge-quantizer names an op by its output
    tensor, and an op writing a signature output is named ``StatefulPartitionedCall:N``, so a
    signature output's name in ``select`` (``sequence_output``) also selects the op writing it."""
    import re

    # The scope is the op's output tensor names, each followed by ";".
    extra = [f"(^|;){re.escape(t)};" for name, t in outputs.items() if re.search(select, name)]
    return "|".join([select, *extra])


def _signature_outputs(flat: bytes) -> dict[str, str]:
    """{signature output name: tensor name} of every signature of a flatbuffer."""
    from edgebert.formats.tflite_graph import load_schema

    model = load_schema().Model.GetRootAsModel(flat, 0)
    out = {}
    for i in range(model.SignatureDefsLength()):
        sig = model.SignatureDefs(i)
        sg = model.Subgraphs(sig.SubgraphIndex())
        for j in range(sig.OutputsLength()):
            o = sig.Outputs(j)
            out[o.Name().decode()] = sg.Tensors(o.TensorIndex()).Name().decode()
    return out


def precision_rules(precision: dict | None) -> list[dict]:
    """The rules of a recipe's ``precision`` section: every op static int8, the ``int16_select``
    groups int16, the ``int8_tables`` lookups (GATHER) int8."""
    if not precision:
        return []
    rules = [{"select": ".*", "ops": "all", "activations": 8}]
    rules.append({"select": precision["int16_select"], "ops": "all", "activations": 16})
    if precision.get("int8_tables"):
        rules.append({"select": precision["int8_tables"], "ops": ["GATHER"], "activations": 8})
    return rules


def ai_edge_quantize(flat: bytes, params: dict, calibration: list[dict] | None, precision: dict | None) -> bytes:
    """Quantizes a float flatbuffer with ai-edge-quantizer, op by op: the recipe's ``precision``
    rules (``precision_rules``), then the section's ``rules`` (later rules win where several
    select an op), each

    ``{"select": regex on op names (name scopes such as "layer_3/output/LayerNorm"), "ops":
    "all" or a list of TFLite op types, "mode": "static" (calibrated, default) or "dynamic",
    "activations": 8 or 16 (static only; int16 activations with int8 weights)}``.
    """
    import contextlib
    import io
    import os
    import tempfile

    from ai_edge_quantizer import qtyping, quantizer, recipe_manager

    outputs = _signature_outputs(flat)
    rm = recipe_manager.RecipeManager()
    rules = precision_rules(precision) + list(params.get("rules", []))
    if not rules:
        raise ValueError("the ai_edge_quantizer method needs rules or a recipe precision section")
    for rule in rules:
        unknown = set(rule) - RULE_KEYS
        if unknown:
            raise ValueError(f"quantization rule {rule}: unknown keys {sorted(unknown)} (known: {sorted(RULE_KEYS)})")
        regex = _rule_scopes(rule["select"], outputs)
        ops = ALL_OPS if rule.get("ops", "all") == "all" else rule["ops"]
        for op in ops:
            name = getattr(qtyping.TFLOperationName, op)
            if rule.get("mode", "static") == "dynamic":
                rm.add_dynamic_config(regex=regex, operation_name=name, num_bits=8)
            else:
                rm.add_static_config(
                    regex=regex, operation_name=name, activation_num_bits=rule["activations"], weight_num_bits=8
                )
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "float.tflite")
        with open(src, "wb") as f:
            f.write(flat)
        qt = quantizer.Quantizer(src)
        qt.load_quantization_recipe(rm.get_quantization_recipe())
        if qt.need_calibration and not calibration:
            raise ValueError("this recipe needs calibration data")
        # Calibration and transformation draw tqdm bars per op and take no switch for them; the
        # worker logs the step itself.
        with contextlib.redirect_stderr(io.StringIO()):
            stats = qt.calibrate({"serving_default": list(calibration)}) if qt.need_calibration else None
            result = qt.quantize(stats, enable_progress_bar=False, enable_progress_report=False)
        return _inline_buffers(bytes(result.quantized_model))


def _inline_buffers(flat: bytes) -> bytes:
    """The flatbuffer with every weight inside it. ai-edge-quantizer stores the weights of a
    model over 256 KB after the flatbuffer (buffers with an offset), which LiteRT reads but
    metadata writers that re-serialize the model drop (LiteRT then refuses the asset: "Constant
    buffer specified an out of range offset")."""
    import flatbuffers

    from edgebert.formats.tflite_graph import inline_buffers, load_schema

    model = load_schema().ModelT.InitFromPackedBuf(flat, 0)
    if not inline_buffers(model, flat):
        return flat
    builder = flatbuffers.Builder(len(flat) + (1 << 20))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


METHODS: dict[str, Method] = {
    "float": Method(_float),
    "float16_weights": Method(_float16_weights),
    "dynamic_range": Method(_dynamic_range, params=("float_products",), after=float_products),
    "full_integer": Method(_full_integer, params=("activations",), required=("activations",)),
    "ai_edge_quantizer": Method(_float, params=("rules",), after=ai_edge_quantize),
}


def configure(converter, recipe: Recipe, representative: Representative) -> None:
    """Sets the converter's optimisation, types and representative dataset for ``recipe``."""
    method, params = method_of(recipe, "tflite", METHODS)
    method.apply(converter, params, representative)


def after_conversion(flat: bytes, recipe: Recipe, calibration: list[dict] | None) -> bytes:
    """The flatbuffer as the recipe leaves it: quantized again where its method works on the
    converted file (ai-edge-quantizer), unchanged otherwise."""
    method, params = method_of(recipe, "tflite", METHODS)
    return method.after(flat, params, calibration, recipe.precision) if method.after else flat
