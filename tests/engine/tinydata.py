"""A tiny in-memory training set shared by the training and distributed tests (kept out of
the test modules so spawned ranks import it without importing another test module)."""

from __future__ import annotations

import numpy as np
import torch

from napari_pal.data.geometry import Frame
from napari_pal.data.trainset import TrainingSet


def tiny_set(n=6, size=32, seed=0) -> TrainingSet:
    rng = np.random.default_rng(seed)
    images = torch.from_numpy(rng.random((n, 1, size, size), dtype=np.float32))
    masks = torch.zeros((n, 2, size, size), dtype=torch.uint8)
    for i in range(n):
        a = int(rng.integers(4, 10))
        masks[i, 0, a:a + 12, a:a + 12] = 1
        masks[i, 1, 2:8, 2:20] = 1
        images[i, 0][masks[i, 0].bool()] += 0.5
    return TrainingSet([f"im{i}" for i in range(n)], ["a", "b"],
                       [Frame(size, size, size)] * n, images, masks)


def tiny_config(**kw):
    """Training settings small enough for a test of the anytime ranking and the schedule
    (seconds on one thread)."""
    from napari_pal.method.config import TrainConfig

    base = dict(epochs=3, size=32, batch_size=4, width=4, depth=2, qam_width=4,
                warmup_epochs=1, precision="fp32", threads=1)
    return TrainConfig(**{**base, **kw})


def two_part(size=128) -> np.ndarray:
    """A two-part structure (a left and a right lung) as a bool mask: the quality, part
    count and reason tests spoil it."""
    yy, xx = np.mgrid[:size, :size]
    left = ((yy - 64) / 34) ** 2 + ((xx - 36) / 16) ** 2 <= 1
    right = ((yy - 60) / 28) ** 2 + ((xx - 92) / 13) ** 2 <= 1
    return left | right
