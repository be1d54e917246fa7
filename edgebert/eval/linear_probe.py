"""Logistic regression on frozen embeddings (numpy only).

Used by ``edgebert verify`` (task agreement between reference and bundle embeddings) and by
``edgebert android`` (a classifier head trained on the encoder's embeddings).
"""

from __future__ import annotations

import numpy as np

# Inputs are standardised; the L2 strength is picked on a held-out split, since 384-1024
# features overfit a few hundred sentences, and an under-regularised probe also amplifies
# small embedding differences into flipped decisions.
L2_GRID = (1e-3, 1e-2, 1e-1, 1.0)
SPLIT = 0.8


def fit(x: np.ndarray, y: np.ndarray, l2: float, steps: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression; returns (kernel [F, C], bias [C]) for raw inputs
    (the standardisation is folded in)."""
    x = x.astype(np.float64)
    mu, sd = x.mean(0), x.std(0) + 1e-6
    z = (x - mu) / sd
    k = int(y.max()) + 1
    w, b = np.zeros((z.shape[1], k)), np.zeros(k)
    onehot = np.eye(k)[y]
    for _ in range(steps):
        logits = z @ w + b
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        g = (p - onehot) / len(z)
        lr = 0.5 / (1.0 + l2)  # a larger step diverges once the L2 term dominates
        w -= lr * (z.T @ g + l2 * w)
        b -= lr * g.sum(0)
    return (w / sd[:, None]).astype(np.float32), (b - (mu / sd) @ w).astype(np.float32)


def predict(kernel: np.ndarray, bias: np.ndarray, x: np.ndarray) -> np.ndarray:
    return (x.astype(np.float64) @ kernel + bias).argmax(1)


def split(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    cut = int(n * SPLIT)
    return order[:cut], order[cut:]


def select_l2(x: np.ndarray, y: np.ndarray) -> float:
    """The ``L2_GRID`` value that scores best on an inner 80/20 split of (x, y) (ties: the larger)."""
    y = np.asarray(y)
    inner_train, inner_held = split(len(y), 1)
    scores = {}
    for l2 in L2_GRID:
        k, b = fit(x[inner_train], y[inner_train], l2)
        scores[l2] = float((predict(k, b, x[inner_held]) == y[inner_held]).mean())
    return max(L2_GRID, key=lambda v: (scores[v], v))


def select_and_fit(x: np.ndarray, y: np.ndarray) -> dict:
    """Picks L2 on an 80/20 split of (x, y); returns the fit on the 80% and the held-out score."""
    y = np.asarray(y)
    train, held = split(len(y))
    best = select_l2(x[train], y[train])
    kernel, bias = fit(x[train], y[train], best)
    return {
        "kernel": kernel,
        "bias": bias,
        "l2": best,
        "train": train,
        "held": held,
        "held_out_accuracy": float((predict(kernel, bias, x[held]) == y[held]).mean()),
    }


def wilson_upper(p: float, n: int, z: float = 1.645) -> float:
    """Upper end of the one-sided 95% Wilson interval of a proportion ``p`` seen on ``n`` items."""
    if n == 0:
        return 1.0
    den = 1 + z * z / n
    centre = p + z * z / (2 * n)
    return float((centre + z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))) / den)
