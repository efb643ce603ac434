"""The training job: train on the annotator's current masks, then score every image."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from napari_pal.errors import PalError
from napari_pal.jobs.events import (
    JobEvent,
    JobFailed,
    JobStatus,
    Planned,
    RankingUpdated,
    training_event,
)


def lower_priority() -> None:
    """Optionally lower the worker thread's CPU priority (Linux: threads have their own nice
    value): NAPARI_PAL_WORKER_NICE=5 lets the GUI win a moderately shared CPU. Off by
    default: on a saturated CPU a niced thread holding the GIL is descheduled for long and
    the GUI thread waits for it (priority inversion; seen as a 386 ms stall here)."""
    nice = int(os.environ.get("NAPARI_PAL_WORKER_NICE", "0") or 0)
    if nice and hasattr(os, "setpriority") and hasattr(threading, "get_native_id"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
        except OSError:
            pass


def check_run_folder(run_dir: str | Path, root: str | Path) -> None:
    """A run never goes into the dataset folder (nothing writes into an input folder)."""
    from napari_pal.outputs import outside

    outside(run_dir, root, "choose another runs folder")


@dataclass(frozen=True)
class Budget:
    """Train for about ``minutes``: calibrate this machine at ``sizes``, then plan size and
    epochs with :func:`napari_pal.method.budget.plan_for_minutes`."""

    minutes: float
    sizes: tuple[int, ...] = ()  # () = budget.SIZES


def train_job(meta: Mapping[str, Any], overrides: Mapping[str, Any] | None, config: Any,
              run_dir: Path, trusted: Sequence[str], stop: threading.Event, *,
              budget: Budget | None = None, refresh_every_s: float = 60.0,
              refresh_max_share: float = 0.25) -> Iterator[JobEvent]:
    """Train ``config`` on the annotated images of the stack ``meta`` into ``run_dir``
    (``trusted`` names are never down-weighted), one event per step.

    With ``budget``, a calibration first picks size and epochs (a :class:`Planned` event).
    While training, the images are re-scored on the current model about every
    ``refresh_every_s`` seconds of training while a refresh costs at most
    ``refresh_max_share`` of that time (:class:`RankingUpdated`); after a full run every
    image is scored and the drafts predicted (see :func:`score_all`): that scoring is the
    final refresh. Stopping saves the checkpoint and skips the final scoring."""
    try:
        yield from _train(meta, overrides, config, Path(run_dir), list(trusted), stop,
                          budget, refresh_every_s, refresh_max_share)
    except (PalError, OSError) as err:
        yield JobFailed(err)


def _train(meta, overrides, config, run_dir: Path, trusted: list[str], stop: threading.Event,
           budget: Budget | None, refresh_every_s: float, refresh_max_share: float
           ) -> Iterator[JobEvent]:
    check_run_folder(run_dir, meta["root"])
    lower_priority()
    import torch

    torch.set_num_threads(max(1, config.threads))
    from napari_pal.data.trainset import load_training_set
    from napari_pal.method.training import Progress, Trainer
    from napari_pal.review.stack import dataset_from_meta
    from napari_pal.scoring.anytime import RankingRefresh, train_with_refreshes
    from napari_pal.scoring.reliability import assess, rank_by_reliable

    yield JobStatus("reading images")
    ds = dataset_from_meta(meta).annotated()  # drafts are predicted, never trained on
    if not len(ds):
        raise PalError(f"no image in {meta['root']} has masks: paint (or accept) the masks "
                       "of a few images first, then train")
    if overrides is not None:  # the drafts' (empty or painted) slices are not trained on
        from napari_pal.review.stack import OnlyNames

        overrides = OnlyNames(overrides, ds.names)
    if budget is not None:
        yield JobStatus(f"calibrating this machine for a {budget.minutes:g}-minute budget…")
        config = yield from _plan(ds, config, budget, stop)
        if config is None:
            return
    data = load_training_set(ds, config.size, overrides=overrides)
    if stop.is_set():
        yield JobStatus("stopped before training started")
        return
    trainer = Trainer(data, config, run_dir, trusted=trusted)
    classes = list(meta["classes"])
    previous: list[str] = []
    last: Progress | None = None
    for ev in train_with_refreshes(trainer, ds, every_s=refresh_every_s,
                                   max_share=refresh_max_share, overrides=overrides):
        if isinstance(ev, RankingRefresh):
            verdicts = assess(ev.scores, classes)
            ranked = rank_by_reliable(ev.scores, verdicts)
            previous = _order(ranked) if ev.ranked else []  # no class learnt: no order
            yield RankingUpdated(ev, {s.name: s for s in ranked}, verdicts)
            continue
        last = ev
        yield training_event(ev)
        if ev.state == "finished":
            break  # the final refresh is the full scoring below (maps, drafts): no double work
        if stop.is_set():
            trainer.stop()  # it stops before the next step and saves the checkpoint
    if last is None or last.state != "finished" or stop.is_set():
        return
    from napari_pal.jobs.score import score_all
    from napari_pal.method.inference import TrainedModel

    yield JobStatus("scoring")
    info = {"epoch": trainer.epoch, "epochs": last.epochs, "step": last.step,
            "train_s": last.elapsed_s}
    yield from score_all(TrainedModel.snapshot(trainer), meta, overrides, run_dir, stop,
                         previous, info)


def _order(scores) -> list[str]:
    from napari_pal.scoring.anytime import order_of

    return order_of(scores)


def _plan(ds, config, budget: Budget, stop: threading.Event):
    """Calibrate and plan (a generator: yields the :class:`Planned` event, returns the
    planned config, or None when stopped during the calibration)."""
    from napari_pal.method import budget as planner

    rates = planner.calibrate(ds, config, tuple(budget.sizes) or planner.SIZES,
                             minutes=budget.minutes)
    if stop.is_set():
        yield JobStatus("stopped during calibration")
        return None
    plan = planner.plan_for_minutes(budget.minutes, len(ds), rates, base=config)
    c = plan.config
    yield Planned(c, f"planned: {c.size} px, {c.epochs} epochs, about "
                     f"{plan.expected_minutes:.1f} min ({plan.reason})")
    return c
