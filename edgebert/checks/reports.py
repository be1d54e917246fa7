"""The shapes of the static checks' reports. They stay plain JSON dicts (a manifest stores each
as it is, and ``summary()`` reads one back from a manifest), so these are TypedDicts: a type to
check and read, and the same bytes in ``edgebert.json``.

Every report of a model with several signatures (length buckets) also has ``"signatures"``
(``{signature key: the same report}``), and each of its findings names its ``"signature"``.
"""

from __future__ import annotations

from typing import Any, TypedDict


class _PerSignature(TypedDict, total=False):
    signatures: dict[str, Any]  # only on a model with several signatures


class Finding(TypedDict, total=False):
    """An op a delegate or compiler would not take: its index (None for the whole model), its
    type, why; ``effect`` (GPU: falls back or is wrong) and ``signature`` where they apply."""

    op: int | None
    type: str
    why: str | None
    effect: str
    signature: str


class GpuReport(_PerSignature):
    """``edgebert.checks.gpu.check_tflite``."""

    ops: int
    refused: list[Finding]
    wrong: list[Finding]
    gpu_ready: bool
    dynamic_inputs: bool


class NnapiReport(_PerSignature):
    """``edgebert.checks.nnapi.check_tflite``."""

    feature_level: int
    ops: int
    delegated: int
    partitions: int
    refused: list[Finding]
    nnapi_ready: bool
    dynamic_inputs: bool


class EdgeTpuReport(_PerSignature):
    """``edgebert.checks.edgetpu.check_tflite``: ``mapped`` counts the ops before the first the
    compiler cannot map."""

    ops: int
    mapped: int
    first_unmapped: Finding | None
    refused: list[Finding]
    edgetpu_ready: bool
    source: str


class FloatOp(TypedDict, total=False):
    op: int
    type: str
    tensor: str
    signature: str


class IntegerOpsReport(_PerSignature, total=False):
    """``edgebert.checks.integer_ops.check_tflite`` / ``check_onnx`` (``boundary``: TFLite only)."""

    integer_only: bool
    ops: int
    float_ops: list[FloatOp]
    boundary: dict[str, int]
