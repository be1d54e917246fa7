"""Integer-only ONNX: static QDQ around every op, uint8 activations with uint16 for the op
groups a recipe's ``precision`` section selects, int8 per-channel weights.

QDQ is the form NPU execution providers (QNN, NNAPI) read: every compute op's float inputs
come from a DequantizeLinear and its outputs go to a QuantizeLinear, so the provider runs the
op in integers. ONNX Runtime's ``TensorQuantOverrides`` give each tensor its type; where an
8-bit op reads a 16-bit tensor (or the reverse) a ``convert`` entry makes the quantizer insert
a requantization (DQ -> Q of the other type -> DQ).

Measured on all-MiniLM-L6-v2, 100 sentences (a helper's study, 2026-12-01): every op uint8
pooled cosine 0.812; this mix 0.9956 (mean-pooled 0.9923); every op uint16 0.9995 at 1.5x the
size. On CPU, ONNX Runtime fuses only the 8-bit ops into integer kernels (QLinearMatMul,
QLinearAdd); the 16-bit ones run as DQ -> float op -> Q.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

# The op types the tf2onnx encoder graph computes with after ``quant_pre_process`` (which
# folds the weight-only subgraphs and fuses the pooler into a Gemm); Cast and shape ops carry
# no activations.
OP_TYPES = (
    "MatMul",
    "Gemm",
    "Add",
    "Mul",
    "Sub",
    "Div",
    "ReduceMean",
    "GlobalAveragePool",
    "Sqrt",
    "Reciprocal",
    "Pow",
    "Erf",
    "Tanh",
    "Sigmoid",
    "Softmax",
    "Reshape",
    "Transpose",
    "Slice",
    "Gather",
    "Concat",
)
# Ops whose output keeps the input's scale (data movement): they take their input's width
# instead of their (often unscoped, e.g. "Reshape_2") name's.
DATA_MOVEMENT = {"Reshape", "Transpose", "Slice", "Squeeze", "Unsqueeze", "Flatten", "Concat"}


def node_bits(model, precision: dict) -> dict[str, int]:
    """16 or 8 for every node that is quantized, in graph (topological) order."""
    sixteen = re.compile(precision["int16_select"])
    tables = re.compile(precision.get("int8_tables") or "$^")
    producer = {o: n for n in model.graph.node for o in n.output}
    bits: dict[str, int] = {}
    for n in model.graph.node:
        if n.op_type not in OP_TYPES:
            continue
        if n.op_type == "Gather" and tables.search(n.name):
            bits[n.name] = 8
        elif n.op_type in DATA_MOVEMENT and n.input[0] in producer and producer[n.input[0]].name in bits:
            bits[n.name] = bits[producer[n.input[0]].name]
        else:
            bits[n.name] = 16 if sixteen.search(n.name) else 8
    return bits


def overrides(model, bits: dict[str, int], precision: dict) -> dict:
    """``TensorQuantOverrides``: a tensor takes its producer's type; readers of the other width
    get it through a ``convert``. Constants of 16-bit element-wise ops (gamma, beta, biases,
    smoothing scales) are uint16 too; the tables of the Gathers ``int8_tables`` selects are int8
    symmetric."""
    import onnx
    from onnxruntime.quantization import QuantType

    types = {8: QuantType.QUInt8, 16: QuantType.QUInt16}
    select = re.compile(precision.get("int8_tables") or "$^")
    g = model.graph
    tables = {n.input[0] for n in g.node if n.op_type == "Gather" and select.search(n.name)}
    inits = {i.name: i for i in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    readers: dict[str, list] = {}
    for n in g.node:
        if n.name in bits:
            for i in n.input:
                if i:
                    readers.setdefault(i, []).append(n)
    out: dict = {}
    for t, users in readers.items():
        widths = {bits[u.name] for u in users}
        if t in inits:
            if inits[t].data_type != onnx.TensorProto.FLOAT:
                continue
            if t in tables:
                out[t] = [{"quant_type": QuantType.QInt8, "symmetric": True}]
            elif 16 in widths and all(u.op_type not in ("MatMul", "Gemm") or u.input[0] == t for u in users):
                out[t] = [{"quant_type": types[16]}]
            continue
        p = producer.get(t)
        own = bits[p.name] if p is not None and p.name in bits else max(widths)  # a graph input or a cast
        entry: dict = {"quant_type": types[own]}
        other = {u.name for u in users if bits[u.name] != own}
        if other:
            entry["convert"] = {"quant_type": types[24 - own], "recv_nodes": other}
        if own == 16 or other:
            out[t] = [entry]
    for n in g.node:  # 16-bit outputs nothing quantized reads (the graph outputs)
        if bits.get(n.name) == 16:
            for o in n.output:
                out.setdefault(o, [{"quant_type": types[16]}])
    return out


def quantize(fp32_path: Path, out_path: Path, precision: dict, reader) -> None:
    """Writes ``out_path``: ``fp32_path`` (a standard-op graph) statically quantized in QDQ form,
    ranges by min-max over the token feeds of ``reader`` (an ONNX Runtime CalibrationDataReader)."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(dir=Path(out_path).parent, prefix=".qdq-") as work:
        pre = Path(work) / "pre.onnx"
        # Folds the weight-only subgraphs (token-type rows, position slice), which would
        # otherwise be quantized as activations.
        quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
        model = onnx.load(str(pre))
        bits = node_bits(model, precision)
        present = sorted({n.op_type for n in model.graph.node if n.name in bits})
        # Do not set CalibMaxIntermediateOutputs: in ORT 1.32 it drops the ranges collected so far.
        quantize_static(
            str(pre),
            str(out_path),
            reader,
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            calibrate_method=CalibrationMethod.MinMax,
            op_types_to_quantize=present,
            extra_options={
                "ForceQuantizeNoInputCheck": True,
                "TensorQuantOverrides": overrides(model, bits, precision),
            },
        )
