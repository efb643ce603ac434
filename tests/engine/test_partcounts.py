"""The folder's usual part count: a part left out is seen even where the model learnt it."""

import numpy as np
from tinydata import tiny_config, tiny_set, two_part

from napari_pal.data.errorkinds import apply_kind
from napari_pal.data.partcounts import judged_by, part_count, usual_part_counts
from napari_pal.method.checkpoint import load_checkpoint
from napari_pal.method.inference import TrainedModel
from napari_pal.method.training import Trainer
from napari_pal.scoring.quality import score_from_grid


def one_part_left_out():
    lungs, _ = apply_kind("omit_part", two_part(), 0, np.random.default_rng(0))
    return lungs


def test_parts_are_counted_without_specks():
    lungs = two_part()
    assert part_count(lungs) == 2 and part_count(one_part_left_out()) == 1
    speck = lungs.copy()
    speck[2:4, 2:4] = True  # under a tenth of the area: no part
    assert part_count(speck) == 2 and part_count(np.zeros_like(lungs)) == 0


def test_the_usual_count_needs_most_masks_and_ignores_empty_ones():
    lungs, heart = two_part(), np.roll(one_part_left_out(), 3, axis=0)
    empty = np.zeros_like(lungs)
    folder = [np.stack([lungs, heart])] * 8 + [np.stack([one_part_left_out(), empty])] * 2
    assert usual_part_counts(folder, ["lungs", "heart"]) == {"lungs": 2, "heart": 1}
    varied = [np.stack([lungs])] * 6 + [np.stack([one_part_left_out()])] * 4
    assert usual_part_counts(varied, ["cells"]) == {}  # 60 %: no usual count, no rule
    assert judged_by(one_part_left_out(), "cells", {}) is None
    assert judged_by(empty, "lungs", {"lungs": 2}) is None  # a class left out: not here
    assert judged_by(one_part_left_out(), "lungs", {"lungs": 2}) == 2
    third = lungs.copy()
    third[105:125, 55:75] = True  # a blob the size of a part
    assert part_count(third) == 3
    extra = score_from_grid("x", ["lungs"], third[None], third[None] * 0.9 + 0.05, 1.0,
                            usual_parts={"lungs": 2})  # even where the model learnt it
    assert extra.per_class["lungs"] == 0.0
    assert extra.why["lungs"] == "3 parts where the folder's masks have 2"


def test_a_part_left_out_scores_0_even_where_the_model_learnt_the_omission():
    omitted = one_part_left_out()
    learnt = omitted[None].astype(np.float32) * 0.9 + 0.05  # the model predicts it missing
    blind = score_from_grid("x", ["lungs"], omitted[None], learnt, image_scale=1.0)
    assert blind.per_class["lungs"] > 0.9  # every distance agrees with the omission ...
    seen = score_from_grid("x", ["lungs"], omitted[None], learnt, 1.0,
                           usual_parts={"lungs": 2})
    assert seen.per_class["lungs"] == 0.0 and seen.signals["parts_lungs"] == 1.0
    assert seen.why["lungs"] == "1 part where the folder's masks have 2"
    clean = two_part()
    good = score_from_grid("x", ["lungs"], clean[None], clean[None] * 0.9 + 0.05, 1.0,
                           usual_parts={"lungs": 2})
    assert good.per_class["lungs"] == 1.0 and good.signals["parts_lungs"] == 2.0


def test_training_records_the_usual_counts_and_scoring_reads_them(tmp_path):
    data = tiny_set()
    data.masks[0, 1, 20:26, 2:20] = 1  # one mask of class b drawn in two parts
    trainer = Trainer(data, tiny_config(epochs=1), tmp_path)
    list(trainer.run())
    assert load_checkpoint(tmp_path)["usual_parts"] == {"a": 1, "b": 1}
    assert TrainedModel.load(tmp_path).usual_parts == {"a": 1, "b": 1}
    assert TrainedModel.snapshot(trainer).usual_parts == {"a": 1, "b": 1}


def test_part_counts_judge_only_the_classes_asked_for(tmp_path):
    import pytest

    from napari_pal.errors import PalError

    trainer = Trainer(tiny_set(), tiny_config(epochs=1, part_counts="b"), tmp_path / "b")
    assert trainer.usual_parts == {"b": 1}
    assert Trainer(tiny_set(), tiny_config(epochs=1, part_counts="none"),
                   tmp_path / "none").usual_parts == {}
    with pytest.raises(PalError, match="part_counts names nodules, not a class of the data"):
        Trainer(tiny_set(), tiny_config(epochs=1, part_counts="a,nodules"), tmp_path / "x")
