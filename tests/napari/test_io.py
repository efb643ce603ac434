"""The napari contributions that need no training: reader, writer, sample data, manifest."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from napari_pal.data.dataset import open_dataset

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def mixed_sizes(tmp_path: Path) -> Path:
    """Three images of different sizes (class folders), from the synthetic generator."""
    from napari_pal.data.synthetic import make_sample_dataset

    src = tmp_path / "src"
    make_sample_dataset(src, n=3, size=64, seed=1)
    crops = {0: (64, 64), 1: (40, 64), 2: (64, 50)}
    for i, (h, w) in crops.items():
        name = f"chest_{i:03d}.png"
        for p in [src / "images" / name, *(src / "masks").glob(f"*/{name}")]:
            arr = np.asarray(Image.open(p))[:h, :w]
            Image.fromarray(arr).save(p)
    return src


def test_reader_lazy_stack_and_mapping(make_napari_viewer, mixed_sizes: Path) -> None:
    import dask.array as da

    viewer = make_napari_viewer()
    layers = viewer.open(str(mixed_sizes), plugin="napari-pal")
    ds = open_dataset(mixed_sizes)
    image, *masks = layers
    assert image.name == "src images" and isinstance(image.data, da.Array)
    assert image.data.shape == (3, 64, 64)
    assert [ly.name for ly in masks] == [f"{c} mask" for c in ds.classes]
    meta = image.metadata["napari_pal"]
    assert meta["names"] == ds.names and meta["classes"] == ds.classes
    assert meta["shapes"] == [(64, 64), (40, 64), (64, 50)]
    for i in range(3):
        h, w = meta["shapes"][i]
        oy, ox = meta["offsets"][i]
        np.testing.assert_allclose(np.asarray(image.data[i, oy:oy + h, ox:ox + w]),
                                   ds.read_image(i))
        for k, ly in enumerate(masks):
            assert ly.metadata["napari_pal"]["class_index"] == k
            np.testing.assert_array_equal(ly.data[i, oy:oy + h, ox:ox + w] > 0,
                                          ds.read_masks(i)[k])
            assert not ly.data[i].sum() - ly.data[i, oy:oy + h, ox:ox + w].sum()


def test_reader_ignores_other_paths(tmp_path: Path) -> None:
    from napari_pal._napari.reader import napari_get_reader

    assert napari_get_reader(str(tmp_path)) is None
    assert napari_get_reader(str(tmp_path / "x.png")) is None


def test_writer_round_trip(make_napari_viewer, mixed_sizes: Path, tmp_path: Path) -> None:
    viewer = make_napari_viewer()
    image, *masks = viewer.open(str(mixed_sizes), plugin="napari-pal")
    masks[1].data[1, 5:20, 5:30] = 1  # an edit in the heart mask of the 40x64 image
    out = tmp_path / "saved"
    viewer.layers.selection = set(masks[:2])  # clavicles are taken from disk
    written = viewer.layers.save(str(out), selected=True, plugin="napari-pal")
    assert written
    back = open_dataset(out)
    meta = image.metadata["napari_pal"]
    assert back.names == meta["names"] and back.classes == meta["classes"]
    assert back.layout.value == meta["layout"]
    for i in range(len(back)):
        h, w = meta["shapes"][i]
        got = back.read_masks(i)
        assert got.shape[1:] == (h, w) == back.image_shape(i)
        for k, ly in enumerate(masks):
            np.testing.assert_array_equal(got[k], ly.data[i, :h, :w] > 0)
    assert (back.read_masks(1)[1][5:20, 5:30]).all()


def test_writer_into_input_keeps_backup(mixed_sizes: Path) -> None:
    from napari_pal._napari.reader import read_dataset
    from napari_pal._napari.writer import write_labels

    layers = read_dataset(str(mixed_sizes))
    data, attrs, _ = layers[1]
    before = (mixed_sizes / "masks" / "lungs" / "chest_000.png").read_bytes()
    data[0] = 0  # into the layer's store in the cache, not the folder
    write_labels(str(mixed_sizes), data, attrs)
    backups = list(mixed_sizes.glob("masks.backup-*"))
    assert len(backups) == 1
    assert (backups[0] / "lungs" / "chest_000.png").read_bytes() == before
    assert not open_dataset(mixed_sizes, check=False).read_masks(0)[0].any()


def test_sample_data(make_napari_viewer) -> None:
    viewer = make_napari_viewer()
    layers = viewer.open_sample("napari-pal", "chest")
    assert [ly.name for ly in layers][1:] == ["lungs mask", "heart mask", "clavicles mask"]
    from napari_pal._napari.sample_data import sample_folder

    n_images = len(list((sample_folder() / "images").glob("*.png")))
    assert n_images >= 24 and layers[0].data.shape[0] == n_images


def test_npe2_validate() -> None:
    npe2 = Path(sys.executable).with_name("npe2")
    cmd = [str(npe2)] if npe2.exists() else [sys.executable, "-m", "npe2"]
    proc = subprocess.run([*cmd, "validate", "napari-pal"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_widget_import_is_light() -> None:
    code = ("import sys, napari_pal._napari.widget, napari_pal._napari.reader, "
            "napari_pal._napari.writer, napari_pal._napari.sample_data; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
