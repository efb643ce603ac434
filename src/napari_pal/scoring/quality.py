"""Per-image label quality: how far each given mask lies from what the model sees.

Signals per class, computed in the training grid from the trained segmenter's
prediction and the given mask, distances in pixels of the image as stored:
- ``dist``: mean distance of the mask's outline from the predicted outline. An eroded,
  dilated or shifted outline moves by its full amount even where Dice barely changes; a
  stray blob or spill in the mask adds outline far from the prediction;
- ``dist_part``: the same mean for the worst of the mask's parts (components of at least
  MIN_PART_SHARE of its area): one clavicle drawn twice or one lung drawn wrong moves
  one part's outline, and the class mean halves it, as the class mean once diluted a
  bad class in its image;
- ``dist_back``: mean distance of the predicted outline from the mask's outline, the
  predicted parts only (specks under MIN_PART_SHARE of the predicted area are ignored, so
  a stray blob of the model does not spoil a good mask). It sees what the mask leaves out:
  a lung not drawn has no outline for ``dist`` to measure, but the predicted lung's
  outline lies far from every drawn outline;
- ``thick``: the radius of the largest disk that fits where the mask claims what the
  model confidently denies (mask 1, probability below 1 - CONFIDENT: the disagreement map
  above CONFIDENT on the mask). A spill or a stray blob is local, so the mean distances
  dilute it; its thickness does not. What the model claims alone is left to
  ``dist_back``, which ignores the model's own specks;
- ``stroke``: how far the tallest denied piece of the mask sticks out where it meets the
  mask at the sharp concave corners a round brush stroke leaves (``scoring.strokes``; on
  the masks as stored, so only where they are given: the training-time refreshes leave it
  out). A spill of a few pixels on a heart is under the model's own disagreement with
  clean hearts, which has no such corners;
- ``parts``: how many parts the mask has; where it differs from the folder's usual
  count (``data.partcounts``, recorded at training) the class's quality is 0, as for a
  class left out: the in-sample model can learn an omission, the rest of the folder cannot;
- ``stray``: how far from the predicted region lies the farthest piece of the mask that
  no predicted pixel touches (0 where every piece is touched): a stray blob of a few
  pixels adds little outline for ``dist`` and is too thin for ``thick``, but no clean
  mask of ten measured folders (3,405 class masks) had such a piece, and every blob did;
- ``offset``: ``dist`` signed (+ over-drawn, - under-drawn);
- ``dice``: overlap of mask and prediction;
- ``qam``: the quality module's bounded score λ·tanh(t) for the image (strategies with a QAM).
A class's quality comes from the largest of ``dist``, ``dist_part``, ``dist_back``,
THICK_SHARE · ``thick``, ``stray`` and ``stroke`` (a boundary error keeps its size in
pixels, an omission or addition its distance, a stray piece its distance too, a local
spill its thickness, a brush stroke its height), and is 0 where the part count is
unusual; the image's ``quality`` is its worst class's (one bad class makes a bad image,
however good the others). Both chosen by measurement over eleven kinds of annotator
error and the paper's noise (README, "Quality scores"): on JSRT the mean over classes and
the mask's outline alone ranked the images with a lung or clavicle left out at ROC AUC
0.77 (class masks: 0.30), this 1.00.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
from scipy import ndimage

from napari_pal.data.errorkinds import parts
from napari_pal.data.grid import grid_sample_of
from napari_pal.data.partcounts import judged_by
from napari_pal.method.inference import TrainedModel
from napari_pal.scoring.reasons import class_reason, image_reason
from napari_pal.scoring.strokes import grid_stroke_percents

if TYPE_CHECKING:
    from napari_pal.data.dataset import Dataset

#: Distance (in % of the image's longer side) at which a class's quality falls to one half.
HALF_QUALITY_PERCENT = 1.0
#: a predicted component smaller than this share of the predicted area is a speck
MIN_PART_SHARE = 0.1
#: disagreement map level above which mask and model contradict each other confidently
CONFIDENT = 0.9
#: a confident contradiction's thickness counts at this share (a boundary error's
#: contradiction is about as thick as its distance: half of it keeps that rule in charge)
THICK_SHARE = 0.5


@dataclass
class ImageScore:
    name: str
    quality: float
    per_class: dict[str, float]
    signals: dict[str, float] = field(default_factory=dict)
    #: per class, why it got its quality (``scoring.reasons``)
    why: dict[str, str] = field(default_factory=dict)


@dataclass
class Analysis:
    """Everything the review needs for one image, at the image's own size."""

    score: ImageScore
    probs: np.ndarray | None = None  # (C, H, W) float32
    disagreement: np.ndarray | None = None  # (H, W) float32 in [0, 1]


