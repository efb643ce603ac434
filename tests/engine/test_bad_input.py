"""Every bad input gives one DatasetError naming each offending file and its fix,
and the input folder is left byte-identical."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from napari_pal.data.dataset import Layout, MaskResampledWarning, open_dataset, write_masks
from napari_pal.errors import DatasetError

CLASSES = ["heart", "lungs"]


def _snapshot(root: Path) -> dict[str, str]:
    """Every path under root (files and folders) with a hash of each file's bytes."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            if p.is_file() else "dir" for p in sorted(root.rglob("*"))}


def _good(root: Path, names=("a", "b"), hw=(16, 20)) -> Path:
    masks = np.zeros((2, *hw), bool)
    masks[0, 2:8, 2:8] = masks[1, 5:12, 4:15] = True
    for n in names:
        (root / "images").mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full(hw, 100, np.uint8)).save(root / "images" / f"{n}.png")
        write_masks(root, Layout.CLASS_FOLDERS, CLASSES, n, masks)
    return root


def _rejects(root: Path, *words: str, **kwargs) -> str:
    before = _snapshot(root)
    with pytest.raises(DatasetError) as info:
        ds = open_dataset(root, **kwargs)
        for i in range(len(ds)):
            ds.read_image(i), ds.read_masks(i)
    msg = str(info.value)
    for w in words:
        assert w.lower() in msg.lower(), f"{w!r} not in message:\n{msg}"
    assert "fix" in msg.lower() or "remove" in msg.lower(), msg
    assert _snapshot(root) == before
    return msg


def _truncate(p: Path) -> None:
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])


def test_missing_folder(tmp_path: Path) -> None:
    _rejects(tmp_path / "nope", "does not exist", "nope")
    (tmp_path / "file").write_text("x")
    _rejects(tmp_path / "file", "not a folder")


def test_empty_folder(tmp_path: Path) -> None:
    _rejects(tmp_path, "no 'images' folder", "put the radiographs")
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    _rejects(tmp_path, "no image files", "holds no masks")


def test_images_without_masks(tmp_path: Path) -> None:
    _good(tmp_path, names=("a", "b", "c"))
    for c in CLASSES:
        (tmp_path / "masks" / c / "b.png").unlink()
        (tmp_path / "masks" / c / "c.png").unlink()
    _rejects(tmp_path, "2 images have no mask", "b, c", "add the masks")


def test_masks_without_images(tmp_path: Path) -> None:
    _good(tmp_path, names=("a", "orphan"))
    (tmp_path / "images" / "orphan.png").unlink()
    _rejects(tmp_path, "1 mask in", "has no image", "orphan", "add the images or remove the masks")


def test_truncated_png(tmp_path: Path) -> None:
    _good(tmp_path)
    noise = np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "images" / "a.png")  # incompressible: IDAT is big
    _truncate(tmp_path / "images" / "a.png")
    _rejects(tmp_path, "a.png", "truncated", "re-export")
    _rejects(tmp_path, "a.png", "truncated", check=False)  # lazy open still fails on read


def test_truncated_tiff(tmp_path: Path) -> None:
    _good(tmp_path)
    p = tmp_path / "masks" / "heart" / "b.tif"
    (tmp_path / "masks" / "heart" / "b.png").unlink()
    tifffile.imwrite(p, np.random.default_rng(0).integers(0, 2, (16, 20), dtype=np.uint8))
    _truncate(p)
    _rejects(tmp_path, "b.tif", "re-export")


def test_zero_byte_file(tmp_path: Path) -> None:
    _good(tmp_path)
    (tmp_path / "images" / "b.png").write_bytes(b"")
    _rejects(tmp_path, "b.png", "0 bytes", "re-export")


def test_directory_named_like_an_image(tmp_path: Path) -> None:
    _good(tmp_path)
    (tmp_path / "images" / "x.png").mkdir()
    _rejects(tmp_path, "x.png", "is a directory", "rename or move")


def test_duplicate_stems(tmp_path: Path) -> None:
    _good(tmp_path)
    tifffile.imwrite(tmp_path / "images" / "a.tif", np.zeros((16, 20), np.uint8))
    _rejects(tmp_path, "a.png", "a.tif", "same name", "remove or rename")


def test_mixed_layouts(tmp_path: Path) -> None:
    _good(tmp_path)
    Image.fromarray(np.zeros((16, 20), np.uint8)).save(tmp_path / "masks" / "a.png")
    _rejects(tmp_path, "mixes class folders", "a.png", "use one layout")


def test_mask_of_another_size_resamplable(tmp_path: Path) -> None:
    _good(tmp_path, hw=(16, 20))
    big = np.zeros((32, 40), np.uint8)
    big[4:16, 4:16] = 255
    for c in CLASSES:
        Image.fromarray(big).save(tmp_path / "masks" / c / "a.png")
    before = _snapshot(tmp_path)
    with pytest.warns(MaskResampledWarning, match="32x40"):
        ds = open_dataset(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MaskResampledWarning)
        m = ds.read_masks(0)
    assert m.shape == (2, 16, 20) and m[:, 2:8, 2:8].all() and m.sum() == 2 * 36
    assert _snapshot(tmp_path) == before


