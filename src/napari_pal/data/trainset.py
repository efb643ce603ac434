"""Images and masks resampled once into the training grid and kept in memory.

Holding the whole set as two tensors means no decoding or Python work per pixel in the
training loop; JSRT at 256 px is ~40 MB.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.nn import functional as F

from napari_pal.data.geometry import Frame

if TYPE_CHECKING:
    from napari_pal.data.dataset import Dataset


@dataclass
class TrainingSet:
    names: list[str]
    classes: list[str]
    frames: list[Frame]
    images: torch.Tensor  # (N, 1, S, S) float32 in [0, 1]
    masks: torch.Tensor  # (N, C, S, S) uint8 0/1

    def __len__(self) -> int:
        return len(self.names)


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


def load_training_set(
    dataset: Dataset,
    size: int,
    overrides: Mapping[str, np.ndarray] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> TrainingSet:
    """Read every image once; ``overrides`` replaces masks (e.g. an annotator's corrections)."""
    overrides = overrides or {}
    n = len(dataset)
    images = torch.empty((n, 1, size, size), dtype=torch.float32)
    masks = torch.empty((n, len(dataset.classes), size, size), dtype=torch.uint8)
    frames = []
    for i, name in enumerate(dataset.names):
        frame, img, msk = grid_sample_of(dataset, i, size, overrides.get(name))
        frames.append(frame)
        images[i, 0] = torch.from_numpy(img)
        masks[i] = torch.from_numpy(msk.astype(np.uint8))
        if progress:
            progress(i + 1, n)
    return TrainingSet(list(dataset.names), list(dataset.classes), frames, images, masks)


def augment(images: torch.Tensor, masks: torch.Tensor, generator: torch.Generator,
            offset: int = 0, total: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Small random affine moves and contrast/gamma changes, batched on the device.

    No flips: a chest has a left and a right (the heart sits on one side). Augmentation
    slows memorisation of a wrong mask, which is what lets its disagreement show.
    ``images`` may be rows ``offset:offset+len(images)`` of a batch of ``total`` (one rank's
    share in data-parallel training): the draws are those of the whole batch, so each
    image is moved exactly as in a single-process run.
    """
    n = images.shape[0]
    total = n if total is None else total

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return (lo + (hi - lo) * torch.rand(total, generator=generator))[offset:offset + n]

    angle = uniform(-math.radians(6), math.radians(6))
    scale = uniform(0.93, 1.07)
    tx, ty = uniform(-0.05, 0.05), uniform(-0.05, 0.05)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    theta = theta.to(images.device, images.dtype)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    images = F.grid_sample(images, grid, mode="bilinear", padding_mode="border",
                           align_corners=False)
    masks = F.grid_sample(masks, grid.to(masks.dtype), mode="bilinear", padding_mode="zeros",
                          align_corners=False)
    gamma = torch.exp(uniform(-0.3, 0.3)).to(images.device).view(n, 1, 1, 1)
    gain = uniform(0.85, 1.15).to(images.device).view(n, 1, 1, 1)
    bias = uniform(-0.08, 0.08).to(images.device).view(n, 1, 1, 1)
    images = (images.clamp(0, 1) ** gamma) * gain + bias
    return images, (masks > 0.5).to(masks.dtype)
