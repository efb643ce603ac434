"""The dock widget end to end: train a tiny run in the worker, review, export.

Tiny settings (64 px, 2 epochs, batch 4, 8 images, one thread) keep it to seconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_pal.data.dataset import open_dataset


@pytest.fixture(autouse=True)
def _recovery_in_tmp(tmp_path: Path, monkeypatch) -> None:
    """The widget autosaves corrections: into a temporary folder here, not the user cache."""
    from napari_pal.review.recovery import ENV

    monkeypatch.setenv(ENV, str(tmp_path / "recovery"))


@pytest.fixture(scope="module")
def small_data(tmp_path_factory) -> Path:
    from napari_pal.data.synthetic import make_sample_dataset

    out = tmp_path_factory.mktemp("data") / "chests"
    make_sample_dataset(out, n=8, size=64, seed=3, bad_fraction=0.4)
    return out


def _dock(make_napari_viewer, qtbot, folder: Path, tmp_path: Path, **settings):
    from napari_pal._napari.widget import PalWidget

    viewer = make_napari_viewer()
    viewer.open(str(folder), plugin="napari-pal")
    widget = PalWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Pick-and-Learn quality review")
    widget.runs_dir = tmp_path / "runs"
    values = {"epochs": 2, "size": 64, "batch_size": 4, "threads": 1, **settings}
    for k, v in values.items():
        widget.settings[k].value = v
    return viewer, widget


def test_plugins_menu_docks_widget(make_napari_viewer) -> None:
    viewer = make_napari_viewer()
    dock, widget = viewer.window.add_plugin_dock_widget("napari-pal",
                                                        "Pick-and-Learn quality review")
    assert type(widget).__name__ == "PalWidget" and widget.image_combo.count() == 0


def test_train_review_export(make_napari_viewer, qtbot, small_data: Path,
                             tmp_path: Path) -> None:
    viewer, w = _dock(make_napari_viewer, qtbot, small_data, tmp_path)
    assert w.meta is not None and w.meta["classes"] == ["lungs", "heart", "clavicles"]
    assert [c.currentData().name for c in w.mask_combos] == \
        ["lungs mask", "heart mask", "clavicles mask"]
    w.train_button.click()
    assert w.train_button.text() == "Stop"
    qtbot.waitUntil(lambda: w.worker is None, timeout=120_000)
    assert w.train_button.text() == "Train"
    assert w.last_event.state == "finished" and w.plot.steps

    # the table: one row per image, worst first
    names = w.meta["names"]
    assert w.proxy.rowCount() == len(names)
    qualities = [w.scores[w.model.name_at(w.proxy.mapToSource(w.proxy.index(r, 0)).row())]
                 .quality for r in range(w.proxy.rowCount())]
    assert qualities == sorted(qualities)
    for cls in w.meta["classes"]:
        assert viewer.layers[f"{cls} prediction"].contour == 1
    assert viewer.layers["disagreement"].data.shape == (len(names), 64, 64)

    # select a row: the viewer moves there, the worst class's mask layer is selected
    row = 2
    name = w.model.name_at(w.proxy.mapToSource(w.proxy.index(row, 0)).row())
    w.table.selectRow(row)
    i = names.index(name)
    assert viewer.dims.current_step[0] == i
    s = w.scores[name]
    worst = min(w.meta["classes"], key=lambda c: s.per_class[c])
    active = viewer.layers.selection.active
    assert active.name == f"{worst} mask" and active.mode == "paint"

    # accept the prediction for one class
    k = 1
    heart = viewer.layers["heart mask"]
    pred = viewer.layers["heart prediction"].data[i]
    w.accept_prediction(k)
    np.testing.assert_array_equal(heart.data[i] > 0, pred > 0)

    # revert puts the original back; accept all classes; mark reviewed; next worst
    w.revert()
    orig = open_dataset(small_data).read_masks(i)
    for c, cls in enumerate(w.meta["classes"]):
        np.testing.assert_array_equal(viewer.layers[f"{cls} mask"].data[i] > 0, orig[c])
    w.accept_prediction(None)
    for cls in w.meta["classes"]:
        np.testing.assert_array_equal(viewer.layers[f"{cls} mask"].data[i] > 0,
                                      viewer.layers[f"{cls} prediction"].data[i] > 0)
    w.mark_reviewed()
    assert w.status[name] == "reviewed"
    w.next_worst()
    worst_unreviewed = min((sc for n, sc in w.scores.items() if n != name),
                           key=lambda sc: sc.quality).name
    assert w.current_name() == worst_unreviewed

    # paint a little, then export and read back: identical to the layers (image region)
    viewer.layers["lungs mask"].data[0, 1:4, 1:4] = 1
    out = tmp_path / "export"
    csv_path = w.export(out)
    assert csv_path is not None and csv_path.name == "quality.csv"
    back = open_dataset(out)
    assert back.names == names and back.layout.value == w.meta["layout"]
    for j in range(len(back)):
        h, wd = w.meta["shapes"][j]
        got = back.read_masks(j)
        for c, cls in enumerate(w.meta["classes"]):
            np.testing.assert_array_equal(got[c], viewer.layers[f"{cls} mask"].data[j, :h, :wd] > 0)
    rows = csv_path.read_text().splitlines()
    assert rows[0].split(",") == ["name", "quality", "quality_lungs", "quality_heart",
                                  "quality_clavicles", "status"]
    assert len(rows) == 1 + len(names) and f"{name}," in "\n".join(r for r in rows
                                                                 if r.endswith("reviewed"))
    # the input is untouched, and refusing to export over it without the tick
    assert open_dataset(small_data).read_masks(i).tolist() == orig.tolist()
    assert w.export(small_data) is None

    # retrain with reviewed masks trusted, from the saved checkpoint: scoring on demand
    run = w.last_run
    w.score_checkpoint(run)
    qtbot.waitUntil(lambda: w.worker is None, timeout=60_000)
    assert len(w.scores) == len(names)


def test_stop_within_a_step(make_napari_viewer, qtbot, small_data: Path, tmp_path: Path) -> None:
    viewer, w = _dock(make_napari_viewer, qtbot, small_data, tmp_path, epochs=50)
    w.train_button.click()
    qtbot.waitUntil(lambda: w.last_event is not None and w.last_event.step >= 2,
                    timeout=60_000)
    step = w.last_event.step
    w.train_button.click()  # Stop
    qtbot.waitUntil(lambda: w.worker is None, timeout=30_000)
    assert w.last_event.state == "stopped"
    assert w.last_event.step <= step + 2  # the one in flight when Stop came, at most
    assert (w.last_run / "checkpoint.pt").is_file()
    assert w.train_button.text() == "Train"


def test_errors_are_shown_not_raised(make_napari_viewer, qtbot, tmp_path: Path,
                                     monkeypatch) -> None:
    from napari_pal._napari import widget as _widget

    shown = []
    monkeypatch.setattr(_widget, "_notify_error", lambda err: shown.append(str(err)))
    viewer = make_napari_viewer()
    w = _widget.PalWidget(viewer)
    w.open_folder(tmp_path / "nowhere")
    w.start_training()
    w.export(tmp_path / "x")
    assert len(shown) == 3 and "does not exist" in shown[0]
    assert w.worker is None


def test_retrain_counts_reviewed_as_trusted(make_napari_viewer, qtbot, small_data: Path,
                                            tmp_path: Path, monkeypatch) -> None:
    from napari_pal._napari import widget as _widget

    seen = {}

    def fake_job(meta, overrides, config, run_dir, trusted, stop):
        seen.update(trusted=trusted, config=config, masks=overrides[meta["names"][0]])
        yield ("status", "done")

    monkeypatch.setattr(_widget, "_train_job", fake_job)
    viewer, w = _dock(make_napari_viewer, qtbot, small_data, tmp_path)
    viewer.dims.set_current_step(0, 3)
    w.mark_reviewed()
    viewer.layers["heart mask"].data[0] = 0  # an edit reaches training as an override
    w.retrain_button.click()
    qtbot.waitUntil(lambda: w.worker is None, timeout=10_000)
    assert seen["trusted"] == [w.meta["names"][3]]
    assert seen["config"].threads == 1 and seen["config"].size == 64
    assert not seen["masks"][1].any()


def test_review_shortcuts(make_napari_viewer, qtbot, small_data: Path, tmp_path: Path) -> None:
    viewer, w = _dock(make_napari_viewer, qtbot, small_data, tmp_path)
    keys = sorted(sc.key().toString() for sc in w._shortcuts)
    assert {"Alt+N", "Alt+R", "Alt+A", "Alt+Z", "Alt+1", "Alt+3"} <= set(keys)
    viewer.dims.set_current_step(0, 2)
    next(sc for sc in w._shortcuts if sc.key().toString() == "Alt+R").activated.emit()
    assert w.status[w.meta["names"][2]] == "reviewed"


def test_folder_picker_maps_each_class_to_its_layer(make_napari_viewer, small_data: Path) -> None:
    from napari_pal._napari.widget import PalWidget

    viewer = make_napari_viewer()
    w = PalWidget(viewer)
    viewer.window.add_dock_widget(w)
    w.open_folder(small_data)  # layers arrive one by one while the widget listens
    assert [ly.name for ly in w.mask_layers()] == [f"{c} mask" for c in w.meta["classes"]]
    viewer.add_labels(np.zeros_like(w.mask_layers()[0].data), name="mine")
    w.mask_combos[1].setCurrentIndex(w.mask_combos[1].findText("mine"))
    w.mask_combos[1].activated.emit(w.mask_combos[1].currentIndex())
    viewer.add_labels(np.zeros((2, 2), np.uint8), name="other")
    assert [ly.name for ly in w.mask_layers()] == ["lungs mask", "mine", "clavicles mask"]
