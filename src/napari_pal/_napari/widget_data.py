"""PalWidget's dataset layers (a mixin): open a folder, follow the image and mask layers."""

from __future__ import annotations

from pathlib import Path

from qtpy.QtWidgets import QComboBox, QFileDialog

from napari_pal._napari.table import UNREVIEWED
from napari_pal.errors import PalError
from napari_pal.review.stack import META_KEY


class DataMixin:
    """The dataset shown: its image layer, ``meta``, and the mask layer of each class.
    PalWidget provides the viewer and the Data box widgets. Notifications are imported from
    ``napari_pal._napari.widget`` when shown (they are patched there)."""

    # --- data ---------------------------------------------------------------------------
    def _browse_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Dataset folder (images/ + masks/)")
        if path:
            self.open_folder(path)

    def open_folder(self, path: str | Path) -> None:
        """Open a dataset folder as layers (the same layers the reader makes)."""
        from napari_pal._napari.reader import layer_data_for
        from napari_pal._napari.widget import _notify_error

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
        from napari_pal.review.stack import LayerMasks

        return LayerMasks(self.meta, [ly.data for ly in self.mask_layers()])

    def dataset(self):
        if self._dataset is None:
            from napari_pal.review.stack import dataset_from_meta

            self._dataset = dataset_from_meta(self.meta)
        return self._dataset
