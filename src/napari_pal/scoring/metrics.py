"""Segmentation accuracy: Dice per class of predicted masks against reference masks."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_pal.data import imagefiles
from napari_pal.data.dataset import MASK_SUFFIXES, Dataset, Item, Layout
from napari_pal.errors import DatasetError


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two binary masks; 1 when both are empty (nothing to find, nothing found)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2.0 * np.logical_and(a, b).sum() / total)


def mirror_item(pred_root: Path, ref: Dataset, item: Item) -> Item:
    """The prediction files that stand where ``item``'s masks stand in the reference."""
    found, missing = [], []
    for path in item.mask_paths:
        rel = path.relative_to(ref.root)
        cands = [pred_root / rel.with_suffix(s) for s in MASK_SUFFIXES]
        hit = next((c for c in cands if c.is_file()), None)
        (found if hit else missing).append(hit or pred_root / rel)
    if missing:
        raise DatasetError(f"prediction missing: {', '.join(map(str, missing))}. Fix: run "
                           f"'napari-pal predict RUN {ref.root} --out {pred_root}' first")
    return Item(item.name, item.image_path, tuple(found))


@dataclass
class Evaluation:
    classes: list[str]
    names: list[str]
    scores: np.ndarray  # (N, C)

    @property
    def per_class(self) -> dict[str, float]:
        return dict(zip(self.classes, self.scores.mean(axis=0).tolist()))

    @property
    def mean(self) -> float:
        return float(self.scores.mean())

    def table(self) -> str:
        head = " | ".join(["", *self.classes, "mean"])
        vals = " | ".join(["Dice", *(f"{v:.4f}" for v in self.per_class.values()),
                           f"{self.mean:.4f}"])
        n = len(self.names)
        return f"{n} image{'' if n == 1 else 's'}\n{head}\n{vals}"

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["name", *(f"dice_{c}" for c in self.classes), "dice_mean"])
        for name, row in zip(self.names, self.scores):
            w.writerow([name, *(f"{v:.6f}" for v in row), f"{row.mean():.6f}"])
        w.writerow(["MEAN", *(f"{v:.6f}" for v in self.per_class.values()), f"{self.mean:.6f}"])
        return buf.getvalue()


def evaluate(pred_root: Path, ref: Dataset) -> Evaluation:
    """Dice per image and class of PRED (masks in REF's layout) against REF."""
    pred_root = Path(pred_root)
    rows = []
    for i, item in enumerate(ref.items):
        truth = ref.read_masks(i)
        p_item = mirror_item(pred_root, ref, item)
        pred_ds = Dataset(pred_root, ref.layout, ref.classes, [p_item])
        pred = pred_ds.read_stored_masks(0)
        if pred.shape[1:] != truth.shape[1:]:
            pred = imagefiles.resample_masks(pred, truth.shape[1:]) \
                if imagefiles.resample_factor_ok(pred.shape[1:], truth.shape[1:]) else None
            if pred is None:
                raise DatasetError(f"prediction {p_item.mask_paths[0]} does not match the size "
                                   f"of {item.image_path}; predict again on this folder")
        rows.append([dice(truth[c], pred[c]) for c in range(len(ref.classes))])
    return Evaluation(list(ref.classes), ref.names, np.array(rows, dtype=np.float64))


__all__ = ["Evaluation", "dice", "evaluate", "Layout"]
