"""The ranking in the widget (issues 10 and 12): the anytime table that fills and refreshes
while training runs, the time budget, drafts of images without masks, and classes the model
has not learnt shown as "-" with a warning.

Tiny settings (32 px, width 4, batch 4, a handful of images, one thread) keep each test to
seconds; a refresh after every epoch.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from docking import dock_widget

SMALL = {"size": 32, "batch_size": 4, "threads": 1, "width": 4, "qam_width": 4,
         "precision": "fp32", "device": "cpu"}


@pytest.fixture(autouse=True)
def _recovery_in_tmp(tmp_path: Path, monkeypatch) -> None:
    from napari_pal.review.recovery import ENV

    monkeypatch.setenv(ENV, str(tmp_path / "recovery"))


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    from napari_pal.data.synthetic import make_sample_dataset

    out = tmp_path_factory.mktemp("rank") / "chests"
    make_sample_dataset(out, n=8, size=32, seed=5, bad_fraction=0.4)
    return out


@pytest.fixture(scope="module")
def partly(tmp_path_factory) -> Path:
    """6 images, 2 of them (chest_001, chest_004) without masks."""
    from napari_pal.data.synthetic import make_sample_dataset

    out = tmp_path_factory.mktemp("drafts") / "part"
    make_sample_dataset(out, n=6, size=32, seed=6)
    for name in ("chest_001", "chest_004"):
        for f in (out / "masks").glob(f"*/{name}.png"):
            f.unlink()
    return out


def _dock(make_napari_viewer, folder: Path, tmp_path: Path, by_hand: bool = True, **settings):
    viewer, w = dock_widget(make_napari_viewer, folder, tmp_path / "runs",
                            {**SMALL, "epochs": 2, **settings}, by_hand=by_hand)
    panel = w.training_panel
    panel.refresh_every_s, panel.refresh_max_share = 0.0, 1e9  # a refresh after every epoch
    return viewer, w


def _table(w) -> list[tuple[str, str, str]]:
    """(name, quality as shown, status) per row, in the order shown."""
    r = w.review_panel
    cols = r.model.columnCount()
    return [tuple(r.proxy.index(k, c).data() for c in (0, 1, cols - 1))
            for k in range(r.proxy.rowCount())]


def _assert_order(w) -> None:
    """Worst first over the reliable classes; by name (no ranking) when none is reliable."""
    names = [n for n, _, _ in _table(w)]
    if w.review_panel.model.ranking_shown:  # ties by name, as in scores.csv
        keys = [(w.state.scores[n].quality, n) for n in names]
        assert keys == sorted(keys)
    else:
        assert names == sorted(names)


def test_table_fills_and_refreshes_while_training(make_napari_viewer, qtbot, data: Path,
                                                  tmp_path: Path) -> None:
    from qtpy.QtCore import QTimer

    viewer, w = _dock(make_napari_viewer, data, tmp_path, epochs=6)
    names = w.state.meta["names"]
    heart = viewer.layers["heart mask"]
    ticks: list[float] = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start(20)
    seen: list[dict] = []
    edited: dict[str, np.ndarray] = {}

    def on_refresh(r) -> None:
        # checked when each refresh arrives (the Review panel has updated the table already)
        seen.append({"epoch": r.epoch, "ranked": r.ranked,
                     "running": w.training_panel.runner.running,
                     "rows": sorted(n for n, _, _ in _table(w)), "ticks": len(ticks),
                     "label": w.review_panel.ranking_label.text(),
                     "status": w.state.status[names[2]],
                     "kept": "mask" in edited and np.array_equal(heart.data[5], edited["mask"])})
        _assert_order(w)
        if len(seen) == 1:  # review one image and edit another's mask during training
            viewer.dims.set_current_step(0, 2)
            w.review_panel.mark_reviewed()
            heart.data_setitem((np.full(4, 5), np.arange(4), np.arange(4)),
                               np.ones(4, np.uint8))
            edited["mask"] = np.asarray(heart.data[5]).copy()

    w.state.ranking_refreshed.connect(on_refresh)
    w.training_panel.train_button.click()
    qtbot.waitUntil(lambda: w.training_panel.runner.worker is None, timeout=120_000)
    timer.stop()

    # the table filled while training went on, one refresh per epoch, none extra at the end
    assert [s["epoch"] for s in seen] == [1, 2, 3, 4, 5]
    assert all(s["running"] and s["rows"] == sorted(names) for s in seen)
    # at these tiny settings no class may be learnt yet: then the label says so
    assert seen[0]["label"] == ("refreshed at epoch 1/6: first ranking, training goes on"
                                if seen[0]["ranked"] else
                                "refreshed at epoch 1/6: no class learnt yet, training goes on")
    assert seen[1]["label"].startswith("refreshed at epoch 2/6: ")
    # the review status and the mask edit survived every later refresh and the final one
    assert all(s["status"] == "reviewed" and s["kept"] for s in seen[1:])
    assert w.state.refresh.final and w.state.refresh.epoch == 6
    assert w.review_panel.ranking_label.text().startswith("final ranking (epoch 6/6)")
    assert w.state.status[names[2]] == "reviewed"
    assert dict((n, s) for n, _, s in _table(w))[names[2]] == "reviewed"
    assert np.array_equal(np.asarray(heart.data[5]), edited["mask"])
    _assert_order(w)
    # each quality's tooltip says why first: the image's worst class, a class's own term
    from qtpy.QtCore import Qt

    from napari_pal.scoring.reasons import image_reason

    worst = w.state.scores[_table(w)[0][0]]
    tips = [w.review_panel.proxy.index(0, c).data(Qt.ToolTipRole) for c in (1, 2)]
    cls = w.review_panel.model.classes[0]
    assert tips[0].splitlines()[0] == image_reason(worst) != ""
    assert tips[1].splitlines()[0] == worst.why[cls] and f"dist_{cls}:" in tips[1]
    w.review_panel.go_to(worst.name)  # the image shown says it too, under its name (when
    label = w.review_panel.current_label.text().splitlines()  # the table is a ranking)
    shown = [image_reason(worst)] if w.review_panel.model.ranking_shown else []
    assert label[0].startswith(worst.name) and label[1:] == shown
    # the event loop kept running: the timer fired between refreshes and never stalled long
    assert all(b["ticks"] > a["ticks"] for a, b in zip(seen, seen[1:]))
    gaps = np.diff(ticks)
    print(f"timer ticks: {len(ticks)}, longest gap {gaps.max() * 1000:.0f} ms")
    assert gaps.max() < 1.5


def test_time_budget_plans_then_trains(make_napari_viewer, qtbot, data: Path,
                                       tmp_path: Path) -> None:
    viewer, w = _dock(make_napari_viewer, data, tmp_path, by_hand=False, epochs=99, size=64)
    panel = w.training_panel
    panel.budget_sizes = (64, 32)
    assert panel.minutes.value() == 15.0 and panel.minutes.isEnabled()
    # Stop during the calibration: nothing trains, the panel is ready again
    panel.train_button.click()
    panel.train_button.click()
    qtbot.waitUntil(lambda: panel.runner.worker is None, timeout=60_000)
    assert panel.train_button.text() == "Train" and panel.last_event is None
    assert "stopped during calibration" in panel.progress_label.text()

    panel.minutes.setValue(0.1)
    panel.train_button.click()
    qtbot.waitUntil(lambda: panel.runner.worker is None, timeout=120_000)
    text = panel.plan_label.text()
    size, epochs = panel.form["size"].value, panel.form["epochs"].value
    assert text.startswith(f"planned: {size} px, {epochs} epochs, about"), text
    assert size in (64, 32) and 10 <= epochs <= 60  # not the form's 99 epochs at 64 px
    assert size == 32 or epochs == 60  # a smaller size only when the full schedule won't fit
    assert panel.last_event.state == "finished"
    assert panel.last_event.epochs == panel.form["epochs"].value
    # by hand: the form's settings as they are
    panel.by_hand.setChecked(True)
    assert not panel.minutes.isEnabled()


def test_drafts_of_images_without_masks(make_napari_viewer, qtbot, partly: Path,
                                        tmp_path: Path) -> None:
    viewer, w = _dock(make_napari_viewer, partly, tmp_path, epochs=1)
    names = w.state.meta["names"]
    d1, d4 = names.index("chest_001"), names.index("chest_004")
    assert w.state.drafts == ["chest_001", "chest_004"]
    assert {n: w.state.status[n] for n in w.state.drafts} == {"chest_001": "draft",
                                                               "chest_004": "draft"}
    layers = w.state.mask_layers()
    assert not any(np.asarray(ly.data[d]).any() for ly in layers for d in (d1, d4))
    assert all(np.asarray(layers[0].data[i]).any() for i in range(6) if i not in (d1, d4))

    w.training_panel.train_button.click()
    qtbot.waitUntil(lambda: w.training_panel.runner.worker is None, timeout=120_000)
    assert sorted(w.state.scores) == sorted(set(names) - {"chest_001", "chest_004"})
    rows = {n: (q, s) for n, q, s in _table(w)}
    assert rows["chest_001"] == ("-", "draft") and rows["chest_004"] == ("-", "draft")
    assert [n for n, _, _ in _table(w)][-2:] == ["chest_001", "chest_004"]  # drafts last

    # the prediction offered as the draft's masks: one undoable edit, status "accepted"
    for k in range(len(layers)):  # a visible prediction, whatever 1 epoch learnt
        w.state.pred.layer(k)[d1, 4:12, 4:12] = 1
    viewer.dims.set_current_step(0, d1)
    w.review_panel.accept_prediction(None)
    assert w.state.status["chest_001"] == "accepted"
    for k, ly in enumerate(layers):
        assert np.array_equal(np.asarray(ly.data[d1]) > 0, w.state.pred.layer(k)[d1] > 0)
    layers[0].undo()
    assert not np.asarray(layers[0].data[d1]).any()
    layers[0].redo()

    # export: a draft nobody accepted or edited gets no mask file
    out = tmp_path / "out"
    w.export_panel.export(out)
    written = {p.stem for p in (out / "masks").rglob("*.png")}
    assert "chest_001" in written and "chest_004" not in written
    assert (out / "images" / "chest_004.png").is_file()
    assert "draft" in (out / "quality.csv").read_text()
    # painting into a draft makes it "edited" (then it is exported too)
    viewer.dims.set_current_step(0, d4)
    layers[1].data_setitem((np.full(3, d4), np.arange(3), np.arange(3)), np.ones(3, np.uint8))
    assert w.state.status["chest_004"] == "edited"
    # revert: a draft's original is "no masks", and it is a draft again
    w.review_panel.revert()
    assert w.state.status["chest_004"] == "draft"
    assert not any(np.asarray(ly.data[d4]).any() for ly in layers)


def test_unlearnt_classes_are_not_ranked(make_napari_viewer, qtbot, data: Path,
                                         tmp_path: Path) -> None:
    from qtpy.QtCore import Qt

    from napari_pal.jobs.events import TrainingProgress
    from napari_pal.jobs.train import train_job
    from napari_pal.method.config import TrainConfig
    from napari_pal.review.stack import open_folder

    run = tmp_path / "one-step"
    stop = threading.Event()
    for ev in train_job(open_folder(data)[1], None, TrainConfig(**SMALL, epochs=5), run, [],
                        stop):
        if isinstance(ev, TrainingProgress):
            stop.set()  # one step, then the checkpoint
    assert (run / "checkpoint.pt").is_file()

    viewer, w = _dock(make_napari_viewer, data, tmp_path)
    w.training_panel.score_checkpoint(run)
    qtbot.waitUntil(lambda: w.training_panel.runner.worker is None, timeout=60_000)
    verdicts = w.state.reliability
    bad = [c for c, v in verdicts.items() if not v.reliable]
    assert bad, verdicts  # one step has learnt nothing
    text = w.review_panel.reliability_label.text()
    for cls in bad:
        assert f"'{cls}' is not reliable" in text
    model, proxy = w.review_panel.model, w.review_panel.proxy
    headers = [model.headerData(c, Qt.Horizontal) for c in range(model.columnCount())]
    for cls in bad:
        col = headers.index(f"{cls} (unreliable)")
        assert {proxy.index(k, col).data() for k in range(proxy.rowCount())} == {"-"}
    if len(bad) == len(verdicts):
        assert "no class is reliable" in text and headers[1] == "quality (unreliable)"
        assert {q for _, q, _ in _table(w)} == {"-"}
        assert [n for n, _, _ in _table(w)] == sorted(w.state.meta["names"])  # not a ranking


def test_ties_are_shown_by_name_as_in_scores_csv(qtbot) -> None:
    """A part left out and a class left out both score 0: the table and Alt+N list such
    ties by name, the order of scores.csv, whatever order the scores came in."""
    from qtpy.QtCore import Qt

    from napari_pal._napari.table import QualityModel, QualityProxy
    from napari_pal.scoring.quality import ImageScore

    scores = [ImageScore(n, q, {"lungs": q}) for n, q in
              (("c", 0.5), ("b", 0.0), ("d", 0.0), ("a", 0.0))]
    model, proxy = QualityModel(), QualityProxy()
    model.set_scores(["lungs"], scores, {})
    proxy.setSourceModel(model)
    proxy.sort(1, Qt.AscendingOrder)
    assert [proxy.index(k, 0).data() for k in range(4)] == ["a", "b", "d", "c"]


def test_the_image_shown_says_why_its_quality_is_low(make_napari_viewer, data: Path,
                                                     tmp_path: Path) -> None:
    """Under the image's name: the worst class and the term that set its quality."""
    from napari_pal.scoring.quality import ImageScore

    viewer, w = _dock(make_napari_viewer, data, tmp_path)
    names, classes = w.state.meta["names"], w.state.classes
    fine = {c: "agrees with the model" for c in classes}
    scores = {n: ImageScore(n, 0.9, dict.fromkeys(classes, 0.9), why=fine) for n in names}
    missing = "1 part where the folder's masks have 2"
    scores[names[3]] = ImageScore(names[3], 0.0, {**dict.fromkeys(classes, 0.9),
                                                  classes[1]: 0.0},
                                  why={**fine, classes[1]: missing})
    w.state.update_ranking(scores, {}, None)
    w.review_panel.go_to(names[3])
    label = w.review_panel.current_label.text().splitlines()
    assert label[0].startswith(f"{names[3]} (4/8") and "quality 0.000" in label[0]
    assert label[1] == f"{classes[1]}: {missing}"
