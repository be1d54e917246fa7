"""GPTQ rounding (Frantar et al., 2022) of the dense kernels onto their int8 grid, before the
converters quantize them.

Round-to-nearest per output channel leaves each weight's error independent of the others; GPTQ
rounds one input row of a kernel at a time and spreads that row's error over the rows not yet
rounded, weighted by how the layer's inputs correlate (``X^T X`` over calibration tokens), so
the errors cancel in ``x @ W`` instead of adding up. The result is written back as float
weights that lie exactly on the grid the converters use (symmetric int8, one scale per output
channel, ``max |w| / 127``): each column's largest weight is pinned at +-127 steps, so a
converter that recomputes the scale finds the same one and the same integers (TFLite's
dynamic-range quantizer and ``onnx_row_int8`` both do).

Measured on all-MiniLM-L6-v2 (NOTES.md, 2026-12-02, ONNX per-row int8, float pooler, 300
sentences): mean-pooled cosine 0.99942 (min 0.99715) against 0.99918 (min 0.99639)
round-to-nearest; weights alone 0.99981 against 0.99957.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from edgebert.model import numpy_bert
from edgebert.model.config import layer_names
from edgebert.model.source_model import SourceModel
from edgebert.quantize.smoothquant import GROUPS

MIN_ELEMENTS = 1024  # smaller kernels stay float in both formats (quantize.onnx_quant)
BLOCK = 128


def input_grams(src: SourceModel, batches) -> dict[str, np.ndarray]:
    """``X^T X`` over the real tokens of ``batches`` for the input of every layer's dense
    kernels (as they multiply them: after any smoothing scale), keyed by the group's
    ``*_smooth`` name of ``layer_names``."""
    grams: dict[str, np.ndarray] = {}
    for ids, mask, types in batches:
        numpy_bert.forward(src.config, src.weights, ids, mask, types, gram=grams, dtype=np.float32)
    return grams


def smooth_grams(grams: dict[str, np.ndarray], weights: dict) -> None:
    """Turns, in place, the ``X^T X`` of unsmoothed inputs into those of the inputs the kernels
    see once smoothing divides them (``weights[name]``, the per-channel ``1 / s``):
    ``diag(1/s) X^T X diag(1/s)``."""
    for name, g in grams.items():
        if name in weights:
            m = np.asarray(weights[name], g.dtype)
            g *= m[:, None]
            g *= m[None, :]


def gptq_int8(kernel: np.ndarray, gram: np.ndarray, damp: float) -> np.ndarray:
    """``kernel`` ``[in, out]`` (applied as ``x @ kernel``) rounded by GPTQ onto its symmetric
    int8 grid (per output channel, ``max |column| / 127``), returned as float32 grid values.

    Args:
      kernel: the float kernel.
      gram: ``X^T X`` of its inputs, ``[in, in]``.
      damp: added to the diagonal, as a fraction of its mean (keeps the inverse stable).
    """
    w = kernel.astype(np.float64)
    k = w.shape[0]
    step = np.maximum(np.abs(w).max(0), 1e-12) / 127.0
    top = np.abs(w).argmax(0)  # each column's largest weight: pinned at +-127 steps
    sign = np.sign(w[top, np.arange(w.shape[1])])
    h = gram.astype(np.float64)
    dead = np.diag(h) <= 0  # an input that never fired: its row cannot matter
    h[dead, dead] = 1.0
    h[np.diag_indices(k)] += damp * float(np.mean(np.diag(h)))
    u = _inverse_upper_factor(h)
    q = np.empty_like(w)
    # Rows in blocks (GPTQ's lazy batches): inside a block each row takes the earlier rows'
    # errors when its turn comes (one vector-matrix product), the rows after the block all of
    # them in one matrix product.
    for b0 in range(0, k, BLOCK):
        b1 = min(b0 + BLOCK, k)
        errors = np.empty((b1 - b0, w.shape[1]))
        for r in range(b0, b1):
            i = r - b0
            if i:  # the block's earlier errors, applied to this row only when it is reached
                w[r] -= u[b0:r, r] @ errors[:i]
            qr = np.clip(np.round(w[r] / step), -127, 127)
            pinned = top == r
            qr[pinned] = 127 * sign[pinned]
            q[r] = qr
            errors[i] = (w[r] - qr * step) / u[r, r]
        w[b1:] -= u[b0:b1, b1:].T @ errors
    return (q * step).astype(np.float32)


def _inverse_upper_factor(h: np.ndarray) -> np.ndarray:
    """The upper triangle of ``U`` with ``U^T U = h^-1`` (below it: unspecified): row r holds how row r's rounding error
    moves the later rows. From ``h = R R^T`` with ``R`` upper (the Cholesky factor of ``h``
    with its order reversed), ``U = R^-1``: two triangular steps instead of an inverse and a
    second factorisation (BERT-base: 24 s of 34 went to those)."""
    from scipy.linalg import lapack

    lower, info = lapack.dpotrf(h[::-1, ::-1], lower=1)
    if info:
        raise ValueError(f"X^T X is not positive definite (LAPACK dpotrf info {info})")
    # Reversed, the factor's lower triangle is R's upper one, the only part dtrtri reads; the
    # other triangle of its result is left over, and gptq_int8 reads only the upper one.
    u, info = lapack.dtrtri(lower[::-1, ::-1], lower=0)
    if info:
        raise ValueError(f"singular factor (LAPACK dtrtri info {info})")
    return u


def round_weights(src: SourceModel, grams: dict[str, np.ndarray], damp: float) -> SourceModel:
    """A copy of ``src`` with every layer's dense kernels rounded by ``gptq_int8``; kernels that
    share an input (Q, K, V) are rounded together against that input's ``X^T X``. Each entry
    of ``grams`` is dropped once used (BERT-large's FFN-out statistics are 64 MB a layer)."""
    w = dict(src.weights)
    for i in range(src.config.num_layers):
        n = layer_names(i)
        for key, kernels in GROUPS.values():
            names = [n[k] for k in kernels if w[n[k]].size >= MIN_ELEMENTS]
            if not names:
                continue
            joined = np.concatenate([w[m] for m in names], axis=1)
            rounded = gptq_int8(joined, grams.pop(n[key]), damp)
            for m, part in zip(names, np.split(rounded, np.cumsum([w[m].shape[1] for m in names])[:-1], axis=1)):
                w[m] = part
    return dataclasses.replace(src, weights=w)
