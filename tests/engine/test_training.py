"""The training loop: progress per step, stop, checkpoint, resume, NaN, safe loading."""

import math
import pickle

import numpy as np
import pytest
import torch
from tinydata import tiny_set

from napari_pal.errors import CheckpointError, TrainingError
from napari_pal.method.checkpoint import load_checkpoint
from napari_pal.method.config import TrainConfig
from napari_pal.method.inference import TrainedModel
from napari_pal.method.training import Trainer


def cfg(**kw) -> TrainConfig:
    base = dict(epochs=2, size=32, batch_size=3, width=4, depth=2, qam_width=4,
                warmup_epochs=0, precision="fp32", threads=1)
    return TrainConfig(**{**base, **kw})


def test_yields_one_event_per_step_with_batch_weights(tmp_path):
    truth = {f"im{i}": i % 2 == 0 for i in range(6)}
    events = list(Trainer(tiny_set(), cfg(), tmp_path, truth=truth).run())
    steps = [e for e in events if e.state == "running"]
    assert [e.step for e in steps] == [1, 2, 3, 4]
    assert events[-1].state == "finished"
    assert (events[-1].step, events[-1].epoch) == (4, 2)
    for e in steps:
        assert len(e.weights) == len(e.names) == 3
        assert math.isclose(sum(e.weights), 3.0, rel_tol=1e-5)
        assert e.eta_s >= 0
    ends = [e for e in steps if e.epoch_end]
    assert len(ends) == 2 and ends[0].clean_weight is not None
    assert (tmp_path / "checkpoint.pt").exists()
    assert (tmp_path / "history.csv").read_text().count("\n") == 3


def test_stop_takes_effect_before_the_next_step_and_resume_matches(tmp_path):
    config = cfg(epochs=3, strategy="qam_ocm")
    full = Trainer(tiny_set(), config, tmp_path / "full")
    list(full.run())

    part = Trainer(tiny_set(), config, tmp_path / "part")
    gen = part.run()
    for ev in gen:
        if ev.step == 3:  # mid-epoch 2
            part.stop()
            break
    nxt = next(gen)
    assert nxt.state == "stopped" and nxt.step == 3
    state = load_checkpoint(tmp_path / "part")
    assert (state["epoch"], state["step_in_epoch"]) == (1, 1)

    resumed = Trainer(tiny_set(), config, tmp_path / "part", resume=True)
    events = list(resumed.run())
    assert events[0].step == 4 and events[-1].state == "finished"
    a, b = full.segmenter.state_dict(), resumed.segmenter.state_dict()
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-5), k


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_checkpoint(tmp_path):
    data = tiny_set()
    trainer = Trainer(data, cfg(epochs=3), tmp_path, checkpoint_every_s=0)
    gen = trainer.run()
    for ev in gen:
        if ev.epoch_end:
            break
    before = (tmp_path / "checkpoint.pt").read_bytes()
    data.images[:] = float("nan")
    with pytest.raises(TrainingError, match="lower --lr"):
        list(gen)
    assert (tmp_path / "checkpoint.pt").read_bytes() == before
    TrainedModel.load(tmp_path)  # the kept checkpoint still loads


def test_epoch_ends_save_at_most_every_checkpoint_every_s_the_last_always(tmp_path):
    saved_after = []
    trainer = Trainer(tiny_set(), cfg(epochs=3), tmp_path / "slow", checkpoint_every_s=3600)
    for ev in trainer.run():
        if ev.epoch_end:
            saved_after.append((tmp_path / "slow" / "checkpoint.pt").exists())
    assert saved_after == [False, False, True]  # only the last epoch's end saved
    assert load_checkpoint(tmp_path / "slow")["epoch"] == 3
    assert (tmp_path / "slow" / "history.csv").read_text().count("\n") == 4  # every epoch

    every = Trainer(tiny_set(), cfg(epochs=3), tmp_path / "every", checkpoint_every_s=0)
    epochs = [load_checkpoint(tmp_path / "every")["epoch"] for ev in every.run() if ev.epoch_end]
    assert epochs == [1, 2, 3]


class _Boom:
    def __reduce__(self):
        return (print, ("pwned",))


def test_crafted_pickle_in_a_checkpoint_is_refused(tmp_path, capsys):
    bad = tmp_path / "checkpoint.pt"
    torch.save({"format": 1, "segmenter": _Boom(), "qam": {}, "config": {}, "classes": []}, bad)
    with pytest.raises(CheckpointError, match="crafted"):
        load_checkpoint(bad)
    assert "pwned" not in capsys.readouterr().out
    bad.write_bytes(pickle.dumps(_Boom()))
    with pytest.raises(CheckpointError):
        TrainedModel.load(tmp_path)
    with pytest.raises(CheckpointError, match="train first"):
        load_checkpoint(tmp_path / "nothing")


def test_baseline_never_reweights(tmp_path):
    events = [e for e in Trainer(tiny_set(), cfg(strategy="baseline"), tmp_path).run()
              if e.state == "running"]
    assert all(np.allclose(e.weights, 1.0) for e in events)
    assert not any(e.weighting for e in events)
