"""The anytime ranking (re-scored while training) and the time-budget planner."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from tinydata import tiny_config

from napari_pal.data.trainset import load_training_set
from napari_pal.errors import PalError
from napari_pal.method.budget import FULL_EPOCHS, MIN_EPOCHS, calibrate, plan_for_minutes
from napari_pal.method.config import TrainConfig
from napari_pal.method.training import Trainer
from napari_pal.scoring.anytime import compare, top_k_of, train_with_refreshes


def test_compare_counts_new_names_at_the_top_and_rank_agreement():
    assert compare([], ["a", "b"], 1) == (None, None)
    changed, rho = compare(["a", "b", "c", "d"], ["a", "b", "c", "d"], 2)
    assert changed == 0 and rho == pytest.approx(1.0)
    changed, rho = compare(["a", "b", "c", "d"], ["d", "c", "b", "a"], 2)
    assert changed == 1.0 and rho == pytest.approx(-1.0)
    assert top_k_of(8) == 5 and top_k_of(165) == 17 and top_k_of(10_000) == 50


def test_refreshes_during_training_rank_the_whole_folder(small, tmp_path):
    config = tiny_config()
    trainer = Trainer(load_training_set(small, config.size), config, tmp_path / "run")
    events = list(train_with_refreshes(trainer, small, every_s=0.0, max_share=float("inf")))
    refreshes = [e for e in events if hasattr(e, "scores")]
    progress = [e for e in events if not hasattr(e, "scores")]
    assert [r.epoch for r in refreshes] == [1, 2, 3]  # each epoch end; the last is the final one
    assert [r.final for r in refreshes] == [False, False, True]
    assert refreshes[0].top_changed is None
    for r in refreshes:
        assert sorted(s.name for s in r.scores) == sorted(small.names)
        order = [s.name for s in sorted(r.scores, key=lambda s: (s.quality, s.name))]
        assert r.worst == (order[:r.top_k] if r.ranked else [])
        assert r.score_s > 0 and r.train_s > 0
    for before, r in zip(refreshes, refreshes[1:]):
        if before.ranked and r.ranked:
            assert 0.0 <= r.top_changed <= 1.0
        else:
            assert r.top_changed is None
    assert progress[-1].state == "finished"
    assert sum(e.state == "running" for e in progress) == 3 * 2  # 8 images, batch 4


def test_refreshing_does_not_change_what_is_trained(small, tmp_path):
    config = tiny_config(epochs=2)
    data = load_training_set(small, config.size)
    plain = Trainer(data, config, tmp_path / "plain")
    list(plain.run())
    scored = Trainer(data, config, tmp_path / "scored")
    list(train_with_refreshes(scored, small, every_s=0.0, max_share=float("inf")))
    for a, b in zip(plain.segmenter.state_dict().values(),
                    scored.segmenter.state_dict().values()):
        assert torch.equal(a, b)


def test_refreshes_are_spaced_by_time(small, tmp_path):
    config = tiny_config(epochs=3)
    trainer = Trainer(load_training_set(small, config.size), config, tmp_path / "run")
    refreshes = [e for e in train_with_refreshes(trainer, small, every_s=3600.0)
                 if hasattr(e, "scores")]
    assert [(r.epoch, r.final) for r in refreshes] == [(1, False), (3, True)]


def test_plan_fits_the_budget_on_each_kind_of_machine():
    cpu = {256: 1.7, 192: 6.0, 128: 15.0}  # images/s: 2-core CPU without AVX-512, 1 thread
    five = plan_for_minutes(5, 165, cpu)
    c = five.config
    assert c.size == 128 and MIN_EPOCHS <= c.epochs < FULL_EPOCHS and c.stages == ""
    assert five.expected_minutes <= 5 and f"{c.epochs} of {FULL_EPOCHS} epochs fit" in five.reason
    quarter = plan_for_minutes(15, 165, cpu)
    assert (quarter.config.size, quarter.config.epochs) == (128, FULL_EPOCHS)
    assert quarter.reason == "60 epochs at 128 px: the full 60-epoch schedule fits"
    # a finer size where its whole schedule fits with room to spare (AVX-512 BF16, measured)
    bf16_rates = {256: 8.0, 192: 22.0, 128: 50.0}
    bf16 = plan_for_minutes(15, 165, bf16_rates)
    assert (bf16.config.size, bf16.config.epochs) == (192, FULL_EPOCHS)
    assert bf16.expected_minutes <= 15 * 0.6
    # ... and not where it would fill the budget (it bought no test Dice; refreshes cost more)
    assert plan_for_minutes(15, 165, {**bf16_rates, 192: 12.0}).config.size == 128
    assert plan_for_minutes(60, 165, bf16_rates).config.size == 256
    gpu = plan_for_minutes(5, 165, {256: 400.0, 192: 600.0, 128: 1500.0})
    assert (gpu.config.size, gpu.config.epochs) == (256, FULL_EPOCHS)
    short = plan_for_minutes(0.1, 165, cpu)
    assert short.config.epochs == MIN_EPOCHS and "short" in short.reason
    two = plan_for_minutes(0.1, 165, {64: 5.0, 32: 20.0})  # only the sizes measured
    assert two.config.size == 32
    base = dataclasses.replace(TrainConfig(), lam=0.5, threads=1, stages="16:1")
    planned = plan_for_minutes(5, 165, cpu, base).config
    assert planned.lam == 0.5 and planned.stages == ""  # the plan's own schedule
    with pytest.raises(PalError, match="positive"):
        plan_for_minutes(0, 165, cpu)


def test_calibrate_measures_each_size_and_writes_nothing(small, sample_dir, tree_hash):
    before = tree_hash(sample_dir)
    rates = calibrate(small, tiny_config(), sizes=(64, 32), images=4, steps=1)
    assert set(rates) == {64, 32} and all(r > 0 for r in rates.values())
    # a budget far too short for any finer stage: the larger size is not even measured
    assert set(calibrate(small, tiny_config(), sizes=(64, 32), images=4, steps=1,
                         minutes=1e-6)) == {32}
    assert tree_hash(sample_dir) == before


def test_refresh_ranks_over_the_learnt_classes_only(small, tmp_path, monkeypatch):
    """Early on a class is not learnt: every image's worst class is then ~0 and the folder
    would tie; the refresh ranks over the learnt classes, and with none says so."""
    from napari_pal.scoring import anytime
    from napari_pal.scoring.quality import ImageScore

    classes = list(small.classes)
    learnt, unlearnt = classes[0], classes[1:]

    def fake_scores(trainer, dataset, overrides=None, **_):
        out = []
        for i, name in enumerate(dataset.names):
            per = {learnt: 0.1 * i, **{c: 0.0 for c in unlearnt}}
            sig = {f"dice_{learnt}": 0.9, f"offset_{learnt}": 0.5}
            sig |= {f"dice_{c}": 0.0 for c in unlearnt} | {f"offset_{c}": float("inf")
                                                           for c in unlearnt}
            out.append(ImageScore(name, 0.0, per, sig))
        return out

    monkeypatch.setattr(anytime, "score_now", fake_scores)
    config = tiny_config(epochs=2)
    trainer = Trainer(load_training_set(small, config.size), config, tmp_path / "run")
    refreshes = [e for e in train_with_refreshes(trainer, small, every_s=0.0,
                                                 max_share=float("inf"))
                 if hasattr(e, "scores")]
    first = refreshes[0]
    assert first.ranked and first.reliable == {learnt: True, **{c: False for c in unlearnt}}
    assert first.worst == list(small.names[:first.top_k])  # ordered by the learnt class
    assert [s.quality for s in first.scores] == pytest.approx(
        [0.1 * i for i in range(len(small))])

    def nothing_learnt(trainer, dataset, overrides=None, **_):
        return [ImageScore(n, 0.0, {c: 0.0 for c in classes},
                           {f"dice_{c}": 0.0 for c in classes}
                           | {f"offset_{c}": float("inf") for c in classes})
                for n in dataset.names]

    monkeypatch.setattr(anytime, "score_now", nothing_learnt)
    trainer = Trainer(load_training_set(small, config.size), config, tmp_path / "run2")
    refreshes = [e for e in train_with_refreshes(trainer, small, every_s=0.0,
                                                 max_share=float("inf"))
                 if hasattr(e, "scores")]
    assert all(not r.ranked and r.worst == [] and r.top_changed is None for r in refreshes)
