"""The dock widget "Pick-and-Learn quality review" (the npe2 widget command).

It composes one panel per concern and wires them to one shared :class:`ReviewState`:

    Data      open a folder, pick the image and mask layers   -> state.dataset, masks
    Recovery  restore/discard autosaved corrections           <- Autosaver (the cache)
    Training  settings form, Train/Stop, progress, plot        -> state.scores, predictions
    Review    quality table, next worst, accept, revert        -> state.status, mask edits
    Export    masks + quality.csv to a folder                  -> state.exported

The panels hold no method code: the jobs they run are the engine's (``napari_pal.jobs``),
torch is imported only inside the worker. Closing the viewer autosaves, stops a running
job (training saves its checkpoint) and waits for the worker, at most ``close_timeout_s``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qtpy.QtWidgets import QGroupBox, QVBoxLayout, QWidget

from napari_pal._napari.autosave import Autosaver
from napari_pal._napari.close_watch import CloseWatcher
from napari_pal._napari.drafts import DraftWatcher
from napari_pal._napari.panels.data import DataPanel
from napari_pal._napari.panels.export import ExportPanel
from napari_pal._napari.panels.recovery import RecoveryPanel
from napari_pal._napari.panels.review import ReviewPanel
from napari_pal._napari.panels.training import TrainingPanel
from napari_pal._napari.state import ReviewState

if TYPE_CHECKING:
    import napari


def _box(title: str, *widgets: QWidget) -> QGroupBox:
    box = QGroupBox(title)
    lay = QVBoxLayout(box)
    for w in widgets:
        lay.addWidget(w)
    return box


class PalWidget(QWidget):
    """Pick-and-Learn quality review: the panels, the state they share, and closing."""

    def __init__(self, napari_viewer: napari.Viewer, parent: QWidget | None = None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.close_timeout_s = 30.0
        self.closed = False
        self.state = ReviewState()
        self.autosaver = Autosaver(napari_viewer, self.state, self)
        self.drafts = DraftWatcher(napari_viewer, self.state)
        self.data_panel = DataPanel(napari_viewer, self.state)
        self.recovery_panel = RecoveryPanel(self.state)
        self.training_panel = TrainingPanel(self.state)
        self.review_panel = ReviewPanel(napari_viewer, self.state)
        self.export_panel = ExportPanel(self.state)
        self.autosaver.store_opened.connect(self.recovery_panel.offer)
        lay = QVBoxLayout(self)
        lay.addWidget(_box("Data", self.data_panel, self.recovery_panel))
        lay.addWidget(_box("Training", self.training_panel))
        lay.addWidget(_box("Review (worst first)", self.review_panel))
        lay.addWidget(_box("Export", self.export_panel))
        lay.addStretch(1)
        self._close_watcher = CloseWatcher(self, self.shutdown)
        from qtpy.QtWidgets import QApplication

        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)
        self.data_panel.refresh()

    def open_folder(self, path) -> None:
        """Open a dataset folder as layers and review it (the Data panel's Open…)."""
        self.data_panel.open_folder(path)

    def shutdown(self) -> bool:
        """The viewer is closing: autosave now, stop a running job and wait for its thread
        (training saves its checkpoint first), at most ``close_timeout_s``. True when no
        job is left running."""
        if self.closed:
            return True
        self.closed = True
        self.autosaver.shutdown()
        self.drafts.close()
        self.data_panel.closed = True
        try:
            from qtpy.QtWidgets import QApplication

            QApplication.instance().aboutToQuit.disconnect(self.shutdown)
        except (TypeError, RuntimeError, AttributeError):
            pass
        return self.training_panel.runner.shutdown(self.close_timeout_s)
