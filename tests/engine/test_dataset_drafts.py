"""Unannotated images (drafts) and refused mask formats at the dataset level, per layout."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from napari_pal.data.dataset import Layout, open_dataset
from napari_pal.errors import DatasetError


def _label_folder(root, names=("a", "b", "c"), masks=("a", "b")):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for n in names:
        Image.fromarray(np.full((16, 16), 100, np.uint8)).save(root / "images" / f"{n}.png")
    for n in masks:
        lab = np.zeros((16, 16), np.uint8)
        lab[4:12, 4:12] = 1
        Image.fromarray(lab).save(root / "masks" / f"{n}.png")
    return root


def test_label_images_with_a_missing_mask(tmp_path):
    root = _label_folder(tmp_path / "d")
    with pytest.raises(DatasetError, match="1 image has no mask"):
        open_dataset(root)
    ds = open_dataset(root, unannotated=True)
    assert ds.layout is Layout.LABEL_IMAGE and ds.classes == ["class_1"]
    assert ds.annotated_names == ["a", "b"] and ds.unannotated_names == ["c"]
    assert ds.annotated().names == ["a", "b"]
    assert ds.read_image(2).shape == (16, 16)
    with pytest.raises(DatasetError, match="unannotated"):
        ds.read_masks(2)


def test_images_only_need_known_classes(tmp_path):
    root = _label_folder(tmp_path / "d", masks=())
    (root / "masks").rmdir()
    with pytest.raises(DatasetError, match="classes are unknown"):
        open_dataset(root, unannotated=True)
    ds = open_dataset(root, unannotated=True, classes=["lungs", "heart"])
    assert ds.unannotated_names == ["a", "b", "c"] and not ds.annotated_names
    (root / "classes.txt").write_text("lungs\n")
    assert open_dataset(root, unannotated=True).classes == ["lungs"]


@pytest.mark.parametrize("suffix", [".jpg", ".webp", ".gif"])
def test_loose_mask_in_a_refused_format(tmp_path, suffix):
    root = _label_folder(tmp_path / "d", masks=("a", "b", "c"))
    png = root / "masks" / "c.png"
    Image.open(png).convert("L").save(png.with_suffix(suffix))
    png.unlink()
    for unannotated in (False, True):  # never taken for a draft either
        with pytest.raises(DatasetError) as err:
            open_dataset(root, unannotated=unannotated)
        assert f"c{suffix}" in str(err.value) and ".png, .tif, .tiff" in str(err.value)
        assert "no mask" not in str(err.value)


def test_other_files_in_masks_are_ignored(tmp_path):
    root = _label_folder(tmp_path / "d", masks=("a", "b", "c"))
    (root / "masks" / "notes.txt").write_text("reviewed by X")
    (root / "masks" / ".DS_Store").write_bytes(b"\0")
    assert len(open_dataset(root)) == 3
