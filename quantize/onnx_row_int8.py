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

from pathlib import Path

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
    """
    import re

    from onnx import helper, numpy_helper

    from edgebert.quantize.onnx_quant import MIN_ELEMENTS  # smaller products stay float, as there

    g = model.graph
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            o.version = max(o.version, OPSET)
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    model.ir_version = max(model.ir_version, 10)
    inits = {i.name: i for i in g.initializer}
    nodes: list = []

    def const(name: str, value, dtype=np.float32) -> str:
        if name not in inits:
            inits[name] = numpy_helper.from_array(np.asarray(value, dtype), name)
            g.initializer.append(inits[name])
        return name

    for node in g.node:
        weight = inits.get(node.input[1]) if node.op_type == "MatMul" else None
        if (
            weight is None
            or len(weight.dims) != 2
            or np.prod(weight.dims) < MIN_ELEMENTS
            or any(e in node.name for e in exclude)
            or (float_products and re.search(float_products, node.name))
        ):
            nodes.append(node)
            continue
        w = numpy_helper.to_array(weight).astype(np.float32)
        w_scale = (np.maximum(np.abs(w).max(0), 1e-12) / 127.0).astype(np.float32)
        wq = np.clip(np.round(w / w_scale), -127, 127).astype(np.int8)
        g.initializer.remove(weight)
        del inits[weight.name]
        wq_name = const(weight.name + "_int8", wq, np.int8)
        ws_name = const(weight.name + "_scale", w_scale)
        colsum = const(weight.name + "_colsum", wq.astype(np.float32).sum(0) * w_scale)
        x, p = node.input[0], node.name

        def op(kind: str, inputs: list[str], name: str, domain: str | None = None, prefix: str = p, **attrs) -> str:
            nodes.append(helper.make_node(kind, inputs, [prefix + name], name=prefix + name, domain=domain, **attrs))
            return prefix + name

        axes = const("row_int8/axes", [-1], np.int64)
        zero = const("row_int8/zero", 0.0)
        tiny = const("row_int8/tiny", 1e-30)
        z = next((int(zp) for pattern, zp in fixed_zero_points or () if re.search(pattern, p)), None)
        if normalized_rows and re.search(normalized_rows, p):
            peak = op("ReduceMax", [op("Abs", [x], "/abs"), axes], "/row_peak", keepdims=1)
            peak = op("Max", [peak, tiny], "/row_peak_pos")
            unit = op("Div", [x, peak], "/row_normalized")
            product = op("DynamicQuantizeMatMul", [unit, wq_name, ws_name], "/int8", domain="com.microsoft")
            nodes.append(helper.make_node("Mul", [product, peak], [node.output[0]], name=p + "/rescaled"))
            continue
        if z is not None:
            # Few nodes: at a small model's sizes each ONNX Runtime node costs more in dispatch
            # than in arithmetic.
            top = op(
                "Mul",
                [op("ReduceMax", [x, axes], "/row_max", keepdims=1), const(f"row_int8/up{z}", 1.0 / (255 - z))],
                "/row_up",
            )
            bottom = op(
                "Mul",
                [op("ReduceMin", [x, axes], "/row_min", keepdims=1), const(f"row_int8/down{z}", -1.0 / z)],
                "/row_down",
            )
            scale = op("Max", [top, bottom, tiny], "/row_scale")
            # QuantizeLinear by blocks wants a zero point shaped like the scale: the scale itself
            # quantized at a huge step is 0, plus z, in one node.
            mid = const(f"row_int8/zero_point{z}", z, np.uint8)
            zp_row = op("QuantizeLinear", [scale, const("row_int8/huge", 1e30), mid], "/row_zp")
            xq = op("QuantizeLinear", [x, scale, zp_row], "/quantize", axis=-1, block_size=int(w.shape[0]))
            nodes.append(
                helper.make_node(
                    "MatMulIntegerToFloat",
                    [xq, wq_name, scale, ws_name, mid],
                    [node.output[0]],
                    name=p + "/int8",
                    domain="com.microsoft",
                )
            )
            continue
        # The row's range, widened to hold 0 (so the zero point is a code); the top at least
        # `tiny`, so the span is never 0. Every node on these [.., 1] columns costs ONNX Runtime
        # a dispatch, more than its arithmetic: each step below is one node.
        hi = op("Max", [op("ReduceMax", [x, axes], "/row_max", keepdims=1), tiny], "/row_max0")
        lo = op("Min", [op("ReduceMin", [x, axes], "/row_min", keepdims=1), zero], "/row_min0")
        scale = op("Mul", [op("Sub", [hi, lo], "/row_span"), const("row_int8/inv255", 1.0 / 255.0)], "/row_scale")
        # round(-lo / scale) as uint8 by QuantizeLinear (round half to even, as Round), and
        # zp * scale back by DequantizeLinear: two nodes where Div, Round, Cast and Mul were four.
        zp = op(
            "QuantizeLinear",
            [op("Neg", [lo], "/row_neg_min"), scale],  # no zero point given: uint8, zero point 0
            "/row_zp",
            axis=-1,
            block_size=1,
        )
        xq = op("QuantizeLinear", [x, scale, zp], "/quantize", axis=-1, block_size=int(w.shape[0]))
        # (The dense bias stays a separate Add: given as this kernel's bias input next to a
        # per-row scale, ONNX Runtime 1.32 computed wrong results, pooled cosine 0.96.)
        product = op("MatMulIntegerToFloat", [xq, wq_name, scale, ws_name], "/int8", domain="com.microsoft")
        zp_value = op("DequantizeLinear", [zp, scale], "/row_zp_value", axis=-1, block_size=1)
        shift = op("Mul", [zp_value, colsum], "/zero_point_share")
        nodes.append(helper.make_node("Sub", [product, shift], [node.output[0]], name=p + "/dequantized"))
    del g.node[:]
    g.node.extend(nodes)
