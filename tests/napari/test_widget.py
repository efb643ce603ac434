"""The dock widget end to end: train a tiny run in the worker, review, export.

Tiny settings (64 px, 2 epochs, batch 4, 8 images, one thread) keep it to seconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from docking import dock_widget

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
    return dock_widget(make_napari_viewer, folder, tmp_path / "runs",
                       {"epochs": 2, "size": 64, "batch_size": 4, "threads": 1, **settings})


def test_plugins_menu_docks_widget(make_napari_viewer) -> None:
    viewer = make_napari_viewer()
    dock, widget = viewer.window.add_plugin_dock_widget("napari-pal",
                                                        "Pick-and-Learn quality review")
    assert type(widget).__name__ == "PalWidget" and widget.data_panel.image_combo.count() == 0


def test_train_review_export(make_napari_viewer, qtbot, small_data: Path,
                             tmp_path: Path) -> None:
    viewer, w = _dock(make_napari_viewer, qtbot, small_data, tmp_path)
    assert w.state.meta is not None and w.state.meta["classes"] == ["lungs", "heart", "clavicles"]
    assert [c.currentData().name for c in w.data_panel.mask_combos] == \
        ["lungs mask", "heart mask", "clavicles mask"]
    w.training_panel.train_button.click()
    assert w.training_panel.train_button.text() == "Stop"
    qtbot.waitUntil(lambda: w.training_panel.runner.worker is None, timeout=120_000)
    assert w.training_panel.train_button.text() == "Train"
    assert w.training_panel.last_event.state == "finished" and w.training_panel.plot.steps

    # the table: one row per image, worst first
    names = w.state.meta["names"]
    assert w.review_panel.proxy.rowCount() == len(names)
    r = w.review_panel
    shown = [r.model.name_at(r.proxy.mapToSource(r.proxy.index(k, 0)).row())
             for k in range(r.proxy.rowCount())]
    qualities = [w.state.scores[n].quality for n in shown]
    if r.model.ranking_shown:  # worst first over the reliable classes
        assert qualities == sorted(qualities)
    else:  # 2 epochs may learn no class: then no ranking is shown (by name)
        assert shown == sorted(shown) and "no class is reliable" in r.reliability_label.text()
    for cls in w.state.meta["classes"]:
        assert viewer.layers[f"{cls} prediction"].contour == 1
    assert viewer.layers["disagreement"].data.shape == (len(names), 64, 64)

    # select a row: the viewer moves there, the worst class's mask layer is selected
    row = 2
    name = r.model.name_at(r.proxy.mapToSource(r.proxy.index(row, 0)).row())
    w.review_panel.table.selectRow(row)
    i = names.index(name)
    assert viewer.dims.current_step[0] == i
    s = w.state.scores[name]
    worst = min(w.state.meta["classes"], key=lambda c: s.per_class[c])
    active = viewer.layers.selection.active
    assert active.name == f"{worst} mask" and active.mode == "paint"

    # accept the prediction for one class
    k = 1
    heart = viewer.layers["heart mask"]
    pred = viewer.layers["heart prediction"].data[i]
    w.review_panel.accept_prediction(k)
    np.testing.assert_array_equal(heart.data[i] > 0, pred > 0)

    # revert puts the original back; accept all classes; mark reviewed; next worst
    w.review_panel.revert()
    orig = open_dataset(small_data).read_masks(i)
    for c, cls in enumerate(w.state.meta["classes"]):
        np.testing.assert_array_equal(viewer.layers[f"{cls} mask"].data[i] > 0, orig[c])
    w.review_panel.accept_prediction(None)
    for cls in w.state.meta["classes"]:
        np.testing.assert_array_equal(viewer.layers[f"{cls} mask"].data[i] > 0,
                                      viewer.layers[f"{cls} prediction"].data[i] > 0)
    w.review_panel.mark_reviewed()
    assert w.state.status[name] == "reviewed"
    w.review_panel.next_worst()
    worst_unreviewed = min((sc for n, sc in w.state.scores.items() if n != name),
                           key=lambda sc: sc.quality).name
    assert w.review_panel.current_name() == worst_unreviewed

    # paint a little, then export and read back: identical to the layers (image region)
    viewer.layers["lungs mask"].data[0, 1:4, 1:4] = 1
    out = tmp_path / "export"
    csv_path = w.export_panel.export(out)
    assert csv_path is not None and csv_path.name == "quality.csv"
    back = open_dataset(out)
    assert back.names == names and back.layout.value == w.state.meta["layout"]
    for j in range(len(back)):
        h, wd = w.state.meta["shapes"][j]
        got = back.read_masks(j)
        for c, cls in enumerate(w.state.meta["classes"]):
            np.testing.assert_array_equal(got[c], viewer.layers[f"{cls} mask"].data[j, :h, :wd] > 0)
    rows = csv_path.read_text().splitlines()
    assert rows[0].split(",") == ["name", "quality", "quality_lungs", "quality_heart",
                                  "quality_clavicles", "status"]
    assert len(rows) == 1 + len(names) and f"{name}," in "\n".join(r for r in rows
                                                                 if r.endswith("reviewed"))
    # the input is untouched, and refusing to export over it without the tick
    assert open_dataset(small_data).read_masks(i).tolist() == orig.tolist()
    assert w.export_panel.export(small_data) is None

    # retrain with reviewed masks trusted, from the saved checkpoint: scoring on demand
    run = w.state.last_run
    w.training_panel.score_checkpoint(run)
    qtbot.waitUntil(lambda: w.training_panel.runner.worker is None, timeout=60_000)
    assert len(w.state.scores) == len(names)


def test_stop_within_a_step(make_napari_viewer, qtbot, small_data: Path, tmp_path: Path) -> None:
    viewer, w = _dock(make_napari_viewer, qtbot, small_data, tmp_path, epochs=50)
    w.training_panel.train_button.click()
    t = w.training_panel
    qtbot.waitUntil(lambda: t.last_event is not None and t.last_event.step >= 2,
                    timeout=60_000)
    step = w.training_panel.last_event.step
    w.training_panel.train_button.click()  # Stop
    qtbot.waitUntil(lambda: w.training_panel.runner.worker is None, timeout=30_000)
    assert w.training_panel.last_event.state == "stopped"
    assert w.training_panel.last_event.step <= step + 2  # the one in flight when Stop came, at most
    assert (w.state.last_run / "checkpoint.pt").is_file()
    assert w.training_panel.train_button.text() == "Train"


def test_errors_are_shown_not_raised(make_napari_viewer, qtbot, tmp_path: Path,
                                     monkeypatch) -> None:
    from napari_pal._napari import notify
    from napari_pal._napari import widget as _widget

    shown = []
    monkeypatch.setattr(notify, "error", lambda err: shown.append(str(err)))
    viewer = make_napari_viewer()
    w = _widget.PalWidget(viewer)
    w.open_folder(tmp_path / "nowhere")
    w.training_panel.start_training()
    w.export_panel.export(tmp_path / "x")
    assert len(shown) == 3 and "does not exist" in shown[0]
    assert w.training_panel.runner.worker is None


def test_retrain_counts_reviewed_as_trusted(make_napari_viewer, qtbot, small_data: Path,
                                            tmp_path: Path, monkeypatch) -> None:
    from napari_pal.jobs.events import JobStatus

    seen = {}

    def fake_job(meta, overrides, config, run_dir, trusted, stop, **options):
        seen.update(trusted=trusted, config=config, masks=overrides[meta["names"][0]])
        yield JobStatus("done")

    viewer, w = _dock(make_napari_viewer, qtbot, small_data, tmp_path)
    monkeypatch.setattr(w.training_panel, "train_job", fake_job)
    viewer.dims.set_current_step(0, 3)
    w.review_panel.mark_reviewed()
    viewer.layers["heart mask"].data[0] = 0  # an edit reaches training as an override
    w.training_panel.retrain_button.click()
    qtbot.waitUntil(lambda: w.training_panel.runner.worker is None, timeout=10_000)
    assert seen["trusted"] == [w.state.meta["names"][3]]
    assert seen["config"].threads == 1 and seen["config"].size == 64
    assert not seen["masks"][1].any()


def test_review_shortcuts(make_napari_viewer, qtbot, small_data: Path, tmp_path: Path) -> None:
    viewer, w = _dock(make_napari_viewer, qtbot, small_data, tmp_path)
    keys = sorted(sc.key().toString() for sc in w.review_panel.shortcuts)
    assert {"Alt+N", "Alt+R", "Alt+A", "Alt+Z", "Alt+1", "Alt+3"} <= set(keys)
    viewer.dims.set_current_step(0, 2)
    next(sc for sc in w.review_panel.shortcuts if sc.key().toString() == "Alt+R").activated.emit()
    assert w.state.status[w.state.meta["names"][2]] == "reviewed"


def test_folder_picker_maps_each_class_to_its_layer(make_napari_viewer, small_data: Path) -> None:
    from napari_pal._napari.widget import PalWidget

    viewer = make_napari_viewer()
    w = PalWidget(viewer)
    viewer.window.add_dock_widget(w)
    w.open_folder(small_data)  # layers arrive one by one while the widget listens
    assert [ly.name for ly in w.state.mask_layers()] == \
        [f"{c} mask" for c in w.state.meta["classes"]]
    viewer.add_labels(np.zeros_like(w.state.mask_layers()[0].data), name="mine")
    w.data_panel.mask_combos[1].setCurrentIndex(w.data_panel.mask_combos[1].findText("mine"))
    w.data_panel.mask_combos[1].activated.emit(w.data_panel.mask_combos[1].currentIndex())
    viewer.add_labels(np.zeros((2, 2), np.uint8), name="other")
    assert [ly.name for ly in w.state.mask_layers()] == ["lungs mask", "mine", "clavicles mask"]
