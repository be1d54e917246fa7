"""Static NNAPI-delegate check of a ``.tflite``: which ops Android's NNAPI delegate would take
at a given NNAPI feature level, and why it leaves the others to the CPU.

Needs no phone and no TensorFlow: it reads the flatbuffer (``edgebert.formats.tflite_graph``). The
rules are the TFLite NNAPI delegate's own, transcribed as data (``RULES``) from
``NNAPIDelegateKernel::Validate`` in ``tflite/delegates/nnapi/nnapi_delegate.cc`` of
google-ai-edge/LiteRT (commit f67457790c9c2ab67347d6fe53270e8d3df20868; the same function as
``tensorflow/lite/delegates/nnapi/nnapi_delegate.cc``), with the feature-level constants of
``nnapi_delegate_kernel.h`` and what ``StatefulNnApiDelegate::DoPrepare`` does with the verdicts:

- Validate gets the op's version (``OperatorCode.version``) and refuses versions above the one
  it knows, e.g. FULLY_CONNECTED above 5: the dynamic-range (hybrid) FULLY_CONNECTED that
  TF 2.21 writes for float activations with per-channel int8 weights is version 12, so it is
  refused at every level (hybrid ops of lower versions are taken from feature level 3, where the
  delegate dequantizes their weights).
- Feature levels: 1..5 are Android API levels 27..31 (Android 8.1, 9, 10, 11, 12); 6, 7, 8 are
  ``ANEURALNETWORKS_FEATURE_LEVEL_6..8`` (1000006..1000008, the updatable NNAPI after Android 12).
- int8 (asymmetric, signed) tensors are passed as int8 from feature level 4 (NNAPI 1.3, API 30);
  below it the delegate converts most ops' int8 tensors to uint8 (``NeedInt8Conversion``), but
  QUANTIZE may only write uint8, DEQUANTIZE reads int8 only with zero point 0 (level 3) or not at
  all (levels 1-2), and CAST and SPLIT take no int8.
- Partitions: DoPrepare delegates only the ``max_number_delegated_partitions`` (default 3)
  largest partitions of accepted ops (``LimitDelegatedPartitions``); partitions are formed as
  ``PartitionGraphIntoIndependentNodeSubsets`` (``tflite/graph_info.cc``) forms them, greedily.
- Static shapes: the delegate is created with ``allow_dynamic_dimensions=false``. TFLite then
  refuses to apply it to a graph with dynamic-sized tensors (``Subgraph::ModifyGraphWithDelegate``:
  "Attempting to use a delegate that only supports static-sized tensors", kTfLiteApplicationError),
  and a graph with a ``-1`` input dimension is only ever delegated at the shape it was last
  resized to, the NNAPI model being rebuilt and recompiled after every resize. Either way such a
  bundle is not for NNAPI: a ``-1`` in any tensor's shape signature counts the whole model as
  refused here.

What a static check cannot see: the device. With no ``accelerator_name``, DoPrepare from level 3
delegates nothing unless the phone has an NNAPI accelerator besides ``nnapi-reference``; a named
accelerator may refuse more ops (``ANeuralNetworksModel_getSupportedOperationsForDevices``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, cast

from edgebert.checks.reports import NnapiReport
from edgebert.formats import tflite_graph

NEWEST_FEATURE_LEVEL = 8
MAX_PARTITIONS = 3  # StatefulNnApiDelegate::Options::max_number_delegated_partitions
LEVEL_NAMES = {1: "API 27", 2: "API 28", 3: "API 29", 4: "API 30", 5: "API 31"}

F32, F16, I32, U8, I8, BOOL = "FLOAT32", "FLOAT16", "INT32", "UINT8", "INT8", "BOOL"
FLOAT = frozenset({F32})
Q8 = frozenset({U8, I8})  # IsQuantized
F_Q8 = FLOAT | Q8  # IsFloatOrQuantized
F_Q8_I32 = F_Q8 | {I32}  # IsFloatQuantizedOrInt32
F_U8 = frozenset({F32, U8})  # IsFloatOrUInt8


def _t(*names: str) -> frozenset[str]:
    return frozenset(names)


# Builtin op -> its rule in NNAPIDelegateKernel::Validate:
#   v:      highest op version accepted (ExpectMaxOpVersion / ExpectOpVersion)
#   fl:     lowest feature level (ExpectMinAndroidSdkVersion), 1 when Validate sets none
#   in:     ((from level, allowed types of input `arg`), ...): the last entry whose level is
#           reached applies; no entry: any type
#   arg:    the input whose type is checked (default 0)
#   out:    the same for output 0
#   rank:   highest rank of inputs 0 and 1
#   const:  inputs that must be constant (shape, perm, axis, size tensors)
#   checks: further named conditions (CHECKS below)
# Not listed (e.g. GELU, SHAPE, BROADCAST_TO, CUMSUM, GATHER_ND): "Unsupported operation type".
RULES: dict[str, dict] = {
    "ADD": {"v": 2, "in": ((1, F_Q8), (4, F_Q8_I32)), "rank": 4},
    "MUL": {"v": 2, "in": ((1, F_Q8), (4, F_Q8_I32)), "rank": 4},  # v3 with an accelerator named
    "SUB": {"v": 3, "fl": 2, "in": ((2, FLOAT), (3, F_Q8), (4, F_Q8_I32)), "rank": 4},
    "DIV": {"v": 1, "fl": 2, "in": ((2, FLOAT),), "rank": 4},
    "ARG_MAX": {"v": 2, "fl": 3, "in": ((3, _t(F16, F32, I32, U8, I8)),)},
    "ARG_MIN": {"v": 2, "fl": 3, "in": ((3, _t(F16, F32, I32, U8, I8)),)},
    "AVERAGE_POOL_2D": {"v": 2, "in": ((1, F_Q8),)},
    "MAX_POOL_2D": {"v": 2, "in": ((1, F_Q8),)},
    "L2_POOL_2D": {"v": 1, "in": ((1, FLOAT),)},
    "CONV_2D": {"v": 5, "in": ((1, F_U8), (3, None)), "checks": ("no_hybrid_before_3", "bias_present")},
    "DEPTHWISE_CONV_2D": {"v": 3, "in": ((1, F_U8), (3, None))},
    "FULLY_CONNECTED": {
        "v": 5,
        "in": ((1, F_U8), (3, None)),
        "out": ((1, frozenset({F32, F16, I32, U8, I8, BOOL})),),  # anything but INT16
        "checks": ("no_hybrid_before_3", "keep_num_dims_from_4"),
    },
    "HARD_SWISH": {"v": 99, "in": ((1, F_Q8),)},  # Validate checks no version
    "SOFTMAX": {
        "v": 2,
        "in": ((1, F_Q8),),
        "out": ((1, _t(F32, U8, I8)),),
        "rank": 4,
        "checks": ("rank_2_or_4_before_3",),
    },
    "RESHAPE": {"v": 1, "in": ((1, F_Q8), (6, F_Q8_I32)), "rank": 4, "const": (1,), "checks": ("output_rank_4",)},
    "RESIZE_BILINEAR": {"v": 3, "in": ((1, FLOAT), (3, F_Q8)), "const": (1,)},
    "RESIZE_NEAREST_NEIGHBOR": {"v": 3, "fl": 3, "in": ((3, F_Q8),), "const": (1,)},
    "SQUEEZE": {"v": 1, "fl": 2},
    "L2_NORMALIZATION": {"v": 2, "in": ((1, FLOAT), (3, None))},
    "LOCAL_RESPONSE_NORMALIZATION": {"v": 1},
    "CONCATENATION": {"v": 2, "in": ((1, _t(F16, F32, U8, I8)),), "rank": 4},
    "DEQUANTIZE": {"v": 2, "in": ((1, _t(U8)), (3, Q8)), "checks": ("int8_zero_point_0_at_3",)},
    "FLOOR": {"v": 1},
    "RELU": {"v": 2, "in": ((1, F_Q8),)},
    "RELU_N1_TO_1": {"v": 2, "in": ((1, F_Q8),)},
    "RELU6": {"v": 2, "in": ((1, F_Q8),)},
    "LOGISTIC": {"v": 2, "in": ((1, F_Q8),)},
    "TANH": {"v": 2, "in": ((1, FLOAT), (3, F_Q8))},
    "PAD": {"v": 2, "fl": 2, "in": ((2, FLOAT), (3, F_Q8))},
    "PADV2": {"v": 2, "fl": 3, "in": ((3, F_Q8),)},
    "SPACE_TO_BATCH_ND": {"v": 2, "fl": 2},
    "BATCH_TO_SPACE_ND": {"v": 2, "fl": 2},
    "STRIDED_SLICE": {"v": 2, "fl": 2, "in": ((2, F_Q8),)},
    "TRANSPOSE": {"v": 2, "fl": 2, "const": (1,)},
    "ABS": {"v": 1, "fl": 3, "in": ((3, FLOAT),)},
    "EXP": {"v": 1, "fl": 3, "in": ((3, FLOAT),)},
    "LOG": {"v": 1, "fl": 3, "in": ((3, FLOAT),)},
    "POW": {"v": 1, "fl": 3, "in": ((3, FLOAT),)},
    "RSQRT": {"v": 2, "fl": 3, "in": ((3, FLOAT), (7, F_Q8))},
    "SLICE": {"v": 2, "fl": 3, "in": ((3, _t(F32, I32, U8, I8)),)},
    "COS": {"v": 1, "fl": 3, "in": ((3, FLOAT),)},
    "SIN": {"v": 1, "fl": 3, "in": ((3, FLOAT),)},
    "SQRT": {"v": 1, "fl": 3, "in": ((3, FLOAT),)},
    "TRANSPOSE_CONV": {"v": 4, "fl": 3, "const": (0, 1)},
    "SPACE_TO_DEPTH": {"v": 2, "in": ((1, _t(F32, U8, I8)),)},
    "DEPTH_TO_SPACE": {"v": 99, "in": ((1, _t(F32, U8, I8)),)},
    "MEAN": {"v": 2, "fl": 2, "in": ((2, FLOAT), (3, F_Q8)), "rank": 4, "checks": ("no_scalar_output",)},
    "EMBEDDING_LOOKUP": {"v": 1, "arg": 1, "in": ((1, FLOAT),)},
    "HASHTABLE_LOOKUP": {"v": 1, "out": ((1, FLOAT),)},
    "MAXIMUM": {"v": 3, "fl": 3, "in": ((3, _t(F32, U8, I8, I32)),)},
    "MINIMUM": {"v": 3, "fl": 3, "in": ((3, _t(F32, U8, I8, I32)),)},
    "CAST": {
        "v": 1,
        "fl": 3,
        "in": ((3, _t(F32, I32, U8)), (4, _t(F32, I32, U8, I8))),
        "out": ((3, _t(F32, I32, U8)), (4, _t(F32, I32, U8, I8))),
    },
    "LEAKY_RELU": {"v": 1, "fl": 3, "in": ((3, _t(F32, U8, I8)),)},
    "PRELU": {"v": 1, "fl": 3, "in": ((3, _t(F32, U8, I8)),)},
    "TILE": {"v": 1, "fl": 3, "in": ((3, _t(F32, I8, U8, I32)),)},
    "LOGICAL_OR": {"v": 1, "fl": 3, "in": ((3, _t(BOOL)),)},
    "LOGICAL_AND": {"v": 1, "fl": 3, "in": ((3, _t(BOOL)),)},
    "LOGICAL_NOT": {"v": 1, "fl": 3, "in": ((3, _t(BOOL)),)},
    **{
        op: {"v": 2, "fl": 3, "in": ((3, _t(F32, U8, I8, BOOL, I32)),)}
        for op in ("LESS", "LESS_EQUAL", "GREATER", "GREATER_EQUAL", "EQUAL", "NOT_EQUAL")
    },
    "NEG": {"v": 2, "fl": 3, "in": ((3, _t(F32, I32)),)},
    "TOPK_V2": {"v": 2, "fl": 3, "in": ((3, _t(F32, I32, U8, I8)),), "const": (1,)},
    "SELECT": {"v": 2, "fl": 3, "arg": 1, "in": ((3, _t(F32, I32, U8, I8)),)},
    "GATHER": {"v": 2, "fl": 3, "in": ((3, _t(F32, F16, I32, U8, I8)),), "checks": ("int32_positions",)},
    "EXPAND_DIMS": {"v": 1, "fl": 3, "in": ((3, _t(F32, F16, I32, U8, I8)),), "const": (1,)},
    "SPLIT": {"v": 3, "fl": 3, "arg": 1, "in": ((3, _t(F32, U8, I32)), (4, _t(F32, U8, I8, I32))), "const": (0,)},
    "SPLIT_V": {"v": 2, "fl": 4, "in": ((4, _t(F32, U8, I8, I32)),), "const": (1, 2)},
    "LOG_SOFTMAX": {"v": 1, "fl": 3, "in": ((3, FLOAT),)},
    "QUANTIZE": {"v": 2, "fl": 3, "in": ((3, F_Q8),), "out": ((3, _t(U8)), (4, Q8))},
    "REDUCE_ANY": {"v": 2, "fl": 3, "checks": ("no_scalar_output",)},
    "REDUCE_MIN": {"v": 2, "fl": 3, "in": ((3, _t(F32, U8, I8)),)},
    "REDUCE_MAX": {"v": 2, "fl": 3, "in": ((3, _t(F32, U8, I8)),)},
    "REDUCE_PROD": {"v": 1, "fl": 3, "in": ((3, FLOAT),), "checks": ("no_scalar_output",)},
    "SUM": {"v": 1, "fl": 3, "in": ((3, FLOAT),), "checks": ("no_scalar_output",)},
    "ELU": {"v": 1, "fl": 4, "in": ((4, FLOAT),)},
    "FILL": {"v": 1, "fl": 4, "const": (0,)},
    "PACK": {
        "v": 2,
        "fl": 4,
        "in": ((4, _t(F32, I8)), (6, _t(I32, F32, I8, U8))),
        "checks": ("pack_axis_not_last_before_6",),
    },
    "UNPACK": {"v": 2, "fl": 4, "in": ((4, _t(F32, U8, I8)),)},
    "SQUARED_DIFFERENCE": {"v": 2, "fl": 2, "in": ((2, FLOAT), (3, F_U8), (4, F_Q8_I32)), "rank": 4},
    "BATCH_MATMUL": {
        "v": 2,
        "fl": 6,
        "in": ((6, _t(F32, I32, I8)),),
        "checks": ("same_input_types", "rank_2_to_4", "no_broadcast"),
    },
    "MIRROR_PAD": {"v": 2, "fl": 7, "in": ((7, F_Q8_I32),)},
    "REVERSE_V2": {"v": 3, "fl": 7, "in": ((7, F_Q8_I32),)},
    # Recurrent ops: only version and level here; Validate checks their weights further.
    "LSTM": {"v": 3, "fl": 2},
    "UNIDIRECTIONAL_SEQUENCE_LSTM": {"v": 2, "fl": 3},
    "BIDIRECTIONAL_SEQUENCE_LSTM": {"v": 1, "fl": 3},
    "UNIDIRECTIONAL_SEQUENCE_RNN": {"v": 1, "fl": 3},
    "RNN": {"v": 1},
    "SVDF": {"v": 1, "fl": 2},
    "LSH_PROJECTION": {"v": 1},
}


_Op = tflite_graph.Op


def _hybrid(o: _Op, level: int) -> str | None:
    if level < 3 and o.type(o.inputs[0]) == F32 and o.type(o.inputs[1]) in Q8:
        return "hybrid op (float input, int8/uint8 weights) needs feature level 3"
    return None


def _keep_num_dims(o: _Op, level: int) -> str | None:
    opts = o.options("FullyConnectedOptions")
    if level < 4 and opts is not None and opts.KeepNumDims():
        return "keep_num_dims (a rank-3 [batch, seq, hidden] output) needs feature level 4"
    return None


def _dequantize(o: _Op, level: int) -> str | None:
    if level == 3 and o.type(o.inputs[0]) == I8 and o.zero_point(o.inputs[0]) != 0:
        return "asymmetric int8 (zero point != 0) needs feature level 4; level 3 takes symmetric int8 only"
    return None


def _positions(o: _Op, level: int) -> str | None:
    if o.type(o.inputs[1]) != I32 or o.rank(o.inputs[1]) == 0:
        return "positions must be a non-scalar INT32 tensor"
    return None


def _scalar_output(o: _Op, level: int) -> str | None:
    return "a scalar output is not supported" if o.rank(o.outputs[0]) == 0 else None


def _softmax_rank(o: _Op, level: int) -> str | None:
    r = o.rank(o.inputs[0])
    return f"input rank {r} needs feature level 3 (2-D or 4-D before)" if level < 3 and r not in (2, 4) else None


def _output_rank(o: _Op, level: int) -> str | None:
    r = o.rank(o.outputs[0])
    return f"output rank {r} > 4" if r > 4 else None


def _bias(o: _Op, level: int) -> str | None:
    return "CONV_2D without a bias is not supported" if len(o.inputs) != 3 or o.inputs[2] < 0 else None


def _same_types(o: _Op, level: int) -> str | None:
    a, b = o.type(o.inputs[0]), o.type(o.inputs[1])
    return f"hybrid batch matmul ({a} x {b}) is not supported" if a != b else None


def _rank_2_to_4(o: _Op, level: int) -> str | None:
    r = o.rank(o.inputs[0])
    return f"input rank {r} (2 to 4 supported)" if not 2 <= r <= 4 else None


def _no_broadcast(o: _Op, level: int) -> str | None:
    a, b = o.shape(o.inputs[0]), o.shape(o.inputs[1])
    return "broadcast batch matmul is not supported" if len(a) != len(b) or a[:-2] != b[:-2] else None


def _pack_axis(o: _Op, level: int) -> str | None:
    opts = o.options("PackOptions")
    rank = o.rank(o.inputs[0])
    if level < 6 and opts is not None and opts.Axis() in (-1, rank):
        return "packing along the last dimension needs feature level 6"
    return None


CHECKS = {
    "no_hybrid_before_3": _hybrid,
    "keep_num_dims_from_4": _keep_num_dims,
    "int8_zero_point_0_at_3": _dequantize,
    "int32_positions": _positions,
    "no_scalar_output": _scalar_output,
    "rank_2_or_4_before_3": _softmax_rank,
    "output_rank_4": _output_rank,
    "bias_present": _bias,
    "same_input_types": _same_types,
    "rank_2_to_4": _rank_2_to_4,
    "no_broadcast": _no_broadcast,
    "pack_axis_not_last_before_6": _pack_axis,
}


def _allowed(entries, level: int):
    """The types a ``(level, types)`` list allows at ``level``: None for any, an empty set when
    the first entry's level is not reached."""
    if not entries:
        return None
    found: frozenset[str] | None = frozenset()
    for from_level, types in entries:
        if level >= from_level:
            found = types
    return found


