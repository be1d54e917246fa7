"""LiteRT's own op profiler, reached through its C API (``libLiteRt.so``) with ctypes.

LiteRT 2.3's Python wrappers expose no profiler and the wheel has no ``benchmark_model``, but the
wheel's ``libLiteRt.so`` exports the C API of the CompiledModel and its profiler
(``litert/c/litert_compiled_model.h``, ``litert_profiler.h``, ``litert_profiler_event.h`` in
google-ai-edge/LiteRT; the struct layouts below are copied from those headers, which mark them
ABI stable). Profiling is switched on as the C++ ``RuntimeOptions::SetEnableProfiling`` does it:
an opaque option ``runtime_options_string`` whose payload is the TOML line
``enable_profiling = true``; the thread count goes the same way to XNNPACK (``xnnpack``,
``num_threads = N``). With XNNPACK each of its internal operators is an event of its own
(``DELEGATE_PROFILED_OPERATOR_INVOKE_EVENT``, tagged with XNNPACK's operator name, e.g.
``Fully Connected (NC, QDU8, F32, QC8W) GEMM``); ops left to LiteRT's builtin kernels are
``OPERATOR_INVOKE_EVENT``s tagged with the TFLite op code (``RESHAPE``).

This runs the CompiledModel CPU path (what ``weight_cache=`` uses); the Interpreter that the
runtime uses by default runs the same XNNPACK kernels.
"""

from __future__ import annotations

import ctypes as C
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_P = C.c_void_p
_IDX = C.c_size_t  # LiteRtParamIndex
_HW_CPU = 1  # kLiteRtHwAcceleratorCpu
_ELEMENT_TYPES = {"int32": 2, "float32": 1}  # kLiteRtElementTypeInt32 / Float32
_LOCK_WRITE = 1  # kLiteRtTensorBufferLockModeWrite
_HOST_ALIGNMENT = 64  # LiteRT refuses host memory that is not 64-byte aligned (status 3)

# LiteRtProfilerEventType values (litert_profiler_event.h)
DEFAULT_EVENT = 1
OPERATOR_EVENT = 2
DELEGATE_OPERATOR_EVENT = 8
OP_EVENTS = (OPERATOR_EVENT, DELEGATE_OPERATOR_EVENT)


class _Layout(C.Structure):
    _fields_ = [
        ("rank", C.c_uint, 7),
        ("has_strides", C.c_uint, 1),
        ("dims", C.c_int32 * 8),
        ("strides", C.c_uint32 * 8),
    ]


class _RankedTensorType(C.Structure):
    _fields_ = [("element_type", C.c_int), ("layout", _Layout)]


class _MemoryUsage(C.Structure):
    _fields_ = [("total", C.c_size_t), ("in_use", C.c_size_t), ("private", C.c_size_t)]


class _Event(C.Structure):  # ProfiledEventData
    _fields_ = [
        ("tag", C.c_char_p),
        ("event_type", C.c_int),
        ("start_us", C.c_uint64),
        ("elapsed_us", C.c_uint64),
        ("begin_mem", _MemoryUsage),
        ("end_mem", _MemoryUsage),
        ("metadata1", C.c_uint64),
        ("metadata2", C.c_uint64),
        ("source", C.c_int),
    ]


@dataclass(frozen=True)
class Event:
    """One profiled event: its tag, type, duration and (for ops) node index."""

    tag: str
    kind: int
    elapsed_us: int
    node: int


def _library() -> C.CDLL:
    import ai_edge_litert

    path = Path(ai_edge_litert.__file__).with_name("libLiteRt.so")
    lib = C.CDLL(str(path))
    if not hasattr(lib, "LiteRtCompiledModelGetProfiler"):
        raise RuntimeError(f"{path} has no LiteRtCompiledModelGetProfiler: this LiteRT has no C profiler API")
    return lib


def _ok(status: int, what: str) -> None:
    if status != 0:
        raise RuntimeError(f"LiteRT {what} failed (LiteRtStatus {status})")


def _aligned(shape: tuple[int, ...], dtype) -> tuple[np.ndarray, np.ndarray]:
    """An array of ``shape`` whose data starts on a 64-byte boundary, and the block that holds it."""
    n = int(np.prod(shape)) * np.dtype(dtype).itemsize
    raw = np.zeros(n + _HOST_ALIGNMENT, np.uint8)
    off = (-raw.ctypes.data) % _HOST_ALIGNMENT
    return raw[off : off + n].view(dtype).reshape(shape), raw


