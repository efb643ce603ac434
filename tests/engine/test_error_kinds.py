"""Annotator error kinds: each does what its name says to a two-part mask, seeded."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from napari_pal.data.errorkinds import (
    KINDS,
    TWO_PART_KINDS,
    applicable,
    apply_kind,
    morph,
    parts,
    pick,
    spoil,
)


def ellipse(cy, cx, ry, rx, size=128):
    yy, xx = np.mgrid[:size, :size]
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1


def lungs():
    """Two parts of different size, like a right (image left) and a left lung."""
    return ellipse(64, 36, 34, 16) | ellipse(60, 92, 28, 13)


def heart():
    return ellipse(80, 70, 16, 20)


def outline_distance(mask):
    return ndimage.distance_transform_edt(~(mask & ~ndimage.binary_erosion(mask)))


def test_parts_are_ordered_left_to_right_and_ignore_specks():
    m = lungs()
    m[2, 2] = True  # a speck
    left, right = parts(m)
    assert np.nonzero(left)[1].mean() < 64 < np.nonzero(right)[1].mean()
    assert left.sum() > right.sum()
    assert len(parts(heart())) == 1 and parts(np.zeros((8, 8), bool)) == []


@pytest.mark.parametrize("kind", ["erode", "dilate"])
def test_paper_kinds_are_the_morphology(kind):
    out, _ = apply_kind(kind, lungs(), 4, np.random.default_rng(0))
    np.testing.assert_array_equal(out, morph(lungs(), kind, 4))
    assert (out.sum() > lungs().sum()) == (kind == "dilate")


def test_ragged_moves_the_outline_both_ways_within_its_amplitude():
    m = lungs()
    out, _ = apply_kind("ragged", m, 6, np.random.default_rng(0))
    changed = out ^ m
    assert (out & ~m).sum() > 20 and (m & ~out).sum() > 20  # in and out
    assert outline_distance(m)[changed].max() <= 6 + 1


def test_shift_moves_by_the_given_pixels():
    m = heart()
    out, detail = apply_kind("shift", m, 7, np.random.default_rng(3))
    moved = np.subtract(ndimage.center_of_mass(out), ndimage.center_of_mass(m))
    assert np.hypot(*moved) == pytest.approx(7, abs=1.0)
    assert out.sum() == m.sum() and detail.startswith("dy=")


def test_wrong_image_takes_the_donor_and_fits_its_size():
    donor = heart()
    out, _ = apply_kind("wrong_image", lungs(), 0, np.random.default_rng(0), donor)
    np.testing.assert_array_equal(out, donor)
    big = np.kron(donor, np.ones((2, 2), bool))
    np.testing.assert_array_equal(apply_kind("wrong_image", lungs(), 0,
                                             np.random.default_rng(0), big)[0], donor)
    assert not applicable("wrong_image", donor, donor)
    assert not applicable("wrong_image", donor, None)


def test_omit_part_leaves_one_part_and_omit_class_none():
    m = lungs()
    for seed in range(4):
        out, detail = apply_kind("omit_part", m, 0, np.random.default_rng(seed))
        assert len(parts(out)) == 1 and (out <= m).all()
        kept = parts(out)[0]
        assert kept.sum() in {p.sum() for p in parts(m)}
        assert detail in ("part=left", "part=right")
    assert not apply_kind("omit_class", m, 0, np.random.default_rng(0))[0].any()


def test_spill_is_attached_and_blob_is_apart():
    m = heart()
    spill, _ = apply_kind("spill", m, 6, np.random.default_rng(1))
    blob, _ = apply_kind("blob", m, 6, np.random.default_rng(1))
    for out in (spill, blob):
        assert (out >= m).all() and out.sum() > m.sum() + 20
    assert ndimage.label(spill)[1] == 1
    assert ndimage.label(blob)[1] == 2
    added = blob & ~m
    assert ndimage.distance_transform_edt(~m)[added].min() > 6


def test_swap_puts_each_part_on_the_other_side():
    m = lungs()
    out, _ = apply_kind("swap", m, 0, np.random.default_rng(0))
    left, right = parts(out)
    big, small = parts(m)
    assert abs(int(left.sum()) - int(small.sum())) < 30
    assert abs(int(right.sum()) - int(big.sum())) < 30


def test_duplicate_draws_one_part_twice_mirrored():
    m = lungs()
    out, detail = apply_kind("duplicate", m, 0, np.random.default_rng(0))
    left, right = parts(out)
    assert abs(int(left.sum()) - int(right.sum())) < 30  # the same part twice
    np.testing.assert_array_equal(left, np.fliplr(np.fliplr(left)))
    assert detail in ("kept=left", "kept=right")


def test_applicable_needs_two_parts_and_a_mask():
    for kind in TWO_PART_KINDS:
        assert applicable(kind, lungs()) and not applicable(kind, heart())
    empty = np.zeros((16, 16), bool)
    assert applicable("erode", empty)  # the paper's rule spoils every class
    assert not any(applicable(k, empty) for k in KINDS if k not in ("erode", "dilate"))
    with pytest.raises(ValueError, match="two parts"):
        apply_kind("swap", heart(), 0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="unknown error kind"):
        apply_kind("melt", heart(), 0, np.random.default_rng(0))


def _spoil(seed, cpi=(1, 2), kinds=KINDS, n=40):
    names = [f"im{i:02d}" for i in range(n)]
    stack = [np.stack([lungs(), heart()]), np.stack([np.roll(lungs(), 3, 1), heart()])]
    rng = np.random.default_rng(seed)
    picked = pick(names, 0.5, rng)
    return picked, *spoil(names, ["lungs", "heart"], lambda i: stack[i % 2], picked, (3, 6),
                          kinds, rng, cpi)


def test_spoil_one_or_two_classes_balanced_and_seeded():
    picked, masks, records = _spoil(0)
    assert len(picked) == 20 and set(masks) == picked
    again = _spoil(0)
    assert again[2] == records and all(np.array_equal(masks[k], again[1][k]) for k in masks)
    assert _spoil(1)[2] != records
    per_image = {}
    for r in records:
        per_image.setdefault(r.name, []).append(r.operation)
    for name, ops in per_image.items():
        n_bad = sum(o != "none" for o in ops)
        assert (1 <= n_bad <= 2) if name in picked else n_bad == 0
    counts = [sum(r.operation == k for r in records) for k in KINDS]
    assert max(counts) - min(counts) <= 2, counts  # about equally frequent
    for r in records:
        if r.operation in TWO_PART_KINDS:
            assert r.cls == "lungs"  # the heart has one part
        if r.operation == "wrong_image":
            assert r.detail.startswith("from=im") and r.detail != f"from={r.name}"


def test_cli_corrupt_passes_new_kinds_through(tmp_path: Path):
    from napari_pal.cli import main
    from napari_pal.data.synthetic import make_sample_dataset

    make_sample_dataset(tmp_path / "src", n=6, size=64, bad_fraction=0.0)
    (tmp_path / "src" / "corruption.csv").unlink()
    assert main(["corrupt", str(tmp_path / "src"), str(tmp_path / "out"), "--fraction", "1",
                 "--pixels", "2", "4", "--ops", "omit_class,blob"]) == 0
    rows = list(csv.DictReader(open(tmp_path / "out" / "corruption.csv")))
    assert {r["operation"] for r in rows} == {"omit_class", "blob"}
    assert {"name", "class", "operation", "pixels", "detail"} <= rows[0].keys()
    assert main(["corrupt", str(tmp_path / "src"), str(tmp_path / "o2"), "--ops", "melt"]) == 2


def test_cli_corrupt_spoils_the_asked_number_of_classes(tmp_path: Path):
    from napari_pal.cli import main
    from napari_pal.data.synthetic import make_sample_dataset

    make_sample_dataset(tmp_path / "src", n=6, size=64, bad_fraction=0.0)
    (tmp_path / "src" / "corruption.csv").unlink()
    assert main(["corrupt", str(tmp_path / "src"), str(tmp_path / "out"), "--fraction", "1",
                 "--pixels", "2", "4", "--ops", "erode,dilate",
                 "--classes-per-image", "1", "1"]) == 0
    rows = list(csv.DictReader(open(tmp_path / "out" / "corruption.csv")))
    spoilt = {}
    for r in rows:
        spoilt.setdefault(r["name"], 0)
        spoilt[r["name"]] += r["operation"] != "none"
    assert len(spoilt) == 6 and set(spoilt.values()) == {1}


def test_a_kind_that_barely_moves_the_outline_is_not_drawn():
    """Swapping or duplicating mirror-image parts moves nothing: no error of the
    benchmark's size, so spoil draws another kind; the paper's kinds are never refused."""
    from napari_pal.data.errorkinds import moved

    twins = ellipse(64, 36, 30, 14) | ellipse(64, 92, 30, 14)  # mirror images
    assert moved(twins, apply_kind("swap", twins, 0, np.random.default_rng(0))[0]) < 1
    assert moved(twins, morph(twins, "erode", 4)) == pytest.approx(4, abs=1)
    names = [f"im{i:02d}" for i in range(30)]
    rng = np.random.default_rng(0)
    picked = pick(names, 0.5, rng)
    _, records = spoil(names, ["parts"], lambda i: twins[None], picked, (3, 6),
                       ["swap", "duplicate", "shift"], rng, (1, 1))
    drawn = {r.operation for r in records if r.name in picked}
    # swap and duplicate would move the outline by < 3 px (a shift rounded to the
    # pixel grid can too: then nothing is left to draw and the mask stays as it is)
    assert "shift" in drawn and drawn <= {"shift", "none"}
