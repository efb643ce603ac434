"""PalWidget's review actions (a mixin): results layers, jump, accept, revert, mark reviewed."""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import QItemSelectionModel, Qt

from napari_pal._napari.table import REVIEWED, UNREVIEWED
from napari_pal.errors import PalError
from napari_pal.review.stack import META_KEY, class_colour, region

PRED_SUFFIX = " prediction"
DISAGREEMENT = "disagreement"


class ReviewMixin:
    """Results and review of the dataset shown. PalWidget provides the viewer, the data
    (``meta``, ``scores``, ``status``, ``_pred``, ``_dis``, ``mask_layers()``, ``dataset()``),
    the table and ``_schedule_autosave()``. Notifications are imported from
    ``napari_pal._napari.widget`` when shown (they are patched there)."""

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
        from napari_pal._napari.widget import _notify_info

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
        from napari_pal._napari.widget import _notify_error, _notify_info

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
        from napari_pal._napari.widget import _notify_error

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