def _needed_level(entries, type_: str | None) -> int | None:
    """The lowest level at which ``type_`` is allowed, or None if at none."""
    for from_level, types in entries:
        if types is None or type_ in types:
            return from_level
    return None


def validate(o: _Op, level: int) -> str | None:
    """Why ``NNAPIDelegateKernel::Validate`` refuses ``o`` at feature ``level`` (None: accepted)."""
    rule = RULES.get(o.name)
    if rule is None:
        return "no NNAPI mapping for this op in Validate"
    if o.name == "DEQUANTIZE" and o.type(o.inputs[0]) == F16:
        if o.constant(o.inputs[0]):
            return None  # fp16 weights: the delegate reads them as float32 (FP16GraphPartitionHelper)
        return None if level >= 4 else "float16 -> float32 DEQUANTIZE of an activation needs feature level 4"
    if o.version > rule["v"]:
        return f"op version {o.version} > {rule['v']}, the newest the delegate validates"
    if level < rule.get("fl", 1):
        return f"needs feature level {rule['fl']}"
    for key, index in (("in", o.inputs[rule.get("arg", 0)]), ("out", o.outputs[0])):
        allowed = _allowed(rule.get(key), level)
        t = o.type(index)
        if allowed is not None and t not in allowed:
            need = _needed_level(rule[key], t)
            side = "input" if key == "in" else "output"
            at = f"needs feature level {need}" if need else "not supported at any level"
            return f"{t} {side}: {at}"
    if "rank" in rule:
        ranks = [o.rank(t) for t in o.inputs[:2] if t >= 0]
        if max(ranks, default=0) > rule["rank"]:
            return f"input rank {max(ranks)} > {rule['rank']}"
    for j in rule.get("const", ()):
        if j < len(o.inputs) and not o.constant(o.inputs[j]):
            return f"input {j} (a shape, axis or permutation) is computed at run time; NNAPI needs it constant"
    for name in rule.get("checks", ()):
        why = CHECKS[name](o, level)
        if why:
            return why
    return None


