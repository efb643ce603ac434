"""Review effort: how many masks an annotator opens, in a given order, to find the bad ones.

ROC AUC says how well a score ranks; an annotator asks how many masks to review before 50,
90 or 100 % of the bad ones are found. Orders follow detection.py's convention: HIGHER
score = reviewed EARLIER (more likely bad); ties keep the folder's order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

SHARES = (0.5, 0.9, 1.0)


def found_curve(is_bad, score) -> np.ndarray:
    """found[k] = bad masks among the first k reviewed (k = 0..N), in ``score`` order."""
    y = np.asarray(is_bad, bool).ravel()
    s = np.asarray(score, np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"{y.size} labels but {s.size} scores")
    s = np.where(np.isnan(s), -np.inf, s)
    order = np.argsort(-s, kind="mergesort")
    return np.r_[0, np.cumsum(y[order])]


def reviews_to_find(is_bad, score, shares: Sequence[float] = SHARES) -> dict[float, int]:
    """share -> masks reviewed until ceil(share * bad) of the bad masks are found."""
    curve = found_curve(is_bad, score)
    total = int(curve[-1])
    return {sh: int(np.searchsorted(curve, math.ceil(sh * total))) for sh in shares}


def random_reviews(n_bad: int, n: int, shares: Sequence[float] = SHARES) -> dict[float, float]:
    """share -> expected masks reviewed in a random order: the m-th of P bad masks among N
    lies on average at position m (N + 1) / (P + 1)."""
    return {sh: math.ceil(sh * n_bad) * (n + 1) / (n_bad + 1) for sh in shares}


def plot_effort(is_bad, scores: dict[str, np.ndarray], path, title: str = "",
                unit: str = "masks") -> None:
    """Share of bad ``unit`` found against ``unit`` reviewed, one line per order, plus
    the random order's expectation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from napari_pal.atomic import atomic_path

    y = np.asarray(is_bad, bool)
    n, p = y.size, int(y.sum())
    fig, ax = plt.subplots(figsize=(5.5, 4))
    k = np.arange(n + 1)
    widths = np.linspace(4.0, 1.2, max(len(scores), 2))  # later lines thinner: curves
    for (name, s), lw in zip(scores.items(), widths):  # that coincide stay visible
        ax.plot(k, found_curve(y, s) / max(p, 1), label=name, lw=lw)
    ax.plot(k, k / n, "k--", label="random order (expected)")
    ax.axvline(p, color="grey", lw=0.5)
    ax.set_xlabel(f"{unit} reviewed")
    ax.set_ylabel(f"share of bad {unit} found")
    ax.set_title(title or f"{p} bad of {n}")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


__all__ = ["SHARES", "found_curve", "plot_effort", "random_reviews", "reviews_to_find"]
