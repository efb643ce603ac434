"""Brush strokes past the outline: found by their corners, not confused with a smooth cut."""

import numpy as np
import pytest

from napari_pal.data.geometry import Frame
from napari_pal.scoring.quality import contradiction_radius, score_from_grid
from napari_pal.scoring.strokes import grid_stroke_percents, stroke_height, stroke_percents


def organ(size=256):
    """A superellipse: flat sides and rounded corners, like a heart's outline."""
    yy, xx = np.mgrid[:size, :size]
    c = size / 256
    return np.abs((yy - 150 * c) / (45 * c)) ** 4 + np.abs((xx - 128 * c) / (55 * c)) ** 4 <= 1


def spilt(mask, r, dx=0):
    """A round brush stroke of radius r centred on the top outline, dx px off its middle."""
    ys, xs = np.nonzero(mask)
    top = ys.min()
    x = int(round(xs[ys == top].mean())) + dx
    yy, xx = np.mgrid[:mask.shape[0], :mask.shape[1]]
    return mask | ((yy - top) ** 2 + (xx - x) ** 2 <= r * r)


@pytest.mark.parametrize("r", [5, 8, 13])
@pytest.mark.parametrize("dx", [-20, 0, 15])
def test_a_stroke_past_the_outline_counts_by_its_height(r, dx):
    truth = organ()
    prob = truth.astype(np.float32)
    assert stroke_height(truth, prob) == 0.0
    assert stroke_height(spilt(truth, r, dx), prob) == pytest.approx(r, abs=1.5)
    assert stroke_height(spilt(truth, r, dx), spilt(truth, r, dx).astype(np.float32)) == 0.0


def test_a_smooth_piece_the_model_cuts_off_has_no_stroke():
    """The in-sample model cuts off the top of clean hearts: as thick a contradiction as a
    spill's, but with no corners, so it is no stroke (the reason for the stroke term)."""
    truth = organ()
    cut = truth.copy()
    cut[:113] = False  # the model denies the top 8 px of the organ, smoothly
    assert contradiction_radius(truth, cut.astype(np.float32)) >= 3.5
    assert stroke_height(truth, cut.astype(np.float32)) == 0.0
    assert stroke_height(spilt(truth, 8), truth.astype(np.float32)) >= 7.0


def test_strokes_are_measured_at_the_same_scale_whatever_the_stored_size():
    small = stroke_percents(spilt(organ(), 8)[None], organ()[None].astype(np.float32))
    big = stroke_percents(spilt(organ(512), 16)[None], organ(512)[None].astype(np.float32))
    assert small[0] == pytest.approx(100 * 8 / 256, abs=0.6)
    assert big[0] == pytest.approx(small[0], abs=0.6)


def test_the_quality_of_a_spilt_class_falls_only_with_the_stroke_term():
    truth = organ(128)
    mask = spilt(truth, 3)  # a 6-px spill at 256 px: under the 128-px grid's other signals
    probs = truth.astype(np.float32)[None] * 0.98 + 0.01
    without = score_from_grid("x", ["heart"], mask[None], probs, image_scale=2.0)
    strokes = stroke_percents(spilt(organ(), 6)[None], organ()[None] * 0.98 + 0.01)
    spill = score_from_grid("x", ["heart"], mask[None], probs, 2.0, strokes=strokes)
    assert spill.signals["stroke_heart"] == pytest.approx(6, abs=1.5)  # image px
    assert spill.per_class["heart"] < 0.5 < without.per_class["heart"]
    clean = score_from_grid("x", ["heart"], truth[None], probs, 2.0,
                            strokes=stroke_percents(organ()[None], organ()[None] * 1.0))
    assert clean.per_class["heart"] == 1.0


def test_strokes_from_the_training_grid_of_a_large_non_square_image():
    """The product scores from grid probabilities: a 512 x 640 image in a 128-px grid."""
    yy, xx = np.mgrid[:512, :640]
    truth = np.abs((yy - 300) / 90) ** 4 + np.abs((xx - 320) / 110) ** 4 <= 1
    frame = Frame(512, 640, 128)
    probs = frame.to_square(truth[None].astype(np.float32))
    spill = grid_stroke_percents(spilt(truth, 20)[None], probs)
    assert spill[0] == pytest.approx(100 * 20 / 640, abs=0.6)
    assert grid_stroke_percents(truth[None], probs)[0] == 0.0
