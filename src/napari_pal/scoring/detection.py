"""How well a per-image score finds the corrupted masks: ROC AUC, AP, precision at k.

Scores follow one convention here: HIGHER = MORE LIKELY CORRUPTED (pass ``-quality`` for a
quality score where higher is better). Plain numpy, checked against scikit-learn in the tests.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import rankdata


def _check(is_bad, score) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(is_bad, bool).ravel()
    s = np.asarray(score, np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"{y.size} labels but {s.size} scores")
    # an infinite distance ranks above every finite one; NaN ranks lowest
    s = np.where(np.isnan(s), -np.inf, s)
    return y, s


def roc_auc(is_bad, score) -> float:
    """Probability that a random corrupted image outscores a random clean one (ties: 1/2).

    NaN where one of the two groups is empty.
    """
    y, s = _check(is_bad, score)
    pos, neg = int(y.sum()), int((~y).sum())
    if pos == 0 or neg == 0:
        return math.nan
    ranks = rankdata(s)  # average ranks handle ties
    return float((ranks[y].sum() - pos * (pos + 1) / 2) / (pos * neg))


def average_precision(is_bad, score) -> float:
    """Mean over corrupted images of the precision at each one's threshold (sklearn's AP,
    step-wise, tied scores counted together)."""
    y, s = _check(is_bad, score)
    pos = int(y.sum())
    if pos == 0:
        return math.nan
    order = np.argsort(-s, kind="mergesort")
    y, s = y[order], s[order]
    # one threshold per distinct score: the last index of each tie group
    last = np.r_[np.nonzero(s[1:] != s[:-1])[0], len(s) - 1]
    tp = np.cumsum(y)[last]
    precision = tp / (last + 1)
    recall = tp / pos
    prev = np.r_[0.0, recall[:-1]]
    return float(np.sum((recall - prev) * precision))


def precision_at_k(is_bad, score, k: int | None = None) -> float:
    """Fraction of corrupted images among the k highest scores; k defaults to the number
    of corrupted images (then it equals recall at k). Ties at the cut are broken by order."""
    y, s = _check(is_bad, score)
    k = int(y.sum()) if k is None else int(k)
    if k <= 0:
        return math.nan
    top = np.argsort(-s, kind="mergesort")[:k]
    return float(y[top].mean())


def detection_metrics(is_bad, score) -> dict[str, float]:
    """{'auc', 'ap', 'p_at_k'} for one score."""
    return {"auc": roc_auc(is_bad, score), "ap": average_precision(is_bad, score),
            "p_at_k": precision_at_k(is_bad, score)}


def cleanlab_quality(masks: np.ndarray, probs: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """cleanlab's per-image label quality (softmin; higher = better) for overlapping classes.

    ``masks`` (N, C, H, W) given binary masks, ``probs`` (N, C, H, W) predicted probabilities
    of the same images. Each class is scored as its own two-class problem, labels in {0, 1}
    and pred_probs = [1 - p, p]; the per-image scores are averaged over the classes.
    """
    from cleanlab.segmentation.rank import get_label_quality_scores

    masks = np.asarray(masks).astype(bool)
    probs = np.clip(np.asarray(probs, np.float32), 0.0, 1.0)
    if masks.shape != probs.shape or masks.ndim != 4:
        raise ValueError(f"masks {masks.shape} and probs {probs.shape} must both be (N, C, H, W)")
    per_class = []
    for c in range(masks.shape[1]):
        labels = masks[:, c].astype(np.int64)
        p = probs[:, c]
        two = np.stack([1.0 - p, p], axis=1)
        scores, _ = get_label_quality_scores(labels, two, method="softmin",
                                             batch_size=batch_size, verbose=False)
        per_class.append(np.asarray(scores, np.float64))
    return np.mean(per_class, axis=0)


__all__ = ["average_precision", "cleanlab_quality", "detection_metrics", "precision_at_k",
           "roc_auc"]
