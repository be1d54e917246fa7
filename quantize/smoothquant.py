"""SmoothQuant (Xiao et al., 2022) for BERT: per-channel activation scales calibrated on text.

BERT's LayerNorm outputs carry a few outlier channels. With int8 activations quantized
per tensor or per token, those channels take the whole range and the rest lose precision.
Dividing each input channel by ``s_j = max|X_j|^a / max|W_j|^(1-a)`` and multiplying the
kernel rows by ``s_j`` leaves the float result unchanged and balances the two ranges.
The division is an explicit per-channel MUL in the graph (the ``*_smooth`` weights),
because Q/K/V and the FFN input also feed residual connections.

Measured on all-MiniLM-L6-v2 (benchmarks/quantization_accuracy.py): dynamic-range int8
TFLite went from cosine 0.9982 to 0.9993 (pooled) with a=0.5 on the Q/K/V and FFN-in
inputs; smoothing the attention-output and FFN-output inputs as well made ONNX worse.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from edgebert.model import numpy_bert
from edgebert.model.config import layer_names
from edgebert.model.source_model import SourceModel

# Which dense inputs can be smoothed, and the kernels that read each of them.
GROUPS = {
    "qkv": ("qkv_smooth", ("q_w", "k_w", "v_w")),
    "ffn_in": ("ffn_smooth", ("i_w",)),
    "attn_out": ("o_smooth", ("o_w",)),
    "ffn_out": ("out_smooth", ("out_w",)),
}


def activation_ranges(src: SourceModel, batches, grams: dict | None = None) -> dict[str, np.ndarray]:
    """Per-channel max-abs of every dense input over real tokens of ``batches``; with a
    ``grams`` dict, each input's ``X^T X`` too (``numpy_bert.forward``'s ``gram``), in the
    same pass."""
    record: dict[str, np.ndarray] = {}
    for ids, mask, types in batches:
        numpy_bert.forward(src.config, src.weights, ids, mask, types, record=record, dtype=np.float32, gram=grams)
    return record


def smooth(
    src: SourceModel, ranges: dict[str, np.ndarray], alpha: float, layers: tuple[str, ...] = ("qkv", "ffn_in")
) -> SourceModel:
    """Returns a copy of ``src`` with smoothing scales folded in (float output unchanged)."""
    w = dict(src.weights)
    for i in range(src.config.num_layers):
        n = layer_names(i)
        for group in layers:
            key, kernels = GROUPS[group]
            x_max = np.maximum(ranges[n[key]], 1e-5)
            w_max = np.maximum(np.abs(np.concatenate([w[n[k]] for k in kernels], axis=1)).max(axis=1), 1e-5)
            s = np.clip(x_max**alpha / w_max ** (1.0 - alpha), 1e-5, 1e5)
            w[n[key]] = (1.0 / s).astype(np.float32)
            for k in kernels:
                w[n[k]] = (w[n[k]] * s[:, None]).astype(np.float32)
    return dataclasses.replace(src, weights=w)
