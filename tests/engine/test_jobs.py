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
    DraftPredicted,
    ImageScored,
    JobFailed,
    JobStatus,
    Planned,
    RankingUpdated,
    ScoresReady,
    TrainingFinished,
    TrainingProgress,
    TrainingStopped,
)
from napari_pal.jobs.score import score_job
from napari_pal.jobs.train import Budget, train_job
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


def test_refreshes_while_training_and_final_scoring_is_the_last_refresh(folder, tmp_path
                                                                        ) -> None:
    root, meta = folder
    events = list(train_job(meta, None, _config(epochs=3), tmp_path / "run", [],
                            threading.Event(), refresh_every_s=0.0, refresh_max_share=1e9))
    kinds = [type(e) for e in events]
    assert JobFailed not in kinds, [e for e in events if isinstance(e, JobFailed)]
    updates = [e for e in events if isinstance(e, RankingUpdated)]
    # a refresh after epochs 1 and 2; epoch 3's is the final scoring (with maps), not a third
    assert [u.refresh.epoch for u in updates] == [1, 2]
    assert all(sorted(u.scores) == sorted(meta["names"]) for u in updates)
    assert all(set(u.reliability) == set(meta["classes"]) for u in updates)
    assert kinds.index(RankingUpdated) < kinds.index(TrainingFinished)  # during training
    # compared with the first when both rank (tiny settings may learn no class yet: then
    # there is no order to compare; test_anytime checks the ranked case on crafted scores)
    both = updates[0].refresh.ranked and updates[1].refresh.ranked
    assert (updates[1].refresh.top_changed is not None) == both
    ready = events[-1]
    assert isinstance(ready, ScoresReady) and ready.refresh is not None
    assert ready.refresh.final and ready.refresh.epoch == 3
    final_ranked = any(v.reliable for v in ready.reliability.values())
    assert (ready.refresh.top_changed is not None) == (final_ranked and updates[1].refresh.ranked)
    assert kinds.count(ImageScored) == len(meta["names"])  # scored once at the end


def test_budget_calibrates_then_plans(folder, tmp_path: Path) -> None:
    from napari_pal.method import budget

    root, meta = folder
    events = []
    for ev in train_job(meta, None, _config(epochs=99, size=64), tmp_path / "run", [],
                        threading.Event(), budget=Budget(0.01, (32,))):
        events.append(ev)
    planned = [e for e in events if isinstance(e, Planned)]
    assert len(planned) == 1, [e for e in events if isinstance(e, JobFailed)]
    c = planned[0].config
    # a 0.6-second budget: the one size, far fewer than the form's 99 epochs
    assert c.size == 32 and budget.MIN_EPOCHS <= c.epochs < budget.FULL_EPOCHS
    assert planned[0].text.startswith(f"planned: 32 px, {c.epochs} epochs, about")
    steps = [e for e in events if isinstance(e, TrainingFinished)]
    assert steps and steps[0].progress.epochs == c.epochs
    assert isinstance(events[-1], ScoresReady)


def test_stop_during_calibration(folder, tmp_path: Path) -> None:
    root, meta = folder
    stop = threading.Event()
    events = []
    for ev in train_job(meta, None, _config(), tmp_path / "run", [], stop,
                        budget=Budget(1.0, (32,))):
        events.append(ev)
        stop.set()  # pressed during the calibration
    assert events[-1] == JobStatus("stopped during calibration")
    assert not any(isinstance(e, (Planned, TrainingProgress)) for e in events)


def test_drafts_are_predicted_not_trained_or_scored(tmp_path: Path) -> None:
    from napari_pal.data.synthetic import make_sample_dataset
    from napari_pal.review.stack import LayerMasks, mask_stacks, open_folder

    root = tmp_path / "part"
    make_sample_dataset(root, n=6, size=32, seed=4)
    for name in ("chest_001", "chest_004"):
        for f in (root / "masks").glob(f"*/{name}.png"):
            f.unlink()
    ds, meta = open_folder(root)
    assert meta["drafts"] == ["chest_001", "chest_004"]
    # the widget's masks: every slice of the stacks, the drafts' empty ones included
    masks = LayerMasks(meta, list(mask_stacks(ds, meta)))
    events = list(train_job(meta, masks, _config(), tmp_path / "run", [], threading.Event()))
    assert not any(isinstance(e, JobFailed) for e in events), events[-1]
    ready = events[-1]
    assert isinstance(ready, ScoresReady)
    assert sorted(ready.scores) == sorted(set(meta["names"]) - {"chest_001", "chest_004"})
    drafts = [e for e in events if isinstance(e, DraftPredicted)]
    assert [meta["names"][e.index] for e in drafts] == ["chest_001", "chest_004"]
    assert drafts[0].probs.shape == (len(meta["classes"]), 32, 32)


def test_refresh_text_says_how_settled() -> None:
    from napari_pal.review.ranking import refresh_text
    from napari_pal.scoring.anytime import RankingRefresh

    scores = [object()] * 170

    def refresh(changed, final=False):
        return RankingRefresh(epoch=12, epochs=60, step=1, train_s=1.0, score_s=1.0,
                              scores=scores, top_k=17, top_changed=changed, final=final)

    assert refresh_text(refresh(None)) == \
        "refreshed at epoch 12/60: first ranking, training goes on"
    assert refresh_text(refresh(2 / 17)) == "refreshed at epoch 12/60: 2 of the top 17 changed"
    assert refresh_text(refresh(1 / 17)) == \
        "refreshed at epoch 12/60: settled (1 of the top 17 changed)"
    assert refresh_text(refresh(0.0, final=True)).startswith("final ranking (epoch 12/60): settled")
