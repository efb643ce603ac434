"""Large folders in napari: the mask layers are lazy and paintable stores in the user's
cache; only the slices shown are read; edits reach the store, the autosave and the export;
a crash loses nothing autosaved; nothing is ever written inside the dataset folder."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _caches_in_tmp(tmp_path: Path, monkeypatch) -> dict[str, str]:
    from napari_pal.review import recovery, slicestore

    env = {recovery.ENV: str(tmp_path / "recovery"), slicestore.ENV: str(tmp_path / "layers")}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


@pytest.fixture
def folder40(tmp_path: Path) -> Path:
    from napari_pal.data.synthetic import make_sample_dataset

    out = tmp_path / "data" / "chests"
    make_sample_dataset(out, n=40, size=32, seed=6)
    return out


def _dock(make_napari_viewer, folder: Path):
    from napari_pal._napari.widget import PalWidget

    viewer = make_napari_viewer()
    viewer.open(str(folder), plugin="napari-pal")
    widget = PalWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Pick-and-Learn quality review")
    widget.autosaver.delay_ms = 100
    return viewer, widget


def test_open_40_images_reads_only_the_slices_shown(make_napari_viewer, qtbot, folder40: Path,
                                                    tmp_path: Path, tree_hash,
                                                    monkeypatch) -> None:
    from napari_pal.data.dataset import Dataset, open_dataset
    from napari_pal.review.slicestore import SliceArray

    before = tree_hash(folder40)
    mask_reads: list[int] = []
    image_reads: list[int] = []
    read_masks, read_image = Dataset.read_masks, Dataset.read_image
    monkeypatch.setattr(Dataset, "read_masks",
                        lambda self, i: mask_reads.append(i) or read_masks(self, i))
    monkeypatch.setattr(Dataset, "read_image",
                        lambda self, i: image_reads.append(i) or read_image(self, i))
    viewer, w = _dock(make_napari_viewer, folder40)
    shown = {0, int(viewer.dims.current_step[0])}  # napari slices at 0, then shows the middle
    for i in (7, 33):
        viewer.dims.set_current_step(0, i)
        shown.add(i)
    qtbot.wait(50)
    lungs = viewer.layers["lungs mask"]
    assert isinstance(lungs.data, SliceArray) and lungs.data.shape == (40, 32, 32)
    assert {7, 33} <= set(mask_reads) <= shown and len(mask_reads) == len(set(mask_reads))
    assert set(image_reads) <= shown  # the image stack is lazy as well

    # a brush stroke on slice 33 reaches the zarr store in the cache (outside the dataset)
    lungs.paint((33, 16, 16), 1, refresh=True)
    store = lungs.data.store
    assert store.folder.is_relative_to(tmp_path / "layers")
    painted = np.asarray(store._z[0, 33]) > 0
    assert painted[16, 16] and not np.array_equal(painted, read_masks(open_dataset(folder40),
                                                                     33)[0])
    # ... and the export (every image at its size, in the input's layout)
    assert w.export_panel.export(tmp_path / "export") is not None
    back, orig = open_dataset(tmp_path / "export"), open_dataset(folder40)
    assert back.names == orig.names
    np.testing.assert_array_equal(back.read_masks(33)[0], painted)
    for i in (0, 12, 39):
        np.testing.assert_array_equal(back.read_masks(i), read_masks(orig, i))
    assert tree_hash(folder40) == before  # nothing written inside the dataset folder


CRASH = textwrap.dedent("""
    import os, sys, time
    import napari
    from qtpy.QtWidgets import QApplication
    from napari_pal._napari.widget import PalWidget

    viewer = napari.Viewer(show=False)
    viewer.open(sys.argv[1], plugin="napari-pal")
    w = PalWidget(viewer)
    viewer.window.add_dock_widget(w)
    w.autosaver.delay_ms = 50
    viewer.dims.set_current_step(0, 6)
    layer = viewer.layers["lungs mask"]
    layer.paint((6, 12, 12), 1, refresh=True)
    t = time.time()
    while not w.autosaver.store.pending() and time.time() - t < 30:
        QApplication.processEvents()
        time.sleep(0.02)
    print(layer.data.store.folder, flush=True)
    os._exit(3)  # a crash: no close, no clean-up
""")


def test_recovery_after_a_crash(make_napari_viewer, qtbot, folder40: Path, tmp_path: Path,
                                tree_hash, _caches_in_tmp) -> None:
    from napari_pal.review.recovery import RecoveryStore

    before = tree_hash(folder40)
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {**os.environ, **_caches_in_tmp, "PYTHONPATH": src, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", CRASH, str(folder40)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stderr[-3000:]
    crashed_store = Path(proc.stdout.strip().splitlines()[-1])
    assert crashed_store.is_dir()  # the crash left its layer store behind
    names = sorted(p.stem for p in (folder40 / "images").iterdir())
    saved = RecoveryStore(folder40, ["lungs", "heart", "clavicles"]).load(names[6])

    viewer, w = _dock(make_napari_viewer, folder40)
    assert not crashed_store.exists()  # a dead process's store is cleared at the next open
    assert w.recovery_panel.pending() == [(names[6], False)]
    assert w.recovery_panel.restore() == [names[6]]
    for k, c in enumerate(w.state.classes):
        np.testing.assert_array_equal(viewer.layers[f"{c} mask"].data[6] > 0, saved[k])
    assert saved[0][12, 12]
    assert tree_hash(folder40) == before
