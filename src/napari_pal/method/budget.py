"""Training settings from a time budget: "about 5 minutes", not "60 epochs".

The same run costs 7x more on a CPU without AVX-512 than on one with it, and far less on a
GPU, so no fixed epoch count suits every machine. :func:`calibrate` times a few real
training steps (U-Net + quality module, the configured precision and threads) at each
candidate size on this machine; :func:`plan_for_minutes` then picks the largest size at
which the full schedule fits the budget, else the smallest size with as many epochs as
fit. The result is shown to the user and every setting can still be set by hand.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from napari_pal.method.config import TrainConfig

#: Sizes tried, largest first: 256 is the paper's; 128 keeps every structure learnable.
SIZES = (256, 192, 128)
#: Epochs of the validated schedule (the CPU protocol), and the fewest worth running.
FULL_EPOCHS = 60
MIN_EPOCHS = 10
#: Share of the budget kept for scoring refreshes and the final scoring.
SCORING_SHARE = 0.15


@dataclass(frozen=True)
class Plan:
    """What fits the budget, and why."""

    config: TrainConfig
    minutes: float
    rates: Mapping[int, float]  # images/s measured per size
    expected_minutes: float  # training time the plan expects
    reason: str

    def describe(self) -> str:
        c = self.config
        return (f"{c.size} px, {c.epochs} epochs, batch {c.batch_size}, "
                f"{c.threads or 'all'} threads: about {self.expected_minutes:.1f} min "
                f"({self.reason})")


def calibrate(dataset, config: TrainConfig, sizes: Sequence[int] = SIZES, *,
              images: int = 8, steps: int = 2) -> dict[int, float]:
    """Images/s of one training step (quality module on) at each size, on this machine.

    Times ``steps`` steps of a batch of ``images`` images after one warm-up step, using the
    first images of ``dataset``; writes nothing (the trainer's run folder is a temporary one).
    """
    from napari_pal.data.trainset import load_training_set
    from napari_pal.method import device as dev
    from napari_pal.method.training import Trainer

    if config.device in ("auto", "cpu"):
        dev.set_threads(config.threads)
    subset = dataset.subset(dataset.names[:max(2, min(images, len(dataset)))])
    rates = {}
    for size in sizes:
        cfg = dataclasses.replace(config, size=size, batch_size=len(subset), augment=True)
        data = load_training_set(subset, size)
        with tempfile.TemporaryDirectory() as tmp:
            trainer = Trainer(data, cfg, tmp)
            rates[size] = len(subset) / _seconds_per_step(trainer, steps)
    return rates


def _seconds_per_step(trainer, steps: int) -> float:
    import torch

    idx = torch.arange(len(trainer.data))
    epoch = trainer.config.warmup  # past warm-up: the quality module's cost counts too
    trainer._step(epoch, 0, 1, 1, idx)  # warm-up: allocations, kernel choice
    start = time.perf_counter()
    for _ in range(steps):
        trainer._step(epoch, 0, 1, 1, idx)
    if trainer.device.type == "cuda":
        torch.cuda.synchronize(trainer.device)
    return (time.perf_counter() - start) / steps


def plan_for_minutes(minutes: float, n_images: int, rates: Mapping[int, float],
                     base: TrainConfig | None = None) -> Plan:
    """The largest size whose full schedule fits ``minutes``; else the smallest measured
    size with as many epochs as fit (at least :data:`MIN_EPOCHS`)."""
    from napari_pal.errors import PalError

    if minutes <= 0:
        raise PalError(f"the time budget must be positive, got {minutes} minutes")
    if not rates:
        raise PalError("no throughput measured: calibrate() first")
    base = base or TrainConfig()
    seconds = minutes * 60 * (1 - SCORING_SHARE)

    def epochs_at(size: int) -> int:
        return math.floor(seconds * rates[size] / max(1, n_images))

    def expected(size: int, epochs: int) -> float:
        return epochs * n_images / rates[size] / 60

    for size in sorted(rates, reverse=True):
        if epochs_at(size) >= FULL_EPOCHS:
            cfg = dataclasses.replace(base, size=size, epochs=FULL_EPOCHS)
            return Plan(cfg, minutes, dict(rates), expected(size, FULL_EPOCHS),
                        f"the full {FULL_EPOCHS}-epoch schedule fits at {size} px")
    size = min(rates)
    epochs = max(MIN_EPOCHS, min(FULL_EPOCHS, epochs_at(size)))
    reason = (f"{epochs} of {FULL_EPOCHS} epochs fit at {size} px" if epochs_at(size) >= MIN_EPOCHS
              else f"the budget is short: {MIN_EPOCHS} epochs at {size} px take longer")
    cfg = dataclasses.replace(base, size=size, epochs=epochs)
    return Plan(cfg, minutes, dict(rates), expected(size, epochs), reason)
