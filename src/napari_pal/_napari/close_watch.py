"""Calls back when the napari main window a widget is docked in is about to close.

The dock is put into the window after the widget is put into the dock, so the window is
looked up again when the widget is re-parented or shown (and retried shortly)."""

from __future__ import annotations

import weakref
from collections.abc import Callable

from qtpy.QtCore import QEvent, QObject, QTimer
from qtpy.QtWidgets import QMainWindow, QWidget


class CloseWatcher(QObject):
    """Calls ``callback`` when the watched window gets its Close event (before it closes)."""

    def __init__(self, widget: QWidget, callback: Callable[[], object]) -> None:
        super().__init__(widget)
        self.widget, self.callback = widget, callback
        self._window = None
        self._retries = 3
        widget.installEventFilter(self)
        self.install()

    def install(self) -> None:
        """Watch the main window the widget is docked in (retried while there is none)."""
        w = self.widget.parentWidget()
        while w is not None and not isinstance(w, QMainWindow):
            w = w.parentWidget()
        if w is None:
            if self._retries > 0:
                self._retries -= 1
                QTimer.singleShot(0, self.install)
            return
        old = self._window() if self._window is not None else None
        if w is not old:
            if old is not None:
                old.removeEventFilter(self)
            w.installEventFilter(self)
            self._window = weakref.ref(w)  # never keep the viewer's window alive

    def eventFilter(self, obj, event):  # noqa: N802 - Qt name
        kind = event.type()
        if obj is self.widget:
            if kind in (QEvent.ParentChange, QEvent.Show):
                self._retries = 3
                self.install()
        elif kind == QEvent.Close:
            try:
                self.callback()
            except Exception as err:  # noqa: BLE001 - never break closing the window
                print(f"napari-pal: while closing: {type(err).__name__}: {err}")
        return False
