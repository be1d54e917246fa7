"""Copies of an exported model that also return every transformer layer's output.

Bundles export ``pooled_output`` and ``sequence_output`` only. To show where an export drifts,
``edgebert verify`` runs a *tapped* copy: the same file with the tensor that leaves layer ``i``
added to the graph outputs (TFLite: subgraph and signature outputs; ONNX: graph outputs), so
the deployed kernels (XNNPACK, ONNX Runtime's int8 kernels) compute it exactly as in the bundle.

The layer outputs are found by structure, which every recipe keeps: the tensor entering layer
``i + 1``'s query (or fused Q/K/V) projection (op names carry the canonical weight name, see
``encoder_graph._dense``), walked up through ops that only re-encode it (SmoothQuant's scale,
quantize / dequantize, cast). The last layer's output is ``sequence_output``.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np

from edgebert.errors import EdgebertError
from edgebert.formats import tflite_graph

TAP_PREFIX = "layer_tap_"
# Ops between a layer's output and the next layer's query matmul that do not change its value
# (beyond re-encoding): SmoothQuant's per-channel scale and the quantizers.
_PASS_THROUGH = {
    "QUANTIZE",
    "DEQUANTIZE",
    "QuantizeLinear",
    "DequantizeLinear",
    "DynamicQuantizeLinear",
    "Cast",
    "CAST",
}

# The projection itself (weight dequantize ops carry the same name scope).
_MATMULS = {
    "FULLY_CONNECTED",
    "BATCH_MATMUL",
    "MatMul",
    "MatMulNBits",
    "MatMulInteger",
    "QLinearMatMul",
    "Gemm",
    "DynamicQuantizeMatMul",
    "MatMulIntegerToFloat",  # quantize.onnx_row_int8
    "Attention",  # the fused ONNX graph's projection inside the op (onnx_graph)
    "QAttention",
}


@dataclasses.dataclass
class Op:
    name: str
    type: str
    inputs: list
    outputs: list


def _query_pattern(layer: int) -> re.Pattern:
    # The fused ONNX graph projects Q, K and V in one op ("query_key_value").
    return re.compile(rf"(^|[/;])layer_{layer}/attention/self/query(_key_value)?/")


def find_layer_outputs(ops: list[Op], constants: set, num_layers: int) -> list:
    """Tensor ids of the outputs of layers ``0 .. num_layers - 2`` (``ops`` in execution order).

    Raises:
      EdgebertError: a layer's query projection, or the tensor feeding it, was not found.
    """
    producer = {t: op for op in ops for t in op.outputs}
    found = []
    for layer in range(1, num_layers):
        pat = _query_pattern(layer)
        query = next((op for op in ops if op.type in _MATMULS and pat.search(op.name)), None)
        if query is None:
            raise EdgebertError(
                f"no query projection of layer {layer} in the graph",
                "per-layer drift needs a model exported by edgebert",
            )
        tensor = query.inputs[0]
        # The TFLite converter folds the preceding LayerNorm's gamma/beta into the projection's
        # weights when nothing sits between them, and names the fused op after the folded ops
        # ("mul_10;add_10;layer_1/attention/self/query/MatMul;..."). Its input is then the
        # normalized value before gamma/beta; the layer's output is the folded ADD, which the
        # residual branch still computes.
        folded = [n for n in query.name.split(";") if n and not pat.search(n)]
        if folded:
            before = ops[: ops.index(query)]
            # The ADD itself, not the sibling projections (key, value) fused with the same names.
            owner = next((op for op in reversed(before) if op.name == folded[-1]), None) or next(
                (
                    op
                    for op in reversed(before)
                    if folded[-1] in op.name.split(";") and not re.search(r"layer_\d+/", op.name)
                ),
                None,
            )
            if owner is not None:
                tensor = owner.outputs[0]
        while tensor in producer:
            op = producer[tensor]
            if op.type in _PASS_THROUGH:
                tensor = op.inputs[0]  # the value; a per-row quantizer's scale is computed too
                continue
            if not (op.type in ("MUL", "Mul") and "smooth" in op.name):
                break
            variable = [t for t in op.inputs if t not in constants and t is not None and t != ""]
            if len(variable) != 1:
                break
            tensor = variable[0]
        found.append(tensor)
    return found


# ---------------------------------------------------------------------------------- TFLite
def _tflite_ops(model, subgraph: int = 0) -> tuple[list[Op], set]:
    from ai_edge_litert import schema_py_generated as schema

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    sg = model.subgraphs[subgraph]
    tensor_names = [t.name.decode() if isinstance(t.name, bytes) else t.name for t in sg.tensors]
    ops = []
    for op in sg.operators:
        code = model.operatorCodes[op.opcodeIndex]
        kind = names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM")
        outs = list(op.outputs)
        ops.append(Op(tensor_names[outs[0]] if outs else "", kind, [int(i) for i in op.inputs], outs))
    constants = {
        i
        for i, t in enumerate(sg.tensors)
        if model.buffers[t.buffer].data is not None and len(model.buffers[t.buffer].data)
    }
    return ops, constants


def tap_tflite(path: Path, num_layers: int, out: Path) -> dict[str, tuple[float, int] | None]:
    """Writes ``out``: ``path`` whose signatures (every length bucket's) also return ``layer_tap_i``.

    Returns:
      ``{output name: (scale, zero_point)}`` for taps that are int8 tensors (full-int8 models), else None.
    """
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    buf = Path(path).read_bytes()
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(buf, 0))
    tflite_graph.inline_buffers(model, buf)  # bundles written before the quantizer's output was inlined
    quant = {}
    for signature in model.signatureDefs:
        ops, constants = _tflite_ops(model, signature.subgraphIndex)
        taps = find_layer_outputs(ops, constants, num_layers)
        sg = model.subgraphs[signature.subgraphIndex]
        for i, t in enumerate(taps):
            name = f"{TAP_PREFIX}{i}"
            sg.outputs = list(sg.outputs) + [t]
            entry = schema.TensorMapT()
            entry.name, entry.tensorIndex = name, t
            signature.outputs.append(entry)
            q = sg.tensors[t].quantization
            is_int = sg.tensors[t].type in (schema.TensorType.INT8, schema.TensorType.UINT8)
            quant[name] = (
                (float(q.scale[0]), int(q.zeroPoint[0])) if is_int and q is not None and len(q.scale) else None
            )
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    Path(out).write_bytes(bytes(builder.Output()))
    return quant


# ------------------------------------------------------------------------------------ ONNX
def tap_onnx(path: Path, num_layers: int, out: Path) -> dict[str, None]:
    """Writes ``out``: ``path`` with graph outputs ``layer_tap_i`` (Identity of each layer output)."""
    import onnx
    from onnx import helper

    model = onnx.load(str(path))
    g = model.graph
    constants = {i.name for i in g.initializer} | {o for n in g.node if n.op_type == "Constant" for o in n.output}
    ops = [Op(n.name, n.op_type, list(n.input), list(n.output)) for n in g.node]
    taps = find_layer_outputs(ops, constants, num_layers)
    for i, t in enumerate(taps):
        name = f"{TAP_PREFIX}{i}"
        g.node.append(helper.make_node("Identity", [t], [name], name=f"{name}_identity"))
        g.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    onnx.save(model, str(out))
    return {f"{TAP_PREFIX}{i}": None for i in range(len(taps))}


def tap_model(path: Path, num_layers: int, out_dir: Path) -> tuple[Path, dict]:
    """The tapped copy of ``path`` (``.tflite`` or ``.onnx``) in ``out_dir`` and its tap dequantization."""
    out = Path(out_dir) / f"tapped{Path(path).suffix}"
    if Path(path).suffix == ".tflite":
        return out, tap_tflite(path, num_layers, out)
    return out, tap_onnx(path, num_layers, out)


def dequantize(value: np.ndarray, quant: tuple[float, int] | None) -> np.ndarray:
    if quant is None:
        return value.astype(np.float32, copy=False)
    scale, zero = quant
    return (value.astype(np.float32) - zero) * scale
