"""Recovering what a saved graph does not record (head count, activation) by running it.

A TF1 Hub module stores no head count and no SavedModel stores its activation; reading
them off a name would be a guess. Instead the candidates are run through the numpy BERT
on probe ids and compared with the source's own outputs; exactly one must match.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from edgebert.errors import SourceError
from edgebert.eval.metrics import FLOAT_TOLERANCE
from edgebert.model import numpy_bert
from edgebert.model.config import ACTIVATIONS, BertConfig


def probe_inputs(cfg: BertConfig, batch: int = 2, seq: int = 12, seed: int = 0):
    """Token ids that exercise padding, both segments and most of the vocab."""
    rng = np.random.default_rng(seed)
    seq = min(seq, cfg.max_position)
    ids = rng.integers(0, cfg.vocab_size, (batch, seq)).astype(np.int32)
    mask = np.ones((batch, seq), np.int32)
    mask[1:, seq * 2 // 3 :] = 0
    type_ids = np.zeros((batch, seq), np.int32)
    type_ids[:, seq // 2 :] = 1
    return ids, mask, type_ids


def output_max_abs(got: dict, expected: dict, mask) -> float:
    """Max-abs difference of pooled and sequence outputs (real tokens only)."""
    mask = np.asarray(mask).astype(bool)
    seq_err = np.abs(got["sequence_output"] - expected["sequence_output"])[mask].max()
    pooled_err = np.abs(got["pooled_output"] - expected["pooled_output"]).max()
    return float(max(seq_err, pooled_err))


def max_abs_vs_numpy(cfg: BertConfig, weights: dict, source_out: dict, inputs) -> float:
    return output_max_abs(numpy_bert.forward(cfg, weights, *inputs), source_out, inputs[1])


def identify(
    base: BertConfig, weights: dict, run_source: Callable, heads: list[int] | None = None, where: str = "source"
) -> BertConfig:
    """Returns ``base`` with the head count and activation that reproduce ``run_source``."""
    inputs = probe_inputs(base)
    out = run_source(*inputs)
    head_options = heads or [base.num_heads]
    tried = []
    for h in head_options:
        for act in ACTIVATIONS:
            cfg = dataclasses.replace(base, num_heads=h, activation=act)
            err = max_abs_vs_numpy(cfg, weights, out, inputs)
            tried.append(f"heads={h} {act}: {err:.2g}")
            if err <= FLOAT_TOLERANCE:
                return cfg
    raise SourceError(
        f"{where}: no standard BERT computation reproduces its outputs ({'; '.join(tried)})", "is it a BERT encoder?"
    )


def head_candidates(hidden: int) -> list[int]:
    """Divisors of ``hidden``, Google's 64-wide heads first."""
    divisors = [h for h in range(1, hidden + 1) if hidden % h == 0]
    first = [hidden // 64] if hidden % 64 == 0 else []
    return first + [h for h in divisors if h not in first]
