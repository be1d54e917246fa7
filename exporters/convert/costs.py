"""What each export step costs: wall time and peak resident memory, of all processes at once.

Each heavy step runs in a worker process while the exporting process waits; the step's peak
is the worker's own peak (its VmHWM, which the worker reports; ``wait4``'s ``ru_maxrss`` would
also count the exporting process's pages at the fork) plus what the waiting process holds.
The accuracy gate runs in the exporting process, whose peak is reset before it (Linux's
``clear_refs``) so that the step is measured alone.
"""

from __future__ import annotations

import dataclasses
import resource
from pathlib import Path

_STATUS = Path("/proc/self/status")


@dataclasses.dataclass(frozen=True)
class StepCost:
    """One step: ``peak_rss_gb`` counts every process alive during it."""

    step: str
    seconds: float
    peak_rss_gb: float
    worker_peak_rss_gb: float | None = None  # the step's own process, where it had one

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def _status_gb(field: str) -> float | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024 / 1e9  # kB
    except OSError:
        pass
    return None


def rss_gb() -> float:
    """This process's resident memory now."""
    now = _status_gb("VmRSS")
    return now if now is not None else peak_gb()


def peak_gb() -> float:
    """This process's peak resident memory (since the last ``reset_peak``)."""
    hwm = _status_gb("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


def reset_peak() -> None:
    """Starts a new peak (Linux; elsewhere the lifetime peak is kept, an over-estimate)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def summary(cost: dict) -> str:
    """``import 12 s 1.10 GB, tflite 40 s 2.40 GB, ...; whole export 95 s, peak 2.40 GB`` from
    ``totals``'s form (the manifest's ``export_cost``)."""
    parts = ", ".join(f"{s['step']} {s['seconds']:.0f} s {s['peak_rss_gb']:.2f} GB" for s in cost["steps"])
    return f"{parts}; whole export {cost['seconds']:.0f} s, peak {cost['peak_rss_gb']:.2f} GB"


def totals(steps: list[StepCost]) -> dict:
    """The manifest's ``export_cost``: every step, the total time and the peak."""
    return {
        "steps": [s.to_json() for s in steps],
        "seconds": round(sum(s.seconds for s in steps), 1),
        "peak_rss_gb": round(max(s.peak_rss_gb for s in steps), 3),
    }


def return_freed_memory() -> None:
    """Hands the heap's free pages back to the system (glibc ``malloc_trim``). Large numpy arrays
    and protobuf arenas are freed in pieces below glibc's mmap threshold, whose pages would stay
    with the process: the step that runs next in the same process would count them in its peak
    (measured: BERT-base's TFLite step after GPTQ; BERT-large's ONNX step, see NOTES.md)."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to hand back this way
        pass
