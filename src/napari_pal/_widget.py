"""The dock widget "Pick-and-Learn quality review".

Data -> Training (in a napari thread worker, one progress event per step) -> quality
table -> review (jump, accept prediction, revert, mark reviewed) -> export. The widget
holds no method code: it drives the engine's ``Trainer``, ``TrainedModel`` and
``quality.analyse``; torch is imported only inside the worker.

Autosave: every edit of a mask layer the widget uses (painting, fill, accept prediction,
revert, undo/redo, a new ``layer.data``) marks its slice; ``autosave_ms`` after the last edit
the marked slices' masks (all classes, the image region, at the image's size) are written
with :class:`napari_pal.recovery.RecoveryStore` into the user's cache (never into the
dataset), and the review status with it. A slice edited back to its original masks is
forgotten instead. When the same dataset is opened again the autosaved corrections are
offered back (a notification and a "Restore N autosaved corrections" button in the Data box;
corrections whose files changed on disk since are listed as stale and restored only when
ticked). After a successful Export the recovery of the dataset is discarded: the exported
folder is the safe copy of the corrections.

Closing the viewer while a job runs stops it (training saves its checkpoint) and waits for
the worker, at most ``close_timeout_s``.
"""

from __future__ import annotations

import math
import os
import threading
import time
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import QEvent, QItemSelectionModel, QObject, Qt, QTimer
from qtpy.QtGui import QKeySequence
from qtpy.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QShortcut,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from ._plot import TrainingPlot
from ._stack import META_KEY, class_colour, region
from ._widget_table import REVIEWED, UNREVIEWED, QualityModel, QualityProxy
from .errors import PalError

if TYPE_CHECKING:
    import napari

PRED_SUFFIX = " prediction"
DISAGREEMENT = "disagreement"

#: Keyboard shortcuts of the review actions (active while the napari window has focus).
SHORTCUTS = {
    "next": "Alt+N",
    "reviewed": "Alt+R",
    "accept_all": "Alt+A",
    "revert": "Alt+Z",
    "accept_class": "Alt+{k}",  # Alt+1 .. Alt+9: accept the prediction for class k
}


def _notify_error(err: BaseException) -> None:
    from napari.utils.notifications import show_error

    msg = str(err) if isinstance(err, PalError) else f"{type(err).__name__}: {err}"
    show_error(msg)


def _notify_info(msg: str) -> None:
    from napari.utils.notifications import show_info

    show_info(msg)


def _notify_warning(msg: str) -> None:
    from napari.utils.notifications import show_warning

    show_warning(msg)


def _atom_slices(item) -> set[int]:
    """The slice indices (axis 0) an undo-history item of a Labels layer touches."""
    out: set[int] = set()
    for atom in item or ():
        key = getattr(atom, "slice_key", None)
        if key is not None:  # a masked paint atom: basic slices
            k0 = key[0]
            if isinstance(k0, slice):
                out.update(range(int(k0.start or 0), int(k0.stop or 0)))
            else:
                out.add(int(k0))
        elif isinstance(atom, tuple) and atom:  # data_setitem: (indices, old, new)
            idx = atom[0]
            if isinstance(idx, tuple) and len(idx):
                out.update(int(v) for v in np.unique(np.asarray(idx[0])))
    return out


class _CloseWatcher(QObject):
    """Calls ``callback`` when the watched window gets its Close event (before it closes)."""

    def __init__(self, callback, parent=None):
        super().__init__(parent)
        self.callback = callback

    def eventFilter(self, obj, event):  # noqa: N802
        if event.type() == QEvent.Close:
            try:
                self.callback()
            except Exception as err:  # noqa: BLE001 - never break closing the window
                print(f"napari-pal: while closing: {type(err).__name__}: {err}")
        return False


def _fmt_time(s: float) -> str:
    if not math.isfinite(s):
        return "--:--"
    s = int(round(s))
    if s >= 3600:
        return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
    return f"{s // 60}:{s % 60:02d}"


# --- worker jobs (run in a thread; import torch lazily) ---------------------------------
def _analyse_job(meta: dict, overrides, run_dir: Path, stop: threading.Event):
    from ._stack import dataset_from_meta
    from .inference import TrainedModel
    from .quality import analyse

    yield ("status", "scoring")
    model = TrainedModel.load(run_dir)
    ds = dataset_from_meta(meta)
    if list(model.classes) != list(meta["classes"]):
        raise PalError(f"the checkpoint in {run_dir} was trained on classes {model.classes}, "
                       f"these layers hold {meta['classes']}: open the matching folder")
    for i, a in enumerate(analyse(model, ds, maps=True, overrides=overrides)):
        yield ("analysis", i, a)
        if stop.is_set():
            yield ("status", "scoring stopped")
            return
    yield ("scored", str(run_dir))