def _tensor_type(element_type: int, shape: tuple[int, ...]) -> _RankedTensorType:
    t = _RankedTensorType()
    t.element_type, t.layout.rank = element_type, len(shape)
    for i, d in enumerate(shape):
        t.layout.dims[i] = d
    return t


class ProfiledModel:
    """A TFLite file compiled for the CPU (XNNPACK) with LiteRT's profiler on.

    Args:
      path: the .tflite file (signature 0 is run).
      feeds: inputs (int32 or float32) by signature input name, all of one shape.
      output_shapes: each signature output's shape for these feeds (after a resize LiteRT 2.3
        still reports the old output sizes, so the caller says them, e.g. from an Interpreter run).
      threads: XNNPACK threads.
    """

    def __init__(
        self, path: Path, feeds: dict[str, np.ndarray], output_shapes: dict[str, tuple[int, ...]], threads: int
    ):
        self._lib = lib = _library()
        libc = C.CDLL(None)
        libc.strdup.restype, libc.strdup.argtypes = _P, [C.c_char_p]
        self._env, self._model, self._compiled = _P(), _P(), _P()
        _ok(lib.LiteRtCreateEnvironment(0, None, C.byref(self._env)), "CreateEnvironment")
        _ok(lib.LiteRtCreateModelFromFile(self._env, str(path).encode(), C.byref(self._model)), f"reading {path}")
        options = _P()
        _ok(lib.LiteRtCreateOptions(C.byref(options)), "CreateOptions")
        _ok(lib.LiteRtSetOptionsHardwareAccelerators(options, _HW_CPU), "SetOptionsHardwareAccelerators")
        for ident, payload in (
            (b"runtime_options_string", b"enable_profiling = true\n"),
            (b"xnnpack", f"num_threads = {threads}\n".encode()),
        ):
            opaque = _P()  # LiteRT owns the payload and frees it with libc's free
            data = _P(libc.strdup(payload))
            _ok(lib.LiteRtCreateOpaqueOptions(ident, data, C.cast(libc.free, _P), C.byref(opaque)), "opaque options")
            _ok(lib.LiteRtAddOpaqueOptions(options, opaque), "AddOpaqueOptions")
        _ok(lib.LiteRtCreateCompiledModel(self._env, self._model, options, C.byref(self._compiled)), "compiling")
        lib.LiteRtDestroyOptions(options)
        self.inputs, self.outputs = self._signature_names()
        missing = set(self.inputs) - set(feeds)
        if missing:
            raise ValueError(f"{path} needs inputs {sorted(missing)}")
        shape = tuple(next(iter(feeds.values())).shape)
        dims = (C.c_int * len(shape))(*shape)
        self._keep: list[np.ndarray] = []  # the memory the buffers wrap
        ins, outs = [], []
        for i, name in enumerate(self.inputs):
            st = lib.LiteRtCompiledModelResizeInputTensor(self._compiled, _IDX(0), _IDX(i), dims, _IDX(len(shape)))
            _ok(st, f"resizing {name} to {list(shape)}")
            ins.append(self._host_buffer(np.ascontiguousarray(feeds[name])))
        for name in self.outputs:
            outs.append(self._host_buffer(np.zeros(output_shapes[name], np.float32)))
        self._in = (_P * len(ins))(*[b for b, _ in ins])
        self._out = (_P * len(outs))(*[b for b, _ in outs])
        self.results = {name: arr for name, (_, arr) in zip(self.outputs, outs)}
        self._profiler = _P()
        _ok(lib.LiteRtCompiledModelGetProfiler(self._compiled, C.byref(self._profiler)), "CompiledModelGetProfiler")

    def _signature_names(self) -> tuple[list[str], list[str]]:
        lib, sig = self._lib, _P()
        _ok(lib.LiteRtGetModelSignature(self._model, _IDX(0), C.byref(sig)), "GetModelSignature")
        names = []
        for count_fn, name_fn in (
            (lib.LiteRtGetNumSignatureInputs, lib.LiteRtGetSignatureInputName),
            (lib.LiteRtGetNumSignatureOutputs, lib.LiteRtGetSignatureOutputName),
        ):
            n = _IDX()
            _ok(count_fn(sig, C.byref(n)), "signature size")
            found = []
            for i in range(n.value):
                s = C.c_char_p()
                _ok(name_fn(sig, _IDX(i), C.byref(s)), "signature name")
                found.append(s.value.decode())
            names.append(found)
        return names[0], names[1]

    def _host_buffer(self, values: np.ndarray) -> tuple[_P, np.ndarray]:
        element_type = _ELEMENT_TYPES.get(values.dtype.name)
        if element_type is None:
            raise ValueError(f"no LiteRT element type for {values.dtype}: feed int32 or float32")
        arr, raw = _aligned(values.shape, values.dtype)
        arr[...] = values
        self._keep.append(raw)
        buf = _P()
        st = self._lib.LiteRtCreateTensorBufferFromHostMemory(
            C.byref(_tensor_type(element_type, values.shape)),
            _P(arr.ctypes.data),
            C.c_size_t(arr.nbytes),
            None,
            C.byref(buf),
        )
        _ok(st, "CreateTensorBufferFromHostMemory")
        return buf, arr

    def run(self) -> dict[str, np.ndarray]:
        """One run; returns the outputs (views of the buffers: copy them to keep them)."""
        st = self._lib.LiteRtRunCompiledModel(
            self._compiled, _IDX(0), C.c_size_t(len(self._in)), self._in, C.c_size_t(len(self._out)), self._out
        )
        _ok(st, "RunCompiledModel")
        return self.results

    def profile(self, warmup: int, runs: int) -> list[list[Event]]:
        """Runs ``warmup`` unprofiled, then ``runs`` profiled; the events of each profiled run."""
        lib = self._lib
        for _ in range(warmup):
            self.run()
        _ok(lib.LiteRtResetProfiler(self._profiler), "ResetProfiler")
        _ok(lib.LiteRtStartProfiler(self._profiler), "StartProfiler")
        for _ in range(runs):
            self.run()
        _ok(lib.LiteRtStopProfiler(self._profiler), "StopProfiler")
        n = C.c_int()
        _ok(lib.LiteRtGetNumProfilerEvents(self._profiler, C.byref(n)), "GetNumProfilerEvents")
        raw = (_Event * n.value)()
        _ok(lib.LiteRtGetProfilerEvents(self._profiler, n, raw), "GetProfilerEvents")
        return split_runs(
            [Event(e.tag.decode() if e.tag else "", e.event_type, int(e.elapsed_us), int(e.metadata1)) for e in raw]
        )

    def close(self) -> None:
        for buf in [*self._in, *self._out]:
            self._lib.LiteRtDestroyTensorBuffer(_P(buf))
        self._lib.LiteRtDestroyCompiledModel(self._compiled)
        self._lib.LiteRtDestroyModel(self._model)
        self._lib.LiteRtDestroyEnvironment(self._env)

    def __enter__(self) -> ProfiledModel:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def split_runs(events: list[Event]) -> list[list[Event]]:
    """The event stream cut into runs: each run opens with its ``Invoke`` event (DEFAULT type),
    which holds the whole invocation; the op events follow it in the order they began."""
    runs: list[list[Event]] = []
    for e in events:
        if e.kind == DEFAULT_EVENT and e.tag == "Invoke":
            runs.append([e])
        elif runs and e.kind in OP_EVENTS:
            runs[-1].append(e)
    return runs


