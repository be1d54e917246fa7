"""Word embeddings as int8 with one float scale per row.

The embedding table is the largest tensor of a small BERT (30522 x 384 floats: half of
all-MiniLM-L6-v2). Quantizing it per row keeps every token's vector to within 0.4% of its
own range; the graph gathers int8 rows and scales them (``encoder_graph``), so nothing
dequantizes the whole table at run time. Used where the converter would leave the table
float (ai-edge-quantizer, ONNX Runtime's MatMulNBits).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from edgebert.model.config import EMBEDDING_NAMES
from edgebert.model.source_model import SourceModel

INT8 = EMBEDDING_NAMES["word"] + "_int8"
SCALE = EMBEDDING_NAMES["word"] + "_scale"


def int8_rows(src: SourceModel) -> SourceModel:
    """Returns a copy of ``src`` whose word embeddings are int8 rows plus per-row scales."""
    w = dict(src.weights)
    table = w.pop(EMBEDDING_NAMES["word"]).astype(np.float32)
    scale = np.maximum(np.abs(table).max(axis=1), 1e-12) / 127.0
    w[INT8] = np.clip(np.round(table / scale[:, None]), -127, 127).astype(np.int8)
    w[SCALE] = scale.astype(np.float32)[:, None]
    return dataclasses.replace(src, weights=w)
