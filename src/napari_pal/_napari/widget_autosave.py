"""PalWidget's autosave and recovery of mask corrections (a mixin; see ``_widget``'s doc)."""

from __future__ import annotations

import numpy as np

from napari_pal._napari.table import UNREVIEWED
from napari_pal.errors import PalError


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


class AutosaveMixin:
    """Autosave of the edits of the mask layers in use, and their recovery. PalWidget
    provides the viewer, the data (``meta``, ``status``, ``mask_combos``, ``mask_layers()``,
    ``dataset()``, ``current_index()``, ``_set_mask()``), the recovery widgets and the state
    set up in its ``__init__`` (``_store``, ``_dirty``, ``_watched``, ``_autosave_timer``, ...).
    Notifications are imported from ``napari_pal._napari.widget`` when shown (they are patched
    there)."""

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
        from napari_pal.review.stack import LayerMasks

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
                from napari_pal._napari.widget import _notify_warning

                self._autosave_error = msg
                _notify_warning(msg)

    def flush_autosave(self) -> None:
        """Autosave now whatever is waiting for the debounce timer."""
        self._autosave_timer.stop()
        self._flush_autosave()

    def _open_recovery(self) -> None:
        """Make the store of the dataset shown, and offer its autosaved corrections back."""
        from napari_pal._napari.widget import _notify_warning
        from napari_pal.review.recovery import RecoveryStore

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
        from napari_pal._napari.widget import _notify_info

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
        from napari_pal._napari.widget import _notify_error, _notify_info, _notify_warning

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
            from napari_pal._napari.widget import _notify_warning

            _notify_warning(f"could not discard the autosave: {err}")
