"""The dock widget under stress: autosave and restore of corrections, closing the viewer
while training, Train/Stop pressed fast, training on a broken folder.

Tiny settings (32-64 px, 8 images, one thread) keep each test to seconds.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import numpy as np
import pytest
from docking import dock_widget
from qtpy.QtCore import Qt


@pytest.fixture(autouse=True)
def _recovery_in_tmp(tmp_path: Path, monkeypatch) -> Path:
    """Autosaves of these tests go to a temporary folder, not the user's cache."""
    from napari_pal.review.recovery import ENV

    base = tmp_path / "recovery"
    monkeypatch.setenv(ENV, str(base))
    return base


@pytest.fixture
def data(tmp_path: Path) -> Path:
    from napari_pal.data.synthetic import make_sample_dataset

    out = tmp_path / "data" / "chests"
    make_sample_dataset(out, n=8, size=64, seed=3, bad_fraction=0.4)
    return out


def _hashes(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _dock(make_napari_viewer, folder: Path, tmp_path: Path, **settings):
    viewer, widget = dock_widget(make_napari_viewer, folder, tmp_path / "runs",
                                 {"epochs": 2, "size": 32, "batch_size": 4, "threads": 1,
                                  **settings})
    widget.autosaver.delay_ms = 200
    return viewer, widget


def test_autosave_and_restore(make_napari_viewer, qtbot, data: Path, tmp_path: Path,
                              _recovery_in_tmp: Path) -> None:
    from napari_pal.review.recovery import RecoveryStore

    before = _hashes(data)
    viewer, w = _dock(make_napari_viewer, data, tmp_path)
    assert not w.recovery_panel.isVisible() and w.recovery_panel.pending() == []
    names = w.state.meta["names"]
    i = 3
    viewer.dims.set_current_step(0, i)
    lungs, heart = viewer.layers["lungs mask"], viewer.layers["heart mask"]
    lungs.paint((i, 20, 20), 1, refresh=True)  # a brush stroke ...
    heart.data_setitem((np.full(5, i), np.arange(5), np.zeros(5, int)), 1)  # ... and a fill
    w.review_panel.mark_reviewed()
    edited = np.stack([viewer.layers[f"{c} mask"].data[i] > 0 for c in w.state.meta["classes"]])
    store = RecoveryStore(data, w.state.meta["classes"])
    assert store.pending() == []  # debounced: nothing written yet
    qtbot.waitUntil(lambda: store.pending() == [names[i]], timeout=5_000)
    qtbot.waitUntil(lambda: store.load_status().get(names[i]) == "reviewed", timeout=5_000)
    assert store.folder.is_relative_to(_recovery_in_tmp)
    np.testing.assert_array_equal(store.load(names[i]), edited)
    assert _hashes(data) == before  # nothing written into the dataset

    # an edit undone (back to the original) is forgotten again
    j = 5
    lungs.paint((j, 30, 30), 1, refresh=True)
    qtbot.waitUntil(lambda: names[j] in store.pending(), timeout=5_000)
    viewer.dims.set_current_step(0, j)
    lungs.undo()
    qtbot.waitUntil(lambda: names[j] not in store.pending(), timeout=5_000)

    viewer.close()
    assert _hashes(data) == before

    # a new viewer on the same folder offers the correction back
    viewer2, w2 = _dock(make_napari_viewer, data, tmp_path)
    assert w2.recovery_panel.pending() == [(names[i], False)]
    assert w2.recovery_panel.isVisibleTo(w2)
    assert w2.recovery_panel.restore_button.text() == "Restore 1 autosaved correction"
    assert not (viewer2.layers["lungs mask"].data[i] > 0).tolist() == edited[0].tolist()
    qtbot.mouseClick(w2.recovery_panel.restore_button, Qt.LeftButton)
    for k, c in enumerate(w2.state.meta["classes"]):
        np.testing.assert_array_equal(viewer2.layers[f"{c} mask"].data[i] > 0, edited[k])
    assert w2.state.status[names[i]] == "reviewed"
    assert not w2.recovery_panel.isVisibleTo(w2)

    # export is the safe copy: the autosave is discarded
    assert w2.export_panel.export(tmp_path / "export") is not None
    assert store.pending() == [] and store.load_status() == {}
    assert _hashes(data) == before


def test_stale_autosave_is_shown_not_restored(make_napari_viewer, qtbot, data: Path,
                                              tmp_path: Path) -> None:
    from napari_pal.data.dataset import open_dataset
    from napari_pal.review.recovery import RecoveryStore

    ds = open_dataset(data)
    store = RecoveryStore(data, ds.classes)
    m = ~ds.read_masks(1)
    store.save(ds.names[1], m)
    store.save(ds.names[2], ~ds.read_masks(2))
    mask_file = ds.items[2].mask_paths[0]
    mask_file.write_bytes(mask_file.read_bytes())  # same bytes, new time: not stale
    other = ds.items[2].image_path
    other.write_bytes(other.read_bytes() + b"\0")  # changed on disk since the autosave: stale
    viewer, w = _dock(make_napari_viewer, data, tmp_path)
    offer = dict(w.recovery_panel.pending())
    assert offer == {ds.names[1]: False, ds.names[2]: True}
    assert "stale" in w.recovery_panel.label.text() and ds.names[2] in w.recovery_panel.label.text()
    assert w.recovery_panel.restore() == [ds.names[1]]
    np.testing.assert_array_equal(viewer.layers["lungs mask"].data[1] > 0, m[0])
    assert w.recovery_panel.pending() == [(ds.names[2], True)]  # still on offer, as stale
    w.recovery_panel.discard()
    assert store.pending() == []


def test_close_viewer_while_training(make_napari_viewer, qtbot, data: Path,
                                     tmp_path: Path) -> None:
    baseline = threading.active_count()
    viewer, w = _dock(make_napari_viewer, data, tmp_path, epochs=500)
    w.training_panel.train_button.click()
    t = w.training_panel
    qtbot.waitUntil(lambda: t.last_event is not None and t.last_event.step >= 2,
                    timeout=60_000)
    worker, done, run = t.runner.worker, t.runner.control.done, w.state.last_run
    viewer.close()
    assert done.is_set() and not worker.is_running
    assert w.training_panel.runner.worker is None
    assert (run / "checkpoint.pt").is_file()  # stopped cleanly: the checkpoint is saved
    qtbot.wait(100)  # late queued signals of the worker reach nothing
    assert threading.active_count() <= baseline + 1  # at most an idle pool thread


def test_train_stop_pressed_fast(make_napari_viewer, qtbot, data: Path, tmp_path: Path) -> None:
    viewer, w = _dock(make_napari_viewer, data, tmp_path, epochs=200)
    for k in range(10):
        qtbot.mouseClick(w.training_panel.train_button, Qt.LeftButton)
        qtbot.wait(30 + 40 * (k % 3))
        t = w.training_panel
        assert (t.runner.worker is None) == (t.train_button.text() == "Train")
    if w.training_panel.runner.worker is not None and w.training_panel.train_button.isEnabled():
        qtbot.mouseClick(w.training_panel.train_button, Qt.LeftButton)  # Stop
    qtbot.waitUntil(lambda: w.training_panel.runner.worker is None, timeout=60_000)
    t = w.training_panel
    assert t.train_button.text() == "Train" and t.train_button.isEnabled()
    assert w.training_panel.retrain_button.isEnabled() and w.training_panel.score_button.isEnabled()
    # and it still trains afterwards
    w.training_panel.form["epochs"].value = 1
    w.training_panel.train_button.click()
    qtbot.waitUntil(lambda: w.training_panel.runner.worker is None, timeout=120_000)
    assert t.last_event is not None and t.last_event.state == "finished" and w.state.scores


def test_training_on_a_broken_folder_shows_an_error(make_napari_viewer, qtbot, data: Path,
                                                    tmp_path: Path, monkeypatch) -> None:
    from napari_pal._napari import notify
    from napari_pal._napari import widget as _widget

    shown: list[str] = []
    monkeypatch.setattr(notify, "error", lambda err: shown.append(str(err)))
    # no dataset: an error, nothing raised
    w0 = _widget.PalWidget(make_napari_viewer())
    qtbot.mouseClick(w0.training_panel.train_button, Qt.LeftButton)
    assert len(shown) == 1 and w0.training_panel.runner.worker is None
    assert w0.training_panel.train_button.text() == "Train"

    viewer, w = _dock(make_napari_viewer, data, tmp_path)
    for p in sorted((data / "images").iterdir())[:2]:
        p.write_bytes(b"not an image")  # broken after opening
    qtbot.mouseClick(w.training_panel.train_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: w.training_panel.runner.worker is None, timeout=60_000)
    assert len(shown) == 2, shown
    assert w.training_panel.train_button.text() == "Train"
    assert w.training_panel.train_button.isEnabled()
    assert w.training_panel.progress_label.text().startswith("error")
