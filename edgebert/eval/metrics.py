"""Agreement between an export and its reference: what the export gate and verify report."""

from __future__ import annotations

import numpy as np


def mean_pool(sequence: np.ndarray, mask: np.ndarray) -> np.ndarray:
    m = mask[:, : sequence.shape[1], None].astype(np.float64)
    return (sequence * m).sum(1) / np.maximum(m.sum(1), 1.0)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    den = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    return (a * b).sum(-1) / np.maximum(den, 1e-30)


PERCENTILES = (1, 5, 50)
# The largest difference a float conversion may show against what it reproduces (reference vs
# source, fused vs unfused graph, scores vs the SavedModel's): numerics, not quantization.
FLOAT_TOLERANCE = 1e-4


def summary(values: np.ndarray) -> dict:
    return {
        "mean": float(values.mean()),
        "min": float(values.min()),
        **{f"p{p}": float(np.percentile(values, p)) for p in PERCENTILES},
    }


def error_stats(got: np.ndarray, ref: np.ndarray) -> dict:
    """Row by row (sentences, or tokens): cosine (mean, min, percentiles), the largest absolute
    difference, and the relative error ||got - ref|| / ||ref||."""
    rel = np.linalg.norm(got - ref, axis=-1) / np.maximum(np.linalg.norm(ref, axis=-1), 1e-12)
    return {
        "cosine": summary(cosine(got, ref)),
        "max_abs": float(np.abs(got - ref).max()),
        "relative_error": {"mean": float(rel.mean()), "max": float(rel.max())},
    }


def _aligned(got: dict, ref: dict, mask: np.ndarray):
    """Both sequence outputs cut to the narrower width, and the real-token mask for it."""
    width = min(got["sequence_output"].shape[1], ref["sequence_output"].shape[1])
    m = mask[:, :width].astype(bool)
    return got["sequence_output"][:, :width], ref["sequence_output"][:, :width], m


def compare(got: dict, ref: dict, mask: np.ndarray) -> dict:
    """``error_stats`` of the pooled output, the mean-pooled sequence and the sequence output at
    real tokens: the one comparison of the export gate, verify and the benchmarks."""
    gs, rs, m = _aligned(got, ref, mask)
    return {
        "pooled_output": error_stats(got["pooled_output"], ref["pooled_output"]),
        "mean_pooled": error_stats(mean_pool(gs, m), mean_pool(rs, m)),
        "sequence_output": error_stats(gs[m], rs[m]),
        "n": int(len(mask)),
    }


def sentence_cosines(got: dict, ref: dict, mask: np.ndarray) -> dict[str, np.ndarray]:
    """Each sentence's cosine of the pooled and the mean-pooled output (for plots)."""
    gs, rs, m = _aligned(got, ref, mask)
    return {
        "pooled_output": cosine(got["pooled_output"], ref["pooled_output"]),
        "mean_pooled": cosine(mean_pool(gs, m), mean_pool(rs, m)),
    }


def gate(result: dict, thresholds: dict, outputs: tuple[str, ...] = ("pooled_output", "mean_pooled")) -> list[str]:
    """Threshold misses as sentences (empty when the recipe's thresholds hold) for ``outputs``:
    cosine mean and min, and the largest difference where the recipe sets ``max_abs`` (fp32)."""
    misses = []
    for output in outputs:  # cosine first: the primary check, and the first reason a report names
        c = result[output]["cosine"]
        if c["mean"] < thresholds["cosine_mean"]:
            misses.append(f"{output} mean cosine {c['mean']:.5f} < {thresholds['cosine_mean']}")
        if c["min"] < thresholds["cosine_min"]:
            misses.append(f"{output} min cosine {c['min']:.5f} < {thresholds['cosine_min']}")
    for output in outputs:
        if "max_abs" in thresholds and result[output]["max_abs"] > thresholds["max_abs"]:
            misses.append(f"{output} max-abs {result[output]['max_abs']:.2e} > {thresholds['max_abs']:g}")
    return misses


def probabilities(scores: np.ndarray, activation: str) -> np.ndarray:
    """Class probabilities ``[n, classes]`` from a classifier head's scores.

    Raw logits (``none``) go through sigmoid (one unit) or softmax; a one-unit head is a
    binary classifier, so it gives two columns ``[1 - p, p]``.
    """
    s = np.asarray(scores, np.float64).reshape(len(scores), -1)
    if activation == "none":
        if s.shape[1] == 1:
            s = 1.0 / (1.0 + np.exp(-s))
        else:
            e = np.exp(s - s.max(1, keepdims=True))
            s = e / e.sum(1, keepdims=True)
    return np.concatenate([1.0 - s, s], axis=1) if s.shape[1] == 1 else s


def compare_scores(got: np.ndarray, ref: np.ndarray, activation: str) -> dict:
    """Max-abs difference of classifier scores and the share of identical decisions."""
    agree = probabilities(got, activation).argmax(1) == probabilities(ref, activation).argmax(1)
    return {
        "max_abs": float(np.abs(np.asarray(got, np.float64) - ref).max()),
        "decision_agreement": float(agree.mean()),
        "n": int(len(agree)),
        "disagreements": int((~agree).sum()),
    }


def gate_scores(result: dict, thresholds: dict) -> list[str]:
    """Fails only when even the 95% upper bound of the agreement is under the recipe's bar:
    on a few dozen held-out sentences one flipped borderline decision is noise."""
    from edgebert.eval.linear_probe import wilson_upper

    misses = []
    if "max_abs" in thresholds and result["max_abs"] > thresholds["max_abs"]:
        misses.append(f"classifier scores max-abs {result['max_abs']:.2e} > {thresholds['max_abs']:g}")
    bar = thresholds.get("agreement_min")
    if bar is not None and wilson_upper(result["decision_agreement"], result["n"]) < bar:
        misses.append(
            f"classifier decisions agree on {result['decision_agreement']:.4f} of {result['n']} sentences < {bar}"
        )
    return misses
