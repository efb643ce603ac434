"""The training job: train on the annotator's current masks, then score every image."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from napari_pal.errors import PalError
from napari_pal.jobs.events import JobEvent, JobFailed, JobStatus, TrainingFinished, training_event
from napari_pal.jobs.score import score_job


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


def train_job(meta: Mapping[str, Any], overrides: Mapping[str, Any] | None, config: Any,
              run_dir: Path, trusted: Sequence[str], stop: threading.Event
              ) -> Iterator[JobEvent]:
    """Train ``config`` on the stack ``meta`` into ``run_dir`` (``trusted`` names are never
    down-weighted), one event per step; after a full run, score every image (see
    :func:`score_job`). Stopping saves the checkpoint and skips the scoring."""
    try:
        yield from _train(meta, overrides, config, Path(run_dir), list(trusted), stop)
    except (PalError, OSError) as err:
        yield JobFailed(err)


def _train(meta, overrides, config, run_dir: Path, trusted: list[str],
           stop: threading.Event) -> Iterator[JobEvent]:
    check_run_folder(run_dir, meta["root"])
    lower_priority()
    import torch

    torch.set_num_threads(max(1, config.threads))
    from napari_pal.data.trainset import load_training_set
    from napari_pal.method.training import Trainer
    from napari_pal.review.stack import dataset_from_meta

    yield JobStatus("reading images")
    ds = dataset_from_meta(meta)
    data = load_training_set(ds, config.size, overrides=overrides)
    if stop.is_set():
        yield JobStatus("stopped before training started")
        return
    trainer = Trainer(data, config, run_dir, trusted=trusted)
    last = None
    for progress in trainer.run():
        last = training_event(progress)
        yield last
        if stop.is_set():
            trainer.stop()  # it stops before the next step and saves the checkpoint
    if isinstance(last, TrainingFinished) and not stop.is_set():
        yield from score_job(meta, overrides, run_dir, stop)
