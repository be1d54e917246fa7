"""The two kinds of work a worker process does, as typed values: what the exporting process
asks for (``workers.run(task, work)``) and what the worker reads back (``from_json``).

They travel as JSON files (worker processes share no memory with the exporting process), so
every field is a plain JSON value; a misspelt field fails when the task is built, not inside
the worker.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar


@dataclasses.dataclass
class ReferenceTask:
    """Import ``source`` into the reference SavedModel at ``reference_dir`` (or reuse the checked
    one there) and run it on ``texts``; outputs and token ids go to ``outputs_npz``."""

    kind: ClassVar[str] = "reference"
    source: str
    reference_dir: str
    texts: list[str]
    outputs_npz: str
    seq_length: int | None = 128  # None: TF Hub's 128 (or the model's positions, if fewer)
    encoder_outputs: bool = False  # every layer's output too, at the real tokens (verify's drift)


@dataclasses.dataclass
class ConvertTask:
    """Convert the reference at ``reference`` to ``format`` with ``recipe``, written to ``out``."""

    kind: ClassVar[str] = "convert"
    format: str
    recipe: str
    reference: str
    out: str
    seq_length: int | None = 128
    calibration: list[str] = dataclasses.field(default_factory=list)
    smoothing_cache: str | None = None  # SmoothQuant ranges shared by the formats of one export
    rounding_cache: str | None = None  # GPTQ-rounded kernels, likewise
    onnx_graph: str | None = None  # "standard" / "fused": overrides the recipe's ONNX graph
    batch_size: int | None = None
    buckets: list[int] | None = None  # TFLite: one static signature per length
    graph_form: str = "gpu"
    head: dict | None = None  # a task output (encoder_graph.serving_outputs), weights by file


TASKS = {t.kind: t for t in (ReferenceTask, ConvertTask)}


def to_json(task: ReferenceTask | ConvertTask) -> dict:
    return {"task": task.kind, **dataclasses.asdict(task)}


def from_json(data: dict) -> ReferenceTask | ConvertTask:
    fields = dict(data)
    return TASKS[fields.pop("task")](**fields)
