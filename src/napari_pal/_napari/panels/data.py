"""The Data panel: open a dataset folder as layers, pick its image layer, and map each class
to the Labels layer that holds its masks. It is the one writer of the state's dataset and
mask layers."""

from __future__ import annotations

from pathlib import Path

from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QWidget,
)

from napari_pal._napari import notify
from napari_pal._napari.state import ReviewState
from napari_pal.errors import PalError
from napari_pal.review.stack import META_KEY


def _pal_meta(layer) -> dict:
    return (layer.metadata or {}).get(META_KEY, {})


class DataPanel(QWidget):
    def __init__(self, viewer, state: ReviewState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer, self.state = viewer, state
        self.closed = False
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        self.folder_edit = QLineEdit()
        self.folder_edit.setPlaceholderText("dataset folder (images/ + masks/)")
        self.folder_edit.returnPressed.connect(lambda: self.open_folder(self.folder_edit.text()))
        browse = QPushButton("Open…")
        browse.clicked.connect(self._browse)
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
        self._user_masks: dict[int, object] = {}  # class -> a layer the user picked
        form.addRow(self.mask_box)
        viewer.layers.events.inserted.connect(self.refresh)
        viewer.layers.events.removed.connect(self.refresh)

    # --- opening ------------------------------------------------------------------------------
    def _browse(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Dataset folder (images/ + masks/)")
        if path:
            self.open_folder(path)

    def open_folder(self, path: str | Path) -> None:
        """Open a dataset folder as layers (the same layers the reader makes)."""
        from napari_pal._napari.reader import layer_data_for

        try:
            tuples = layer_data_for(Path(path).expanduser())
        except PalError as err:
            notify.error(err)
            return
        for data, kwargs, kind in tuples:
            if kind == "image":
                self.viewer.add_image(data, multiscale=False, **kwargs)
            else:
                self.viewer.add_labels(data, **kwargs)
        self.refresh()
        for k in range(self.image_combo.count()):
            if self.image_combo.itemData(k).data is tuples[0][0]:
                self.image_combo.setCurrentIndex(k)

    # --- following the layers -----------------------------------------------------------------
    def refresh(self, event=None) -> None:
        if self.closed:
            return
        current = self.image_combo.currentData()
        images = [ly for ly in self.viewer.layers if _pal_meta(ly).get("role") == "image"]
        self.image_combo.blockSignals(True)
        self.image_combo.clear()
        for ly in images:
            self.image_combo.addItem(ly.name, ly)
        if current in images:
            self.image_combo.setCurrentIndex(images.index(current))
        self.image_combo.blockSignals(False)
        if self.image_combo.currentData() is not self.state.image_layer:
            self._on_image_layer()
        else:
            self._fill_mask_combos()

    def _on_image_layer(self, *args) -> None:
        layer = self.image_combo.currentData()
        if layer is not self.state.image_layer:
            self._clear_mask_combos()
            self.state.set_dataset(layer, None if layer is None else layer.metadata[META_KEY])
            if self.state.meta is not None:
                self.folder_edit.setText(self.state.meta["root"])
        self.classes_label.setText(", ".join(self.state.classes) or "-")
        self._fill_mask_combos()

    def _clear_mask_combos(self) -> None:
        while self.mask_form.rowCount():
            self.mask_form.removeRow(0)
        self.mask_combos, self._user_masks = [], {}

    def _fill_mask_combos(self) -> None:
        classes, meta = self.state.classes, self.state.meta
        if len(self.mask_combos) != len(classes):
            self._clear_mask_combos()
            for k, cls in enumerate(classes):
                combo = QComboBox()
                combo.activated.connect(lambda _i, k=k, c=combo: self._picked(k, c))
                self.mask_form.addRow(f"{cls} mask", combo)
                self.mask_combos.append(combo)
        if meta is None:
            self.state.set_mask_layers([])
            return
        from napari.layers import Labels

        shape = tuple(self.state.image_layer.data.shape)
        labels = [ly for ly in self.viewer.layers
                  if isinstance(ly, Labels) and tuple(ly.data.shape) == shape
                  and _pal_meta(ly).get("role") != "prediction"]
        for k, combo in enumerate(self.mask_combos):
            chosen = self._user_masks.get(k)
            combo.blockSignals(True)
            combo.clear()
            for ly in labels:
                combo.addItem(ly.name, ly)
            pick = chosen if chosen in labels else None
            if pick is None:
                pick = next((ly for ly in labels if _pal_meta(ly).get("role") == "mask"
                             and _pal_meta(ly).get("class_index") == k
                             and _pal_meta(ly).get("root") == meta["root"]), None)
            combo.setCurrentIndex(labels.index(pick) if pick is not None else -1)
            combo.blockSignals(False)
        self._publish()

    def _picked(self, k: int, combo: QComboBox) -> None:
        self._user_masks[k] = combo.currentData()
        self._publish()

    def _publish(self) -> None:
        self.state.set_mask_layers([c.currentData() for c in self.mask_combos])