def check_tflite(path: str | os.PathLike, feature_level: int = NEWEST_FEATURE_LEVEL) -> NnapiReport:
    """Which ops of ``path`` the NNAPI delegate would take at ``feature_level`` (1-8).

    Returns:
      ``{"feature_level": n, "ops": total, "delegated": k, "refused": [...], "nnapi_ready": bool,
      "dynamic_inputs": bool, "partitions": p}``; each refusal is ``{"op": index, "type": name,
      "why": reason}`` (``"op": None``, ``"type": "MODEL"`` for a dynamic shape). A model with
      several signatures adds ``"signatures": {key: the same report}`` and its refusals name their
      ``signature``; it is ready only when every signature is.
    """
    if not 1 <= int(feature_level) <= NEWEST_FEATURE_LEVEL:
        from edgebert.errors import EdgebertError

        raise EdgebertError(f"NNAPI feature level {feature_level} does not exist", f"pass 1 to {NEWEST_FEATURE_LEVEL}")
    level = int(feature_level)
    per = tflite_graph.check_signatures(path, lambda fb, sg: _check_subgraph(fb, sg, level))
    report = tflite_graph.combine(
        per,
        keep=("feature_level",),
        sums=("ops", "delegated", "partitions"),
        lists=("refused",),
        alls=("nnapi_ready",),
        anys=("dynamic_inputs",),
    )
    return cast(NnapiReport, report)


