"""The quality table: one row per image (name, overall quality, quality per class, review
status), coloured from red (worst) to green, sortable, worst first by default."""

from __future__ import annotations

from qtpy.QtCore import QAbstractTableModel, QSortFilterProxyModel, Qt
from qtpy.QtGui import QColor

from napari_pal._napari.state import UNREVIEWED

SORT_ROLE = Qt.UserRole + 1


def quality_colour(q: float) -> QColor:
    """Red (0) through yellow to green (1)."""
    q = min(1.0, max(0.0, float(q)))
    return QColor.fromHsvF(q / 3.0, 0.75, 0.85)


class QualityModel(QAbstractTableModel):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.classes: list[str] = []
        self.rows: list[tuple[str, object]] = []  # (name, ImageScore)
        self.status: dict[str, str] = {}

    def set_scores(self, classes: list[str], scores: list, status: dict[str, str]) -> None:
        self.beginResetModel()
        self.classes = list(classes)
        self.rows = [(s.name, s) for s in scores]
        self.status = status
        self.endResetModel()

    def headers(self) -> list[str]:
        return ["image", "quality", *self.classes, "status"]

    def rowCount(self, parent=None) -> int:  # noqa: N802
        return 0 if parent is not None and parent.isValid() else len(self.rows)

    def columnCount(self, parent=None) -> int:  # noqa: N802
        return 0 if parent is not None and parent.isValid() else len(self.headers())

    def headerData(self, section, orientation, role=Qt.DisplayRole):  # noqa: N802
        if orientation == Qt.Horizontal and role == Qt.DisplayRole:
            return self.headers()[section]
        return None

    def _value(self, row: int, col: int):
        name, s = self.rows[row]
        if col == 0:
            return name
        if col == 1:
            return s.quality
        if col <= 1 + len(self.classes):
            return s.per_class[self.classes[col - 2]]
        return self.status.get(name, UNREVIEWED)

    def data(self, index, role=Qt.DisplayRole):
        if not index.isValid():
            return None
        row, col = index.row(), index.column()
        v = self._value(row, col)
        if role == Qt.DisplayRole:
            return f"{v:.3f}" if isinstance(v, float) else v
        if role == SORT_ROLE:
            return v
        if role == Qt.BackgroundRole and isinstance(v, float):
            return quality_colour(v)
        if role == Qt.ForegroundRole and isinstance(v, float):
            return QColor(0, 0, 0)
        if role == Qt.ToolTipRole:
            s = self.rows[row][1]
            return "\n".join(f"{k}: {x:.3g}" for k, x in s.signals.items())
        return None

    def name_at(self, row: int) -> str:
        return self.rows[row][0]

    def row_of(self, name: str) -> int:
        for k, (n, _) in enumerate(self.rows):
            if n == name:
                return k
        return -1

    def status_changed(self, name: str) -> None:
        row = self.row_of(name)
        if row >= 0:
            col = self.columnCount() - 1
            self.dataChanged.emit(self.index(row, col), self.index(row, col))


class QualityProxy(QSortFilterProxyModel):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setSortRole(SORT_ROLE)
