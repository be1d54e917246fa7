"""Reading a ``.tflite`` flatbuffer's graph without TensorFlow: the one reader the static
delegate checks (``gpu_compat``, ``nnapi_compat``) share.

It uses the schema that ai-edge-litert ships (``schema_py_generated``); only the flatbuffer's
tables are read, not the weights.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgebert.errors import EdgebertError


@dataclasses.dataclass
class Flatbuffer:
    """A parsed model: ``schema`` (the generated module), ``model``, per operator code its
    builtin ``codes`` and op ``versions``, and ``names`` (builtin code -> name)."""

    schema: Any
    model: Any
    codes: list[int]
    versions: list[int]
    names: dict[int, str]

    def op_name(self, op) -> str:
        code = self.codes[op.OpcodeIndex()]
        if code == self.schema.BuiltinOperator.CUSTOM:
            return "CUSTOM"
        return self.names.get(code, f"CUSTOM_{code}")

    def op_version(self, op) -> int:
        return self.versions[op.OpcodeIndex()]


def load_schema():
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:  # tflite-runtime / TF ship the same generated schema
        from tensorflow.lite.python import schema_py_generated as schema
    return schema


def inline_buffers(model, flat: bytes) -> bool:
    """Moves buffers stored after the flatbuffer (offset / size, as ai-edge-quantizer writes a
    model over 256 KB) into an unpacked ``ModelT`` ``model`` of ``flat``, since re-packing writes
    the flatbuffer alone. Returns whether any moved."""
    import numpy as np

    moved = False
    for b in model.buffers or []:
        if b.offset and b.offset > 1:
            b.data = np.frombuffer(flat, np.uint8, count=b.size, offset=b.offset)
            b.offset, b.size, moved = 0, 0, True
    return moved


def tensor_shape(sg, t: int) -> list[int]:
    """Tensor ``t``'s shape signature (``-1`` for a dynamic dimension), else its shape; [] for
    a scalar or an omitted (``-1``) tensor."""
    if t < 0:
        return []
    tensor = sg.Tensors(t)
    if tensor.ShapeSignatureLength():
        return [int(d) for d in tensor.ShapeSignatureAsNumpy()]
    return [int(d) for d in tensor.ShapeAsNumpy()] if tensor.ShapeLength() else []


class Op:
    """One operator of a subgraph, as the static checks see it: its name, version, tensor
    indices and, per tensor, type, shape, constness and quantization."""

    def __init__(self, fb: Flatbuffer, sg, op):
        self.fb, self.sg, self.op = fb, sg, op
        self.name = fb.op_name(op)
        self.version = fb.op_version(op)
        self.inputs = [op.Inputs(j) for j in range(op.InputsLength())]
        self.outputs = [op.Outputs(j) for j in range(op.OutputsLength())]
        self.types = {v: k for k, v in vars(fb.schema.TensorType).items() if not k.startswith("_")}

    def type(self, t: int) -> str | None:
        return self.types.get(self.sg.Tensors(t).Type()) if t >= 0 else None

    def rank(self, t: int) -> int:
        return len(tensor_shape(self.sg, t))

    def shape(self, t: int) -> list[int]:
        return tensor_shape(self.sg, t)

    def constant(self, t: int) -> bool:
        if t < 0:
            return False
        buf = self.fb.model.Buffers(self.sg.Tensors(t).Buffer())
        return bool(buf is not None and (buf.DataLength() or buf.Offset()))

    def zero_point(self, t: int) -> int:
        q = self.sg.Tensors(t).Quantization()
        return int(q.ZeroPoint(0)) if q is not None and q.ZeroPointLength() else 0

    def options(self, cls_name: str):
        table = self.op.BuiltinOptions()
        if table is None:
            return None
        opts = getattr(self.fb.schema, cls_name)()
        opts.Init(table.Bytes, table.Pos)
        return opts


def check_signatures(path: str | os.PathLike, check: Callable[[Flatbuffer, Any], dict]) -> dict[str, dict]:
    """Runs ``check(flatbuffer, subgraph)`` on the subgraph of each signature of ``path``.

    Returns:
      ``{signature key: report}`` in subgraph order; ``{"": report}`` for a file with one
      signature (or none), checked on its first subgraph.

    Raises:
      EdgebertError: the file is not a readable TFLite flatbuffer.
    """
    schema = load_schema()
    buf = Path(path).read_bytes()
    try:
        model = schema.Model.GetRootAsModel(buf, 0)
        codes, versions = [], []
        for i in range(model.OperatorCodesLength()):
            c = model.OperatorCodes(i)
            codes.append(max(c.BuiltinCode(), c.DeprecatedBuiltinCode()))
            versions.append(c.Version())
        names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
        fb = Flatbuffer(schema, model, codes, versions, names)
        signatures = {
            model.SignatureDefs(i).SignatureKey().decode(): model.SignatureDefs(i).SubgraphIndex()
            for i in range(model.SignatureDefsLength())
        }
        if len(signatures) <= 1:
            return {"": check(fb, model.Subgraphs(0))}
        return {
            key: check(fb, model.Subgraphs(index)) for key, index in sorted(signatures.items(), key=lambda kv: kv[1])
        }
    except EdgebertError:
        raise
    except Exception as e:  # a truncated flatbuffer fails anywhere inside the generated reader
        raise EdgebertError(
            f"{path} is not a readable TFLite flatbuffer ({type(e).__name__})", "export the model again"
        ) from None


def combine(per: dict[str, dict], *, lists=(), sums=(), alls=(), anys=(), keep=()) -> dict:
    """One report from ``check_signatures``' per-signature reports: a single signature's report
    as it is; else findings (``lists``) tagged with their ``signature``, counts summed, flags
    and-ed or or-ed, ``keep`` taken from the first, and ``"signatures": per``."""
    if list(per) == [""]:
        return per[""]
    first = next(iter(per.values()))
    report: dict = {k: first[k] for k in keep}
    report.update({k: sum(r[k] for r in per.values()) for k in sums})
    report.update({k: [{**f, "signature": s} for s, r in per.items() for f in r[k]] for k in lists})
    report.update({k: all(r[k] for r in per.values()) for k in alls})
    report.update({k: any(r[k] for r in per.values()) for k in anys})
    return {**report, "signatures": per}
