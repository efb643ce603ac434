"""Training settings from a time budget: "about 5 minutes", not "60 epochs".

The same run costs 7x more on a CPU without AVX-512 than on one with it, and far less on a
GPU, so no fixed epoch count suits every machine. :func:`calibrate` times a few real
training steps (U-Net + quality module, the configured precision, threads and device) at
each candidate size on this machine; :func:`plan_for_minutes` then picks, from those
rates alone (so the same rule serves a CPU, CUDA and MPS), the largest size at which the
full schedule fits (a size above BASE_SIZE: in FINE_SHARE of the budget), else BASE_SIZE
with as many epochs as fit (at least MIN_EPOCHS).

Measured on JSRT (50 % of the masks moved by 5-13 px), AVX2 float32, one thread, one
seed each (README *Time to a ranking*): 60 epochs at 128 px gave test Dice 0.918-0.919,
48 epochs 0.899, so the plan keeps the full schedule where it can. Progressive resizing
(``TrainConfig.stages``) is not planned: a warm-up fifth at 96 px saved about a tenth of
the time but gave 0.915, and 12 last epochs at 192 px cost 2.5x the time for 0.916.

The result is shown to the user and every setting can still be set by hand.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from napari_pal.method.config import TrainConfig
from napari_pal.method.schedule import format_stages, plan_text

#: Sizes tried, largest first: 256 is the paper's; 128 keeps every structure learnable.
SIZES = (256, 192, 128)
#: Where the epochs train when no larger size fits.
BASE_SIZE = 128
#: Epochs of the validated schedule (the CPU protocol), and the fewest worth running.
FULL_EPOCHS = 60
MIN_EPOCHS = 10
#: A size above BASE_SIZE is planned only when its whole schedule takes at most this share
#: of the budget (it bought no test Dice on JSRT, and its refreshes cost 2-3x more).
FINE_SHARE = 0.6
#: Share of the budget kept for scoring refreshes and the final scoring.
SCORING_SHARE = 0.15
#: A size is not calibrated when the next smaller one's rate, scaled by the pixel count,
#: says its schedule would take this many times the budget (a CPU's step costs at least
#: its pixels; a GPU's less, so it is never ruled out wrongly by much).
SKIP_FACTOR = 2.0


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
              images: int = 8, steps: int = 2, minutes: float | None = None,
              ) -> dict[int, float]:
    """Images/s of one training step (quality module on) at each size, on this machine.

    Times ``steps`` steps of a batch of ``images`` images after one warm-up step, using
    the first images of ``dataset`` (at 128 px, AVX2, one thread, a batch of 8 measured
    18.4-20.4 images/s, a batch of 16 17.8-18.7, a real 16-image-batch epoch 18.2: the
    plan's reserve absorbs the difference, and the smaller batch calibrates in half the
    time); writes nothing (the trainer's run folder is a temporary one).
    Sizes are measured smallest first; given ``minutes``, a size whose schedule the
    smaller size's rate already puts far beyond the budget is not measured (on a CPU
    without AVX-512, a 256-px calibration alone takes about 20 s).
    """
    from napari_pal.data.trainset import load_training_set
    from napari_pal.method import device as dev
    from napari_pal.method.training import Trainer

    if config.device in ("auto", "cpu"):
        dev.set_threads(config.threads)
    subset = dataset.subset(dataset.names[:max(2, min(images, len(dataset)))])
    rates: dict[int, float] = {}
    for size in sorted(sizes):
        if minutes is not None and rates and _out_of_reach(size, rates, len(dataset), minutes):
            continue
        cfg = dataclasses.replace(config, size=size, batch_size=len(subset), augment=True,
                                  stages="")
        data = load_training_set(subset, size)
        with tempfile.TemporaryDirectory() as tmp:
            trainer = Trainer(data, cfg, tmp)
            rates[size] = len(subset) / _seconds_per_step(trainer, steps)
    return rates


def _out_of_reach(size: int, rates: Mapping[int, float], n_images: int, minutes: float) -> bool:
    smaller = [s for s in rates if s < size]
    if not smaller:
        return False
    below = max(smaller)
    rate = rates[below] * (below / size) ** 2
    seconds = FULL_EPOCHS * n_images / rate
    return seconds > SKIP_FACTOR * minutes * 60


def _seconds_per_step(trainer, steps: int) -> float:
    import torch

    from napari_pal.method.device import synchronize

    idx = torch.arange(len(trainer.data))
    epoch = trainer.config.warmup  # past warm-up: the quality module's cost counts too
    trainer._step(epoch, 0, 1, 1, idx)  # warm-up: allocations, kernel choice
    synchronize(trainer.device)
    start = time.perf_counter()
    for _ in range(steps):
        trainer._step(epoch, 0, 1, 1, idx)
    synchronize(trainer.device)
    return (time.perf_counter() - start) / steps


def plan_for_minutes(minutes: float, n_images: int, rates: Mapping[int, float],
                     base: TrainConfig | None = None) -> Plan:
    """The schedule that fits ``minutes`` (see the module's docstring for the rule)."""
    from napari_pal.errors import PalError

    if minutes <= 0:
        raise PalError(f"the time budget must be positive, got {minutes} minutes")
    if not rates:
        raise PalError("no throughput measured: calibrate() first")
    base = base or TrainConfig()
    seconds = minutes * 60 * (1 - SCORING_SHARE)

    def cost(stages: list[tuple[int, int]]) -> float:
        return sum(e * n_images / rates[s] for s, e in stages)

    def plan(stages: list[tuple[int, int]], why: str) -> Plan:
        stages = [(s, e) for s, e in stages if e > 0]
        size, epochs = stages[-1][0], sum(e for _, e in stages)
        head = [(s, e) for s, e in stages[:-1] if s != size]
        cfg = dataclasses.replace(base, size=size, epochs=epochs, stages=format_stages(head))
        return Plan(cfg, minutes, dict(rates), cost(stages) / 60, f"{plan_text(cfg)}: {why}")

    for size in sorted(rates, reverse=True):
        if size >= BASE_SIZE or size == max(rates):
            limit = seconds if size <= BASE_SIZE else minutes * 60 * FINE_SHARE
            if cost([(size, FULL_EPOCHS)]) <= limit:
                return plan([(size, FULL_EPOCHS)],
                            f"the full {FULL_EPOCHS}-epoch schedule fits")
    size = BASE_SIZE if BASE_SIZE in rates else min(rates)
    fit = math.floor(seconds / cost([(size, 1)]))
    epochs = max(MIN_EPOCHS, min(FULL_EPOCHS, fit))
    why = (f"{epochs} of {FULL_EPOCHS} epochs fit" if fit >= MIN_EPOCHS else
           f"the budget is short: {MIN_EPOCHS} epochs take longer")
    return plan([(size, epochs)], why)
