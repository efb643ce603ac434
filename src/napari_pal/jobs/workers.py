"""The dock widget's background jobs (training, scoring): generators run in a thread worker."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from napari_pal.errors import PalError


# --- worker jobs (run in a thread; import torch lazily) ---------------------------------
def _analyse_job(meta: dict, overrides, run_dir: Path, stop: threading.Event):
    from napari_pal.method.inference import TrainedModel
    from napari_pal.review.stack import dataset_from_meta
    from napari_pal.scoring.quality import analyse

    yield ("status", "scoring")
    model = TrainedModel.load(run_dir)
    ds = dataset_from_meta(meta)
    if list(model.classes) != list(meta["classes"]):
        raise PalError(f"the checkpoint in {run_dir} was trained on classes {model.classes}, "
                       f"these layers hold {meta['classes']}: open the matching folder")
    for i, a in enumerate(analyse(model, ds, maps=True, overrides=overrides)):
        yield ("analysis", i, a)
        if stop.is_set():
            yield ("status", "scoring stopped")
            return
    yield ("scored", str(run_dir))


def _lower_priority() -> None:
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


def _train_job(meta: dict, overrides, config, run_dir: Path, trusted: list[str],
               stop: threading.Event):
    _lower_priority()
    import torch

    torch.set_num_threads(max(1, config.threads))
    from napari_pal.data.trainset import load_training_set
    from napari_pal.method.training import Trainer
    from napari_pal.review.stack import dataset_from_meta

    yield ("status", "reading images")
    ds = dataset_from_meta(meta)
    data = load_training_set(ds, config.size, overrides=overrides)
    if stop.is_set():
        yield ("status", "stopped before training started")
        return
    trainer = Trainer(data, config, run_dir, trusted=trusted)
    ev = None
    for ev in trainer.run():
        yield ("progress", ev)
        if stop.is_set():
            trainer.stop()  # it stops before the next step and saves the checkpoint
    if ev is not None and ev.state == "finished" and not stop.is_set():
        yield from _analyse_job(meta, overrides, run_dir, stop)


def _job_with_done(job, done: threading.Event, *args):
    """Run generator ``job`` and set ``done`` when it ends, however it ends."""
    try:
        yield from job(*args)
    finally:
        done.set()
