"""The label-noise engine: right radius, seeded choice, ground-truth CSV, source untouched."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage.morphology import dilation, disk, erosion

from napari_pal.data.corruption import corrupt_dataset, corrupt_mask, read_corruption_csv
from napari_pal.data.dataset import Layout, open_dataset, write_classes_txt, write_masks
from napari_pal.errors import DatasetError

CLASSES = ["lungs", "heart"]


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            if p.is_file() else "dir" for p in sorted(root.rglob("*"))}


def _src(root: Path, n: int = 10, layout: Layout = Layout.CLASS_FOLDERS) -> Path:
    rng = np.random.default_rng(1)
    for k in range(n):
        name = f"case {k:02d}"
        (root / "images").mkdir(parents=True, exist_ok=True)
        img = rng.integers(0, 255, (40, 40), dtype=np.uint8)
        Image.fromarray(img).save(root / "images" / f"{name}.png")
        masks = np.zeros((2, 40, 40), bool)
        masks[0, 5:25, 5:25] = True
        masks[1, 22:35, 20:36] = True
        write_masks(root, layout, CLASSES, name, masks)
    write_classes_txt(root, CLASSES)
    (root / "split.csv").write_text(
        "name,split\n" + "".join(f"case {k:02d},{'train' if k < 6 else 'test'}\n"
                                 for k in range(n)))
    return root


def _rows(out: Path) -> list[dict[str, str]]:
    with open(out / "corruption.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize("r", [1, 3, 6])
def test_square_grows_and_shrinks_by_radius(r: int) -> None:
    m = np.zeros((60, 60), bool)
    m[20:40, 20:40] = True
    grown, shrunk = corrupt_mask(m, "dilate", r), corrupt_mask(m, "erode", r)
    rows, cols = np.nonzero(grown)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (20 - r, 39 + r, 20 - r, 39 + r)
    rows, cols = np.nonzero(shrunk)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (20 + r, 39 - r, 20 + r, 39 - r)
    np.testing.assert_array_equal(grown, dilation(m, disk(r)))
    np.testing.assert_array_equal(shrunk, erosion(m, disk(r)))


def test_random_masks_match_skimage_disk() -> None:
    rng = np.random.default_rng(0)
    for _ in range(10):
        m = rng.random((30, 40)) < 0.4
        r = int(rng.integers(1, 5))
        np.testing.assert_array_equal(corrupt_mask(m, "dilate", r), dilation(m, disk(r)))
        np.testing.assert_array_equal(corrupt_mask(m, "erode", r), erosion(m, disk(r)))


@pytest.mark.parametrize("layout", list(Layout))
def test_corrupt_dataset(tmp_path: Path, layout: Layout) -> None:
    src = _src(tmp_path / "src", layout=layout)
    before = _snapshot(src)
    recs = corrupt_dataset(src, tmp_path / "out", fraction=0.3, pixels=(2, 4), seed=7)
    out = tmp_path / "out"
    assert _snapshot(src) == before
    rows = _rows(out)
    assert len(rows) == len(recs) == 10 * 2
    assert {(r["name"], r["class"]) for r in rows} == {(f"case {k:02d}", c)
                                                       for k in range(10) for c in CLASSES}
    truth = read_corruption_csv(out / "corruption.csv")
    assert sum(truth.values()) == round(0.3 * 10)
    for r in rows:
        if r["operation"] == "none":
            assert r["pixels"] == "0"
        else:
            assert r["operation"] in ("erode", "dilate") and 2 <= int(r["pixels"]) <= 4
    for p in (src / "images").iterdir():
        assert (out / "images" / p.name).read_bytes() == p.read_bytes()
    assert (out / "classes.txt").read_bytes() == (src / "classes.txt").read_bytes()
    assert (out / "split.csv").read_bytes() == (src / "split.csv").read_bytes()
    a, b = open_dataset(src), open_dataset(out)
    assert b.layout is layout and b.classes == a.classes and b.names == a.names
    for i, name in enumerate(a.names):
        same = np.array_equal(a.read_masks(i), b.read_masks(i))
        assert same == (not truth[name]), name


def test_deterministic_for_seed(tmp_path: Path) -> None:
    src = _src(tmp_path / "src")
    kw = dict(fraction=0.5, pixels=(1, 5))
    r1 = corrupt_dataset(src, tmp_path / "o1", seed=3, **kw)
    r2 = corrupt_dataset(src, tmp_path / "o2", seed=3, **kw)
    r3 = corrupt_dataset(src, tmp_path / "o3", seed=4, **kw)
    assert r1 == r2 and r1 != r3
    assert _snapshot(tmp_path / "o1") == _snapshot(tmp_path / "o2")


def test_honours_split(tmp_path: Path) -> None:
    src = _src(tmp_path / "src")
    split = tmp_path / "elsewhere.csv"
    split.write_bytes((src / "split.csv").read_bytes())
    corrupt_dataset(src, tmp_path / "out", fraction=0.5, pixels=(2, 3), split=f"{split}:train")
    truth = read_corruption_csv(tmp_path / "out" / "corruption.csv")
    assert len(truth) == 10  # every image is copied ...
    assert all(n < "case 06" for n, bad in truth.items() if bad)  # ... only train corrupted
    assert sum(truth.values()) == 3  # round(0.5 * 6)
    assert (tmp_path / "out" / "split.csv").read_bytes() == split.read_bytes()


def test_refuses_bad_output(tmp_path: Path) -> None:
    src = _src(tmp_path / "src", n=2)
    before = _snapshot(src)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("keep me")
    with pytest.raises(DatasetError, match="not empty.*choose an empty folder"):
        corrupt_dataset(src, tmp_path / "full", fraction=0.5, pixels=(1, 2))
    for inside in (src, src / "noisy"):
        with pytest.raises(DatasetError, match="inside it"):
            corrupt_dataset(src, inside, fraction=0.5, pixels=(1, 2))
    with pytest.raises(DatasetError, match="pixels"):
        corrupt_dataset(src, tmp_path / "o", fraction=0.5, pixels=(3, 1))
    assert _snapshot(src) == before
    assert (tmp_path / "full" / "x.txt").read_text() == "keep me"


def test_error_kinds_spoil_one_or_two_classes_and_only_those(tmp_path: Path) -> None:
    from napari_pal.data.errorkinds import KINDS

    src = _src(tmp_path / "src")
    before = _snapshot(src)
    recs = corrupt_dataset(src, tmp_path / "out", fraction=0.6, pixels=(2, 4), seed=5,
                           ops=KINDS, classes_per_image=(1, 2))
    assert _snapshot(src) == before
    rows = _rows(tmp_path / "out")
    assert [r["operation"] for r in rows] == [r.operation for r in recs]
    a, b = open_dataset(src), open_dataset(tmp_path / "out")
    spoilt_per_image = []
    for i, name in enumerate(a.names):
        ops = {r.cls: r.operation for r in recs if r.name == name}
        spoilt_per_image.append(sum(ops[c] != "none" for c in CLASSES))
        for c, cls in enumerate(a.classes):
            same = np.array_equal(a.read_masks(i)[c], b.read_masks(i)[c])
            assert same == (ops[cls] == "none"), (name, cls, ops[cls])
    assert sum(n > 0 for n in spoilt_per_image) == round(0.6 * 10)
    assert 1 in spoilt_per_image  # not every class of a picked image (the paper's rule)
    wrong = [r for r in rows if r["operation"] == "wrong_image"]
    assert all(r["detail"].startswith("from=case ") for r in wrong)
