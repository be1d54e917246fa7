"""What every runner is (``runners.TFLiteRunner``, ``LiteRtAcceleratedRunner``, ``OnnxRunner``):
the one shape ``EdgeModel``, verify and the benchmarks use, whichever runtime is behind it."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from edgebert.runtime.delegates import DelegateReport

Arrays = dict[str, np.ndarray]


@runtime_checkable
class Runner(Protocol):
    """Runs one model file on one accelerator. Not thread-safe (``EdgeModel`` keeps a pool).

    Attributes:
      path: the model file.
      runtime: the runtime that runs it (e.g. ``ai-edge-litert``, ``onnxruntime 1.22.0``).
      report: what runs it, and what the accelerator took.
      batch_size: a fixed-batch graph's batch, else None.
      seq_length: a fixed-length graph's length, else None (dynamic or length buckets).
    """

    path: Path
    runtime: str
    report: DelegateReport
    batch_size: int | None
    seq_length: int | None

    def run(self, feeds: Arrays) -> Arrays:
        """Runs one batch of int32 token inputs; returns the model's outputs by name."""
        ...

    def close(self) -> None:
        """Frees the interpreter or session; the runner cannot run afterwards."""
        ...
