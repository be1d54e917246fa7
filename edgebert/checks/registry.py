"""The static checks every exported ``.tflite`` gets (no device needed), by manifest key: which
ops LiteRT's GPU delegate, Android's NNAPI delegate and the Edge TPU compiler would take, and,
for int8 recipes, whether every op computes in integers. Export and ``edgebert android`` both
store and print them from here."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from edgebert.checks import edgetpu as edgetpu_compat
from edgebert.checks import gpu as gpu_compat
from edgebert.checks import integer_ops
from edgebert.checks import nnapi as nnapi_compat

Report = Mapping[str, Any]  # one of edgebert.checks.reports' TypedDicts, as JSON

TFLITE: dict[str, tuple[Callable[[str | os.PathLike], Report], Callable[[Report], str]]] = {
    "gpu_compatibility": (gpu_compat.check_tflite, gpu_compat.summary),
    "nnapi_compatibility": (nnapi_compat.check_tflite, nnapi_compat.summary),
    "edgetpu_compatibility": (edgetpu_compat.check_tflite, edgetpu_compat.summary),
}
INTEGER = {"tflite": integer_ops.check_tflite, "onnx": integer_ops.check_onnx}


def run(path: str | os.PathLike, fmt: str, int8: bool, progress: Callable[[str], None]) -> dict[str, Report]:
    """The checks of a ``fmt`` file at ``path`` (the delegate checks for TFLite, the integer check
    for int8 recipes), each summary line passed to ``progress``; ``{manifest key: report}``."""
    reports: dict[str, Report] = {}
    if fmt == "tflite":
        for key, (check, summary) in TFLITE.items():
            reports[key] = check(path)
            progress(summary(reports[key]))
    if int8:
        reports["integer_ops"] = INTEGER[fmt](path)
        progress(integer_ops.summary(reports["integer_ops"]))
    return reports
