"""The Review panel: the quality table (worst first) and the review actions: go to the
next-worst unreviewed image, mark reviewed, accept the prediction (one class or all), revert
to the original masks; each with a keyboard shortcut (active while the napari window has
focus). It shows the results the state receives (layers, table) and follows the viewer's
current image."""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import QItemSelectionModel, Qt
from qtpy.QtGui import QKeySequence
from qtpy.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QShortcut,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from napari_pal._napari import notify
from napari_pal._napari.result_layers import show_results
from napari_pal._napari.state import ACCEPTED, DRAFT, REVIEWED, UNREVIEWED, ReviewState
from napari_pal._napari.table import QualityModel, QualityProxy
from napari_pal._napari.viewer_slices import current_index, current_name, set_mask, slice_axis
from napari_pal.errors import PalError
from napari_pal.scoring.reasons import image_reason

#: Keyboard shortcuts of the review actions.
SHORTCUTS = {
    "next": "Alt+N",
    "reviewed": "Alt+R",
    "accept_all": "Alt+A",
    "revert": "Alt+Z",
    "accept_class": "Alt+{k}",  # Alt+1 .. Alt+9: accept the prediction for class k
}


class ReviewPanel(QWidget):
    def __init__(self, viewer, state: ReviewState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer, self.state = viewer, state
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.current_label = QLabel("")
        lay.addWidget(self.current_label)
        #: how settled the ranking is ("refreshed at epoch 12/60: 2 of the top 17 changed")
        self.ranking_label = QLabel("")
        self.ranking_label.setWordWrap(True)
        lay.addWidget(self.ranking_label)
        #: the classes whose quality is not a ranking, and why (scoring.reliability)
        self.reliability_label = QLabel("")
        self.reliability_label.setWordWrap(True)
        self.reliability_label.setStyleSheet("color: #e0a000")
        lay.addWidget(self.reliability_label)
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
        lay.addWidget(self.table)
        r1 = QHBoxLayout()
        self.next_button = QPushButton(f"Next worst ({SHORTCUTS['next']})")
        self.next_button.clicked.connect(self.next_worst)
        self.reviewed_button = QPushButton(f"Mark reviewed ({SHORTCUTS['reviewed']})")
        self.reviewed_button.clicked.connect(self.mark_reviewed)
        r1.addWidget(self.next_button)
        r1.addWidget(self.reviewed_button)
        lay.addLayout(r1)
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
        lay.addLayout(r2)
        self.revert_button = QPushButton(f"Revert to original mask ({SHORTCUTS['revert']})")
        self.revert_button.clicked.connect(self.revert)
        lay.addWidget(self.revert_button)

        self.shortcuts: list[QShortcut] = []
        for key, slot in ((SHORTCUTS["next"], self.next_worst),
                          (SHORTCUTS["reviewed"], self.mark_reviewed),
                          (SHORTCUTS["accept_all"], lambda: self.accept_prediction(None)),
                          (SHORTCUTS["revert"], self.revert)):
            self._add_shortcut(key, slot)
        for k in range(9):
            self._add_shortcut(SHORTCUTS["accept_class"].format(k=k + 1),
                               lambda k=k: self.accept_prediction(k))
        state.dataset_changed.connect(self._on_dataset)
        state.scores_ready.connect(self._on_scores_ready)
        state.ranking_refreshed.connect(self._on_refresh)
        state.status_changed.connect(self._on_status)
        viewer.dims.events.current_step.connect(self.update_current)

    def _add_shortcut(self, key: str, slot) -> None:
        sc = QShortcut(QKeySequence(key), self)
        sc.setContext(Qt.WindowShortcut)
        sc.activated.connect(slot)
        self.shortcuts.append(sc)

    # --- following the state ------------------------------------------------------------------
    def _on_dataset(self) -> None:
        self.model.set_scores([], [], self.state.status)
        self.ranking_label.setText("")
        self.reliability_label.setText("")
        self.accept_class_combo.clear()
        self.accept_class_combo.addItems(self.state.classes)
        self.update_current()

    def _on_scores_ready(self, run_dir=None) -> None:
        state = self.state
        show_results(self.viewer, state)
        self._show_ranking()
        if not self.model.update_scores(state.scores, state.reliability):
            self.model.set_scores(state.classes, state.worst_first(), state.status,
                                  state.drafts, state.reliability)
        self.table.sortByColumn(1, Qt.AscendingOrder)
        self.proxy.sort(1, Qt.AscendingOrder)

    def _on_refresh(self, refresh=None) -> None:
        """Training goes on: new scores in the same rows (selection, status and masks stay),
        re-sorted worst first. The prediction layers change at the final scoring only."""
        state = self.state
        self._show_ranking()
        if not self.model.update_scores(state.scores, state.reliability):
            self.model.set_scores(state.classes, state.worst_first(), state.status,
                                  state.drafts, state.reliability)
        self.proxy.sort(1, Qt.AscendingOrder)
        self.update_current()

    def _show_ranking(self) -> None:
        from napari_pal.review.ranking import refresh_text, reliability_text

        self.ranking_label.setText(refresh_text(self.state.refresh))
        self.reliability_label.setText(reliability_text(self.state.reliability))

    def _on_status(self, name: str) -> None:
        self.model.status_changed(name)
        self.update_current()

    def current_name(self) -> str | None:
        return current_name(self.viewer, self.state.meta)

    def update_current(self, event=None) -> None:
        name = self.current_name()
        if name is None:
            self.current_label.setText("")
            return
        meta, i = self.state.meta, current_index(self.viewer)
        s = self.state.scores.get(name)
        q = f" · quality {s.quality:.3f}" if s else ""
        why = image_reason(s) if s and self.model.ranking_shown else ""  # what to look for
        h, w = meta["shapes"][i]
        self.current_label.setText(f"{name} ({i + 1}/{len(meta['names'])}, {w}×{h} px){q} · "
                                   f"{self.state.status.get(name, UNREVIEWED)}"
                                   + (f"\n{why}" if why else ""))

    # --- moving through the images ------------------------------------------------------------
    def _on_row_selected(self, *args) -> None:
        rows = self.table.selectionModel().selectedRows()
        if rows:
            self.go_to(self.model.name_at(self.proxy.mapToSource(rows[0]).row()))

    def go_to(self, name: str) -> None:
        """Show image ``name`` and select its worst class's mask layer for painting."""
        meta = self.state.meta
        self.viewer.dims.set_current_step(slice_axis(self.viewer), meta["names"].index(name))
        s = self.state.scores.get(name)
        k = 0
        if s is not None:
            k = min(range(len(meta["classes"])), key=lambda j: s.per_class[meta["classes"][j]])
        try:
            layers = self.state.mask_layers()
        except PalError:
            return
        for ly in layers:
            ly.visible = True
        self.viewer.layers.selection.active = layers[k]
        layers[k].selected_label = 1
        layers[k].mode = "paint"
        self.accept_class_combo.setCurrentIndex(k)
        self.update_current()

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
        if not self.state.scores:
            notify.info("no quality scores yet: train, or score from a checkpoint")
            return
        current = self.current_name()
        pick = next((s.name for s in self.state.worst_first(unreviewed_only=True)
                     if s.name != current), None)
        if pick is None:
            notify.info("every scored image is reviewed")
            return
        self.select_row(pick)

    # --- editing ----------------------------------------------------------------------------------
    def mark_reviewed(self) -> None:
        name = self.current_name()
        if name is not None:
            self.state.set_status(name, REVIEWED)

    def accept_prediction(self, k: int | None = None) -> None:
        """Replace the mask of the shown image by the prediction (class k, or all)."""
        state = self.state
        if state.meta is None or state.pred is None:
            notify.info("no predictions yet: train, or score from a checkpoint")
            return
        try:
            layers = state.mask_layers()
        except PalError as err:
            notify.error(err)
            return
        i = current_index(self.viewer)
        name = state.names[i]
        if state.status.get(name) == DRAFT:  # the draft's predicted masks become its masks
            state.set_status(name, ACCEPTED)
        for j in range(len(layers)) if k is None else [k]:
            if 0 <= j < len(layers):
                set_mask(layers[j], state.meta, i, state.predicted(j, i))

    def revert(self) -> None:
        """Put the shown image's masks back as they are in the input folder."""
        state = self.state
        if state.meta is None:
            return
        i = current_index(self.viewer)
        name = state.names[i]
        try:
            layers = state.mask_layers()
            if name in state.drafts:  # a draft's original is "no masks": empty, draft again
                h, w = state.meta["shapes"][i]
                original = np.zeros((len(layers), h, w), bool)
            else:
                original = state.dataset().read_masks(i)
        except PalError as err:
            notify.error(err)
            return
        for j, layer in enumerate(layers):
            set_mask(layer, state.meta, i, original[j])
        if name in state.drafts:
            state.set_status(name, DRAFT)
