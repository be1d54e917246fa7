"""Exact int8 products for ONNX Runtime on x86 CPUs without VNNI.

ONNX Runtime's u8 x s8 matrix kernel on AVX2 (and on AVX-512 without VNNI) multiplies with
``VPMADDUBSW``, which adds each pair of neighbouring u8 * s8 products into an int16 *with
saturation*: with activations and weights that use their whole ranges the pair overflows
(255 * 127 * 2 > 32767) and the product comes out silently wrong. On a 2-core AVX2-only AMD
EPYC the default model's int8 ONNX file gave the export gate pooled cosine 0.99893 against
0.9997 on the AVX512-VNNI machines, where ``VPDPBUSD`` accumulates in int32. ONNX Runtime's u8 x
u8 kernel widens both sides to int16 (``VPMADDWD``), which cannot overflow.

So on such a CPU the runner loads a rewritten copy: every int8 weight of an integer product is
stored as uint8 (``w + 128``, the same bytes with the sign bit flipped) with zero point 128.
The integers multiplied are the same (``(w + 128) - 128 = w``), so the outputs are those of an
exact kernel, as on a VNNI or Arm CPU; ONNX Runtime then runs its u8 x u8 kernel. Everything
else in the file passes through byte for byte (``edgebert.formats.onnx_wire``). The copy lives in a
temporary directory while ONNX Runtime loads it.

Not done on VNNI (or AMX) CPUs, where the u8 x s8 kernel is exact and the u8 x u8 one is slower,
nor on Arm, whose kernels widen to 16 bits.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from edgebert.errors import EdgebertError
from edgebert.formats import onnx_wire as w

# op type (ONNX Runtime's domain or the standard one) -> (index of B, index of B's zero point).
INTEGER_PRODUCTS = {
    ("com.microsoft", "MatMulIntegerToFloat"): (1, 5),
    ("com.microsoft", "DynamicQuantizeMatMul"): (1, 3),
    ("", "MatMulInteger"): (1, 3),
    ("com.microsoft", "QAttention"): (1, 7),
}
EXACT_INT8_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")  # u8 x s8 accumulates in int32
ZERO_POINT = "edgebert/u8u8_zero_point_128"


def cpu_flags() -> set[str] | None:
    """The CPU's feature flags from ``/proc/cpuinfo``; None where that cannot be read."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


def u8s8_saturates(flags: Iterable[str] | None = None, machine: str | None = None) -> bool:
    """True when ONNX Runtime's u8 x s8 kernel on this CPU adds products in saturating int16.

    Args:
      flags: the CPU's flags (default: read from ``/proc/cpuinfo``; where they cannot be read
        on x86, the CPU is taken to saturate, the safe side).
      machine: ``platform.machine()`` (default: this one's).
    """
    machine = (machine or platform.machine()).lower()
    if machine not in ("x86_64", "amd64", "i386", "i686", "x86"):
        return False
    flags = cpu_flags() if flags is None else set(flags)
    return flags is None or not any(f in flags for f in EXACT_INT8_FLAGS)


