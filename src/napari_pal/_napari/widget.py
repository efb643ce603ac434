"""The dock widget "Pick-and-Learn quality review".

Data -> Training (in a napari thread worker, one progress event per step) -> quality
table -> review (jump, accept prediction, revert, mark reviewed) -> export. The widget
holds no method code: it drives the engine's ``Trainer``, ``TrainedModel`` and
``quality.analyse``; torch is imported only inside the worker.

Autosave: every edit of a mask layer the widget uses (painting, fill, accept prediction,
revert, undo/redo, a new ``layer.data``) marks its slice; ``autosave_ms`` after the last edit
the marked slices' masks (all classes, the image region, at the image's size) are written
with :class:`napari_pal.review.recovery.RecoveryStore` into the user's cache (never into the
dataset), and the review status with it. A slice edited back to its original masks is
forgotten instead. When the same dataset is opened again the autosaved corrections are
offered back (a notification and a "Restore N autosaved corrections" button in the Data box;
corrections whose files changed on disk since are listed as stale and restored only when
ticked). After a successful Export the recovery of the dataset is discarded: the exported
folder is the safe copy of the corrections.

Closing the viewer while a job runs stops it (training saves its checkpoint) and waits for
the worker, at most ``close_timeout_s``.

The widget is put together from mixins, one concern per module: ``_widget_layout`` (the
child widgets), ``_widget_data`` (the dataset layers), ``_widget_review`` (results and the
review actions) and ``_widget_autosave`` (autosave and recovery); the jobs that run in the
worker thread are in ``_widget_jobs``. This module holds the job control (training,
scoring), export and closing, and the notification helpers every part of the widget uses.
"""

from __future__ import annotations

import math
import threading
import time
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import QEvent, QObject, QTimer
from qtpy.QtWidgets import QFileDialog, QWidget

from napari_pal._napari.table import REVIEWED
from napari_pal._napari.widget_autosave import AutosaveMixin
from napari_pal._napari.widget_autosave import _atom_slices as _atom_slices
from napari_pal._napari.widget_data import DataMixin
from napari_pal._napari.widget_layout import SHORTCUTS as SHORTCUTS
from napari_pal._napari.widget_layout import LayoutMixin
from napari_pal._napari.widget_review import DISAGREEMENT as DISAGREEMENT
from napari_pal._napari.widget_review import PRED_SUFFIX as PRED_SUFFIX
from napari_pal._napari.widget_review import ReviewMixin
from napari_pal.errors import PalError
from napari_pal.jobs.workers import _analyse_job, _job_with_done, _train_job
from napari_pal.jobs.workers import _lower_priority as _lower_priority

# the names re-exported with "as" were defined here before the widget was split in modules
from napari_pal.review.stack import region

if TYPE_CHECKING:
    import napari


# The notifications of the whole widget: the mixins import them from here when they notify,
# so that replacing them in this module (as the tests do) reaches every part of the widget.
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


class PalWidget(LayoutMixin, DataMixin, ReviewMixin, AutosaveMixin, QWidget):
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

    # --- training -----------------------------------------------------------------------
    def config(self):
        from napari_pal.method.config import TrainConfig

        v = {w.name: w.value for w in self.settings}
        return TrainConfig(strategy=v["strategy"], epochs=int(v["epochs"]), size=int(v["size"]),
                           batch_size=int(v["batch_size"]), lr=float(v["lr"]),
                           lam=float(v["lam"]), threads=int(v["threads"]))

    def run_folder(self) -> Path:
        from napari_pal.review.stack import default_runs_dir

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
            from napari_pal.review.stack import same_folder

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
        from napari_pal.review.stack import default_runs_dir

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

    # --- export -------------------------------------------------------------------------
    def _export_clicked(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Export corrected masks to")
        if path:
            self.export(path)

    def export(self, folder: str | Path) -> Path | None:
        """Write every mask (layout and sizes of the input) and quality.csv to ``folder``."""
        from napari_pal.review.stack import export_masks, write_quality_csv

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