def _partitions(ops: list[_Op], accepted: list[bool]) -> list[list[int]]:
    """The accepted ops' partitions, as TFLite's greedy PartitionGraphIntoIndependentNodeSubsets
    cuts them (each epoch takes every ready op of its kind, in execution order)."""
    produced = {t for o in ops for t in o.outputs}
    ready = {t for o in ops for t in o.inputs if t >= 0 and t not in produced}
    done = [False] * len(ops)
    subsets: list[tuple[bool, list[int]]] = []
    while not all(done):
        kind: bool | None = None
        members: list[int] = []
        progress = True
        while progress:
            progress = False
            for i, o in enumerate(ops):
                if done[i] or any(t >= 0 and t not in ready for t in o.inputs):
                    continue
                if kind is None:
                    kind = accepted[i]
                if accepted[i] == kind:
                    done[i], progress = True, True
                    members.append(i)
                    ready.update(o.outputs)
        if not members:  # a cycle or a missing producer: leave the rest to the CPU
            break
        subsets.append((bool(kind), members))
    return [m for kind, m in subsets if kind]


def _check_subgraph(fb: tflite_graph.Flatbuffer, sg, level: int) -> dict:
    """The report of one subgraph (one signature) at feature ``level``."""
    ops = [_Op(fb, sg, sg.Operators(i)) for i in range(sg.OperatorsLength())]
    why = [validate(o, level) for o in ops]
    refused: list[dict[str, Any]] = [{"op": i, "type": o.name, "why": w} for i, (o, w) in enumerate(zip(ops, why)) if w]
    parts = _partitions(ops, [w is None for w in why])
    taken = sorted(parts, key=len, reverse=True)[:MAX_PARTITIONS]
    delegated = {i for p in taken for i in p}
    left = sorted(i for p in parts for i in p if i not in delegated)
    refused += [
        {
            "op": i,
            "type": ops[i].name,
            "why": f"accepted, but outside the {MAX_PARTITIONS} largest of {len(parts)} partitions "
            "(max_number_delegated_partitions)",
        }
        for i in left
    ]
    refused.sort(key=lambda f: f["op"])
    dynamic = [j for j in range(sg.TensorsLength()) if any(d < 0 for d in tflite_graph.tensor_shape(sg, j))]
    if dynamic:
        refused.insert(
            0,
            {
                "op": None,
                "type": "MODEL",
                "why": "dynamic shape (a -1 in a shape signature): the NNAPI delegate takes static shapes "
                "only (allow_dynamic_dimensions=false); export with a fixed --batch and --seq-len",
            },
        )
    inputs_dynamic = any(
        any(d < 0 for d in tflite_graph.tensor_shape(sg, sg.Inputs(j))) for j in range(sg.InputsLength())
    )
    return {
        "feature_level": level,
        "ops": len(ops),
        "delegated": 0 if dynamic else len(delegated),
        "partitions": len(taken),
        "refused": refused,
        "nnapi_ready": not refused,
        "dynamic_inputs": inputs_dynamic,
    }