def saturating_products(fields: list[w.Field]) -> tuple[list[int], set[str]]:
    """The indices (among the graph's nodes) of integer products whose weight is an int8
    initializer (with zero point 0, or an int8 zero-point initializer), and the names of the
    initializers to re-sign (weights and their zero points).

    A weight that some other node also reads is left as it is (with its products), since that
    node would read the re-signed bytes; one shared by several products is re-signed once.

    Args:
      fields: the GraphProto's fields (``onnx_wire.parse``)."""
    nodes = [w.parse(bytes(f.value)) for f in fields if f.number == w.GRAPH_NODE]
    int8 = set()
    for f in fields:
        if f.number == w.GRAPH_INITIALIZER:
            t = w.parse(bytes(f.value))
            if w.first(t, w.TENSOR_DATA_TYPE) == w.INT8:
                int8.add(bytes(w.first(t, w.TENSOR_NAME, b"")).decode())
    # Every read of each int8 initializer: (node index, input slot).
    reads: dict[str, list[tuple[int, int]]] = {name: [] for name in int8}
    for i, n in enumerate(nodes):
        for slot, name in enumerate(w.strings(n, w.NODE_INPUT)):
            if name in reads:
                reads[name].append((i, slot))

    def zero_point(i: int) -> str:
        slots = _slots(nodes[i])
        assert slots is not None
        inputs = w.strings(nodes[i], w.NODE_INPUT)
        return inputs[slots[1]] if len(inputs) > slots[1] else ""

    def product_weight(i: int, slot: int) -> bool:
        slots = _slots(nodes[i])
        if slots is None or slot != slots[0]:
            return False
        zp = zero_point(i)  # none (0), or an int8 initializer re-signed with the weight
        return not zp or (zp in reads and all(s == (_slots(nodes[j]) or (-1, -1))[1] for j, s in reads[zp]))

    weights = {name for name, r in reads.items() if r and all(product_weight(i, s) for i, s in r)}
    picked = sorted({i for name in weights for i, _ in reads[name]})
    # A zero point stored beside the weight is re-signed with it (int8 z -> uint8 z + 128).
    zero_points = {zero_point(i) for i in picked} - {""}
    return picked, weights | zero_points


def _slots(node: list[w.Field]) -> tuple[int, int] | None:
    domain = bytes(w.first(node, w.NODE_DOMAIN, b"")).decode()
    op = bytes(w.first(node, w.NODE_OP_TYPE, b"")).decode()
    return INTEGER_PRODUCTS.get(("" if domain == "ai.onnx" else domain, op))


def rewrite(model_path: str | os.PathLike, out_dir: str | os.PathLike) -> int:
    """Writes ``out_dir/<name>`` (and its external data file, if any): ``model_path`` with
    every saturating product's int8 weight as uint8 with zero point 128.

    Returns:
      How many products were rewritten (0: nothing written).
    """
    model_path, out_dir = Path(model_path), Path(out_dir)
    model = w.parse(model_path.read_bytes())
    graph_field = next((f for f in model if f.number == w.MODEL_GRAPH), None)
    if graph_field is None:
        raise EdgebertError(f"{model_path} has no graph", "export it again")
    fields = w.parse(bytes(graph_field.value))
    picked, weights = saturating_products(fields)
    if not picked:
        return 0
    # Every external data file the graph reads -> the (offset, length) ranges to re-sign in it:
    # the copy needs them all beside it, re-signed or not.
    flips: dict[str, list[tuple[int, int]]] = {}
    node_index, rewritten, shared_zero_point = 0, set(picked), False
    out: list[bytes] = []
    for f in fields:
        if f.number == w.GRAPH_NODE:
            node = _with_zero_point(w.parse(bytes(f.value))) if node_index in rewritten else None
            out.append(f.raw if node is None else w.encode(w.GRAPH_NODE, node))
            shared_zero_point |= node is not None
            node_index += 1
        elif f.number == w.GRAPH_INITIALIZER:
            t = w.parse(bytes(f.value))
            if w.first(t, w.TENSOR_DATA_LOCATION) == w.EXTERNAL:
                flips.setdefault(w.external_data(t).get("location", ""), [])
            if bytes(w.first(t, w.TENSOR_NAME, b"")).decode() in weights:
                out.append(w.encode(w.GRAPH_INITIALIZER, _as_uint8(t, flips)))
            else:
                out.append(f.raw)
        else:
            out.append(f.raw)
    if shared_zero_point:  # some product had no zero point of its own
        zp = w.encode(w.TENSOR_DATA_TYPE, w.UINT8) + w.encode(w.TENSOR_NAME, ZERO_POINT.encode())
        out.append(w.encode(w.GRAPH_INITIALIZER, zp + w.encode(w.TENSOR_RAW_DATA, b"\x80")))
    new_graph = w.encode(w.MODEL_GRAPH, b"".join(out))
    out_dir.mkdir(parents=True, exist_ok=True)
    for location, ranges in flips.items():
        source = (model_path.parent / location).resolve()
        if model_path.parent.resolve() not in source.parents:
            raise EdgebertError(f"{model_path} points outside its folder ({location})", "export it again")
        target = out_dir / location
        shutil.copyfile(source, target)
        if ranges:
            data = np.memmap(target, np.uint8, "r+")
            for offset, length in ranges:
                data[offset : offset + length] ^= 0x80  # int8 -> uint8 + 128, two's complement
            data.flush()
            del data
    (out_dir / model_path.name).write_bytes(b"".join(f.raw if f is not graph_field else new_graph for f in model))
    return len(picked)