def is_product(tag: str) -> bool:
    """A dense layer's matrix product, as XNNPACK or the builtin kernels name it."""
    return tag.startswith("Fully Connected") or tag == "FULLY_CONNECTED"


def event_parts(run: list[Event], layers: int) -> list[str]:
    """The model part of each op event of one run, anchored on the dense products.

    The flatbuffer's op names do not reach XNNPACK's internal operators, so the layers are
    counted instead: with F dense products in the run and ``layers`` encoder layers, each layer
    owns k = F // layers consecutive products (BERT: Q, K, V, attention output, FFN in, FFN out)
    and the products after the last layer's are the pooler / head. An event belongs to the part
    of the last product before it (so a layer's residual and LayerNorm, which follow its FFN
    product, are its own); events before the first product are ``embeddings``. Returns one name
    per op event (the run's ``Invoke`` event excluded)."""
    ops = [e for e in run if e.kind in OP_EVENTS]
    n_products = sum(is_product(e.tag) for e in ops)
    per_layer = n_products // layers if layers else 0
    if per_layer == 0:
        return ["model"] * len(ops)
    parts, current, seen = [], "embeddings", 0
    for e in ops:
        if is_product(e.tag):
            layer = seen // per_layer
            current = f"layer_{layer:02d}" if layer < layers else "pooler"
            seen += 1
        parts.append(current)
    return parts


