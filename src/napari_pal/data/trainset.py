"""The training set: every image and its masks in the training grid, a batch at a time.

The grid samples come from the dataset's grid cache (``gridcache``: built once per dataset
and size, on disk), so memory does not grow with the number of images; each batch is read
and converted to float while the previous step computes (``prefetch``). Small sets made in
code (tests, benchmarks) may hold plain tensors instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.nn import functional as F

from napari_pal.data.geometry import Frame

if TYPE_CHECKING:
    from napari_pal.data.dataset import Dataset
    from napari_pal.data.gridcache import GridCache


def _scalar(idx) -> bool:
    return isinstance(idx, (int, np.integer)) or (isinstance(idx, torch.Tensor) and idx.ndim == 0)


def _positions(idx, n: int) -> list[int]:
    if isinstance(idx, slice):
        return list(range(n))[idx]
    if isinstance(idx, torch.Tensor):
        idx = idx.tolist()
    return [int(i) for i in np.asarray(idx).reshape(-1)]


class GridImages:
    """``images[idx]``: float32 (n, 1, S, S) in [0, 1] read from a grid cache."""

    def __init__(self, cache: GridCache):
        self.cache = cache
        self.shape = (len(cache), 1, cache.size, cache.size)

    def __len__(self) -> int:
        return len(self.cache)

    def __getitem__(self, idx) -> torch.Tensor:
        images, _ = self.cache.read(_positions(idx, len(self)))
        out = torch.from_numpy(images).unsqueeze(1).float().div_(255.0)
        return out[0] if _scalar(idx) else out

    def numpy(self) -> np.ndarray:
        return self[:].numpy()


class GridMasks:
    """``masks[idx]``: uint8 (n, C, S, S) 0/1 from a grid cache; ``overrides`` (position ->
    bool (C, S, S)) replace the stored masks of some images (an annotator's corrections)."""

    def __init__(self, cache: GridCache, overrides: Mapping[int, np.ndarray] | None = None):
        self.cache, self.overrides = cache, dict(overrides or {})
        self.shape = (len(cache), cache.classes, cache.size, cache.size)

    def __len__(self) -> int:
        return len(self.cache)

    def __getitem__(self, idx) -> torch.Tensor:
        pos = _positions(idx, len(self))
        _, masks = self.cache.read(pos)
        for k, i in enumerate(pos):
            if i in self.overrides:
                masks[k] = self.overrides[i]
        out = torch.from_numpy(masks.view(np.uint8))
        return out[0] if _scalar(idx) else out

    def numpy(self) -> np.ndarray:
        return self[:].numpy()


@dataclass
class TrainingSet:
    names: list[str]
    classes: list[str]
    frames: list[Frame]
    images: torch.Tensor | GridImages  # [idx] -> (n, 1, S, S) float32 in [0, 1]
    masks: torch.Tensor | GridMasks  # [idx] -> (n, C, S, S) uint8 0/1
    _pool: ThreadPoolExecutor | None = field(default=None, init=False, repr=False)
    _pending: dict[tuple[int, ...], Future] = field(default_factory=dict, init=False,
                                                    repr=False)

    def __len__(self) -> int:
        return len(self.names)

    def batch(self, idx: torch.Tensor | Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """(images, masks) as float32 for these positions; prefetched if it was asked for."""
        pending = self._pending.pop(tuple(_positions(idx, len(self))), None)
        return pending.result() if pending is not None else self._read(idx)

    def prefetch(self, idx: torch.Tensor | Sequence[int]) -> None:
        """Start reading a coming batch in a background thread (cache-backed sets only)."""
        if isinstance(self.images, torch.Tensor):
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="napari-pal-batches")
        while len(self._pending) >= 2:  # never asked for (e.g. training stopped): drop
            self._pending.pop(next(iter(self._pending)))
        key = tuple(_positions(idx, len(self)))
        self._pending[key] = self._pool.submit(self._read, list(key))

    def _read(self, idx) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[idx], self.masks[idx].float()


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
    cache_dir: str | None = None,
) -> TrainingSet:
    """The dataset's grid samples from its grid cache (built or updated first if needed);
    ``overrides`` replaces masks (e.g. an annotator's corrections), held in memory."""
    from napari_pal.data.gridcache import open_grid_cache

    cache = open_grid_cache(dataset, size, progress=progress, base=cache_dir)
    frames = [Frame(h, w, size) for h, w in cache.shapes]
    fixed = {}
    for name, masks in (overrides or {}).items():
        i = dataset.index(name)
        fixed[i] = frames[i].to_square(np.asarray(masks, dtype=bool), binary=True)
    return TrainingSet(list(dataset.names), list(dataset.classes), frames,
                       GridImages(cache), GridMasks(cache, fixed))


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
