"""Quality signals: boundary distance sees erosion/dilation in pixels; scores rank."""

import numpy as np
import pytest
from skimage.morphology import binary_dilation, binary_erosion, disk
from tinydata import two_part

from napari_pal.scoring.quality import (
    boundary_signals,
    class_quality,
    disagreement_map,
    score_from_grid,
)


def disc(size=128, r=30):
    yy, xx = np.mgrid[:size, :size]
    return (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < r**2


@pytest.mark.parametrize("op,r,sign", [(binary_dilation, 6, 1), (binary_erosion, 6, -1),
                                       (binary_dilation, 3, 1)])
def test_offset_and_distance_measure_the_corruption_in_pixels(op, r, sign):
    pred = disc()
    mask = op(pred, disk(r))
    dice, dist, offset = boundary_signals(mask, pred)
    assert abs(dist - r) < 1.0
    assert abs(offset - sign * r) < 1.0
    assert dice < 1.0


def test_identical_and_empty_masks():
    pred = disc()
    assert boundary_signals(pred, pred) == (1.0, 0.0, 0.0)
    empty = np.zeros_like(pred)
    assert boundary_signals(empty, empty)[:2] == (1.0, 0.0)
    d, b, _ = boundary_signals(empty, pred)
    assert d == 0.0 and b == np.inf
    assert class_quality(np.inf) == 0.0


def test_quality_falls_with_distance_and_ranks_images():
    assert class_quality(0.0) == 1.0
    assert class_quality(1.0) == pytest.approx(0.5)
    assert class_quality(0.3) > class_quality(2.0)
    pred = np.stack([disc(), disc(r=15)])
    probs = pred.astype(np.float32) * 0.9 + 0.05
    good = score_from_grid("good", ["a", "b"], pred, probs, image_scale=2.0, qam_t=1.0)
    bad_mask = np.stack([binary_dilation(pred[0], disk(5)), pred[1]])
    bad = score_from_grid("bad", ["a", "b"], bad_mask, probs, image_scale=2.0, qam_t=-1.0)
    assert good.quality > bad.quality
    assert bad.per_class["a"] < bad.per_class["b"] == pytest.approx(1.0)
    assert bad.signals["dist_a"] == pytest.approx(10.0, abs=2.0), "in stored-image pixels"
    assert -2.0 < bad.signals["qam"] < good.signals["qam"] < 2.0


def test_disagreement_is_confidence_weighted():
    masks = np.zeros((2, 4, 4), bool)
    masks[0, 0, 0] = True
    probs = np.zeros((2, 4, 4), np.float32)
    probs[1, 3, 3] = 0.5
    m = disagreement_map(masks, probs)
    assert m[0, 0] == 1.0 and m[3, 3] == 0.5 and m[1, 1] == 0.0


def test_shift_is_seen_by_distance_not_by_offset_and_stray_blobs_are_ignored():
    pred = disc()
    shifted = np.roll(pred, 5, axis=1)
    _, dist, offset = boundary_signals(shifted, pred)
    assert dist > 2.5 and abs(offset) < 1.0
    stray = pred.copy()
    stray[2:8, 2:8] = True  # the prediction has a blob far from the mask
    assert boundary_signals(pred, stray)[1] == 0.0


# --- every kind of annotator error ----------------------------------------------------------

def _class_quality(mask, truth):
    """The class quality of ``mask`` when the model predicts ``truth`` confidently."""
    probs = truth[None].astype(np.float32) * 0.9 + 0.05
    return score_from_grid("x", ["c"], mask[None], probs, image_scale=1.0).per_class["c"]


@pytest.mark.parametrize("kind", ["erode", "dilate", "ragged", "shift", "wrong_image",
                                  "omit_part", "omit_class", "spill", "blob", "swap",
                                  "duplicate"])
def test_every_kind_scores_clearly_worse_than_the_clean_mask(kind):
    from napari_pal.data.errorkinds import apply_kind

    truth = two_part()
    donor = np.roll(truth, (6, -5), axis=(0, 1))
    spoilt, _ = apply_kind(kind, truth, 8, np.random.default_rng(0), donor)
    assert _class_quality(truth, truth) == 1.0
    assert _class_quality(spoilt, truth) < 0.5


def test_the_image_is_as_good_as_its_worst_class():
    truth = np.stack([two_part(), np.roll(two_part(), 4, axis=0)])
    probs = truth.astype(np.float32) * 0.9 + 0.05
    spoilt = truth.copy()
    spoilt[1] = False  # the second class not drawn at all
    s = score_from_grid("x", ["a", "b"], spoilt, probs, image_scale=1.0)
    assert s.per_class == {"a": 1.0, "b": 0.0} and s.quality == 0.0


def test_a_part_left_out_is_seen_although_every_drawn_outline_is_right():
    from napari_pal.data.errorkinds import apply_kind

    truth = two_part()
    one_lung, _ = apply_kind("omit_part", truth, 0, np.random.default_rng(0))
    probs = truth[None].astype(np.float32)
    s = score_from_grid("x", ["lungs"], one_lung[None], probs, image_scale=1.0)
    assert s.signals["dist_lungs"] == 0.0  # the outline distance alone is blind here ...
    assert s.signals["dist_back_lungs"] > 10.0  # ... the predicted lung's outline is far
    assert s.per_class["lungs"] < 0.05
    m = disagreement_map(one_lung[None], probs)
    assert m[truth & ~one_lung].min() == 1.0 and m[one_lung].max() == 0.0


def test_back_distance_ignores_specks_of_the_prediction_not_missing_parts():
    from napari_pal.scoring.quality import back_distance

    truth = two_part()
    speck = truth.copy()
    speck[4:7, 4:7] = True
    assert back_distance(truth, speck) == 0.0
    assert back_distance(truth & (np.arange(128) < 64)[None], truth) > 10.0
    assert back_distance(np.zeros_like(truth), truth) == np.inf
    assert back_distance(np.zeros_like(truth), np.zeros_like(truth)) == 0.0


def test_a_spill_is_seen_by_its_thickness_not_by_the_mean_distances():
    from napari_pal.data.errorkinds import apply_kind
    from napari_pal.scoring.quality import contradiction_radius

    truth = two_part()
    spill, _ = apply_kind("spill", truth, 8, np.random.default_rng(0))
    probs = truth.astype(np.float32) * 0.9 + 0.05
    s = score_from_grid("x", ["c"], spill[None], probs[None], image_scale=2.0)
    assert s.signals["dist_c"] < 1.0 and s.signals["dist_back_c"] < 1.0  # diluted
    assert s.signals["thick_c"] == pytest.approx(2.0 * 4, abs=2.5)  # half-disk of radius 8
    assert s.per_class["c"] < 0.5
    unsure = truth.astype(np.float32) * 0.2 + 0.4  # no confident contradiction anywhere
    assert contradiction_radius(spill, unsure) == 0.0
    speck = probs.copy()
    speck[2:9, 2:9] = 0.99  # the model's own confident speck off the structure
    assert score_from_grid("x", ["c"], truth[None], speck[None], 1.0).per_class["c"] == 1.0


#: kind -> the signals that catch it on the synthetic two-part mask: without ALL of them
#: the kind scores like a clean mask, so each test below fails if its signal is removed
CAUGHT_BY = {"erode": ("dist", "part", "back"), "dilate": ("dist", "part", "back", "thick"),
             "ragged": ("dist", "part", "back", "thick", "stray"),
             "shift": ("dist", "part", "back", "thick"),
             "wrong_image": ("dist", "part", "back", "thick"), "omit_part": ("back",),
             "omit_class": ("dist", "back"), "spill": ("part", "thick"),
             "blob": ("dist", "thick", "stray"), "swap": ("dist", "part", "back", "thick"),
             "duplicate": ("dist", "part", "back")}


def _without(monkeypatch, signals):
    """Switch signals of the quality rule off (their value 0) for one test."""
    from napari_pal.scoring import quality

    if "dist" in signals:
        real = quality.boundary_signals
        monkeypatch.setattr(quality, "boundary_signals",
                            lambda m, p: (real(m, p)[0], 0.0, 0.0))
    if "part" in signals:
        monkeypatch.setattr(quality, "worst_part_distance", lambda m, p, found=None: 0.0)
    if "back" in signals:
        monkeypatch.setattr(quality, "back_distance", lambda m, p: 0.0)
    if "thick" in signals:
        monkeypatch.setattr(quality, "contradiction_radius", lambda m, p: 0.0)
    if "stray" in signals:
        monkeypatch.setattr(quality, "stray_distance", lambda m, p: 0.0)


@pytest.mark.parametrize("kind", sorted(CAUGHT_BY))
def test_each_kind_is_lost_when_the_signals_that_catch_it_are_removed(kind, monkeypatch):
    from napari_pal.data.errorkinds import apply_kind

    truth = two_part()
    donor = np.roll(truth, (6, -5), axis=(0, 1))
    spoilt, _ = apply_kind(kind, truth, 8, np.random.default_rng(0), donor)
    others = {"dist", "part", "back", "thick", "stray"} - set(CAUGHT_BY[kind])
    with monkeypatch.context() as m:
        _without(m, others)  # the other signals alone do not matter for this kind ...
        assert _class_quality(spoilt, truth) < 0.5
    _without(monkeypatch, CAUGHT_BY[kind])  # ... and without its own it looks clean (a
    # spill's outline moves 0.4 px on average: quality 0.89)
    assert _class_quality(spoilt, truth) > 0.85


def test_a_stray_piece_no_prediction_touches_counts_by_its_distance_whatever_its_size():
    from napari_pal.scoring.quality import stray_distance

    truth = two_part()
    dot = truth.copy()
    dot[120:122, 60:62] = True  # 4 px, far below the lungs: a slip of the brush
    assert stray_distance(dot, truth) > 20.0
    assert _class_quality(dot, truth) < 0.1  # the other signals alone: 0.87
    assert stray_distance(truth, truth) == 0.0
    touching = truth | np.roll(truth, 3, axis=1)  # every piece overlaps the prediction
    assert stray_distance(touching, truth) == 0.0
    assert stray_distance(dot, np.zeros_like(truth)) == 0.0  # nothing predicted: dist's case


def test_one_part_drawn_wrong_counts_by_that_part_not_the_class_mean():
    """A lung drawn wrong and the other right: the class mean halves the error, the worst
    part keeps it (the per-part analogue of an image being its worst class)."""
    from scipy import ndimage as ndi

    from napari_pal.scoring.quality import worst_part_distance

    truth = two_part()
    labels, _ = ndi.label(truth)
    spoilt = (labels == 1) | ndi.shift(labels == 2, (6, 0), order=0)  # one part moved 6 px
    _, dist, _ = boundary_signals(spoilt, truth)
    part = worst_part_distance(spoilt, truth)
    assert part == pytest.approx(2 * dist, rel=0.35) and part > 1.5 * dist
    assert worst_part_distance(truth, truth) == 0.0
    assert worst_part_distance(np.zeros_like(truth), truth) == 0.0