def summarize(runs: list[list[Event]], layers: int) -> dict:
    """Milliseconds per run by op type, by part and by runner (XNNPACK or builtin kernels): the
    median over the runs of each key's per-run total (a mean would let one slow run, common on a
    shared VM, outweigh the rest; the medians then add up to about the median run)."""
    import collections
    import statistics

    if not runs:
        raise RuntimeError("the profiler recorded no run")
    tables: dict[str, list[dict[str, float]]] = {"by_op_type_ms": [], "by_layer_ms": [], "by_runner_ms": []}
    for run in runs:
        by = {k: collections.defaultdict(float) for k in tables}
        ops = [e for e in run if e.kind in OP_EVENTS]
        for e, part in zip(ops, event_parts(run, layers)):
            by["by_op_type_ms"][e.tag] += e.elapsed_us / 1000
            by["by_layer_ms"][part] += e.elapsed_us / 1000
            by["by_runner_ms"]["xnnpack" if e.kind == DELEGATE_OPERATOR_EVENT else "builtin"] += e.elapsed_us / 1000
        for k, d in by.items():
            tables[k].append(d)

    out = {k: median_per_run(v) for k, v in tables.items()}
    positions = [product_positions(run, layers) for run in runs]
    return {
        "runs_profiled": len(runs),
        "model_run_ms_p50": statistics.median(r[0].elapsed_us for r in runs) / 1000,
        "kernel_ms_per_run": round(sum(out["by_op_type_ms"].values()), 4),
        "op_events_per_run": sum(e.kind in OP_EVENTS for r in runs for e in r) / len(runs),
        "products_per_run": sum(len(product_times(r)) for r in runs) / len(runs),
        "product_ms_best": min(sum(product_times(r)) for r in runs),
        "by_op_type_ms": dict(sorted(out["by_op_type_ms"].items(), key=lambda kv: -kv[1])),
        "by_layer_ms": dict(sorted(out["by_layer_ms"].items())),
        "by_runner_ms": dict(sorted(out["by_runner_ms"].items())),
        "product_ms_by_position": [
            round(statistics.median(p[j] for p in positions), 4) for j in range(len(positions[0]))
        ],
    }


def median_per_run(per_run: list[dict[str, float]]) -> dict[str, float]:
    """Each key's median over the runs of its per-run total (0 in a run that lacks it)."""
    import statistics

    keys = {k for d in per_run for k in d}
    return {k: round(statistics.median(d.get(k, 0.0) for d in per_run), 4) for k in keys}


def product_times(run: list[Event]) -> list[float]:
    """Milliseconds of each dense product of one run, in run order."""
    return [e.elapsed_us / 1000 for e in run if e.kind in OP_EVENTS and is_product(e.tag)]


def product_positions(run: list[Event], layers: int) -> list[float]:
    """Milliseconds of a layer's j-th dense product, averaged over the layers (BERT: Q, K, V,
    attention output, FFN in, FFN out), for one run; empty when no layer holds a product."""
    times = product_times(run)
    k = len(times) // layers if layers else 0
    return [sum(times[i * k + j] for i in range(layers)) / layers for j in range(k)]


def interpreter_outputs(path: Path, feeds: dict[str, np.ndarray], threads: int) -> dict[str, np.ndarray]:
    """What LiteRT's Interpreter computes on ``feeds``, by signature output name (or by tensor
    name for a file without signatures, as the CompiledModel's default signature names them)."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path), num_threads=threads)
    if interp.get_signature_list():
        return interp.get_signature_runner()(**feeds)
    for d in interp.get_input_details():
        interp.resize_tensor_input(d["index"], feeds[d["name"]].shape)
    interp.allocate_tensors()
    for d in interp.get_input_details():
        interp.set_tensor(d["index"], feeds[d["name"]])
    interp.invoke()
    return {d["name"]: interp.get_tensor(d["index"]) for d in interp.get_output_details()}


def profile_tflite(path: Path, feeds: dict[str, np.ndarray], threads: int, layers: int, warmup: int, runs: int) -> dict:
    """LiteRT's per-op times for ``path`` on ``feeds`` (see :func:`summarize`), after checking that
    the profiled CompiledModel computes what LiteRT's Interpreter computes on the same feeds."""
    expected = interpreter_outputs(path, feeds, threads)
    with ProfiledModel(path, feeds, {k: v.shape for k, v in expected.items()}, threads) as model:
        got = {k: v.copy() for k, v in model.run().items()}
        result = summarize(model.profile(warmup, runs), layers)
    result["max_abs_vs_interpreter"] = float(max(np.max(np.abs(got[k] - expected[k])) for k in expected))
    return result
