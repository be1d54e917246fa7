"""Which accelerator runs a model, and proof of what it actually took.

The runtime asks for an *intent* (``cpu``, ``xnnpack``, ``gpu``, ``nnapi``); this module maps
it to what each backend offers and reports what ran:

- TFLite: XNNPACK is the CPU path (LiteRT applies it by default); ``gpu`` is LiteRT's
  CompiledModel GPU accelerator, or a classic delegate library through ``load_delegate``;
  ``nnapi`` is a delegate library (Android's NNAPI delegate; Linux has none).
- ONNX Runtime: execution providers for the same intents.

A delegate that loads but takes no nodes is the failure users meet on phones, so delegated
nodes are counted from the interpreter's own graph, not assumed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
from collections.abc import Iterable, Iterator
from typing import Any

from edgebert.errors import EdgebertError

INTENTS = ("auto", "cpu", "xnnpack", "gpu", "nnapi")

# ONNX Runtime execution providers per intent, most preferred first.
ORT_PROVIDERS = {
    "cpu": ("CPUExecutionProvider",),
    "xnnpack": ("XnnpackExecutionProvider",),
    "gpu": (
        "CUDAExecutionProvider",
        "ROCMExecutionProvider",
        "CoreMLExecutionProvider",
        "DmlExecutionProvider",
        "WebGpuExecutionProvider",
        "OpenVINOExecutionProvider",
    ),
    "nnapi": ("NnapiExecutionProvider",),
}

# Library names tried for the classic delegate path when none is given.
DEFAULT_DELEGATE_LIBRARIES = {
    "gpu": ("libtensorflowlite_gpu_delegate.so",),
    "nnapi": ("libtensorflowlite_nnapi_delegate.so", "libnnapi_delegate.so"),
}


COUNT_FIELDS = ("nodes_total", "nodes_delegated", "partitions", "not_delegated")


@dataclasses.dataclass
class DelegateReport:
    """What ran a model.

    Attributes:
      requested: the intent asked for.
      used: what actually runs it (e.g. ``xnnpack``, ``litert-gpu``, ``CUDAExecutionProvider``).
      fell_back: True when the request could not be met and ``fallback=True`` chose the CPU.
      reason: why it fell back (the loader's error).
      nodes_total: ops in the model graph (TFLite), when known.
      nodes_delegated: ops the delegate took, when known.
      partitions: delegate kernels the graph was cut into (1 is best).
      not_delegated: op types left to the CPU kernels, with counts.
      fully_accelerated: LiteRT CompiledModel's own verdict, where it gives one.
      counted: where the op counts come from: ``run`` (this interpreter's graph) or ``export``
        (the manifest's, for LiteRT's CompiledModel, which does not expose its graph).
      int8_products: ONNX on the CPU: how the int8 products run, where the runner changed their
        form for this CPU (``edgebert.formats.onnx_exact_int8``); None otherwise.
    """

    requested: str
    used: str
    fell_back: bool = False
    reason: str | None = None
    nodes_total: int | None = None
    nodes_delegated: int | None = None
    partitions: int | None = None
    not_delegated: dict[str, int] = dataclasses.field(default_factory=dict)
    fully_accelerated: bool | None = None
    counted: str | None = None
    int8_products: str | None = None

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    def take_counts(self, counts: dict, source: str) -> None:
        """Fills the op counts from ``counts`` (``delegation_counts``' form), noting their source."""
        for k in COUNT_FIELDS:
            setattr(self, k, counts.get(k))
        self.counted = source

    def summary(self) -> str:
        s = f"{self.used}"
        if self.used == "xnnpack" and self.nodes_delegated == 0:
            s = "builtin CPU kernels (XNNPACK took no ops"  # seen under qemu: XNNPACK did not apply
            return s + (f"; fell back from {self.requested}: {self.reason})" if self.fell_back else ")")
        if self.nodes_total is not None and self.nodes_delegated is not None:
            at = ", as counted at export" if self.counted == "export" else ""
            s += f" ({self.nodes_delegated}/{self.nodes_total} ops delegated in {self.partitions} partition(s){at})"
        if self.fully_accelerated is not None:
            s += f", fully accelerated: {self.fully_accelerated}"  # GPU only (None on the CPU)
        if self.fell_back:
            s += f"; fell back from {self.requested}: {self.reason}"
        elif self.reason:
            s += f"; {self.reason}"
        if self.int8_products:
            s += f"; int8 products {self.int8_products}"
        return s


def delegation_counts(report: DelegateReport) -> dict:
    """The op counts of ``report`` (what a manifest's ``xnnpack_delegation`` stores)."""
    return {k: getattr(report, k) for k in COUNT_FIELDS}


def check_intent(delegate: str) -> str:
    if delegate not in INTENTS:
        raise EdgebertError(f"unknown delegate {delegate!r}", f"use one of {', '.join(INTENTS)}")
    return delegate


@contextlib.contextmanager
def captured_native_stderr(sink: list[str]) -> Iterator[None]:
    """Collects what native code writes to fd 2 (LiteRT logs its reasons there)."""
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            sink.append(tmp.read().decode("utf-8", "replace"))


def first_reason(log: str, default: str) -> str:
    """The most telling line of a native error log."""
    keys = (
        "No adapters found",
        "Only support",
        "not supported",
        "Couldn't load",
        "cannot open",
        "Failed",
        "failed",
        "ERROR",
    )
    lines = [ln.strip() for ln in log.splitlines() if ln.strip()]
    for key in keys:
        for ln in lines:
            if key in ln and "openvino" not in ln.lower():
                return ln[:300]
    return default


def tflite_delegation(interpreter: Any) -> tuple[int, int, int, dict[str, int]]:
    """Counts the ops a delegate took in a TFLite interpreter's primary subgraph.

    After delegation the graph holds the original N nodes followed by one ``DELEGATE`` node
    per partition. A delegate node consumes the tensors its partition needs from outside and
    produces those it hands back; an original node still runs on the CPU exactly when one of
    its outputs is needed outside a partition (a model output, a delegate's input, or the
    input of another CPU node) and no delegate produces it.

    Returns:
      (total original nodes, delegated nodes, partitions, op counts left on the CPU).
    """
    w = interpreter._interpreter  # the only place LiteRT exposes the executed graph
    n = w.NumNodes()
    names = [w.NodeName(i) for i in range(n)]
    delegate_nodes = [i for i, nm in enumerate(names) if nm == "DELEGATE"]
    originals = [i for i in range(n) if names[i] != "DELEGATE"]
    if not delegate_nodes:
        return len(originals), 0, 0, _count(names[i] for i in originals)
    produced_by_delegate = {int(t) for i in delegate_nodes for t in w.NodeOutputs(i)}
    needed_outside = {int(t) for i in delegate_nodes for t in w.NodeInputs(i)}
    needed_outside |= {int(t) for t in w.OutputIndices()}
    outputs = {i: {int(t) for t in w.NodeOutputs(i)} for i in originals}
    inputs = {i: {int(t) for t in w.NodeInputs(i) if t >= 0} for i in originals}
    cpu: set[int] = set()
    changed = True
    while changed:  # grow the CPU set backwards from the tensors needed outside partitions
        changed = False
        for i in originals:
            if i in cpu or outputs[i] & produced_by_delegate:
                continue
            if outputs[i] & needed_outside:
                cpu.add(i)
                needed_outside |= inputs[i]
                changed = True
    return len(originals), len(originals) - len(cpu), len(delegate_nodes), _count(names[i] for i in cpu)


def _count(names: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for nm in names:
        out[nm] = out.get(nm, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def ort_providers(intent: str, available: list[str]) -> list[str]:
    """The providers to ask ONNX Runtime for, CPU last as the catch-all."""
    if intent in ("auto", "cpu"):
        return ["CPUExecutionProvider"]
    found = [p for p in ORT_PROVIDERS[intent] if p in available]
    if not found:
        raise EdgebertError(
            f"onnxruntime here has no execution provider for delegate={intent!r} "
            f"(looked for {', '.join(ORT_PROVIDERS[intent])}; available: {', '.join(available)})",
            "install an onnxruntime build with it (e.g. onnxruntime-gpu), pass fallback=True to run "
            "on the CPU, or use delegate='cpu'",
        )
    return [found[0], "CPUExecutionProvider"]