def test_mask_of_another_size_impossible(tmp_path: Path) -> None:
    _good(tmp_path, hw=(16, 20))
    for c in CLASSES:
        Image.fromarray(np.zeros((17, 20), np.uint8)).save(tmp_path / "masks" / c / "b.png")
    _rejects(tmp_path, "b.png", "16x20", "17x20", "save the mask at the image's size")


def test_non_binary_class_mask(tmp_path: Path) -> None:
    _good(tmp_path)
    grey = np.arange(16 * 20).reshape(16, 20).astype(np.uint8)
    Image.fromarray(grey).save(tmp_path / "masks" / "lungs" / "b.png")
    _rejects(tmp_path, "lungs/b.png", "not binary", "0/255", "label-image layout")


def test_stack_where_2d_image_expected(tmp_path: Path) -> None:
    _good(tmp_path)
    (tmp_path / "images" / "b.png").unlink()
    tifffile.imwrite(tmp_path / "images" / "b.tif", np.zeros((7, 16, 20), np.uint8))
    _rejects(tmp_path, "b.tif", "(7, 16, 20)", "2-D", "one 2-D")


def test_unknown_class_folder(tmp_path: Path) -> None:
    _good(tmp_path)
    (tmp_path / "masks" / "liver").mkdir()
    expected = ["lungs", "heart", "clavicles"]
    msg = _rejects(tmp_path, "liver", "expected classes", *expected, classes=expected)
    assert "clavicles' has no folder" in msg


def test_class_empty_in_every_mask(tmp_path: Path) -> None:
    _good(tmp_path)
    for n in "ab":
        empty = Image.fromarray(np.zeros((16, 20), np.uint8))
        empty.save(tmp_path / "masks" / "heart" / f"{n}.png")
    _rejects(tmp_path, "class 'heart' is empty in every mask", "remove the folder")


def test_all_problems_in_one_error(tmp_path: Path) -> None:
    _good(tmp_path, names=("a", "b", "c"))
    (tmp_path / "images" / "a.png").write_bytes(b"")
    (tmp_path / "masks" / "lungs" / "c.png").unlink()
    Image.fromarray(np.arange(320).reshape(16, 20).astype(np.uint8)).save(
        tmp_path / "masks" / "heart" / "b.png")
    _rejects(tmp_path, "a.png", "0 bytes", "not binary", "heart/b.png", "no mask", "c.")


_DTYPES = st.sampled_from(["uint8", "uint16", "int16", "int32", "float32", "float64", "bool"])
_SHAPES = st.sampled_from([(8, 8), (16, 8), (4, 4), (8, 8, 3), (8, 8, 4), (3, 8, 8),
                           (2, 8, 8), (5, 8, 8), (8, 8, 2), (1, 8), (16, 16)])


def _write(p: Path, data, fmt: str) -> None:
    if fmt == "bytes":
        p.write_bytes(data.draw(st.binary(max_size=200)))
        return
    shape, dtype = data.draw(_SHAPES), data.draw(_DTYPES)
    arr = data.draw(st.sampled_from(["zeros", "binary", "random", "nan"]))
    rng = np.random.default_rng(data.draw(st.integers(0, 1000)))
    x = rng.integers(0, 2, shape) * 255 if arr == "binary" else rng.random(shape) * 300
    x = np.zeros(shape) if arr == "zeros" else x
    if arr == "nan" and dtype.startswith("float"):
        x[..., 0] = np.nan
    x = x.astype(dtype)
    if fmt == "tif":
        tifffile.imwrite(p, x)
    else:
        try:
            Image.fromarray(x).save(p, format="PNG")
        except (TypeError, ValueError, OSError, KeyError):
            tifffile.imwrite(p, x)  # PIL cannot save it: a TIFF named .png


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_files_give_clean_result_or_dataset_error(tmp_path_factory, data) -> None:
    root = tmp_path_factory.mktemp("h")
    layout = data.draw(st.sampled_from(["class", "loose"]))
    for n in ("a", "b"):
        fmt = data.draw(st.sampled_from(["png", "tif", "bytes"]))
        (root / "images").mkdir(exist_ok=True)
        _write(root / "images" / f"{n}.{'tif' if fmt == 'tif' else 'png'}", data, fmt)
        for c in (["x", "y"] if layout == "class" else [""]):
            d = root / "masks" / c
            d.mkdir(parents=True, exist_ok=True)
            mfmt = data.draw(st.sampled_from(["png", "tif", "bytes"]))
            _write(d / f"{n}.{'tif' if mfmt == 'tif' else 'png'}", data, mfmt)
    before = _snapshot(root)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MaskResampledWarning)
            ds = open_dataset(root, check=data.draw(st.booleans()))
            for i in range(len(ds)):
                img, masks = ds.read_image(i), ds.read_masks(i)
                assert img.dtype == np.float32 and img.ndim == 2
                assert 0.0 <= img.min() and img.max() <= 1.0
                assert masks.dtype == bool and masks.shape == (len(ds.classes), *img.shape)
                ds.image_shape(i), ds.read_stored_masks(i)
    except DatasetError:
        pass
    assert _snapshot(root) == before
