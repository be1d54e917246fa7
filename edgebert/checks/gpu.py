"""Static GPU-delegate check of a ``.tflite``: which ops the GPU will refuse or get wrong.

Needs no GPU and no TensorFlow: it reads the flatbuffer with the schema that ai-edge-litert
ships. TFLite's own model analyzer (``gpu_compatibility=True``) says "compatible" for graphs
that LiteRT's GPU accelerator then splits (2-D GATHER indices, STRIDED_SLICE with
``shrink_axis_mask``), so the rules here come from what LiteRT 2.3's GPU accelerator did on a
real GPU (shared NOTES.md, "GPU delegate on a real GPU", and ``benchmarks/gpu_check.py``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, cast

from edgebert.checks.reports import GpuReport
from edgebert.formats import tflite_graph

FALLS_BACK = "falls back to the CPU"
WRONG = "runs on the GPU but gives wrong results"

# Builtin ops the TFLite GPU delegates implement (LiteRT GPU accelerator / ML Drift and the
# classic OpenCL delegate). Anything else is left to the CPU.
GPU_OPS = frozenset(
    """
ABS ADD AVERAGE_POOL_2D BATCH_MATMUL CAST CONCATENATION CONV_2D COS CUMSUM DEPTH_TO_SPACE DEPTHWISE_CONV_2D
DEQUANTIZE DIV ELU EQUAL EXP FLOOR FLOOR_DIV FLOOR_MOD FULLY_CONNECTED GATHER GELU GREATER GREATER_EQUAL
HARD_SWISH LESS LESS_EQUAL LOG LOGISTIC LOG_SOFTMAX MAXIMUM MAX_POOL_2D MEAN MINIMUM MUL NEG NOT_EQUAL
ONE_HOT PACK PAD PADV2 POW PRELU QUANTIZE REDUCE_MAX REDUCE_MIN REDUCE_PROD RELU RELU6 RELU_N1_TO_1 RESHAPE
RESIZE_BILINEAR RESIZE_NEAREST_NEIGHBOR RSQRT SELECT SELECT_V2 SIN SLICE SOFTMAX SPACE_TO_DEPTH SPLIT
SPLIT_V SQRT SQUARE SQUARED_DIFFERENCE STRIDED_SLICE SUB SUM TANH TILE TRANSPOSE TRANSPOSE_CONV
""".split()
)
# Ops that only compute shapes at run time: a graph with a dynamic (-1) dimension needs them,
# and the GPU delegates compile static shapes, so they stay on the CPU.
SHAPE_OPS = frozenset({"SHAPE"})


def check_tflite(path: str | os.PathLike) -> GpuReport:
    """Lists the ops of ``path``'s signatures that the GPU delegate refuses or gets wrong.

    Returns:
      ``{"ops": total, "refused": [...], "wrong": [...], "gpu_ready": bool, "dynamic_inputs": bool}``;
      each finding is ``{"op": index, "type": name, "why": reason, "effect": ...}``. A model with
      several signatures (length buckets) adds ``"signatures": {key: the same report}``, its
      findings name their ``signature``, and it is GPU-ready only when every signature is.
    """
    per = tflite_graph.check_signatures(path, _check_subgraph)
    return cast(
        GpuReport,
        tflite_graph.combine(
            per, sums=("ops",), lists=("refused", "wrong"), alls=("gpu_ready",), anys=("dynamic_inputs",)
        ),
    )


def _check_subgraph(fb: tflite_graph.Flatbuffer, sg) -> dict:
    """The report of one subgraph (one signature)."""
    schema = fb.schema

    def shape(t: int) -> list[int]:
        return tflite_graph.tensor_shape(sg, t)

    findings = []
    for i in range(sg.OperatorsLength()):
        op = sg.Operators(i)
        name = fb.op_name(op)
        ins = [op.Inputs(j) for j in range(op.InputsLength())]
        why = effect = None
        if name in SHAPE_OPS:
            why, effect = "computes a shape at run time (dynamic dimension)", FALLS_BACK
        elif name not in GPU_OPS:
            why, effect = "no GPU kernel for this op", FALLS_BACK
        elif name == "GATHER":
            params, indices = shape(ins[0]), shape(ins[1])
            if len(indices) != 1:
                why, effect = f"indices of rank {len(indices)} (the GPU gathers 1-D indices only)", FALLS_BACK
            elif params and 0 < params[0] <= 2:
                why, effect = (
                    f"1-D gather from a {params[0]}-row table (seen on LiteRT 2.3's GPU: token cosine 0.25 vs CPU)",
                    WRONG,
                )
        elif name == "STRIDED_SLICE":
            opts = schema.StridedSliceOptions()
            table = op.BuiltinOptions()
            if table is not None:
                opts.Init(table.Bytes, table.Pos)
                if opts.ShrinkAxisMask():
                    why, effect = "shrink_axis_mask (e.g. x[:, 0, :])", FALLS_BACK
        if why:
            findings.append({"op": i, "type": name, "why": why, "effect": effect})
    inputs = [shape(sg.Inputs(j)) for j in range(sg.InputsLength())]
    dynamic = [j for j, s_ in enumerate(inputs) if any(d < 0 for d in s_)]
    if dynamic:
        # Seen on an NVIDIA H200 (benchmarks/gpu_check.py): a dynamic batch is refused at compile
        # time; a static batch with a dynamic length compiles "fully accelerated" and is wrong
        # (token cosine 0.31 on a tiny model, -0.14 on MiniLM, even at a constant length).
        findings.append(
            {
                "op": None,
                "type": "INPUT",
                "effect": WRONG,
                "why": "dynamic input shape (LiteRT 2.3's GPU accelerator refused or miscomputed "
                "every such graph tried); export with a fixed --batch and --seq-len",
            }
        )
    refused = [f for f in findings if f["effect"] == FALLS_BACK]
    wrong = [f for f in findings if f["effect"] == WRONG]
    return {
        "ops": sg.OperatorsLength(),
        "refused": refused,
        "wrong": wrong,
        "gpu_ready": not findings,
        "dynamic_inputs": bool(dynamic),
    }


def summary(report: Mapping[str, Any]) -> str:
    """One line for the CLI."""
    if report["dynamic_inputs"] and all(f["type"] in ("SHAPE", "STRIDED_SLICE") for f in report["refused"]):
        return (
            "GPU delegate: not for this bundle (a dynamic shape, which LiteRT's GPU refused or miscomputed); "
            "for the GPU export with --batch 1 --seq-len N"
        )
    if report["gpu_ready"]:
        return f"GPU delegate: all {report['ops']} ops supported (static check)"
    parts = []
    for key, label in (("refused", "fall back to the CPU"), ("wrong", "known WRONG on the GPU")):
        if report[key]:
            kinds: dict[str, int] = {}
            for f in report[key]:
                kinds[f["type"]] = kinds.get(f["type"], 0) + 1
            parts.append(f"{len(report[key])} {label} ({', '.join(f'{k} x{n}' for k, n in kinds.items())})")
    hint = "; for the GPU export with --batch 1 --seq-len N" if report["dynamic_inputs"] else ""
    return f"GPU delegate: {'; '.join(parts)} of {report['ops']} ops (static check){hint}"
