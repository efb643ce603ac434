"""Why a class got its quality: the term that set it, named with its size."""

import re

import numpy as np
from skimage.morphology import binary_dilation, binary_erosion, disk
from tinydata import two_part

from napari_pal.scoring.quality import score_from_grid, scores_csv
from napari_pal.scoring.reasons import image_reason


def why(mask, truth, **kw):
    probs = truth[None].astype(np.float32) * 0.9 + 0.05
    return score_from_grid("x", ["lungs"], mask[None], probs, 2.0, **kw).why["lungs"]


def size_in(reason: str, pattern: str) -> float:
    found = re.fullmatch(pattern.replace("N", r"([0-9.]+)"), reason)
    assert found, reason
    return float(found.group(1))


def test_each_term_is_named_with_its_size_in_stored_pixels():
    truth = two_part()  # 4 grid px at scale 2: 8 px of the stored image, less the edge
    grown = why(binary_dilation(truth, disk(4)), truth)
    assert 7.0 < size_in(grown, "outline drawn N px outside the model's") <= 8.0
    shrunk = why(binary_erosion(truth, disk(4)), truth)
    assert 7.0 < size_in(shrunk, "outline drawn N px inside the model's") <= 8.0
    dot = truth.copy()
    dot[120:122, 60:62] = True
    assert size_in(why(dot, truth), "a stray piece N px from what the model sees") > 40
    labels = truth & (np.arange(128)[None, :] < 64)  # one lung of two, the model sees both
    assert "a part left out?" in why(labels, truth)
    assert why(labels, truth, usual_parts={"lungs": 2}) == \
        "1 part where the folder's masks have 2"
    assert why(np.zeros_like(truth), truth) == "not drawn but the model sees it"
    assert why(truth, np.zeros_like(truth)) == "drawn where the model sees nothing"
    assert why(truth, truth) == "agrees with the model"
    stroke = why(truth, truth, strokes=np.array([3.0]))  # 3 % of a 128 grid at scale 2
    assert stroke == "a brush stroke 7.7 px past the outline"


def test_the_image_reason_is_its_worst_class_and_goes_into_the_table():
    truth = two_part()
    masks = np.stack([truth, binary_dilation(truth, disk(4))])
    probs = np.stack([truth, truth]).astype(np.float32) * 0.9 + 0.05
    s = score_from_grid("im", ["a", "b"], masks, probs, 1.0)
    assert 3.5 < size_in(image_reason(s), "b: outline drawn N px outside the model's") <= 4
    rows = scores_csv([s], ["a", "b"]).splitlines()
    assert rows[0].split(",")[:5] == ["name", "quality", "quality_a", "quality_b", "why"]
    assert rows[1].split(",")[4] == image_reason(s)
    assert "why" not in scores_csv([s], ["a", "b"], signals=False)
