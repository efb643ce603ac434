"""Progressive resizing, the weighting ramp, and refreshes scored from the grid on an
average of the networks."""

from __future__ import annotations

import pytest
import torch
from tinydata import tiny_config as tiny

from napari_pal.data.trainset import load_training_set
from napari_pal.errors import PalError
from napari_pal.method.config import TrainConfig, parse_stages
from napari_pal.method.inference import TrainedModel
from napari_pal.method.schedule import grid_size, lam_at, plan_text, resize_batch
from napari_pal.method.training import Trainer
from napari_pal.scoring.anytime import Averaged, grid_scores, score_now
from napari_pal.scoring.quality import analyse


def test_stages_give_each_epoch_its_size_and_are_checked():
    c = TrainConfig(size=192, epochs=60, stages="96:12,128:36")
    assert [grid_size(c, e) for e in (0, 11, 12, 47, 48, 59)] == [96, 96, 128, 128, 192, 192]
    assert plan_text(c) == "12 epochs at 96 px, 36 at 128 px, 12 at 192 px"
    assert plan_text(TrainConfig(size=128, epochs=60)) == "60 epochs at 128 px"
    assert parse_stages(" 96:2 , ") == [(96, 2)]
    for bad in ("96", "96:x", "100:5", "96:0"):
        with pytest.raises(PalError, match="stages"):
            TrainConfig(size=128, epochs=60, stages=bad)
    with pytest.raises(PalError, match="at least one epoch at size"):
        TrainConfig(size=128, epochs=10, stages="96:10")


def test_lam_ramps_from_zero_after_the_warm_up():
    c = TrainConfig(epochs=60, lam=1.0, ramp_epochs=6)  # warm-up 12 epochs
    assert c.warmup == 12 and c.ramp == 6 and TrainConfig(epochs=60, ramp_epochs=-1).ramp == 6
    assert TrainConfig(epochs=60).ramp == 0  # off by default
    assert lam_at(c, 12 * 10 - 1, 10) == 0.0
    assert lam_at(c, 12 * 10, 10) == pytest.approx(1 / 60)
    assert lam_at(c, 15 * 10 - 1, 10) == pytest.approx(0.5)
    assert lam_at(c, 18 * 10 - 1, 10) == 1.0 and lam_at(c, 59 * 10, 10) == 1.0
    switch = TrainConfig(epochs=60, lam=2.0, ramp_epochs=0)
    assert lam_at(switch, 12 * 10, 10) == 2.0


def test_resize_batch_keeps_binary_masks_and_their_area():
    masks = torch.zeros(2, 3, 48, 48)
    masks[:, :, 12:36, 6:30] = 1
    images = torch.rand(2, 1, 48, 48)
    small_i, small_m = resize_batch(images, masks, 32)
    assert small_i.shape == (2, 1, 32, 32) and small_m.shape == (2, 3, 32, 32)
    assert set(small_m.unique().tolist()) <= {0.0, 1.0}
    assert small_m.mean().item() == pytest.approx(masks.mean().item(), rel=0.1)
    big_i, big_m = resize_batch(images, masks, 64)
    assert big_m.mean().item() == pytest.approx(masks.mean().item(), rel=0.1)
    same = resize_batch(images, masks, 48)
    assert same[0] is images and same[1] is masks


def test_trainer_trains_each_epoch_at_its_stage_size(small, tmp_path):
    config = tiny(epochs=3, size=32, stages="16:1")
    trainer = Trainer(load_training_set(small, config.size), config, tmp_path / "run")
    seen = []
    trainer.segmenter.register_forward_pre_hook(lambda m, a: seen.append(a[0].shape[-1]))
    sizes = [(ev.epoch, seen[-1]) for ev in trainer.run() if ev.state == "running"]
    assert sizes == [(1, 16), (1, 16), (2, 32), (2, 32), (3, 32), (3, 32)]


def test_refresh_scores_from_the_grid_as_from_the_folder(small, tmp_path):
    config = tiny(epochs=1)
    data = load_training_set(small, config.size)
    trainer = Trainer(data, config, tmp_path / "run")
    list(trainer.run())
    model = TrainedModel.snapshot(trainer)
    from_disk = [a.score for a in analyse(model, small, maps=False)]
    from_grid = grid_scores(model, data, small.names, config.size)
    assert [s.name for s in from_grid] == list(small.names)
    for a, b in zip(from_disk, from_grid):
        assert b.quality == pytest.approx(a.quality, abs=1e-4)
    # the annotator's painted masks replace the stored ones
    wrong = {small.names[0]: small.read_masks(1)}
    painted = score_now(trainer, small, wrong, model=model, size=config.size)
    on_disk = next(analyse(model, small, maps=False, overrides=wrong)).score
    assert painted[0].per_class == pytest.approx(on_disk.per_class, abs=1e-4)
    assert painted[0].per_class != pytest.approx(from_grid[0].per_class, abs=1e-3)
    assert [s.quality for s in painted[1:]] == pytest.approx([s.quality for s in from_grid[1:]])
    half = score_now(trainer, small, model=model, size=16)  # any size, from the same grid
    assert len(half) == len(small) and all(0 <= s.quality <= 1 for s in half)


def test_average_of_the_networks_lags_behind_them(small, tmp_path):
    config = tiny(epochs=2)
    trainer = Trainer(load_training_set(small, config.size), config, tmp_path / "run")
    first = [p.detach().clone() for p in trainer.segmenter.parameters()]
    avg = Averaged(trainer, epochs=100.0)
    for ev in trainer.run():
        if ev.state == "running":
            avg.update(2)
    live = list(trainer.segmenter.parameters())
    mean = list(avg.nets[0].parameters())
    # between where training started and where it is now, and not at either end
    d_start = sum((m - f).abs().sum().item() for m, f in zip(mean, first))
    d_live = sum((m - p.detach()).abs().sum().item() for m, p in zip(mean, live))
    assert d_start > 0 and d_live > 0
    assert avg.model().segmenter is avg.nets[0] and not avg.nets[0].training
