"""Agreement between an export and its reference: what the export gate and verify report."""

from __future__ import annotations

import numpy as np


def mean_pool(sequence: np.ndarray, mask: np.ndarray) -> np.ndarray:
    m = mask[:, :sequence.shape[1], None].astype(np.float64)
    return (sequence * m).sum(1) / np.maximum(m.sum(1), 1.0)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    den = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    return (a * b).sum(-1) / np.maximum(den, 1e-30)


def summary(values: np.ndarray) -> dict:
    return {"mean": float(values.mean()), "min": float(values.min()),
            "p1": float(np.percentile(values, 1)), "p50": float(np.percentile(values, 50))}


def compare(got: dict, ref: dict, mask: np.ndarray) -> dict:
    """Cosine and max-abs of pooled, mean-pooled and per-token sequence outputs."""
    width = min(got["sequence_output"].shape[1], ref["sequence_output"].shape[1])
    m = mask[:, :width].astype(bool)
    gs, rs = got["sequence_output"][:, :width], ref["sequence_output"][:, :width]
    return {
        "pooled_output": {"cosine": summary(cosine(got["pooled_output"], ref["pooled_output"])),
                          "max_abs": float(np.abs(got["pooled_output"] - ref["pooled_output"]).max())},
        "mean_pooled": {"cosine": summary(cosine(mean_pool(gs, m), mean_pool(rs, m)))},
        "sequence_output": {"cosine": summary(cosine(gs[m], rs[m])),
                            "max_abs": float(np.abs(gs[m] - rs[m]).max())},
        "n": int(len(mask)),
    }


def gate(result: dict, thresholds: dict, outputs: tuple[str, ...] = ("pooled_output", "mean_pooled")) -> list[str]:
    """Threshold misses as sentences (empty when the recipe's thresholds hold) for ``outputs``."""
    misses = []
    for output in outputs:
        c = result[output]["cosine"]
        if c["mean"] < thresholds["cosine_mean"]:
            misses.append(f"{output} mean cosine {c['mean']:.5f} < {thresholds['cosine_mean']}")
        if c["min"] < thresholds["cosine_min"]:
            misses.append(f"{output} min cosine {c['min']:.5f} < {thresholds['cosine_min']}")
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
    return {"max_abs": float(np.abs(np.asarray(got, np.float64) - ref).max()),
            "decision_agreement": float(agree.mean()), "n": int(len(agree)), "disagreements": int((~agree).sum())}


def gate_scores(result: dict, thresholds: dict) -> list[str]:
    """Fails only when even the 95% upper bound of the agreement is under the recipe's bar:
    on a few dozen held-out sentences one flipped borderline decision is noise."""
    from edgebert.linear_probe import wilson_upper

    bar = thresholds.get("agreement_min")
    if bar is None or wilson_upper(result["decision_agreement"], result["n"]) >= bar:
        return []
    return [f"classifier decisions agree on {result['decision_agreement']:.4f} of {result['n']} sentences < {bar}"]
