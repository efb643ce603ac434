"""PalWidget's layout (a mixin): the Data, Training, Review and Export boxes and shortcuts."""

from __future__ import annotations

import os

from qtpy.QtCore import Qt
from qtpy.QtGui import QKeySequence
from qtpy.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
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

from napari_pal._napari.plot import TrainingPlot
from napari_pal._napari.table import QualityModel, QualityProxy

#: Keyboard shortcuts of the review actions (active while the napari window has focus).
SHORTCUTS = {
    "next": "Alt+N",
    "reviewed": "Alt+R",
    "accept_all": "Alt+A",
    "revert": "Alt+Z",
    "accept_class": "Alt+{k}",  # Alt+1 .. Alt+9: accept the prediction for class k
}


class LayoutMixin:
    """Builds PalWidget's child widgets and connects them to its actions."""

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

        from napari_pal.method.config import STRATEGIES, TrainConfig

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

    def _add_shortcut(self, key: str, slot) -> None:
        sc = QShortcut(QKeySequence(key), self)
        sc.setContext(Qt.WindowShortcut)
        sc.activated.connect(slot)
        self._shortcuts.append(sc)
