"""Dynamic int8 for ONNX with one activation range per token: TFLite's dynamic-range scheme, in
ONNX Runtime's fastest int8 kernel.

ONNX Runtime's own dynamic quantizer gives a whole activation tensor one scale (every token of
every sentence in the batch), and BERT's outlier tokens then take the range: on
all-MiniLM-L6-v2 it reached pooled cosine 0.998 at best (1,000 sentences, batch 1, SmoothQuant
on every dense input). ``MatMulNBits`` quantizes per 128-wide block and is accurate, but its
8-bit kernel ran no faster than fp32 here (14.3 ms against 13.5 ms at seq 128). This pass
writes, for every ``MatMul`` with a constant weight:

- the weight as int8, symmetric, one scale per output channel;
- the activation as uint8 with its own scale and zero point per row (token), from the row's
  min and max (asymmetric: GELU outputs are nearly all positive, so a symmetric range would
  waste half the codes), by ``QuantizeLinear`` with ``block_size`` = the row (opset 21);
- ``com.microsoft.MatMulIntegerToFloat`` (u8 x s8, VNNI), minus the
  zero point's share ``zp * scale * colsum(W)``, since that kernel takes one zero point only.
  (Tried: that share folded into the integer product as extra K columns holding the row's zero
  point against int8 rows summing to ``-colsum(W)``, exact, no float pass over the output:
  BERT-base 55.96 vs 55.91 ms at seq 128, 2 threads, interleaved: the longer product and the
  Concat cost what the Mul + Sub saved, so not kept.)

Measured on all-MiniLM-L6-v2 with SmoothQuant on Q/K/V and FFN-in (1,000 movie sentences):
pooled cosine 0.99935 (min 0.9987), at 10.7 ms against MatMulNBits' 14.3; the int8 products
of BERT-base ran at 429 G multiply-accumulates/s, the machine's int8 limit.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

OPSET = 21  # QuantizeLinear's block_size


def quantize(
    fp32_path: Path,
    out_path: Path,
    exclude: tuple[str, ...] = (),
    fixed_zero_points: list | None = None,
    normalized_rows: str | None = None,
    float_products: str | None = None,
) -> None:
    """Writes ``out_path``: ``fp32_path`` with every constant-weight MatMul (node names not
    containing any of ``exclude``) in per-row int8; the options as in ``rewrite``."""
    import onnx

    model = onnx.load(str(fp32_path))
    rewrite(model, exclude, fixed_zero_points, normalized_rows, float_products)
    onnx.save(model, str(out_path))


def rewrite(
    model,
    exclude: tuple[str, ...] = (),
    fixed_zero_points: list | None = None,
    normalized_rows: str | None = None,
    float_products: str | None = None,
) -> None:
    """Rewrites ``model`` (an ``onnx.ModelProto``) in place; see ``quantize``.

    ``fixed_zero_points``: ``[regex, zero_point]`` pairs, first match on the node name wins. A
    matching MatMul keeps a scale per row but one uint8 zero point ``z`` for the whole tensor,
    which ``MatMulIntegerToFloat`` takes in and applies inside the product: no zero-point pass
    over the output, and half the nodes. Each row's scale is the smallest that holds it,
    ``max(row max / (255 - z), -row min / z)``, so nothing clips; ``z`` = 128 is symmetric (for
    inputs of both signs, a LayerNorm's output), a small ``z`` suits an input bounded just below
    zero (GELU's output, >= -0.17), where a symmetric range would leave half the codes unused.

    ``normalized_rows``: a regex on node names; a matching MatMul's input rows are divided by
    their largest magnitude and go through ``DynamicQuantizeMatMul`` (one scale for the tensor of
    unit rows), the product multiplied back by the rows' peaks. ``float_products``: a regex on
    node names that stay float.
    """
    import re

    _require_opsets(model)
    b = _Builder(model.graph, {i.name: i for i in model.graph.initializer}, [])
    for node in model.graph.node:
        weight = b.constant_weight(node)
        if (
            weight is None
            or any(e in node.name for e in exclude)
            or (float_products and re.search(float_products, node.name))
        ):
            b.nodes.append(node)
            continue
        m = b.quantize_weight(node, weight)
        z = next((int(zp) for pattern, zp in fixed_zero_points or () if re.search(pattern, m.prefix)), None)
        if normalized_rows and re.search(normalized_rows, m.prefix):
            _normalized_rows_product(b, m)
        elif z is not None:
            _fixed_zero_point_product(b, m, z)
        else:
            _per_row_product(b, m)
    del model.graph.node[:]
    model.graph.node.extend(b.nodes)


def _require_opsets(model) -> None:
    """Opset 21 (``QuantizeLinear`` by blocks), Microsoft's contrib ops, and the IR version they need."""
    from onnx import helper

    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            o.version = max(o.version, OPSET)
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    model.ir_version = max(model.ir_version, 10)


@dataclasses.dataclass
class _MatMul:
    """One MatMul being quantized: its input, node name (the prefix of what replaces it) and
    output, its int8 weight's initializers, and the row constants every form reads."""

    x: str
    prefix: str
    output: str
    depth: int  # the weight's rows: the input row's length, QuantizeLinear's block
    weight: str
    weight_scale: str
    colsum: str  # the dequantized weight's column sums: a zero point's share of the product
    axes: str
    zero: str
    tiny: str


@dataclasses.dataclass
class _Builder:
    """The graph being rewritten: its initializers by name, and the new node list in order."""

    graph: Any
    inits: dict
    nodes: list

    def const(self, name: str, value, dtype=np.float32) -> str:
        """An initializer ``name`` holding ``value``, added the first time it is asked for."""
        from onnx import numpy_helper

        if name not in self.inits:
            self.inits[name] = numpy_helper.from_array(np.asarray(value, dtype), name)
            self.graph.initializer.append(self.inits[name])
        return name

    def op(self, m: _MatMul, kind: str, inputs: list[str], name: str, output: bool = False, **attrs) -> str:
        """Appends node ``kind`` named ``m.prefix + name``; its output is named so too, or is the
        MatMul's own output when ``output`` (the node that takes its place)."""
        from onnx import helper

        out = m.output if output else m.prefix + name
        self.nodes.append(helper.make_node(kind, inputs, [out], name=m.prefix + name, **attrs))
        return out

    def constant_weight(self, node):
        """The initializer of a MatMul's 2-D constant weight, if it is large enough to quantize."""
        from edgebert.quantize.onnx_quant import MIN_ELEMENTS  # smaller products stay float, as there

        weight = self.inits.get(node.input[1]) if node.op_type == "MatMul" else None
        if weight is None or len(weight.dims) != 2 or np.prod(weight.dims) < MIN_ELEMENTS:
            return None
        return weight

    def quantize_weight(self, node, weight) -> _MatMul:
        """Replaces ``weight`` by int8, symmetric, one scale per output channel."""
        from onnx import numpy_helper

        w = numpy_helper.to_array(weight).astype(np.float32)
        w_scale = (np.maximum(np.abs(w).max(0), 1e-12) / 127.0).astype(np.float32)
        wq = np.clip(np.round(w / w_scale), -127, 127).astype(np.int8)
        self.graph.initializer.remove(weight)
        del self.inits[weight.name]
        return _MatMul(
            x=node.input[0],
            prefix=node.name,
            output=node.output[0],
            depth=int(w.shape[0]),
            weight=self.const(weight.name + "_int8", wq, np.int8),
            weight_scale=self.const(weight.name + "_scale", w_scale),
            colsum=self.const(weight.name + "_colsum", wq.astype(np.float32).sum(0) * w_scale),
            axes=self.const("row_int8/axes", [-1], np.int64),
            zero=self.const("row_int8/zero", 0.0),
            tiny=self.const("row_int8/tiny", 1e-30),
        )


def _normalized_rows_product(b: _Builder, m: _MatMul) -> None:
    """Rows divided by their peak magnitude, one dynamic scale for them all, peaks multiplied back."""
    peak = b.op(m, "ReduceMax", [b.op(m, "Abs", [m.x], "/abs"), m.axes], "/row_peak", keepdims=1)
    peak = b.op(m, "Max", [peak, m.tiny], "/row_peak_pos")
    unit = b.op(m, "Div", [m.x, peak], "/row_normalized")
    product = b.op(m, "DynamicQuantizeMatMul", [unit, m.weight, m.weight_scale], "/int8", domain="com.microsoft")
    b.op(m, "Mul", [product, peak], "/rescaled", output=True)


def _fixed_zero_point_product(b: _Builder, m: _MatMul, z: int) -> None:
    """A scale per row, one zero point ``z`` for the tensor, applied inside the integer product."""
    # Few nodes: at a small model's sizes each ONNX Runtime node costs more in dispatch than in
    # arithmetic.
    row_max = b.op(m, "ReduceMax", [m.x, m.axes], "/row_max", keepdims=1)
    top = b.op(m, "Mul", [row_max, b.const(f"row_int8/up{z}", 1.0 / (255 - z))], "/row_up")
    row_min = b.op(m, "ReduceMin", [m.x, m.axes], "/row_min", keepdims=1)
    bottom = b.op(m, "Mul", [row_min, b.const(f"row_int8/down{z}", -1.0 / z)], "/row_down")
    scale = b.op(m, "Max", [top, bottom, m.tiny], "/row_scale")
    # QuantizeLinear by blocks wants a zero point shaped like the scale: the scale itself
    # quantized at a huge step is 0, plus z, in one node.
    mid = b.const(f"row_int8/zero_point{z}", z, np.uint8)
    zp_row = b.op(m, "QuantizeLinear", [scale, b.const("row_int8/huge", 1e30), mid], "/row_zp")
    xq = b.op(m, "QuantizeLinear", [m.x, scale, zp_row], "/quantize", axis=-1, block_size=m.depth)
    inputs = [xq, m.weight, scale, m.weight_scale, mid]
    b.op(m, "MatMulIntegerToFloat", inputs, "/int8", output=True, domain="com.microsoft")


def _per_row_product(b: _Builder, m: _MatMul) -> None:
    """A scale and zero point per row; the zero point's share taken off the float product."""
    # The row's range, widened to hold 0 (so the zero point is a code); the top at least
    # `tiny`, so the span is never 0. Every node on these [.., 1] columns costs ONNX Runtime
    # a dispatch, more than its arithmetic: each step below is one node.
    hi = b.op(m, "Max", [b.op(m, "ReduceMax", [m.x, m.axes], "/row_max", keepdims=1), m.tiny], "/row_max0")
    lo = b.op(m, "Min", [b.op(m, "ReduceMin", [m.x, m.axes], "/row_min", keepdims=1), m.zero], "/row_min0")
    span = b.op(m, "Sub", [hi, lo], "/row_span")
    scale = b.op(m, "Mul", [span, b.const("row_int8/inv255", 1.0 / 255.0)], "/row_scale")
    # round(-lo / scale) as uint8 by QuantizeLinear (round half to even, as Round), and
    # zp * scale back by DequantizeLinear: two nodes where Div, Round, Cast and Mul were four.
    neg_lo = b.op(m, "Neg", [lo], "/row_neg_min")
    zp = b.op(m, "QuantizeLinear", [neg_lo, scale], "/row_zp", axis=-1, block_size=1)  # uint8, zero point 0
    xq = b.op(m, "QuantizeLinear", [m.x, scale, zp], "/quantize", axis=-1, block_size=m.depth)
    # (The dense bias stays a separate Add: given as this kernel's bias input next to a
    # per-row scale, ONNX Runtime 1.32 computed wrong results, pooled cosine 0.96.)
    inputs = [xq, m.weight, scale, m.weight_scale]
    product = b.op(m, "MatMulIntegerToFloat", inputs, "/int8", domain="com.microsoft")
    zp_value = b.op(m, "DequantizeLinear", [zp, scale], "/row_zp_value", axis=-1, block_size=1)
    shift = b.op(m, "Mul", [zp_value, m.colsum], "/zero_point_share")
    b.op(m, "Sub", [product, shift], "/dequantized", output=True)
