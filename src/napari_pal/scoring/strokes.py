"""Brush strokes past the outline: the additions that the outline distances dilute.

napari paints labels with a round brush, so a stroke that runs past a structure's outline
adds a rounded piece that meets the outline at two sharp concave corners; an anatomical
outline and the model's smooth prediction have no such corners. A 5-px spill on a heart
adds under 2 % of its area and moves its mean outline distance by a fraction of a pixel,
and the in-sample model contradicts clean hearts about as thickly (it cuts off their top,
a smooth piece with no corners), so neither the distances nor the contradiction's
thickness tell them apart (README, "Every kind of annotator error"). How far a denied
piece sticks out, counted only where it meets the mask at such corners, does.

The grid the model is trained on (often 128 px) is too coarse for the corners, so this
works on the masks as stored, brought to ANALYSIS_SIDE px (the scale the constants are
set in), with the model's probabilities mapped there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage
from skimage.morphology import disk
from skimage.transform import resize

from napari_pal.data.geometry import Frame

if TYPE_CHECKING:
    from napari_pal.data.dataset import Dataset

#: longer side (px) at which the strokes are measured
ANALYSIS_SIDE = 256
#: radius (px at ANALYSIS_SIDE) of the disk whose closing fills the corners a stroke leaves
CORNER_RADIUS = 6
#: a filled corner smaller than this (px at ANALYSIS_SIDE) is the outline's own roughness
#: (radius, size and DENIED_BELOW chosen on three validation folders, README)
MIN_CORNER_PIXELS = 3
#: the model denies a pixel of the mask where its probability is below this
DENIED_BELOW = 0.5


def _corners(mask: np.ndarray) -> np.ndarray:
    """The concave corners of ``mask`` of at least MIN_CORNER_PIXELS: what a closing by a
    CORNER_RADIUS disk adds (the image's edge does not close anything)."""
    pad = CORNER_RADIUS + 1
    closed = ndimage.binary_closing(np.pad(mask, pad), disk(CORNER_RADIUS))[pad:-pad, pad:-pad]
    notch = closed & ~mask
    if not notch.any():
        return notch
    labels, _ = ndimage.label(notch, np.ones((3, 3), bool))
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return (sizes >= MIN_CORNER_PIXELS)[labels]


def stroke_height(mask: np.ndarray, prob: np.ndarray) -> float:
    """Height in px of the tallest piece of ``mask`` that the model denies and that meets
    the mask at a concave corner: its largest distance from the predicted region. 0 where
    there is none. ``mask`` bool (H, W), ``prob`` (H, W) at the same scale."""
    pieces = mask & (prob < DENIED_BELOW)
    if not pieces.any():
        return 0.0
    corners = _corners(mask)
    if not corners.any():
        return 0.0
    labels, _ = ndimage.label(pieces, np.ones((3, 3), bool))
    touching = np.unique(labels[ndimage.binary_dilation(corners, iterations=2) & pieces])
    touching = touching[touching > 0]
    if not len(touching):
        return 0.0
    height = ndimage.distance_transform_edt(prob < DENIED_BELOW)
    return float(max(ndimage.maximum(height, labels, touching.tolist())))


def stroke_percents(masks: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Per class, the tallest stroke's height in % of the image's longer side.

    ``masks`` bool (C, H, W) as stored, ``probs`` (C, H, W) the model's probabilities
    mapped to the same size (``Frame.from_square``)."""
    masks = np.asarray(masks, bool)
    side = max(masks.shape[-2:])
    shape = tuple(round(s * ANALYSIS_SIDE / side) for s in masks.shape[-2:])
    if shape != masks.shape[-2:]:
        masks = resize(masks.astype(np.float32), (masks.shape[0], *shape), order=1,
                       anti_aliasing=False) > 0.5
    if shape != probs.shape[-2:]:
        probs = resize(np.asarray(probs, np.float32), (probs.shape[0], *shape), order=1,
                       anti_aliasing=False)
    heights = [stroke_height(m, p) for m, p in zip(masks, probs)]
    return 100.0 * np.asarray(heights, float) / ANALYSIS_SIDE


def grid_stroke_percents(masks: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """:func:`stroke_percents` from the grid probabilities (C, S, S) of the image whose
    stored masks are ``masks`` (the letterbox follows from their shape): mapped straight
    to the analysis scale, never to a full-size radiograph's."""
    h, w = np.asarray(masks).shape[-2:]
    k = ANALYSIS_SIDE / max(h, w)
    small = Frame(round(h * k), round(w * k), probs.shape[-1])
    return stroke_percents(masks, small.from_square(probs))


def strokes_of(dataset: Dataset, probs: np.ndarray) -> np.ndarray:
    """(N, C) stroke percents of every image of ``dataset`` from its grid probabilities
    ``probs`` (N, C, S, S)."""
    return np.stack([grid_stroke_percents(dataset.read_masks(i), probs[i])
                     for i in range(len(dataset))])


__all__ = ["ANALYSIS_SIDE", "grid_stroke_percents", "stroke_height", "stroke_percents",
           "strokes_of"]
