"""Runs the heavy export steps (import, conversions) in worker processes.

TensorFlow and the converters keep memory they never give back, so a large model's steps
each get a fresh process (``python -m edgebert.exporters.convert.worker TASK RESULT``): BERT-large
exports on a 24 GiB machine. For a small model the memory is not the problem but the
start-up is: every process imports TensorFlow, tf2onnx and ONNX Runtime again (5-10 s), so
``session(source)`` runs all steps of such a model's export in one process that takes tasks one
after another (``worker --serve``), and each step's peak is still measured alone (the
worker resets its peak before each task). ``warm(max_source_bytes)`` keeps that process
for every export of a small source inside a block (a test run, a sweep over the Small BERTs):
the start-up is paid once.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from edgebert.errors import EdgebertError
from edgebert.exporters.convert import costs, tasks
from edgebert.exporters.convert.tasks import ConvertTask, ReferenceTask

# Below this many bytes of source files, one process runs every step of an export. Measured
# (`edgebert export --int8`): the default model (90 MB) 74 -> 40 s, peak 1.12 -> 1.21 GB;
# BERT-base (438 MB) 142 -> 106 s, peak 2.19 -> 2.53 GB (its bar is 3). By 2026-12-02 the
# shared process held 2.2 GB after BERT-base's TFLite step and peaked at 3.30 GB in the ONNX
# step (the recipe of 2026-12-01 too), so BERT-base gets fresh processes again: 2.51 GB, and
# no slower (135 vs 140 s with GPTQ). BERT-large (1.3 GB) and the multilingual shape (711 MB)
# always did.
SHARED_MAX_SOURCE_BYTES = 200e6


class _Server:
    """One worker process that runs tasks sent on its stdin, one after another."""

    def __init__(self) -> None:
        done_r, done_w = os.pipe()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edgebert.exporters.convert.worker", "--serve", str(done_w)],
            stdin=subprocess.PIPE,
            text=True,
            env=_env(),
            pass_fds=(done_w,),
        )
        os.close(done_w)
        self._done = os.fdopen(done_r)

    def run(self, task_file: Path, result_file: Path) -> int | None:
        """Runs one task; ``None`` when it ran, else the exit code of the process that died."""
        try:
            self.proc.stdin.write(f"{task_file}\t{result_file}\n")
            self.proc.stdin.flush()
            if self._done.readline():
                return None
        except BrokenPipeError:
            pass
        return self.proc.wait()

    def close(self) -> None:
        with contextlib.suppress(BrokenPipeError):
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._done.close()


class _Session:
    def __init__(self, shared: bool) -> None:
        self.shared, self.server = shared, None

    def server_for_task(self) -> _Server | None:
        if self.shared and (self.server is None or self.server.proc.poll() is not None):
            self.server = _Server()  # the first task, or the last one's process died
        return self.server

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None


@dataclasses.dataclass
class _Warm:
    max_source_bytes: float
    session: _Session


_SESSION: contextvars.ContextVar[_Session | None] = contextvars.ContextVar("edgebert_worker_session", default=None)
_WARM: contextvars.ContextVar[_Warm | None] = contextvars.ContextVar("edgebert_warm_worker", default=None)


@contextlib.contextmanager
def session(source_path: Path | None = None) -> Iterator[None]:
    """Runs the ``run`` calls inside it for one export of ``source_path``: in one shared worker
    process when the source's files are under ``SHARED_MAX_SOURCE_BYTES`` (in the ``warm``
    process when one is kept for sources that small), else each in a process of its own.
    ``None``: each call in its own process."""
    size = source_bytes(source_path, SHARED_MAX_SOURCE_BYTES) if source_path is not None else math.inf
    warm_ = _WARM.get()
    s = (
        warm_.session
        if warm_ is not None and size <= warm_.max_source_bytes
        else _Session(size <= SHARED_MAX_SOURCE_BYTES)
    )
    token = _SESSION.set(s)
    try:
        yield
    finally:
        _SESSION.reset(token)
        if warm_ is None or s is not warm_.session:
            s.close()


@contextlib.contextmanager
def warm(max_source_bytes: float) -> Iterator[None]:
    """Keeps one worker process for every export inside the block whose source files total at
    most ``max_source_bytes``; larger sources still get their own. A step's measured peak then
    also holds what earlier exports left in that process, so keep it for small sources."""
    w = _Warm(max_source_bytes, _Session(True))
    token = _WARM.set(w)
    try:
        yield
    finally:
        _WARM.reset(token)
        w.session.close()


def source_bytes(source_path: Path, stop_after: float = math.inf) -> float:
    """The size of a source's files (counting stops once past ``stop_after``)."""
    path = Path(source_path)
    files = [path] if path.is_file() else (p for p in path.rglob("*") if p.is_file())
    total = 0
    for f in files:
        total += f.stat().st_size
        if total > stop_after:
            break
    return total


def run(task: ReferenceTask | ConvertTask, work: Path) -> dict:
    """Runs one worker task; returns its result plus ``peak_rss_gb`` (the worker's own peak
    during the task) and ``step`` (a ``costs.StepCost`` as JSON, counting this process too)."""
    name = f"{task.kind}-{getattr(task, 'format', 'ref')}"
    task_file, result_file = work / f"{name}.task.json", work / f"{name}.result.json"
    task_file.write_text(json.dumps(tasks.to_json(task)))
    result_file.unlink(missing_ok=True)
    t0, parent_gb = time.perf_counter(), costs.rss_gb()
    session_ = _SESSION.get()
    server = session_.server_for_task() if session_ else None
    usage_gb = None
    if server is not None:
        exit_code = server.run(task_file, result_file)
    else:
        proc = subprocess.Popen(
            [sys.executable, "-m", "edgebert.exporters.convert.worker", str(task_file), str(result_file)], env=_env()
        )
        _, status, usage = os.wait4(proc.pid, 0)
        exit_code, usage_gb = os.waitstatus_to_exitcode(status), usage.ru_maxrss * 1024 / 1e9
    seconds = time.perf_counter() - t0
    if not result_file.exists():
        peak = f", peak {usage_gb:.1f} GB" if usage_gb is not None else ""
        raise EdgebertError(
            f"the {name} step died (exit {exit_code}{peak})",
            "if it ran out of memory, close other programs or use a machine with more RAM",
        )
    result = json.loads(result_file.read_text())
    if not result.pop("ok"):
        if "traceback" in result:
            (work.parent / "edgebert-export-error.log").write_text(result["traceback"])
        raise EdgebertError(result["error"])
    own = result.pop("own_peak_rss_gb", None)  # the worker's VmHWM; ru_maxrss is the fallback
    worker_gb = own if own is not None else (usage_gb or 0.0)
    result["peak_rss_gb"] = round(worker_gb, 2)
    result["step"] = costs.StepCost(
        getattr(task, "format", "import"),
        round(seconds, 1),
        round(worker_gb + max(parent_gb, costs.rss_gb()), 3),
        round(worker_gb, 3),
    ).to_json()
    return result


def _env() -> dict:
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # quiet, and the same numbers on every CPU
    return env