def _with_zero_point(node: list[w.Field]) -> bytes | None:
    """``node`` reading the shared zero point 128; None where it has its own (re-signed as an
    initializer, so the node stays as it is)."""
    slots = _slots(node)
    assert slots is not None
    inputs = w.strings(node, w.NODE_INPUT)
    if len(inputs) > slots[1] and inputs[slots[1]]:
        return None
    inputs += [""] * (slots[1] + 1 - len(inputs))
    inputs[slots[1]] = ZERO_POINT
    rest = [f.raw for f in node if f.number != w.NODE_INPUT]
    return b"".join(w.encode(w.NODE_INPUT, s.encode()) for s in inputs) + b"".join(rest)


def _as_uint8(tensor: list[w.Field], flips: dict[str, list[tuple[int, int]]]) -> bytes:
    out = []
    values = w.packed_ints(tensor, w.TENSOR_INT32_DATA)
    for f in tensor:
        if f.number == w.TENSOR_DATA_TYPE:
            out.append(w.encode(w.TENSOR_DATA_TYPE, w.UINT8))
        elif f.number == w.TENSOR_RAW_DATA:
            out.append(w.encode(w.TENSOR_RAW_DATA, (np.frombuffer(bytes(f.value), np.uint8) ^ 0x80).tobytes()))
        elif f.number == w.TENSOR_INT32_DATA:
            continue  # written once below, as raw_data
        else:
            out.append(f.raw)
    if values:
        out.append(w.encode(w.TENSOR_RAW_DATA, (np.asarray(values, np.int64) + 128).astype(np.uint8).tobytes()))
    if w.first(tensor, w.TENSOR_DATA_LOCATION) == w.EXTERNAL:
        entry = w.external_data(tensor)
        if "length" not in entry:
            raise EdgebertError("an external ONNX weight has no length", "export the model again")
        flips.setdefault(entry["location"], []).append((int(entry.get("offset", 0)), int(entry["length"])))
    return b"".join(out)


@contextlib.contextmanager
def loadable(path: str | os.PathLike, exact_int8: bool | None = None) -> Iterator[tuple[Path, int]]:
    """The file ONNX Runtime should load for ``path`` on this CPU, and how many products were
    re-signed (0: ``path`` itself). A rewritten copy lives in a temporary directory that is
    removed on exit (ONNX Runtime has read or mapped it by then).

    Args:
      exact_int8: None: rewrite where ``u8s8_saturates()``; True: always; False: never.
    """
    path = Path(path)
    if exact_int8 is False or (exact_int8 is None and not u8s8_saturates()):
        yield path, 0
        return
    folder = tempfile.mkdtemp(prefix="edgebert-u8u8-")
    try:
        try:
            count = rewrite(path, folder)
        except OSError as e:  # a full or read-only temp dir: run the file as it is, and say so
            warnings.warn(
                f"edgebert: could not write the exact-int8 copy of {path} ({e}); this CPU's u8 x s8 "
                "kernel may saturate: set TMPDIR to a writable folder",
                RuntimeWarning,
                stacklevel=3,
            )
            count = 0
        yield (Path(folder) / path.name if count else path), count
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # Windows keeps a mapped file: left to the OS


def cpu_session(path: str | os.PathLike, options=None, exact_int8: bool | None = None):
    """An ONNX Runtime CPU session for ``path`` in the form the runner loads on this CPU, and
    how many products were re-signed (see ``loadable``)."""
    import onnxruntime as ort

    with loadable(path, exact_int8) as (load_path, resigned):
        return ort.InferenceSession(str(load_path), options, providers=["CPUExecutionProvider"]), resigned