def _lower_priority() -> None:
    """Optionally lower the worker thread's CPU priority (Linux: threads have their own nice
    value): NAPARI_PAL_WORKER_NICE=5 lets the GUI win a moderately shared CPU. Off by
    default: on a saturated CPU a niced thread holding the GIL is descheduled for long and
    the GUI thread waits for it (priority inversion; seen as a 386 ms stall here)."""
    nice = int(os.environ.get("NAPARI_PAL_WORKER_NICE", "0") or 0)
    if nice and hasattr(os, "setpriority") and hasattr(threading, "get_native_id"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
        except OSError:
            pass


def _train_job(meta: dict, overrides, config, run_dir: Path, trusted: list[str],
               stop: threading.Event):
    _lower_priority()
    import torch

    torch.set_num_threads(max(1, config.threads))
    from ._stack import dataset_from_meta
    from .training import Trainer
    from .trainset import load_training_set

    yield ("status", "reading images")
    ds = dataset_from_meta(meta)
    data = load_training_set(ds, config.size, overrides=overrides)
    if stop.is_set():
        yield ("status", "stopped before training started")
        return
    trainer = Trainer(data, config, run_dir, trusted=trusted)
    ev = None
    for ev in trainer.run():
        yield ("progress", ev)
        if stop.is_set():
            trainer.stop()  # it stops before the next step and saves the checkpoint
    if ev is not None and ev.state == "finished" and not stop.is_set():
        yield from _analyse_job(meta, overrides, run_dir, stop)


def _job_with_done(job, done: threading.Event, *args):
    """Run generator ``job`` and set ``done`` when it ends, however it ends."""
    try:
        yield from job(*args)
    finally:
        done.set()


class PalWidget(QWidget):
    """Pick-and-Learn quality review."""

    def __init__(self, napari_viewer: napari.Viewer, parent: QWidget | None = None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.meta: dict[str, Any] | None = None
        self.image_layer = None
        self.scores: dict[str, Any] = {}
        self.status: dict[str, str] = {}
        self.worker = None
        self.last_event = None
        self.last_run: Path | None = None
        self.runs_dir: Path | None = None  # None: a per-dataset folder in the user cache
        #: where autosaves go (None: $NAPARI_PAL_RECOVERY, else the user cache)
        self.recovery_base: Path | None = None
        self.autosave_ms = 1500
        self.close_timeout_s = 30.0
        self._stop = threading.Event()
        self._job_done: threading.Event | None = None
        self._closed = False
        self._store = None
        self._dirty: set[int] = set()
        self._status_dirty = False
        self._autosave_error = ""
        self._offer: list[tuple[str, bool]] = []  # (name, stale) of autosaved corrections
        self._offer_status: dict[str, str] = {}
        self._watched: dict[int, Any] = {}
        self._hist: dict[int, tuple[int, int]] = {}
        self._autosave_timer = QTimer(self)
        self._autosave_timer.setSingleShot(True)
        self._autosave_timer.timeout.connect(self._autosave_tick)
        self._pred: np.ndarray | None = None
        self._dis: np.ndarray | None = None
        self._dataset = None
        self._user_masks: dict[int, Any] = {}
        self._build()
        self.viewer.layers.events.inserted.connect(self._refresh_layers)
        self.viewer.layers.events.removed.connect(self._refresh_layers)
        self.viewer.dims.events.current_step.connect(self._on_step)
        self._close_watcher = _CloseWatcher(self.shutdown, self)
        self._watched_window = None
        self._watch_retries = 3
        self._install_close_watcher()
        from qtpy.QtWidgets import QApplication

        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)
        self._refresh_layers()

    # --- layout -------------------------------------------------------------------------
    def _build(self) -> None:
        lay = QVBoxLayout(self)
        # Data
        box = QGroupBox("Data")
        form = QFormLayout(box)
        row = QHBoxLayout()
        self.folder_edit = QLineEdit()
        self.folder_edit.setPlaceholderText("dataset folder (images/ + masks/)")
        self.folder_edit.returnPressed.connect(lambda: self.open_folder(self.folder_edit.text()))
        browse = QPushButton("Open…")
        browse.clicked.connect(self._browse_folder)
        row.addWidget(self.folder_edit)
        row.addWidget(browse)
        form.addRow("folder", row)
        self.image_combo = QComboBox()
        self.image_combo.currentIndexChanged.connect(self._on_image_layer)
        form.addRow("images", self.image_combo)
        self.classes_label = QLabel("-")
        form.addRow("classes", self.classes_label)
        self.mask_box = QWidget()
        self.mask_form = QFormLayout(self.mask_box)
        self.mask_form.setContentsMargins(0, 0, 0, 0)
        self.mask_combos: list[QComboBox] = []
        form.addRow(self.mask_box)
        self.recovery_box = QWidget()
        rv = QVBoxLayout(self.recovery_box)
        rv.setContentsMargins(0, 0, 0, 0)
        self.recovery_label = QLabel("")
        self.recovery_label.setWordWrap(True)
        self.recovery_stale_check = QCheckBox("also restore the stale ones")
        rrow = QHBoxLayout()
        self.recovery_button = QPushButton("Restore autosaved corrections")
        self.recovery_button.clicked.connect(lambda: self.restore_autosave())
        self.recovery_discard_button = QPushButton("Discard")
        self.recovery_discard_button.setToolTip("forget the autosaved corrections of this "
                                                "dataset (the dataset itself is not touched)")
        self.recovery_discard_button.clicked.connect(self.discard_autosave)
        rrow.addWidget(self.recovery_button)
        rrow.addWidget(self.recovery_discard_button)
        rv.addWidget(self.recovery_label)
        rv.addWidget(self.recovery_stale_check)
        rv.addLayout(rrow)
        self.recovery_box.setVisible(False)
        form.addRow(self.recovery_box)
        lay.addWidget(box)

        # Training
        from magicgui.widgets import ComboBox, Container, FloatSpinBox, SpinBox

        from .config import STRATEGIES, TrainConfig

        d = TrainConfig()
        self.settings = Container(widgets=[
            ComboBox(name="strategy", choices=STRATEGIES, value=d.strategy),
            SpinBox(name="epochs", value=d.epochs, min=1, max=10000),
            SpinBox(name="size", value=d.size, min=32, max=1024, step=16),
            SpinBox(name="batch_size", label="batch size", value=d.batch_size, min=2, max=256),
            FloatSpinBox(name="lr", value=d.lr, min=1e-6, max=1.0, step=1e-4),
            FloatSpinBox(name="lam", label="λ", value=d.lam, min=0.1, max=10.0, step=0.5),
            SpinBox(name="threads", value=max(1, (os.cpu_count() or 2) - 1), min=1, max=256,
                    tooltip="CPU threads for training; one core is left to the viewer"),
        ], labels=True)
        self.settings["lr"].native.setDecimals(6)
        tbox = QGroupBox("Training")
        tl = QVBoxLayout(tbox)
        tl.addWidget(self.settings.native)
        buttons = QHBoxLayout()
        self.train_button = QPushButton("Train")
        self.train_button.clicked.connect(self._train_clicked)
        self.retrain_button = QPushButton("Retrain (reviewed = trusted)")
        self.retrain_button.setToolTip("train again; reviewed masks are never down-weighted")
        self.retrain_button.clicked.connect(lambda: self.start_training(trusted_reviewed=True))
        buttons.addWidget(self.train_button)
        buttons.addWidget(self.retrain_button)
        tl.addLayout(buttons)
        self.score_button = QPushButton("Score from checkpoint…")
        self.score_button.clicked.connect(self._score_clicked)
        tl.addWidget(self.score_button)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress_label = QLabel("idle")
        tl.addWidget(self.progress)
        tl.addWidget(self.progress_label)
        self.plot = TrainingPlot()
        tl.addWidget(self.plot)
        lay.addWidget(tbox)

        # Review
        rbox = QGroupBox("Review (worst first)")
        rl = QVBoxLayout(rbox)
        self.current_label = QLabel("")
        rl.addWidget(self.current_label)
        self.model = QualityModel(self)
        self.proxy = QualityProxy(self)
        self.proxy.setSourceModel(self.model)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(1, Qt.AscendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.table.setMinimumHeight(160)
        self.table.selectionModel().selectionChanged.connect(self._on_row_selected)
        rl.addWidget(self.table)
        r1 = QHBoxLayout()
        self.next_button = QPushButton(f"Next worst ({SHORTCUTS['next']})")
        self.next_button.clicked.connect(self.next_worst)
        self.reviewed_button = QPushButton(f"Mark reviewed ({SHORTCUTS['reviewed']})")
        self.reviewed_button.clicked.connect(self.mark_reviewed)
        r1.addWidget(self.next_button)
        r1.addWidget(self.reviewed_button)
        rl.addLayout(r1)
        r2 = QHBoxLayout()
        self.accept_class_combo = QComboBox()
        self.accept_button = QPushButton("Accept prediction")
        self.accept_button.setToolTip("for the class chosen beside (Alt+1..9: class 1..9)")
        self.accept_button.clicked.connect(
            lambda: self.accept_prediction(self.accept_class_combo.currentIndex()))
        self.accept_all_button = QPushButton(f"all classes ({SHORTCUTS['accept_all']})")
        self.accept_all_button.clicked.connect(lambda: self.accept_prediction(None))
        r2.addWidget(self.accept_button)
        r2.addWidget(self.accept_class_combo)
        r2.addWidget(self.accept_all_button)
        rl.addLayout(r2)
        self.revert_button = QPushButton(f"Revert to original mask ({SHORTCUTS['revert']})")
        self.revert_button.clicked.connect(self.revert)
        rl.addWidget(self.revert_button)
        lay.addWidget(rbox)

        # Export
        ebox = QGroupBox("Export")
        el = QVBoxLayout(ebox)
        self.overwrite_check = QCheckBox("overwrite the original masks (a backup is kept)")
        self.export_button = QPushButton("Export corrected masks + quality.csv…")
        self.export_button.clicked.connect(self._export_clicked)
        el.addWidget(self.overwrite_check)
        el.addWidget(self.export_button)
        lay.addWidget(ebox)
        lay.addStretch(1)

        self._shortcuts = []
        for key, slot in ((SHORTCUTS["next"], self.next_worst),
                          (SHORTCUTS["reviewed"], self.mark_reviewed),
                          (SHORTCUTS["accept_all"], lambda: self.accept_prediction(None)),
                          (SHORTCUTS["revert"], self.revert)):
            self._add_shortcut(key, slot)
        for k in range(9):
            self._add_shortcut(SHORTCUTS["accept_class"].format(k=k + 1),
                               lambda k=k: self.accept_prediction(k))

    # --- the viewer window closing -----------------------------------------------------
    def _install_close_watcher(self) -> None:
        """Watch the main window this widget is docked in for its Close event (the dock is
        put into the window after the widget is put into the dock: retried shortly)."""
        from qtpy.QtWidgets import QMainWindow

        w = self.parentWidget()
        while w is not None and not isinstance(w, QMainWindow):
            w = w.parentWidget()
        if w is None:
            if self._watch_retries > 0:
                self._watch_retries -= 1
                QTimer.singleShot(0, self._install_close_watcher)
            return
        old = self._watched_window() if self._watched_window is not None else None
        if w is not old:
            if old is not None:
                old.removeEventFilter(self._close_watcher)
            w.installEventFilter(self._close_watcher)
            self._watched_window = weakref.ref(w)  # never keep the viewer's window alive

    def event(self, ev) -> bool:
        if ev.type() in (QEvent.ParentChange, QEvent.Show) \
                and getattr(self, "_close_watcher", None) is not None:
            self._watch_retries = 3
            self._install_close_watcher()
        return super().event(ev)

    def _add_shortcut(self, key: str, slot) -> None:
        sc = QShortcut(QKeySequence(key), self)
        sc.setContext(Qt.WindowShortcut)
        sc.activated.connect(slot)
        self._shortcuts.append(sc)

    # --- data ---------------------------------------------------------------------------
    def _browse_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Dataset folder (images/ + masks/)")
        if path:
            self.open_folder(path)

    def open_folder(self, path: str | Path) -> None:
        """Open a dataset folder as layers (the same layers the reader makes)."""
        from ._reader import layer_data_for

        try:
            tuples = layer_data_for(Path(path).expanduser())
        except PalError as err:
            _notify_error(err)
            return
        for data, kwargs, kind in tuples:
            if kind == "image":
                self.viewer.add_image(data, multiscale=False, **kwargs)
            else:
                self.viewer.add_labels(data, **kwargs)
        self._refresh_layers()
        for k in range(self.image_combo.count()):
            layer = self.image_combo.itemData(k)
            if layer.data is tuples[0][0]:
                self.image_combo.setCurrentIndex(k)

    def _pal_layers(self, role: str) -> list:
        return [ly for ly in self.viewer.layers
                if (ly.metadata or {}).get(META_KEY, {}).get("role") == role]

    def _refresh_layers(self, event=None) -> None:
        if self._closed:
            return
        self._watch_labels()
        current = self.image_combo.currentData()
        images = self._pal_layers("image")
        self.image_combo.blockSignals(True)
        self.image_combo.clear()
        for ly in images:
            self.image_combo.addItem(ly.name, ly)
        if current in images:
            self.image_combo.setCurrentIndex(images.index(current))
        self.image_combo.blockSignals(False)
        if self.image_combo.currentData() is not self.image_layer:
            self._on_image_layer()
        else:
            self._fill_mask_combos()

    def _on_image_layer(self, *args) -> None:
        layer = self.image_combo.currentData()
        if layer is not self.image_layer:
            self._flush_autosave()  # what is marked belongs to the dataset shown so far
            self._dirty.clear()
            self.image_layer = layer
            self.meta = None if layer is None else dict(layer.metadata[META_KEY])
            self._dataset = None
            self.scores, self._pred, self._dis = {}, None, None
            self.status = {} if self.meta is None else {n: UNREVIEWED
                                                       for n in self.meta["names"]}
            self.model.set_scores([], [], self.status)
            if self.meta is not None:
                self.folder_edit.setText(self.meta["root"])
            self._open_recovery()
        classes = [] if self.meta is None else self.meta["classes"]
        self.classes_label.setText(", ".join(classes) or "-")
        self.accept_class_combo.clear()
        self.accept_class_combo.addItems(classes)
        self._fill_mask_combos(rebuild=True)
        self._on_step()

    def _fill_mask_combos(self, rebuild: bool = False) -> None:
        classes = [] if self.meta is None else self.meta["classes"]
        if rebuild or len(self.mask_combos) != len(classes):
            while self.mask_form.rowCount():
                self.mask_form.removeRow(0)
            self.mask_combos = []
            self._user_masks = {}
            for k, cls in enumerate(classes):
                combo = QComboBox()
                combo.activated.connect(
                    lambda _i, k=k, c=combo: self._user_masks.__setitem__(k, c.currentData()))
                self.mask_form.addRow(f"{cls} mask", combo)
                self.mask_combos.append(combo)
        if self.meta is None:
            return
        from napari.layers import Labels

        shape = tuple(self.image_layer.data.shape)
        labels = [ly for ly in self.viewer.layers
                  if isinstance(ly, Labels) and tuple(ly.data.shape) == shape
                  and (ly.metadata or {}).get(META_KEY, {}).get("role") != "prediction"]
        for k, combo in enumerate(self.mask_combos):
            chosen = self._user_masks.get(k)  # a layer the user picked in this combo
            combo.blockSignals(True)
            combo.clear()
            for ly in labels:
                combo.addItem(ly.name, ly)
            pick = chosen if chosen in labels else None
            if pick is None:
                for ly in labels:
                    m = (ly.metadata or {}).get(META_KEY, {})
                    if (m.get("role") == "mask" and m.get("class_index") == k
                            and m.get("root") == self.meta["root"]):
                        pick = ly
                        break
            combo.setCurrentIndex(labels.index(pick) if pick is not None else -1)
            combo.blockSignals(False)

    def mask_layers(self) -> list:
        layers = [c.currentData() for c in self.mask_combos]
        if self.meta is None or any(ly is None for ly in layers):
            raise PalError("choose the Labels layer that holds each class's masks (Data box), "
                           "or open a dataset folder first")
        return layers

    def _layer_masks(self):
        from ._stack import LayerMasks

        return LayerMasks(self.meta, [ly.data for ly in self.mask_layers()])

    def dataset(self):
        if self._dataset is None:
            from ._stack import dataset_from_meta

            self._dataset = dataset_from_meta(self.meta)
        return self._dataset

    # --- training -----------------------------------------------------------------------
    def config(self):
        from .config import TrainConfig

        v = {w.name: w.value for w in self.settings}
        return TrainConfig(strategy=v["strategy"], epochs=int(v["epochs"]), size=int(v["size"]),
                           batch_size=int(v["batch_size"]), lr=float(v["lr"]),
                           lam=float(v["lam"]), threads=int(v["threads"]))

    def run_folder(self) -> Path:
        from ._stack import default_runs_dir

        base = Path(self.runs_dir) if self.runs_dir else default_runs_dir(self.meta["root"])
        return base / time.strftime("%Y%m%d-%H%M%S")

    def _train_clicked(self) -> None:
        if self.worker is not None:
            self.stop_training()
        else:
            self.start_training()

    @property
    def busy(self) -> bool:
        return self.worker is not None

    def start_training(self, trusted_reviewed: bool = False) -> None:
        if self.worker is not None:
            return
        try:
            self.mask_layers()
            config = self.config()
            run_dir = self.run_folder()
            from ._stack import same_folder

            root = Path(self.meta["root"]).resolve()
            if same_folder(run_dir, root) or root in run_dir.resolve().parents:
                raise PalError(f"the run folder {run_dir} lies inside the input folder; "
                               "choose another runs folder")
        except PalError as err:
            _notify_error(err)
            return
        trusted = [n for n, s in self.status.items() if s == REVIEWED] if trusted_reviewed else []
        self.last_run = run_dir
        self.plot.clear()
        self.progress.setRange(0, 0)
        self.progress_label.setText("starting…")
        self._start(_train_job, self.meta, self._layer_masks(), config, run_dir, trusted)

    def stop_training(self) -> None:
        """Ask the running job to stop (training saves a checkpoint first)."""
        if self.worker is None or self._stop.is_set():
            return
        self._stop.set()
        self.train_button.setText("Stopping…")
        self.train_button.setEnabled(False)  # enabled again when the worker has finished
        self.progress_label.setText(self.progress_label.text() + " · stopping…")

    def score_checkpoint(self, run_dir: str | Path) -> None:
        """Predict and score every image with a saved run (no training)."""
        if self.worker is not None:
            return
        try:
            self.mask_layers()
        except PalError as err:
            _notify_error(err)
            return
        self.last_run = Path(run_dir)
        self.progress.setRange(0, 0)
        self._start(_analyse_job, self.meta, self._layer_masks(), Path(run_dir))

    def _score_clicked(self) -> None:
        if self.meta is None:
            _notify_error(PalError("open a dataset folder first"))
            return
        from ._stack import default_runs_dir

        start = self.last_run or (Path(self.runs_dir) if self.runs_dir
                                  else default_runs_dir(self.meta["root"]))
        path = QFileDialog.getExistingDirectory(self, "Run folder (holds checkpoint.pt)",
                                                str(start))
        if path:
            self.score_checkpoint(path)

    def _start(self, job, *args) -> None:
        from napari.qt.threading import create_worker

        self._stop = threading.Event()  # one per job: a late Stop never reaches the next job
        self._job_done = threading.Event()
        # errors go to _on_error only: not re-raised in the GUI thread (create_worker's
        # default without an "errored" connection) nor shown twice by napari's relay
        worker = create_worker(_job_with_done, job, self._job_done, *args, self._stop,
                               _start_thread=False,
                               _connect={"yielded": self._on_yield, "errored": self._on_error,
                                         "finished": self._on_finished})
        relay = getattr(worker, "_relay_error", None)
        if relay is not None:
            try:
                worker.errored.disconnect(relay)
            except (TypeError, RuntimeError):
                pass
        self.worker = worker
        for b in (self.retrain_button, self.score_button):
            b.setEnabled(False)
        self.train_button.setText("Stop")
        self.train_button.setEnabled(True)
        worker.start()

    def _on_yield(self, msg) -> None:
        if self._closed:
            return
        kind = msg[0]
        if kind == "progress":
            self._on_progress(msg[1])
        elif kind == "analysis":
            self._on_analysis(msg[1], msg[2])
        elif kind == "scored":
            self._show_results()
            self.progress_label.setText(f"scored {len(self.scores)} images with {msg[1]}")
        elif kind == "status":
            self.progress_label.setText(msg[1])

    def _on_progress(self, ev) -> None:
        self.last_event = ev
        if self.progress.maximum() != ev.steps:
            self.progress.setRange(0, ev.steps)
        self.progress.setValue(ev.step)
        if ev.state == "running":
            w = f" · weights {min(ev.weights):.2f}–{max(ev.weights):.2f}" if ev.weighting else ""
            self.progress_label.setText(
                f"epoch {ev.epoch}/{ev.epochs} · step {ev.step}/{ev.steps} · loss {ev.loss:.4f}"
                f"{w} · {_fmt_time(ev.eta_s)} left")
            self.plot.add(ev.step, ev.steps, ev.loss, ev.weights)
        elif ev.state == "stopped":
            self.progress_label.setText(
                f"stopped at epoch {ev.epoch}, step {ev.step}/{ev.steps}; checkpoint saved: "
                "'Score from checkpoint' reviews with it")
        else:
            self.progress_label.setText(f"trained {ev.epochs} epochs in "
                                        f"{_fmt_time(ev.elapsed_s)}; scoring…")

    def _on_analysis(self, i: int, a) -> None:
        meta = self.meta
        c = len(meta["classes"])
        shape = tuple(self.image_layer.data.shape)
        if self._pred is None or self._pred.shape[1:] != shape:
            self._pred = np.zeros((c, *shape), np.uint8)
            self._dis = np.zeros(shape, np.float32)
        if self.progress.maximum() != len(meta["names"]):
            self.progress.setRange(0, len(meta["names"]))
        rows, cols = region(meta, i)
        self._pred[:, i, rows, cols] = a.probs > 0.5
        self._dis[i, rows, cols] = a.disagreement
        self.scores[a.score.name] = a.score
        self.progress.setValue(i + 1)
        self.progress_label.setText(f"scoring {i + 1}/{len(meta['names'])}")

    def _on_error(self, err: BaseException) -> None:
        if self._closed:
            return
        _notify_error(err)
        self.progress_label.setText(f"error: {str(err).splitlines()[0][:120]}")

    def _on_finished(self) -> None:
        if self._closed:
            return
        self.worker = None
        self.train_button.setText("Train")
        self.train_button.setEnabled(True)
        for b in (self.retrain_button, self.score_button):
            b.setEnabled(True)
        if self.progress.maximum() == 0:
            self.progress.setRange(0, 1)

    # --- results ------------------------------------------------------------------------
    def _show_results(self) -> None:
        meta = self.meta
        for k, cls in enumerate(meta["classes"]):
            name = f"{cls}{PRED_SUFFIX}"
            md = {META_KEY: {**meta, "role": "prediction", "class_index": k}}
            if name in self.viewer.layers:
                layer = self.viewer.layers[name]
                layer.data = self._pred[k]
            else:
                layer = self.viewer.add_labels(
                    self._pred[k], name=name, opacity=0.9, metadata=md,
                    colormap={1: class_colour(k), None: "transparent"})
            layer.contour = 1
        if DISAGREEMENT in self.viewer.layers:
            self.viewer.layers[DISAGREEMENT].data = self._dis
        else:
            self.viewer.add_image(self._dis, name=DISAGREEMENT, colormap="inferno",
                                  blending="additive", opacity=0.6, contrast_limits=(0.0, 1.0),
                                  metadata={META_KEY: {**meta, "role": "disagreement"}})
        order = sorted(self.scores.values(), key=lambda s: s.quality)
        self.model.set_scores(meta["classes"], order, self.status)
        self.table.sortByColumn(1, Qt.AscendingOrder)
        self.proxy.sort(1, Qt.AscendingOrder)

    def prediction_layer(self, k: int):
        name = f"{self.meta['classes'][k]}{PRED_SUFFIX}"
        return self.viewer.layers[name] if name in self.viewer.layers else None

    # --- review -------------------------------------------------------------------------
    @property
    def slice_axis(self) -> int:
        return max(0, self.viewer.dims.ndim - 3)

    def current_index(self) -> int:
        return int(self.viewer.dims.current_step[self.slice_axis])

    def current_name(self) -> str | None:
        if self.meta is None:
            return None
        i = self.current_index()
        return self.meta["names"][i] if 0 <= i < len(self.meta["names"]) else None

    def _on_step(self, event=None) -> None:
        name = self.current_name()
        if name is None:
            self.current_label.setText("")
            return
        s = self.scores.get(name)
        q = f" · quality {s.quality:.3f}" if s else ""
        h, w = self.meta["shapes"][self.current_index()]
        self.current_label.setText(f"{name} ({self.current_index() + 1}/"
                                   f"{len(self.meta['names'])}, {w}×{h} px){q} · "
                                   f"{self.status.get(name, UNREVIEWED)}")

    def _on_row_selected(self, *args) -> None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return
        name = self.model.name_at(self.proxy.mapToSource(rows[0]).row())
        self.go_to(name)

    def go_to(self, name: str) -> None:
        """Show image ``name`` and select its worst class's mask layer for painting."""
        i = self.meta["names"].index(name)
        self.viewer.dims.set_current_step(self.slice_axis, i)
        s = self.scores.get(name)
        k = 0
        if s is not None:
            k = min(range(len(self.meta["classes"])),
                    key=lambda j: s.per_class[self.meta["classes"][j]])
        try:
            layer = self.mask_layers()[k]
        except PalError:
            return
        for ly in self.mask_layers():
            ly.visible = True
        self.viewer.layers.selection.active = layer
        layer.selected_label = 1
        layer.mode = "paint"
        self.accept_class_combo.setCurrentIndex(k)
        self._on_step()

    def select_row(self, name: str) -> None:
        row = self.model.row_of(name)
        if row < 0:
            self.go_to(name)
            return
        idx = self.proxy.mapFromSource(self.model.index(row, 0))
        self.table.selectionModel().select(
            idx, QItemSelectionModel.ClearAndSelect | QItemSelectionModel.Rows)
        self.table.scrollTo(idx)

    def next_worst(self) -> None:
        """Go to the worst-scored unreviewed image other than the one shown."""
        if not self.scores:
            _notify_info("no quality scores yet: train, or score from a checkpoint")
            return
        current = self.current_name()
        order = sorted((s for s in self.scores.values()
                        if self.status.get(s.name) != REVIEWED), key=lambda s: s.quality)
        pick = next((s.name for s in order if s.name != current), None)
        if pick is None:
            _notify_info("every scored image is reviewed")
            return
        self.select_row(pick)

    def mark_reviewed(self) -> None:
        name = self.current_name()
        if name is None:
            return
        self.status[name] = REVIEWED
        self.model.status_changed(name)
        self._on_step()
        self._status_dirty = True
        self._schedule_autosave()

    def _set_mask(self, layer, i: int, new: np.ndarray) -> None:
        """Put bool ``new`` into slice i's image region, as one undoable edit."""
        rows, cols = region(self.meta, i)
        cur = np.asarray(layer.data[i, rows, cols]) > 0
        yy, xx = np.nonzero(cur != new)
        if len(yy) == 0:
            return
        idx = (np.full_like(yy, i), yy + rows.start, xx + cols.start)
        layer.data_setitem(idx, new[yy, xx].astype(layer.data.dtype))

    def accept_prediction(self, k: int | None = None) -> None:
        """Replace the mask of the shown image by the prediction (class k, or all)."""
        if self.meta is None or self._pred is None:
            _notify_info("no predictions yet: train, or score from a checkpoint")
            return
        try:
            layers = self.mask_layers()
        except PalError as err:
            _notify_error(err)
            return
        i = self.current_index()
        rows, cols = region(self.meta, i)
        for j in range(len(layers)) if k is None else [k]:
            if 0 <= j < len(layers):
                self._set_mask(layers[j], i, self._pred[j, i, rows, cols] > 0)

    def revert(self) -> None:
        """Put the shown image's masks back as they are in the input folder."""
        if self.meta is None:
            return
        try:
            layers = self.mask_layers()
            original = self.dataset().read_masks(self.current_index())
        except PalError as err:
            _notify_error(err)
            return
        for j, layer in enumerate(layers):
            self._set_mask(layer, self.current_index(), original[j])

    # --- export -------------------------------------------------------------------------
    def _export_clicked(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Export corrected masks to")
        if path:
            self.export(path)

    def export(self, folder: str | Path) -> Path | None:
        """Write every mask (layout and sizes of the input) and quality.csv to ``folder``."""
        from ._stack import export_masks, write_quality_csv

        try:
            masks = self._layer_masks()
            written = export_masks(folder, self.meta, masks,
                                   overwrite_originals=self.overwrite_check.isChecked())
            csv_path = write_quality_csv(Path(folder) / "quality.csv", self.meta["names"],
                                         self.meta["classes"], self.scores, self.status)
        except (PalError, OSError) as err:
            _notify_error(err)
            return None
        self._discard_recovery_after_export()
        backup = [p for p in written if p.name.startswith("masks.backup-")]
        extra = f"; originals backed up in {backup[0]}" if backup else ""
        _notify_info(f"exported {len(self.meta['names'])} images' masks and {csv_path.name} "
                     f"to {folder}{extra}")
        return csv_path

    # --- autosave and recovery ----------------------------------------------------------
    def _watch_labels(self) -> None:
        """Listen to the edits of every Labels layer (those not in use are ignored)."""
        from napari.layers import Labels

        present = {id(ly): ly for ly in self.viewer.layers if isinstance(ly, Labels)}
        for key, ly in list(self._watched.items()):
            if key not in present:
                self._unwatch(ly)
        for key, ly in present.items():
            if key not in self._watched:
                for ev in (ly.events.paint, ly.events.data, ly.events.set_data):
                    ev.connect(self._on_labels_event)
                self._watched[key] = ly
                self._hist[key] = self._history_lengths(ly)

    def _unwatch(self, ly) -> None:
        for ev in (ly.events.paint, ly.events.data, ly.events.set_data):
            try:
                ev.disconnect(self._on_labels_event)
            except (TypeError, ValueError, RuntimeError):
                pass
        self._watched.pop(id(ly), None)
        self._hist.pop(id(ly), None)

    @staticmethod
    def _history_lengths(ly) -> tuple[int, int]:
        return (len(getattr(ly, "_undo_history", ())), len(getattr(ly, "_redo_history", ())))

    def _on_labels_event(self, event) -> None:
        layer = event.source
        if self._closed or self.meta is None or self._store is None:
            return
        if not any(c.currentData() is layer for c in self.mask_combos):
            return
        n = len(self.meta["names"])
        key = id(layer)
        lengths = self._history_lengths(layer)
        before = self._hist.get(key, lengths)
        self._hist[key] = lengths
        if event.type == "paint":
            touched = _atom_slices(getattr(event, "value", None)) or {self.current_index()}
        elif event.type == "data":
            touched = set(range(n))  # a new array: look at every slice
        else:  # set_data: a redraw; an undo or redo moves an item between the histories
            if lengths == before:
                return
            if lengths[0] < before[0] and layer._redo_history:
                item = layer._redo_history[-1]
            elif lengths[1] < before[1] and layer._undo_history:
                item = layer._undo_history[-1]
            else:
                return
            touched = _atom_slices(item) or {self.current_index()}
        self._dirty.update(i for i in touched if 0 <= i < n)
        self._schedule_autosave()

    def _schedule_autosave(self) -> None:
        if not self._closed and self._store is not None:
            self._autosave_timer.start(max(0, int(self.autosave_ms)))

    def _autosave_tick(self) -> None:
        self._flush_autosave(limit=8)  # a few slices per tick keeps the GUI thread free
        if self._dirty:
            self._autosave_timer.start(0)

    def _flush_autosave(self, limit: int | None = None) -> None:
        """Write the marked slices' masks (and the review status) to the recovery store."""
        store, meta = self._store, self.meta
        if store is None or meta is None or not (self._dirty or self._status_dirty):
            return
        try:
            layers = self.mask_layers()
        except PalError:
            return
        from ._stack import LayerMasks

        masks = LayerMasks(meta, [ly.data for ly in layers])
        todo = sorted(self._dirty)
        if limit is not None:
            todo = todo[:limit]
        try:
            for i in todo:
                self._dirty.discard(i)
                name = meta["names"][i]
                m = masks.masks(i)
                try:
                    orig = self.dataset().read_masks(i)
                    same = orig.shape == m.shape and bool(np.array_equal(orig, m))
                except Exception:  # noqa: BLE001 - an unreadable original: keep the edit
                    same = False
                if same:
                    store.discard(name)
                else:
                    store.save(name, m)
            if self._status_dirty:
                self._status_dirty = False
                store.save_status(self.status)
        except (PalError, OSError) as err:
            msg = f"autosave failed: {err}"
            if msg != self._autosave_error:  # tell once, not at every edit
                self._autosave_error = msg
                _notify_warning(msg)

    def flush_autosave(self) -> None:
        """Autosave now whatever is waiting for the debounce timer."""
        self._autosave_timer.stop()
        self._flush_autosave()

    def _open_recovery(self) -> None:
        """Make the store of the dataset shown, and offer its autosaved corrections back."""
        from .recovery import RecoveryStore

        self._store, self._offer, self._offer_status = None, [], {}
        self._dirty.clear()
        self._status_dirty = False
        self.recovery_box.setVisible(False)
        if self.meta is None:
            return
        try:
            self._store = RecoveryStore(self.meta["root"], self.meta["classes"],
                                        base=self.recovery_base)
            names = set(self.meta["names"])
            self._offer = [(n, self._store.is_stale(n)) for n in self._store.pending()
                           if n in names]
            status = self._store.load_status()
        except (PalError, OSError) as err:
            if self._store is None:
                _notify_warning(f"corrections will not be autosaved: {err}")
                return
            _notify_warning(str(err))
            status = {}
        self._offer_status = {n: s for n, s in status.items()
                              if n in self.meta["names"] and s != UNREVIEWED}
        self._show_offer()

    def _show_offer(self, notify: bool = True) -> None:
        fresh = [n for n, stale in self._offer if not stale]
        stale = [n for n, s in self._offer if s]
        if not (self._offer or self._offer_status):
            self.recovery_box.setVisible(False)
            return
        parts = []
        if fresh:
            parts.append(f"{len(fresh)} image(s) with autosaved corrections")
        if stale:
            parts.append(f"{len(stale)} stale (their files changed on disk since): "
                         + ", ".join(stale[:5]) + (" …" if len(stale) > 5 else ""))
        if self._offer_status:
            parts.append(f"review status of {len(self._offer_status)} image(s)")
        text = "Autosaved: " + "; ".join(parts) + "."
        self.recovery_label.setText(text)
        self.recovery_stale_check.setVisible(bool(stale))
        self.recovery_stale_check.setChecked(False)
        n = len(fresh) or len(stale)
        self.recovery_button.setText(f"Restore {n} autosaved correction{'s' * (n != 1)}"
                                     if self._offer else "Restore review status")
        self.recovery_box.setVisible(True)
        if notify:
            _notify_info(f"{text} Restore them in the Pick-and-Learn widget's Data box.")

    def pending_autosave(self) -> list[tuple[str, bool]]:
        """(name, stale) of the autosaved corrections on offer for the dataset shown."""
        return list(self._offer)

    def restore_autosave(self, include_stale: bool | None = None) -> list[str]:
        """Write the autosaved corrections into the mask layers (one undoable edit per
        class and image) and the autosaved review status into the table; returns the names
        restored. Stale ones only with ``include_stale`` (default: the box's tick)."""
        if self._store is None or self.meta is None:
            return []
        if include_stale is None:
            include_stale = self.recovery_stale_check.isChecked()
        try:
            layers = self.mask_layers()
        except PalError as err:
            _notify_error(err)
            return []
        restored, skipped = [], []
        for name, stale in self._offer:
            if stale and not include_stale:
                continue
            i = self.meta["names"].index(name)
            try:
                m = self._store.load(name)
            except PalError as err:
                skipped.append(f"{name} ({err})")
                continue
            if tuple(m.shape[1:]) != tuple(self.meta["shapes"][i]):
                skipped.append(f"{name} (saved at {m.shape[2]}×{m.shape[1]} px, the image is "
                               f"now {self.meta['shapes'][i][1]}×{self.meta['shapes'][i][0]})")
                continue
            for k, layer in enumerate(layers):
                self._set_mask(layer, i, m[k])
            restored.append(name)
        for name, st in self._offer_status.items():
            self.status[name] = st
            self.model.status_changed(name)
        if self._offer_status:
            self._status_dirty = True
            self._schedule_autosave()
        self._offer = [(n, s) for n, s in self._offer if n not in restored]
        self._offer_status = {}
        self._show_offer(notify=False)
        self._on_step()
        msg = f"restored the autosaved corrections of {len(restored)} image(s)"
        if skipped:
            _notify_warning(msg + "; not restored: " + "; ".join(skipped))
        else:
            _notify_info(msg)
        return restored

    def discard_autosave(self) -> None:
        """Forget every autosaved correction of the dataset shown (the dataset is untouched)."""
        if self._store is not None:
            self._store.discard()
        self._offer, self._offer_status = [], {}
        self.recovery_box.setVisible(False)

    def _discard_recovery_after_export(self) -> None:
        """The export holds every correction: the autosave of this dataset is not needed."""
        self._autosave_timer.stop()
        self._dirty.clear()
        self._status_dirty = False
        try:
            self.discard_autosave()
        except OSError as err:
            _notify_warning(f"could not discard the autosave: {err}")

    # --- closing ------------------------------------------------------------------------
    def shutdown(self) -> bool:
        """The viewer is closing: autosave now, stop a running job and wait for its thread
        (training saves its checkpoint first), at most ``close_timeout_s``. True when no
        job is left running."""
        if self._closed:
            return True
        try:
            self.flush_autosave()
        except Exception as err:  # noqa: BLE001 - closing goes on
            print(f"napari-pal: autosave on close failed: {err}")
        worker, done = self.worker, self._job_done
        self._closed = True
        try:
            from qtpy.QtWidgets import QApplication

            QApplication.instance().aboutToQuit.disconnect(self.shutdown)
        except (TypeError, RuntimeError, AttributeError):
            pass
        self._autosave_timer.stop()
        for ly in list(self._watched.values()):
            self._unwatch(ly)
        if worker is None:
            return True
        self._stop.set()
        finished = done.wait(self.close_timeout_s) if done is not None else True
        for sig, slot in ((worker.yielded, self._on_yield), (worker.errored, self._on_error),
                          (worker.finished, self._on_finished)):
            try:
                sig.disconnect(slot)
            except (TypeError, RuntimeError):
                pass
        deadline = time.monotonic() + 2.0  # the runnable returns right after the job
        while finished and worker.is_running and time.monotonic() < deadline:
            time.sleep(0.005)
        if not finished:
            print(f"napari-pal: the worker did not stop within {self.close_timeout_s:.0f} s; "
                  "it stops at its next step")
        self.worker = None
        return finished and not worker.is_running
