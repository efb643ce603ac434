"""The data layer reads every layout and pixel type back exactly as written."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from napari_pal.data.dataset import (
    Layout,
    MaskResampledWarning,
    open_dataset,
    parse_split_spec,
    read_split,
    write_classes_txt,
    write_masks,
)
from napari_pal.errors import DatasetError

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
JSRT256 = DATA / "jsrt256"
FULLRES = DATA / "jsrt-fullres"
CLASSES = ["lungs", "heart"]


def _masks(h: int = 24, w: int = 32) -> np.ndarray:
    m = np.zeros((2, h, w), bool)
    m[0, 2:12, 3:20] = True
    m[1, 8:20, 10:30] = True  # overlaps class 0
    return m


def _image(root: Path, name: str, arr: np.ndarray | None = None, suffix: str = ".png") -> Path:
    arr = np.linspace(0, 255, 24 * 32).reshape(24, 32).astype(np.uint8) if arr is None else arr
    p = root / "images" / f"{name}{suffix}"
    p.parent.mkdir(parents=True, exist_ok=True)
    (tifffile.imwrite(p, arr) if suffix in (".tif", ".tiff") else Image.fromarray(arr).save(p))
    return p


@pytest.mark.parametrize("layout", list(Layout))
def test_layout_round_trip(tmp_path: Path, layout: Layout) -> None:
    masks = _masks()
    if layout is Layout.LABEL_IMAGE:
        masks[1, :12] = False  # a label image cannot hold overlapping classes
    for name in ["a", "b"]:
        _image(tmp_path, name)
        write_masks(tmp_path, layout, CLASSES, name, masks)
    write_classes_txt(tmp_path, CLASSES)
    ds = open_dataset(tmp_path)
    assert ds.layout is layout and ds.classes == CLASSES and ds.names == ["a", "b"]
    assert len(ds) == 2 and ds.index("b") == 1 and ds.image_shape(0) == (24, 32)
    np.testing.assert_array_equal(ds.read_masks(1), masks)
    np.testing.assert_array_equal(ds.read_stored_masks(0), masks)
    img = ds.read_image(0)
    assert img.dtype == np.float32 and img.shape == (24, 32)
    assert img.min() == 0.0 and img.max() == 1.0


def test_class_order_without_classes_txt_is_sorted(tmp_path: Path) -> None:
    _image(tmp_path, "a")
    write_masks(tmp_path, Layout.CLASS_FOLDERS, ["zeta", "alpha"], "a", _masks())
    assert open_dataset(tmp_path).classes == ["alpha", "zeta"]
    assert open_dataset(tmp_path, classes=["zeta", "alpha"]).classes == ["zeta", "alpha"]


def test_label_image_names_default_to_class_k(tmp_path: Path) -> None:
    _image(tmp_path, "a")
    labels = np.zeros((24, 32), np.uint8)
    labels[:5], labels[10:] = 1, 3
    (tmp_path / "masks").mkdir()
    Image.fromarray(labels).save(tmp_path / "masks" / "a.png")
    with pytest.raises(DatasetError, match="class_2' is empty"):
        open_dataset(tmp_path)
    ds = open_dataset(tmp_path, check=False)
    assert ds.classes == ["class_1", "class_2", "class_3"]
    assert ds.read_masks(0)[2].sum() == 14 * 32


def test_label_image_wide_labels_round_trip(tmp_path: Path) -> None:
    classes = [f"c{k}" for k in range(300)]
    masks = np.zeros((300, 20, 300), bool)
    for k in range(300):
        masks[k, :, k] = True
    _image(tmp_path, "a", np.zeros((20, 300), np.uint8))
    write_masks(tmp_path, Layout.LABEL_IMAGE, classes, "a", masks)
    write_classes_txt(tmp_path, classes)
    np.testing.assert_array_equal(open_dataset(tmp_path).read_masks(0), masks)


def test_label_image_overlap_warns(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="later class wins"):
        write_masks(tmp_path, Layout.LABEL_IMAGE, CLASSES, "a", _masks())


@pytest.mark.parametrize("kind", ["uint16", "rgb", "rgba", "float", "tiff16", "jpg", "palette"])
def test_pixel_types(tmp_path: Path, kind: str) -> None:
    ramp = np.linspace(0, 1, 24 * 32).reshape(24, 32)
    suffix = ".png"
    if kind in ("uint16", "tiff16"):
        arr = (ramp * 65535).astype(np.uint16)
        suffix = ".tif" if kind == "tiff16" else ".png"
    elif kind in ("rgb", "rgba"):
        grey = (ramp * 255).astype(np.uint8)
        arr = np.stack([grey] * (3 if kind == "rgb" else 4), axis=-1)
    elif kind == "float":
        arr, suffix = (ramp * 1000 - 20).astype(np.float32), ".tif"
    else:
        arr = (ramp * 255).astype(np.uint8)
        suffix = ".jpg" if kind == "jpg" else ".png"
    p = _image(tmp_path, "a", arr, suffix)
    if kind == "palette":
        Image.fromarray(arr).convert("P").save(p)
    write_masks(tmp_path, Layout.CLASS_FOLDERS, CLASSES, "a", _masks())
    img = open_dataset(tmp_path).read_image(0)
    assert img.dtype == np.float32 and img.shape == (24, 32)
    assert 0.0 <= img.min() and img.max() <= 1.0
    np.testing.assert_allclose(img, ramp, atol=0.03)


def test_rgb_uses_rgb2gray_weights(tmp_path: Path) -> None:
    arr = np.zeros((24, 32, 3), np.uint8)
    arr[..., 1] = 255  # pure green
    _image(tmp_path, "a", arr)
    write_masks(tmp_path, Layout.CLASS_FOLDERS, CLASSES, "a", _masks())
    np.testing.assert_allclose(open_dataset(tmp_path).read_image(0), 0.7154, atol=1e-5)


def test_names_with_spaces_and_non_ascii(tmp_path: Path) -> None:
    names = ["chest x-ray 1", "Röntgen_é 胸部"]
    for n in names:
        _image(tmp_path, n)
        write_masks(tmp_path, Layout.CLASS_FOLDERS, ["lung ü", "heart"], n, _masks())
    ds = open_dataset(tmp_path)
    assert sorted(ds.names) == sorted(names) and ds.classes == ["heart", "lung ü"]
    assert ds.read_masks(ds.index(names[1])).shape == (2, 24, 32)


def test_split_filtering(tmp_path: Path) -> None:
    for n in "abcd":
        _image(tmp_path, n)
        write_masks(tmp_path, Layout.CLASS_FOLDERS, CLASSES, n, _masks())
    (tmp_path / "split.csv").write_text("name,split\na,train\nb,test\nc,train\nd,test\n")
    assert read_split(tmp_path / "split.csv")["b"] == "test"
    assert parse_split_spec("C:/x/split.csv:train") == (Path("C:/x/split.csv"), "train")
    ds = open_dataset(tmp_path, split=f"{tmp_path / 'split.csv'}:train")
    assert ds.names == ["a", "c"]
    assert ds.subset(["c"]).names == ["c"]
    with pytest.raises(DatasetError, match=r"\['test', 'train'\]"):
        open_dataset(tmp_path, split=f"{tmp_path / 'split.csv'}:val")
    with pytest.raises(DatasetError, match="FILE:PART"):
        parse_split_spec("split.csv")
    (tmp_path / "split2.csv").write_text("name,split\na,train\nzz,train\n")
    with pytest.raises(DatasetError, match="zz"):
        open_dataset(tmp_path, split=f"{tmp_path / 'split2.csv'}:train")


def test_write_masks_rejects_escaping_names(tmp_path: Path) -> None:
    for bad in ["../x", "a/b", "a\\b", "..", "/abs", ""]:
        with pytest.raises(DatasetError, match="plain file name"):
            write_masks(tmp_path / "out", Layout.CLASS_FOLDERS, CLASSES, bad, _masks())
    assert not (tmp_path / "x").exists() and not (tmp_path / "out").exists()


@pytest.mark.skipif(not JSRT256.is_dir(), reason=f"real data not present at {JSRT256}")
def test_jsrt256_slice(tmp_path: Path) -> None:
    ds = open_dataset(JSRT256, check=False)
    # JSRT has no classes.txt, so classes are the sorted folder names
    assert not (JSRT256 / "classes.txt").exists()
    assert ds.classes == sorted(["lungs", "heart", "clavicles"]) and len(ds) == 247
    assert ds.layout is Layout.CLASS_FOLDERS
    names = ds.names[:5] + ds.names[-5:]
    small = ds.subset(names)
    for i in range(len(small)):
        img, m = small.read_image(i), small.read_masks(i)
        assert img.shape == (256, 256) and m.shape == (3, 256, 256)
        lungs, clav = m[ds.classes.index("lungs")], m[ds.classes.index("clavicles")]
        assert lungs.mean() > 0.1 and (clav & lungs).sum() > 0  # classes overlap
    train = open_dataset(JSRT256, split=f"{JSRT256 / 'split.csv'}:train", check=False)
    assert len(train) == 165


@pytest.mark.skipif(not FULLRES.is_dir(), reason=f"real data not present at {FULLRES}")
def test_jsrt_fullres_masks_resampled_with_warning(tmp_path: Path) -> None:
    ds = open_dataset(FULLRES, check=False).subset(["JPCLN001", "JPCNN001"])
    for i in range(2):
        assert ds.image_shape(i) == (2048, 2048)
        assert ds.read_stored_masks(i).shape == (3, 1024, 1024)
        with pytest.warns(MaskResampledWarning, match="1024x1024"):
            m = ds.read_masks(i)
        assert m.shape == (3, 2048, 2048) and m.dtype == bool
        np.testing.assert_array_equal(m[:, ::2, ::2], ds.read_stored_masks(i))


def test_downsampled_masks_use_area_threshold(tmp_path: Path) -> None:
    _image(tmp_path, "a", np.zeros((4, 4), np.uint8))
    big = np.zeros((2, 8, 8), bool)
    big[:, :4, :4] = True  # top-left quadrant
    big[:, 4, 4] = True  # 1 of 4 pixels in a block: below 0.5, dropped
    write_masks(tmp_path, Layout.CLASS_FOLDERS, CLASSES, "a", big)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MaskResampledWarning)
        m = open_dataset(tmp_path).read_masks(0)
    expect = np.zeros((2, 4, 4), bool)
    expect[:, :2, :2] = True
    np.testing.assert_array_equal(m, expect)
