"""Gridding: what the networks see of an image (contrast stretched, letterboxed into the
square training grid). Shared by the grid cache, training, scoring and prediction."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from napari_pal.data.geometry import Frame

if TYPE_CHECKING:
    from napari_pal.data.dataset import Dataset


def normalise(image: np.ndarray) -> np.ndarray:
    """Stretch the image's 0.5-99.5 percentile range to [0, 1].

    Radiographs come with very different exposure and windowing: seven JSRT images use only
    grey levels 239-255. The network sees each image with its own contrast stretched, so
    a washed-out film is segmented like any other.
    """
    lo, hi = np.percentile(image, (0.5, 99.5))
    if hi - lo < 1e-6:
        return np.zeros_like(image, dtype=np.float32)
    return np.clip((image - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def grid_image(image: np.ndarray, frame: Frame) -> np.ndarray:
    """What the networks see of an image: normalised and letterboxed into the grid."""
    return frame.to_square(normalise(image))


def grid_sample_of(dataset: Dataset, i: int, size: int,
                   masks: np.ndarray | None = None) -> tuple[Frame, np.ndarray, np.ndarray]:
    """One image (and its masks, or the given ones) letterboxed into the grid."""
    image = dataset.read_image(i)
    frame = Frame(image.shape[0], image.shape[1], size)
    masks = dataset.read_masks(i) if masks is None else np.asarray(masks, dtype=bool)
    return frame, grid_image(image, frame), frame.to_square(masks, binary=True)