def _outline(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def predicted_parts(pred: np.ndarray) -> np.ndarray:
    """The prediction without its specks (components under MIN_PART_SHARE of its area)."""
    labels, n = ndimage.label(pred)
    if n <= 1:
        return pred
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return (sizes >= MIN_PART_SHARE * sizes.sum())[labels]


def back_distance(mask: np.ndarray, pred: np.ndarray) -> float:
    """Mean distance of the predicted parts' outline from the mask's outline, in grid px:
    large where the mask leaves out what the model sees (a part, a whole structure)."""
    parts = predicted_parts(pred)
    if not mask.any() and not parts.any():
        return 0.0
    if not mask.any() or not parts.any():
        return math.inf
    return float(ndimage.distance_transform_edt(~_outline(mask))[_outline(parts)].mean())


def worst_part_distance(mask: np.ndarray, pred: np.ndarray,
                        found: list[np.ndarray] | None = None) -> float:
    """The largest, over the mask's parts (``found``, else ``data.errorkinds.parts``:
    components of at least a tenth of its area), of the mean distance in grid px of the
    part's outline from the predicted outline (0 for an empty mask, inf where only the
    prediction is empty)."""
    if not mask.any():
        return 0.0
    if not pred.any():
        return math.inf
    to_pred = ndimage.distance_transform_edt(~_outline(pred))
    return float(max(to_pred[_outline(part)].mean()
                     for part in (parts(mask) if found is None else found)))


def stray_distance(mask: np.ndarray, pred: np.ndarray) -> float:
    """Distance in grid px from the predicted region of the farthest pixel of any piece of
    the mask (8-connected) that the prediction does not touch; 0 where there is none or
    where nothing is predicted (then ``dist`` is infinite already)."""
    if not mask.any() or not pred.any():
        return 0.0
    labels, n = ndimage.label(mask, np.ones((3, 3), bool))
    touched = np.zeros(n + 1, bool)
    touched[labels[pred]] = True
    stray = ~touched[labels] & (labels > 0)
    if not stray.any():
        return 0.0
    return float(ndimage.distance_transform_edt(~pred)[stray].max())


def contradiction_radius(mask: np.ndarray, prob: np.ndarray) -> float:
    """Radius in grid px of the largest disk inside the mask where the model's probability
    is below 1 - CONFIDENT (0 where there is none): how thick the worst confidently
    denied piece of the mask is."""
    region = mask.astype(bool) & (prob < 1.0 - CONFIDENT)
    if not region.any():
        return 0.0
    return float(ndimage.distance_transform_edt(region).max())


def boundary_signals(mask: np.ndarray, pred: np.ndarray) -> tuple[float, float, float]:
    """(dice, dist, offset) of a binary mask against a binary prediction, in grid pixels.

    ``dist`` is the mean distance of the mask's outline pixels from the predicted outline,
    ``offset`` the same with a sign (+ where the mask's outline lies outside the
    prediction). Where exactly one of the two is empty the distances are infinite.
    """
    inter, total = np.logical_and(mask, pred).sum(), mask.sum() + pred.sum()
    dice = 1.0 if total == 0 else 2.0 * inter / total
    if not mask.any() and not pred.any():
        return dice, 0.0, 0.0
    if not mask.any() or not pred.any():
        return dice, math.inf, math.inf if mask.any() else -math.inf
    m_edge = _outline(mask)
    to_pred = ndimage.distance_transform_edt(~_outline(pred))[m_edge]
    sign = np.where(pred[m_edge], -1.0, 1.0)
    return float(dice), float(to_pred.mean()), float((sign * to_pred).mean())


def class_quality(dist_percent: float) -> float:
    """Map an outline distance (in % of the image side) to [0, 1]; 1 = outline right."""
    if not math.isfinite(dist_percent):
        return 0.0
    return 1.0 / (1.0 + (dist_percent / HALF_QUALITY_PERCENT) ** 2)


def image_quality(per_class: Mapping[str, float]) -> float:
    """An image is as good as its worst class: one bad class makes a bad image."""
    return float(min(per_class.values()))


def score_from_grid(name: str, classes: list[str], masks: np.ndarray, probs: np.ndarray,
                    image_scale: float, qam_t: float | None = None, lam: float = 2.0,
                    strokes: np.ndarray | None = None,
                    usual_parts: Mapping[str, int] | None = None) -> ImageScore:
    """Score one image from its grid masks (C,S,S) and predicted probabilities (C,S,S);
    ``strokes``: per class the brush-stroke height in % of the image's longer side
    (:func:`napari_pal.scoring.strokes.stroke_percents`), None where the stored masks are
    not at hand; ``usual_parts``: the folder's usual part count per class
    (:func:`napari_pal.data.partcounts.usual_part_counts`, a run's ``usual_parts``)."""
    size = masks.shape[-1]
    signals: dict[str, float] = {}
    per_class: dict[str, float] = {}
    why: dict[str, str] = {}
    for c, cls in enumerate(classes):
        mask, pred = masks[c].astype(bool), probs[c] > 0.5
        found = parts(mask)  # labelled once: the part count and the worst part's distance
        dice, dist, offset = boundary_signals(mask, pred)
        part = worst_part_distance(mask, pred, found)
        back = back_distance(mask, pred)
        thick = contradiction_radius(mask, probs[c])
        stray = stray_distance(mask, pred)
        signals[f"dice_{cls}"] = dice
        signals[f"dist_{cls}"] = dist * image_scale
        signals[f"dist_part_{cls}"] = part * image_scale
        signals[f"dist_back_{cls}"] = back * image_scale
        signals[f"thick_{cls}"] = thick * image_scale
        signals[f"stray_{cls}"] = stray * image_scale
        signals[f"offset_{cls}"] = offset * image_scale
        n_parts, usual = len(found), judged_by(mask, cls, usual_parts)
        signals[f"parts_{cls}"] = float(n_parts)
        grid_terms = {"dist": dist, "dist_part": part, "dist_back": back,
                      "thick": THICK_SHARE * thick, "stray": stray}
        percent = 100.0 * max(grid_terms.values()) / size
        terms = {k: v * image_scale for k, v in grid_terms.items()}  # px of the stored image
        if strokes is not None:
            signals[f"stroke_{cls}"] = terms["stroke"] = (float(strokes[c]) * size
                                                          * image_scale / 100.0)
            percent = max(percent, float(strokes[c]))
        if usual is not None and n_parts != usual:
            percent = math.inf
        per_class[cls] = class_quality(percent)
        why[cls] = class_reason(terms, offset=offset * image_scale, drawn=bool(mask.any()),
                                seen=bool(pred.any()), parts=n_parts, usual_parts=usual)
    if qam_t is not None:
        signals["qam"] = float(lam * math.tanh(qam_t))
    quality = image_quality(per_class)
    return ImageScore(name, quality, per_class, signals, why)


def disagreement_map(masks: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Per pixel, the largest |mask - probability| over classes: 1 where a confident
    prediction contradicts the mask, ~0.5 where the model is unsure, 0 where they agree."""
    return np.abs(masks.astype(np.float32) - probs).max(axis=0)


def analyse(model: TrainedModel, dataset: Dataset, *, maps: bool = True,
            overrides: Mapping[str, np.ndarray] | None = None, batch: int = 8,
            ) -> Iterator[Analysis]:
    """Score every image of ``dataset`` (one Analysis per image, in dataset order)."""
    if list(dataset.classes) != list(model.classes):
        from napari_pal.errors import DatasetError

        raise DatasetError(f"{dataset.root}: classes {dataset.classes} differ from the "
                           f"model's {model.classes}; open the folder the run was trained for")
    overrides = overrides or {}
    size = model.config.size
    for start in range(0, len(dataset), batch):
        idx = range(start, min(start + batch, len(dataset)))
        given = [overrides.get(dataset.names[i]) for i in idx]
        given = [dataset.read_masks(i) if g is None else np.asarray(g, bool)
                 for i, g in zip(idx, given)]  # read once: for the grid and for the map
        items = [grid_sample_of(dataset, i, size, g) for i, g in zip(idx, given)]
        images = torch.from_numpy(np.stack([img for _, img, _ in items]))[:, None]
        masks = torch.from_numpy(np.stack([m for _, _, m in items]))
        probs, t = model.predict_grid(images, masks)
        for k, i in enumerate(idx):
            frame = items[k][0]
            score = score_from_grid(dataset.names[i], model.classes, items[k][2], probs[k],
                                    frame.scale, None if t is None else float(t[k]),
                                    model.config.lam,
                                    grid_stroke_percents(given[k], probs[k]),
                                    model.usual_parts)
            if not maps:
                yield Analysis(score)
                continue
            full = frame.from_square(probs[k])
            yield Analysis(score, full, disagreement_map(given[k], full))


def scores_csv(scores: Iterable[ImageScore], classes: Sequence[str], *,
               signals: bool = True, status: Mapping[str, str] | None = None,
               unscored: Iterable[str] = ()) -> str:
    """The score table, worst first: name, quality, quality_<class>..., with ``signals``
    the reason (``why``, :func:`image_reason`) and the raw signals, and, given ``status``,
    the review status; ``unscored`` names are listed last, blank."""
    rows = sorted(scores, key=lambda s: (s.quality, s.name))
    signal_names = list(rows[0].signals) if rows and signals else []
    why = ["why"] if signals else []
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["name", "quality", *(f"quality_{c}" for c in classes), *why, *signal_names,
                *(["status"] if status is not None else [])])

    def tail(name: str) -> list[str]:
        return [status.get(name, "unreviewed")] if status is not None else []

    for s in rows:
        w.writerow([s.name, f"{s.quality:.6f}", *(f"{s.per_class[c]:.6f}" for c in classes),
                    *([image_reason(s)] if signals else []),
                    *(f"{s.signals[k]:.6g}" for k in signal_names), *tail(s.name)])
    for name in sorted(unscored):
        w.writerow([name, *[""] * (1 + len(classes) + len(why) + len(signal_names)),
                    *tail(name)])
    return buf.getvalue()
