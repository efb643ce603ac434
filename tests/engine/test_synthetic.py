"""The synthetic chest radiograph generator and the committed resources/sample."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np
import pytest
from skimage import io

from napari_pal.data.synthetic import CLASSES, OPERATIONS, make_sample_dataset

SAMPLE_PARAMS = {"n": 36, "size": 256, "seed": 0, "bad_fraction": 0.33}


def _read(path: Path) -> np.ndarray:
    return np.asarray(io.imread(path))


def _names(root: Path) -> list[str]:
    return sorted(p.stem for p in (root / "images").glob("*.png"))


def _corruption(root: Path) -> list[dict[str, str]]:
    with open(root / "corruption.csv", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[Path, list, float]:
    out = tmp_path_factory.mktemp("synthetic")
    t0 = time.perf_counter()
    rows = make_sample_dataset(out, n=12, size=128, seed=3, bad_fraction=0.5)
    return out, rows, time.perf_counter() - t0


def test_layout(small):
    out, rows, _ = small
    assert (out / "classes.txt").read_text().split() == ["lungs", "heart", "clavicles"]
    names = _names(out)
    assert names == [f"chest_{i:03d}" for i in range(12)]
    for cls in CLASSES:
        assert sorted(p.stem for p in (out / "masks" / cls).glob("*.png")) == names
    assert not list(out.rglob("*.part*")), "temporary files left behind"
    img = _read(out / "images" / "chest_000.png")
    assert img.shape == (128, 128) and img.dtype == np.uint8


def test_masks_binary_and_nonempty(small):
    out, rows, _ = small
    for name in _names(out):
        for cls in CLASSES:
            m = _read(out / "masks" / cls / f"{name}.png")
            assert m.shape == (128, 128) and m.dtype == np.uint8
            assert set(np.unique(m).tolist()) <= {0, 255}
    # the true masks of clean images are never empty
    clean = {r["name"] for r in _corruption(out)} - {
        r["name"] for r in _corruption(out) if r["operation"] != "none"}
    for name in clean:
        for cls in CLASSES:
            assert _read(out / "masks" / cls / f"{name}.png").any(), (name, cls)


def test_corruption_csv(small):
    out, rows, _ = small
    table = _corruption(out)
    assert list(table[0]) == ["name", "class", "operation", "pixels"]
    assert [(r["name"], r["class"], r["operation"], r["pixels"]) for r in table] == [
        tuple(str(v) for v in r) for r in rows]
    assert len(table) == 12 * len(CLASSES)
    assert {(r["name"], r["class"]) for r in table} == {
        (n, c) for n in _names(out) for c in CLASSES}
    for r in table:
        assert r["operation"] in ("none", *OPERATIONS)
        if r["operation"] == "none":
            assert int(r["pixels"]) == 0
    bad = {r["name"] for r in table if r["operation"] != "none"}
    assert len(bad) == 6  # round(0.5 * 12)


def test_fast(small):
    assert small[2] < 5.0


def test_deterministic_and_seed_dependent(tmp_path):
    a = make_sample_dataset(tmp_path / "a", n=3, size=96, seed=7, bad_fraction=1.0)
    b = make_sample_dataset(tmp_path / "b", n=3, size=96, seed=7, bad_fraction=1.0)
    make_sample_dataset(tmp_path / "c", n=3, size=96, seed=8, bad_fraction=1.0)
    assert a == b
    for rel in ["images/chest_000.png", "masks/lungs/chest_002.png"]:
        assert np.array_equal(_read(tmp_path / "a" / rel), _read(tmp_path / "b" / rel))
    assert not np.array_equal(_read(tmp_path / "a" / "images/chest_000.png"),
                              _read(tmp_path / "c" / "images/chest_000.png"))


def test_bad_fraction_zero_and_invalid(tmp_path):
    rows = make_sample_dataset(tmp_path, n=2, size=64, bad_fraction=0.0)
    assert {r[2] for r in rows} == {"none"}
    with pytest.raises(ValueError):
        make_sample_dataset(tmp_path, n=2, bad_fraction=1.5)


def _reach(a: np.ndarray, b: np.ndarray) -> float:
    """How far (px) the removed part of an eroded mask reaches from the mask's edge."""
    from scipy import ndimage

    depth = ndimage.distance_transform_edt(a)
    return float(depth[a & ~b].max())


