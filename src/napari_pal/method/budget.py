"""Training settings from a time budget: "about 5 minutes", not "60 epochs".

The same run costs 7x more on a CPU without AVX-512 than on one with it, and far less on a
GPU, so no fixed epoch count suits every machine. :func:`calibrate` times a few real
training steps (U-Net + quality module, the configured precision, threads and device) at
each candidate size on this machine; :func:`plan_for_minutes` then picks, from those
rates alone (so the same rule serves a CPU, CUDA and MPS):

1. the full schedule at the largest size, when it fits (a GPU, a fast CPU);
2. else progressive resizing (``method.schedule``): the warm-up fifth at EARLY_SIZE, the
   middle at BASE_SIZE and the last epochs at the largest size where at least a fifth of
   the epochs fits, as many as fit (thin structures are learnt at the finer grid);
3. else that schedule without the finer end, with as many epochs as fit (at least
   MIN_EPOCHS).

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
SIZES = (256, 192, 128, 96)
#: Where most epochs train when the largest size does not fit, and the warm-up's size.
BASE_SIZE = 128
EARLY_SIZE = 96
#: Epochs of the validated schedule (the CPU protocol), and the fewest worth running.
FULL_EPOCHS = 60
MIN_EPOCHS = 10
#: The warm-up share of the epochs (trained at EARLY_SIZE), and the fewest epochs, as a
#: share, worth ending at a finer size.
EARLY_SHARE = 0.2
MIN_FINE_SHARE = 0.2
#: Share of the budget kept for scoring refreshes and the final scoring.
SCORING_SHARE = 0.15
#: A size is not calibrated when the next smaller one's rate, scaled by the pixel count,
#: says its shortest finer stage would take this many times the budget (a CPU's step
#: costs at least its pixels; a GPU's less, so it is never ruled out wrongly by much).
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

    Times ``steps`` steps of a batch of ``images`` images after one warm-up step, using the
    first images of ``dataset``; writes nothing (the trainer's run folder is a temporary one).
    Sizes are measured smallest first; given ``minutes``, a size whose shortest finer
    stage the smaller size's rate already puts far beyond the budget is not measured (on a
    CPU without AVX-512, a 256-px calibration alone takes about 20 s).
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
    below = max(s for s in rates if s < size) if any(s < size for s in rates) else None
    if below is None:
        return False
    rate = rates[below] * (below / size) ** 2
    fine_s = math.ceil(MIN_FINE_SHARE * FULL_EPOCHS) * n_images / rate
    return fine_s > SKIP_FACTOR * minutes * 60


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

    largest = max(rates)
    if cost([(largest, FULL_EPOCHS)]) <= seconds:
        return plan([(largest, FULL_EPOCHS)],
                    f"the full {FULL_EPOCHS}-epoch schedule fits at {largest} px")
    middle = BASE_SIZE if BASE_SIZE in rates else min(rates)
    early = EARLY_SIZE if EARLY_SIZE in rates and EARLY_SIZE < middle else middle
    first = round(EARLY_SHARE * FULL_EPOCHS)
    for fine in sorted((s for s in rates if s > middle), reverse=True):
        most = FULL_EPOCHS - first
        while most >= MIN_FINE_SHARE * FULL_EPOCHS:
            stages = [(early, first), (middle, FULL_EPOCHS - first - most), (fine, most)]
            if cost(stages) <= seconds:
                return plan(stages, f"the last {most} epochs at the finer {fine} px fit")
            most -= 1
    per_epoch = cost([(early, EARLY_SHARE), (middle, 1 - EARLY_SHARE)])
    fit = math.floor(seconds / per_epoch)
    epochs = max(MIN_EPOCHS, min(FULL_EPOCHS, fit))
    first = round(EARLY_SHARE * epochs)
    why = (f"the full {FULL_EPOCHS}-epoch schedule fits" if fit >= FULL_EPOCHS else
           f"{epochs} of {FULL_EPOCHS} epochs fit" if fit >= MIN_EPOCHS else
           f"the budget is short: {MIN_EPOCHS} epochs take longer")
    return plan([(early, first), (middle, epochs - first)], why)
