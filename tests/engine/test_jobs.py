"""The widget's background jobs, run here without a display: the typed events they yield,
stopping, and the errors a user can fix arriving as one JobFailed event.

Tiny settings (32 px, 1 epoch, batch 4, 6 images, width 4, one thread) keep it to seconds.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from napari_pal.jobs.control import JobControl, supervised
from napari_pal.jobs.events import (
    ImageScored,
    JobFailed,
    JobStatus,
    ScoresReady,
    TrainingFinished,
    TrainingProgress,
    TrainingStopped,
)
from napari_pal.jobs.score import score_job
from napari_pal.jobs.train import train_job
from napari_pal.method.config import TrainConfig


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> tuple[Path, dict]:
    from napari_pal.data.synthetic import make_sample_dataset
    from napari_pal.review.stack import open_folder

    root = tmp_path_factory.mktemp("jobs") / "chests"
    make_sample_dataset(root, n=6, size=32, seed=2)
    return root, open_folder(root)[1]


def _config(**kw) -> TrainConfig:
    return TrainConfig(**{"epochs": 1, "size": 32, "batch_size": 4, "width": 4, "qam_width": 4,
                          "threads": 1, "precision": "fp32", "device": "cpu", **kw})


@pytest.fixture(scope="module")
def trained(folder, tmp_path_factory) -> tuple[Path, list]:
    root, meta = folder
    run = tmp_path_factory.mktemp("runs") / "run"
    events = list(train_job(meta, None, _config(), run, [], threading.Event()))
    return run, events


def test_training_then_scoring_events(folder, trained) -> None:
    root, meta = folder
    run, events = trained
    kinds = [type(e) for e in events]
    assert events[0] == JobStatus("reading images")
    steps = [e for e in events if isinstance(e, TrainingProgress)]
    assert steps and [e.progress.step for e in steps] == list(range(1, len(steps) + 1))
    assert all(e.progress.state == "running" for e in steps)
    assert kinds.count(TrainingFinished) == 1 and TrainingStopped not in kinds
    assert JobFailed not in kinds, [e for e in events if isinstance(e, JobFailed)]
    scored = [e for e in events if isinstance(e, ImageScored)]
    assert [e.index for e in scored] == list(range(len(meta["names"])))
    assert all(e.total == len(meta["names"]) for e in scored)
    assert scored[0].analysis.probs.shape[0] == len(meta["classes"])
    assert kinds.index(TrainingFinished) < kinds.index(ImageScored)
    ready = events[-1]
    assert isinstance(ready, ScoresReady) and ready.run_dir == run
    assert sorted(ready.scores) == sorted(meta["names"])
    assert (run / "checkpoint.pt").is_file()


def test_stop_saves_checkpoint_and_skips_scoring(folder, tmp_path: Path) -> None:
    root, meta = folder
    stop = threading.Event()
    events = []
    for ev in train_job(meta, None, _config(epochs=20), tmp_path / "run", [], stop):
        events.append(ev)
        if isinstance(ev, TrainingProgress) and ev.progress.step == 2:
            stop.set()
    assert isinstance(events[-1], TrainingStopped)
    assert events[-1].progress.step <= 3  # the step in flight when Stop came, at most
    assert not any(isinstance(e, (ImageScored, ScoresReady, TrainingFinished)) for e in events)
    assert (tmp_path / "run" / "checkpoint.pt").is_file()


def test_score_job_with_overrides(folder, trained) -> None:
    root, meta = folder
    run, _ = trained
    from napari_pal.data.dataset import open_dataset

    ds = open_dataset(root)
    empty = {n: ds.read_masks(i) & False for i, n in enumerate(ds.names)}
    events = list(score_job(meta, empty, run, threading.Event()))
    assert events[0] == JobStatus("scoring") and isinstance(events[-1], ScoresReady)
    scores = events[-1].scores
    plain = list(score_job(meta, None, run, threading.Event()))[-1].scores
    # empty masks against the same model's predictions change the scores
    assert any(scores[n].quality != plain[n].quality for n in ds.names)


def test_errors_arrive_as_job_failed(folder, trained, tmp_path: Path) -> None:
    root, meta = folder
    run, _ = trained
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    # a run folder inside the input folder: refused before anything is written
    events = list(train_job(meta, None, _config(), root / "runs" / "x", [], threading.Event()))
    assert len(events) == 1 and isinstance(events[0], JobFailed)
    assert "inside the input folder" in events[0].message
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before
    # a checkpoint of other classes
    other = {**meta, "classes": ["lungs"]}
    events = list(score_job(other, None, run, threading.Event()))
    assert isinstance(events[-1], JobFailed) and "trained on classes" in events[-1].message
    # no checkpoint at all
    events = list(score_job(meta, None, tmp_path / "nothing", threading.Event()))
    assert isinstance(events[-1], JobFailed)


def test_supervised_sets_done_however_the_job_ends() -> None:
    def ok(stop):
        yield 1

    def broken(stop):
        yield 1
        raise RuntimeError("a bug")

    control = JobControl()
    assert list(supervised(ok, control)) == [1] and control.done.is_set()
    control = JobControl()
    gen = supervised(broken, control)
    assert next(gen) == 1 and not control.done.is_set()
    with pytest.raises(RuntimeError):
        next(gen)
    assert control.done.is_set()
    # the stop event reaches the job
    control = JobControl()
    seen = []
    list(supervised(lambda stop: iter([seen.append(stop)]), control))
    assert seen == [control.stop]
