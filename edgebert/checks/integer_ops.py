"""Whether a model computes in integers only: what NPUs (NNAPI accelerators, Edge TPU-style
chips, vendor delegates) need, since a float op there falls back to the CPU.

A model passes when every op reads and writes integer tensors, except at its boundary: the
int32 token inputs cast to float for a QUANTIZE (TFLite), the outputs' DEQUANTIZE, and in ONNX
the QuantizeLinear / DequantizeLinear pairs that carry each op's integer form (the QDQ format
that ONNX Runtime's QNN and NNAPI execution providers turn into integer kernels).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping
from typing import Any, cast

from edgebert.checks.reports import FloatOp, IntegerOpsReport
from edgebert.formats import tflite_graph

FLOAT_TYPES = {"FLOAT32", "FLOAT16", "FLOAT64", "BFLOAT16"}


def check_tflite(path: str | os.PathLike) -> IntegerOpsReport:
    """The float ops of a ``.tflite`` file, per signature.

    Returns:
      ``{"integer_only": bool, "ops": n, "float_ops": [{"op", "type", "tensor"}], "boundary":
      {op type: count}}`` (``tflite_graph.combine``'d over signatures).
    """
    per = tflite_graph.check_signatures(path, _check_subgraph)
    report = tflite_graph.combine(per, lists=("float_ops",), sums=("ops",), alls=("integer_only",), keep=("boundary",))
    return cast(IntegerOpsReport, report)


def _check_subgraph(fb: tflite_graph.Flatbuffer, sg) -> dict:
    ops = [tflite_graph.Op(fb, sg, sg.Operators(i)) for i in range(sg.OperatorsLength())]
    outputs = {sg.Outputs(j) for j in range(sg.OutputsLength())}
    readers: dict[int, list[str]] = {}
    for o in ops:
        for t in o.inputs:
            readers.setdefault(t, []).append(o.name)

    def is_float(o, t: int) -> bool:
        return t >= 0 and o.type(t) in FLOAT_TYPES

    def boundary(o) -> bool:
        if o.name == "QUANTIZE":  # float in (a cast input or an outside caller), integer out
            return not any(is_float(o, t) for t in o.outputs)
        if o.name == "DEQUANTIZE":  # integer in, a model output out
            return all(t in outputs for t in o.outputs)
        if o.name == "CAST":  # an int32 input to float, read only by QUANTIZE
            return not is_float(o, o.inputs[0]) and all(set(readers.get(t, [])) == {"QUANTIZE"} for t in o.outputs)
        return False

    found: list[dict[str, Any]] = []
    edges: Counter = Counter()
    for i, o in enumerate(ops):
        if boundary(o):
            edges[o.name] += 1
            continue
        floats = [t for t in o.inputs + o.outputs if is_float(o, t)]
        if floats:
            found.append({"op": i, "type": o.name, "tensor": sg.Tensors(floats[0]).Name().decode(errors="replace")})
    return {"integer_only": not found, "ops": len(ops), "float_ops": found, "boundary": dict(edges)}


def check_onnx(path: str | os.PathLike) -> IntegerOpsReport:
    """The float ops of an ONNX QDQ file: nodes (other than QuantizeLinear / DequantizeLinear)
    with a float input that no DequantizeLinear produced, or a float output that is not only
    quantized again or a graph output.

    Returns:
      ``{"integer_only": bool, "ops": n, "float_ops": [{"op", "type", "tensor"}]}``.
    """
    import onnx

    from edgebert.errors import EdgebertError

    try:
        model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))  # types every tensor it can
    except Exception as e:  # a truncated or foreign file fails inside protobuf
        raise EdgebertError(
            f"{path} is not a readable ONNX model ({type(e).__name__})", "export the model again"
        ) from None
    g = model.graph
    float_types = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE}
    producer = {o: n for n in g.node for o in n.output}
    readers: dict[str, list] = {}
    for n in g.node:
        for t in n.input:
            readers.setdefault(t, []).append(n)
    typed = {v.name: v.type.tensor_type.elem_type for v in list(g.input) + list(g.output) + list(g.value_info)}
    typed.update({i.name: i.data_type for i in g.initializer})
    graph_outputs = {o.name for o in g.output}
    qdq = {"QuantizeLinear", "DequantizeLinear"}

    def float_input(t: str) -> bool:
        p = producer.get(t)
        if p is not None:
            return p.op_type != "DequantizeLinear" and _is_float_out(p, t)
        return typed.get(t) in float_types

    def _is_float_out(p, t: str) -> bool:
        if t in typed:
            return typed[t] in float_types
        # Not typed by inference (contrib ops): float unless the producer makes integers.
        return p.op_type not in ("QuantizeLinear", "Shape", "ArgMax", "Equal", "Greater", "Less", "Not")

    found: list[FloatOp] = []
    compute = [n for n in g.node if n.op_type not in qdq]
    for i, n in enumerate(g.node):
        if n.op_type in qdq:
            continue
        bad = [t for t in n.input if t and float_input(t)]
        bad += [
            t
            for t in n.output
            if _is_float_out(n, t)
            and t not in graph_outputs
            and any(r.op_type != "QuantizeLinear" for r in readers.get(t, []))
        ]
        if bad:
            found.append({"op": i, "type": n.op_type, "tensor": bad[0]})
    return {"integer_only": not found, "ops": len(compute), "float_ops": found}


def summary(report: Mapping[str, Any]) -> str:
    """One line, e.g. ``integer-only: yes (298 ops)`` or ``integer-only: no, 12 float ops
    (6 GELU, 6 LayerNormalization)``."""
    if report["integer_only"]:
        return f"integer-only: yes ({report['ops']} ops)"
    kinds = Counter(f["type"] for f in report["float_ops"])
    return (
        f"integer-only: no, {len(report['float_ops'])} of {report['ops']} ops compute in float ("
        + ", ".join(f"{n} {k}" for k, n in kinds.most_common())
        + ")"
    )
