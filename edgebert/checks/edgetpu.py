"""Static Edge TPU check of a ``.tflite``: which ops the Edge TPU compiler's published rules let
it map, and where the mapping stops.

Needs no Coral device and no compiler (``edgetpu_compiler`` ships for x86-64 Debian only, and
is not installed here): it reads the flatbuffer (``edgebert.formats.tflite_graph``) and applies the
rules Coral publishes, as data (``OPS``):

- Sources: the supported-operations table and model requirements of Coral's "TensorFlow models on
  the Edge TPU" (https://coral.ai/docs/edgetpu/models-intro/), in its 2019 text (complete) and the
  newer text as copied for the Edge TPU-compiled ARTPEC-7 DLPU
  (https://developer.axis.com/computer-vision/on-device/system-on-chip/artpec-7/supported-ops/ and
  ``.../optimization-tips/``); op additions of compiler 2.0 (EXPAND_DIMS, PACK, QUANTIZE, SUM,
  TRANSPOSE_CONV) from google-coral/edgetpu CHANGES.md.
- Every tensor an op reads or writes must be 8-bit (int8 / uint8; int32 for constant biases):
  "operators that take in other types are not supported", so an int16 activation is refused.
- Tensor sizes constant at compile time; tensors 1- to 3-D, or only the innermost 3 dimensions
  larger than 1.
- One Edge TPU segment: the compiler maps ops in execution order up to the first op it cannot
  map; that op and every op after it run on the CPU ("More than one subgraph is not supported").

Ops missing from every version of the table (BERT needs them): GATHER (the embedding lookups),
BATCH_MATMUL (attention), GELU, RSQRT / SQUARED_DIFFERENCE (LayerNorm), TRANSPOSE, DEQUANTIZE.
What a static check cannot see: the compiler's undisclosed tensor-size limits ("Operation is
otherwise supported, but not mapped due to some unspecified limitation").
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from typing import Any, cast

from edgebert.checks.reports import EdgeTpuReport
from edgebert.formats import tflite_graph

EIGHT_BIT = frozenset({"INT8", "UINT8"})
AFTER_FIRST = "after the first unmapped op (one Edge TPU segment)"
SOURCE = "Coral 'TensorFlow models on the Edge TPU' op table and model requirements"


def _softmax(o: tflite_graph.Op) -> str | None:
    shape = o.shape(o.inputs[0])
    if sum(d > 1 for d in shape) > 1 or math.prod(shape) > 16000:
        return f"SOFTMAX takes a 1-D input of at most 16,000 elements (this one is {shape})"
    return None


def _unit_strides(o: tflite_graph.Op) -> str | None:
    if len(o.inputs) > 3 and o.constant(o.inputs[3]):
        import numpy as np

        buf = o.fb.model.Buffers(o.sg.Tensors(o.inputs[3]).Buffer())
        if np.any(buf.DataAsNumpy().view(np.int32) != 1):
            return "STRIDED_SLICE with a stride other than 1"
    return None


# Op -> an extra check (None: the table states no limitation a flatbuffer shows). Limitations
# the table states but that concern layouts this exporter never writes (pooling activations,
# PReLU alpha, resize sizes, x/y-only reductions) are not checked.
OPS: dict[str, Callable[[tflite_graph.Op], str | None] | None] = {
    **dict.fromkeys(
        (
            "ADD",
            "AVERAGE_POOL_2D",
            "CONCATENATION",
            "CONV_2D",
            "DEPTHWISE_CONV_2D",
            "EXPAND_DIMS",
            "FULLY_CONNECTED",
            "L2_NORMALIZATION",
            "LOGISTIC",
            "MAXIMUM",
            "MAX_POOL_2D",
            "MEAN",
            "MINIMUM",
            "MUL",
            "PACK",
            "PAD",
            "PRELU",
            "QUANTIZE",
            "REDUCE_MAX",
            "REDUCE_MIN",
            "RELU",
            "RELU6",
            "RELU_N1_TO_1",
            "RESHAPE",
            "RESIZE_BILINEAR",
            "RESIZE_NEAREST_NEIGHBOR",
            "SLICE",
            "SPACE_TO_DEPTH",
            "SPLIT",
            "SQUEEZE",
            "SUB",
            "SUM",
            "TANH",
            "TRANSPOSE_CONV",
            "UNIDIRECTIONAL_SEQUENCE_LSTM",
        )
    ),
    "SOFTMAX": _softmax,
    "STRIDED_SLICE": _unit_strides,
}


def validate(o: tflite_graph.Op) -> str | None:
    """Why the Edge TPU compiler would not map ``o`` by itself, or None."""
    if o.name not in OPS:
        return "not in the Edge TPU op table"
    for t in o.inputs + o.outputs:
        if t < 0:
            continue
        kind = o.type(t)
        if kind not in EIGHT_BIT and not (kind == "INT32" and o.constant(t)):
            return f"{kind} tensor: the Edge TPU takes 8-bit tensors only"
        shape = o.shape(t)
        if any(d < 0 for d in shape):
            return "dynamic shape: sizes must be constant at compile time"
        if sum(d > 1 for d in shape[:-3]):
            return f"rank {len(shape)} tensor {shape}: only the 3 innermost dimensions may exceed 1"
    check = OPS[o.name]
    return check(o) if check else None


def _check_subgraph(fb: tflite_graph.Flatbuffer, sg) -> dict:
    ops = [tflite_graph.Op(fb, sg, sg.Operators(i)) for i in range(sg.OperatorsLength())]
    refused, mapped, first = [], 0, None
    for i, o in enumerate(ops):
        why = validate(o)
        if first is None and why is None:
            mapped += 1
            continue
        if first is None:
            first = {"op": i, "type": o.name, "why": why}
        refused.append({"op": i, "type": o.name, "why": why or AFTER_FIRST})
    return {
        "ops": len(ops),
        "mapped": mapped,
        "first_unmapped": first,
        "refused": refused,
        "edgetpu_ready": not refused,
    }


def check_tflite(path: str | os.PathLike) -> EdgeTpuReport:
    """Which ops of ``path`` the Edge TPU compiler's published rules map.

    Returns:
      ``{"ops": total, "mapped": k, "first_unmapped": {"op", "type", "why"} or None,
      "refused": [{"op", "type", "why"}], "edgetpu_ready": bool, "source": ...}``; ``mapped``
      counts the ops before the first one the compiler cannot map (the rest run on the CPU). A
      model with several signatures adds ``"signatures"``, as ``nnapi_compat`` does.
    """
    per = tflite_graph.check_signatures(path, _check_subgraph)
    report = tflite_graph.combine(
        per, sums=("ops", "mapped"), lists=("refused",), alls=("edgetpu_ready",), keep=("first_unmapped",)
    )
    return cast(EdgeTpuReport, {**report, "source": SOURCE})


def summary(report: Mapping[str, Any]) -> str:
    """One line, e.g. ``Edge TPU (compiler rules): 0/319 ops mapped; stops at op 0 RESHAPE (INT32
    tensor: ...), the rest run on the CPU; unmappable by themselves: RESHAPE x9, GATHER x1, ...``."""
    head = f"Edge TPU (compiler rules): {report['mapped']}/{report['ops']} ops mapped"
    first = report["first_unmapped"]
    if first is None:
        return head + " (static check)"
    own: dict[str, int] = {}  # ops that the rules refuse by themselves, not only for their place
    for f in report["refused"]:
        if f["why"] != AFTER_FIRST:
            own[f["type"]] = own.get(f["type"], 0) + 1
    return (
        f"{head}; stops at op {first['op']} {first['type']} ({first['why']}), the rest run on the CPU; "
        f"unmappable by themselves: {', '.join(f'{t} x{n}' for t, n in own.items())}"
    )