def test_corruptions_change_the_masks(tmp_path):
    """A corrupted mask really differs from the clean one drawn for the same image."""
    clean = tmp_path / "clean"
    bad = tmp_path / "bad"
    make_sample_dataset(clean, n=6, size=128, seed=1, bad_fraction=0.0)
    rows = make_sample_dataset(bad, n=6, size=128, seed=1, bad_fraction=1.0)
    ops = set()
    for name, cls, op, pixels in rows:
        a = _read(clean / "masks" / cls / f"{name}.png") > 0
        b = _read(bad / "masks" / cls / f"{name}.png") > 0
        if op == "none":
            assert pixels == 0 and not (a ^ b).any()
            continue
        ops.add(op)
        assert (a ^ b).any(), (name, cls, op)
        # 'pixels' is a radius in px, as in the corrupt command's corruption.csv
        if op in ("cut", "missing"):
            assert pixels == "", (name, cls, op)
        else:
            assert isinstance(pixels, int) and 1 <= pixels <= 16, (name, cls, op, pixels)
        if op == "erode":  # the spoil reaches about its radius into the mask
            assert 0.5 * pixels <= _reach(a, b) <= pixels + 1.5, (name, cls, pixels)
    assert len(ops) >= 3


def test_anatomy_plausible(sample_dir):
    table = _corruption(sample_dir)
    clean = {r["name"] for r in table} - {r["name"] for r in table if r["operation"] != "none"}
    assert len(clean) >= 12
    for name in sorted(clean):
        img = _read(sample_dir / "images" / f"{name}.png").astype(float)
        lungs, heart, clav = (_read(sample_dir / "masks" / c / f"{name}.png") > 0
                              for c in CLASSES)
        # clavicles lie over the lung apices, as in JSRT/SCR
        assert (clav & lungs).sum() >= 0.5 * clav.sum()
        assert (lungs & heart).sum() <= 0.02 * heart.sum()
        # air-filled lungs are dark, the heart bright
        assert img[lungs].mean() + 40 < img[heart].mean()
        # heart mostly on the image's right of the midline; lungs on both sides
        _, xs = np.nonzero(heart)
        assert xs.mean() > img.shape[1] / 2
        assert lungs[:, :96].sum() > 0 and lungs[:, 160:].sum() > 0
        # lungs cover a plausible share of the image
        assert 0.12 < lungs.mean() < 0.5


def test_sample_matches_regeneration(sample_dir, tmp_path):
    """resources/sample is what resources/make_sample_data.py writes (arrays, not bytes)."""
    rows = make_sample_dataset(tmp_path, **SAMPLE_PARAMS)
    assert _names(sample_dir) == _names(tmp_path)
    assert (sample_dir / "classes.txt").read_text().split() == list(CLASSES)
    table = _corruption(sample_dir)
    assert [(r["name"], r["class"], r["operation"]) for r in table] == [r[:3] for r in rows]
    for name in _names(tmp_path):
        a = _read(sample_dir / "images" / f"{name}.png").astype(int)
        b = _read(tmp_path / "images" / f"{name}.png").astype(int)
        # allow last-bit float differences between machines' maths libraries
        assert a.shape == b.shape and np.mean(np.abs(a - b) > 1) < 1e-3, name
        for cls in CLASSES:
            ma = _read(sample_dir / "masks" / cls / f"{name}.png")
            mb = _read(tmp_path / "masks" / cls / f"{name}.png")
            assert ma.shape == mb.shape and np.mean(ma != mb) < 1e-3, (name, cls)
