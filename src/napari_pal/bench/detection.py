"""Detection of the corrupted training masks in a benchmark run, in sample and out of fold.

In sample: the run's final model predicts the very images it was trained on, as the product
does when it scores a folder. Out of fold: K models of the same strategy, each trained on the
other folds, predict their held-out fold, so no image is judged by a model that saw its
mask; cleanlab's rank functions assume such out-of-sample probabilities. Both ways, every
score (napari-pal's quality, the QAM's, cleanlab's softmin) comes from the same predictions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from napari_pal.data.trainset import TrainingSet


def _predict(model, data: TrainingSet, idx: Sequence[int], batch: int = 16
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """quality, QAM score (nan without a QAM) and probabilities of ``data[idx]``."""
    import torch

    from napari_pal.scoring.quality import score_from_grid

    quality, qam, probs_all = [], [], []
    idx = list(idx)
    for start in range(0, len(idx), batch):
        part = torch.as_tensor(idx[start:start + batch])
        probs, t = model.predict_grid(data.images[part], data.masks[part])
        masks = data.masks[part].numpy()
        for k, i in enumerate(part.tolist()):
            s = score_from_grid(data.names[i], model.classes, masks[k], probs[k],
                                data.frames[i].scale, None if t is None else float(t[k]),
                                model.config.lam)
            quality.append(s.quality)
            qam.append(s.signals.get("qam", np.nan))
        probs_all.append(probs)
    return np.asarray(quality), np.asarray(qam), np.concatenate(probs_all)


def _metrics(data: TrainingSet, bad: set[str], quality: np.ndarray, qam: np.ndarray,
             probs: np.ndarray, suffix: str = "") -> dict[str, float]:
    from napari_pal.scoring.detection import cleanlab_quality, detection_metrics

    is_bad = np.array([n in bad for n in data.names])
    scores = {"quality": -quality, "qam": -qam,
              "cleanlab": -cleanlab_quality(data.masks.numpy(), probs)}
    out = {}
    for name, s in scores.items():
        none = np.isnan(s).all()  # baseline: no quality module
        for m, v in detection_metrics(is_bad, s).items():
            out[f"{m}_{name}{suffix}"] = float("nan") if none else v
    return out


def detect_in_sample(model, data: TrainingSet, bad: set[str]) -> dict[str, float]:
    """Metrics of the three scores from the final model's predictions of its own training set."""
    return _metrics(data, bad, *_predict(model, data, range(len(data))))


def subset(data: TrainingSet, idx: Sequence[int]) -> TrainingSet:
    idx = list(idx)
    return TrainingSet(names=[data.names[i] for i in idx], classes=list(data.classes),
                       frames=[data.frames[i] for i in idx], images=data.images[idx],
                       masks=data.masks[idx])


def fold_indices(n: int, folds: int, seed: int) -> list[np.ndarray]:
    """K disjoint, seeded folds covering range(n)."""
    order = np.random.default_rng(seed + 7_777).permutation(n)
    return [np.sort(p) for p in np.array_split(order, folds)]


def detect_out_of_fold(data: TrainingSet, bad: set[str], folds: int, seed: int,
                       train_fold: Callable[[TrainingSet, Path], object], run_dir: Path
                       ) -> dict[str, float]:
    """Metrics (suffix ``_oof``) from K-fold out-of-sample predictions.

    ``train_fold(training_subset, fold_dir)`` trains one model of the run's strategy and
    settings and returns it loaded (a ``TrainedModel``).
    """
    n = len(data)
    quality, qam = np.full(n, np.nan), np.full(n, np.nan)
    probs = None
    for f, held in enumerate(fold_indices(n, folds, seed)):
        keep = np.setdiff1d(np.arange(n), held)
        model = train_fold(subset(data, keep), Path(run_dir) / f"fold{f + 1}of{folds}")
        q, t, p = _predict(model, data, held)
        if probs is None:
            probs = np.zeros((n, *p.shape[1:]), np.float32)
        quality[held], qam[held], probs[held] = q, t, p
    return _metrics(data, bad, quality, qam, probs, suffix="_oof")


__all__ = ["detect_in_sample", "detect_out_of_fold", "fold_indices", "subset"]