def summary(report: Mapping[str, Any]) -> str:
    """One line for the CLI, e.g. ``NNAPI (feature level 8): 80/95 ops delegated in 3 partitions;
    refused: 13 FULLY_CONNECTED (op version 12 > 5 ...), 2 GELU (...)``."""
    level = report["feature_level"]
    head = f"NNAPI (feature level {level}{', ' + LEVEL_NAMES[level] if level in LEVEL_NAMES else ''})"
    if report["dynamic_inputs"] or any(f["type"] == "MODEL" for f in report["refused"]):
        return (
            f"{head}: not for this bundle (a dynamic shape; the delegate takes static shapes only); "
            "for NNAPI export with --batch 1 --seq-len N"
        )
    done = f"{head}: {report['delegated']}/{report['ops']} ops delegated in {report['partitions']} partition(s)"
    if report["nnapi_ready"]:
        return done + " (static check)"
    by_why: dict[str, dict[str, int]] = {}
    for f in report["refused"]:
        types = by_why.setdefault(f["why"], {})
        types[f["type"]] = types.get(f["type"], 0) + 1
    parts = []
    for why, types in by_why.items():
        n = sum(types.values())
        what = next(iter(types)) if len(types) == 1 else "ops"
        listed = "" if len(types) == 1 else ": " + ", ".join(f"{t} x{k}" for t, k in types.items())
        parts.append(f"{n} {what} ({why}{listed})")
    return f"{done}; refused: {'; '.join(parts)}"
