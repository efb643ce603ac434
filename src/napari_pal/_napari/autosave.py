"""Autosave of the corrections painted into the mask layers in use (no widgets of its own).

Every edit of a mask layer the review uses (painting, fill, accept prediction, revert,
undo/redo, a new ``layer.data``) marks its slice; ``delay_ms`` after the last edit the marked
slices' masks (all classes, the image region, at the image's size) are written with
:class:`napari_pal.review.recovery.RecoveryStore` into the user's cache (never into the
dataset), and the review status with it. A slice edited back to its original masks is
forgotten instead. ``store_opened`` hands the store of each dataset shown to the Recovery
panel, which offers its content back. After an export the marks are dropped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from qtpy.QtCore import QObject, QTimer, Signal

from napari_pal._napari import notify
from napari_pal._napari.state import ReviewState
from napari_pal._napari.viewer_slices import current_index
from napari_pal.errors import PalError


def atom_slices(item) -> set[int]:
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


def _history_lengths(ly) -> tuple[int, int]:
    return (len(getattr(ly, "_undo_history", ())), len(getattr(ly, "_redo_history", ())))


class Autosaver(QObject):
    """Watches the Labels layers of ``viewer`` and autosaves the edits of those in use."""

    #: the RecoveryStore of the dataset now shown (None: none shown, or it cannot be made)
    store_opened = Signal(object)

    def __init__(self, viewer, state: ReviewState, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.viewer, self.state = viewer, state
        self.delay_ms = 1500
        #: where autosaves go (None: $NAPARI_PAL_RECOVERY, else the user cache)
        self.base: Path | None = None
        self.store = None
        self.closed = False
        self._dirty: set[int] = set()
        self._status_dirty = False
        self._error = ""
        self._watched: dict[int, object] = {}
        self._hist: dict[int, tuple[int, int]] = {}
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._tick)
        state.about_to_change.connect(self.flush)  # what is marked belongs to the old dataset
        state.dataset_changed.connect(self.open_store)
        state.status_changed.connect(self._on_status)
        state.exported.connect(self._on_exported)
        viewer.layers.events.inserted.connect(self.watch_labels)
        viewer.layers.events.removed.connect(self.watch_labels)
        self.watch_labels()

    # --- which layers are watched ---------------------------------------------------------
    def watch_labels(self, event=None) -> None:
        """Listen to the edits of every Labels layer (those not in use are ignored)."""
        if self.closed:
            return
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
                self._hist[key] = _history_lengths(ly)

    def _unwatch(self, ly) -> None:
        for ev in (ly.events.paint, ly.events.data, ly.events.set_data):
            try:
                ev.disconnect(self._on_labels_event)
            except (TypeError, ValueError, RuntimeError):
                pass
        self._watched.pop(id(ly), None)
        self._hist.pop(id(ly), None)

    # --- marking edits ----------------------------------------------------------------------
    def _on_labels_event(self, event) -> None:
        layer, meta = event.source, self.state.meta
        if self.closed or meta is None or self.store is None or not self.state.is_mask_layer(layer):
            return
        n = len(meta["names"])
        key = id(layer)
        lengths = _history_lengths(layer)
        before = self._hist.get(key, lengths)
        self._hist[key] = lengths
        here = current_index(self.viewer)
        if event.type == "paint":
            touched = atom_slices(getattr(event, "value", None)) or {here}
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
            touched = atom_slices(item) or {here}
        self._dirty.update(i for i in touched if 0 <= i < n)
        self.schedule()

    def _on_status(self, name: str) -> None:
        self._status_dirty = True
        self.schedule()

    def schedule(self) -> None:
        if not self.closed and self.store is not None:
            self._timer.start(max(0, int(self.delay_ms)))

    def _tick(self) -> None:
        self._write(limit=8)  # a few slices per tick keeps the GUI thread free
        if self._dirty:
            self._timer.start(0)

    # --- writing ------------------------------------------------------------------------------
    def flush(self) -> None:
        """Autosave now whatever is waiting for the debounce timer."""
        self._timer.stop()
        self._write()

    def _write(self, limit: int | None = None) -> None:
        """Write the marked slices' masks (and the review status) to the recovery store."""
        store, state = self.store, self.state
        if store is None or state.meta is None or not (self._dirty or self._status_dirty):
            return
        try:
            masks = state.layer_masks()
        except PalError:
            return
        todo = sorted(self._dirty)[:limit]
        try:
            for i in todo:
                self._dirty.discard(i)
                name = state.meta["names"][i]
                m = masks.masks(i)
                try:
                    orig = state.dataset().read_masks(i)
                    same = orig.shape == m.shape and bool(np.array_equal(orig, m))
                except Exception:  # noqa: BLE001 - an unreadable original: keep the edit
                    same = False
                if same:
                    store.discard(name)
                else:
                    store.save(name, m)
            if self._status_dirty:
                self._status_dirty = False
                store.save_status(state.status)
        except (PalError, OSError) as err:
            msg = f"autosave failed: {err}"
            if msg != self._error:  # tell once, not at every edit
                self._error = msg
                notify.warning(msg)

    # --- the store of the dataset shown -------------------------------------------------------
    def open_store(self) -> None:
        """Make the store of the dataset now shown, and hand it to whoever offers it back."""
        from napari_pal.review.recovery import RecoveryStore

        self.store = None
        self._dirty.clear()
        self._status_dirty = False
        meta = self.state.meta
        if meta is not None:
            try:
                self.store = RecoveryStore(meta["root"], meta["classes"], base=self.base)
            except (PalError, OSError) as err:
                notify.warning(f"corrections will not be autosaved: {err}")
        self.store_opened.emit(self.store)

    def _on_exported(self, folder) -> None:
        """The export holds every correction: the marks are not needed any more."""
        self._timer.stop()
        self._dirty.clear()
        self._status_dirty = False

    def shutdown(self) -> None:
        """The viewer is closing: autosave now, then stop listening."""
        try:
            self.flush()
        except Exception as err:  # noqa: BLE001 - closing goes on
            print(f"napari-pal: autosave on close failed: {err}")
        self.closed = True
        self._timer.stop()
        for ly in list(self._watched.values()):
            self._unwatch(ly)
