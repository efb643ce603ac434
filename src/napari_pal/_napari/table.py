"""The quality table: one row per image (name, overall quality, quality per class, review
status), coloured from red (worst) to green, sortable, worst first by default.

Drafts (images without masks) have a row with no quality ("-", sorted last). A class the
model has not learnt (scoring.reliability) shows "-" and "(unreliable)" in its header; with
no reliable class the overall quality shows "-" too: the table never shows noise as a
ranking. A refresh during training updates the rows in place (same rows, new scores), so
the selection stays and the proxy re-sorts worst first."""

from __future__ import annotations

from qtpy.QtCore import QAbstractTableModel, QSortFilterProxyModel, Qt
from qtpy.QtGui import QColor

from napari_pal._napari.state import UNREVIEWED
from napari_pal.scoring.reasons import image_reason

SORT_ROLE = Qt.UserRole + 1


def quality_colour(q: float) -> QColor:
    """Red (0) through yellow to green (1)."""
    q = min(1.0, max(0.0, float(q)))
    return QColor.fromHsvF(q / 3.0, 0.75, 0.85)


class QualityModel(QAbstractTableModel):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.classes: list[str] = []
        self.rows: list[tuple[str, object]] = []  # (name, ImageScore or None for a draft)
        self.status: dict[str, str] = {}
        self.unreliable: set[str] = set()
        self._by_name: dict[str, int] = {}

    def set_scores(self, classes: list[str], scores: list, status: dict[str, str],
                   drafts: list[str] = (), reliability: dict | None = None) -> None:
        self.beginResetModel()
        self.classes = list(classes)
        self.rows = [(s.name, s) for s in scores] + [(n, None) for n in drafts]
        by_name = sorted(n for n, s in self.rows if s is not None) + sorted(drafts)
        self._by_name = {n: k for k, n in enumerate(by_name)}  # drafts last here too
        self.status = status
        self.unreliable = {c for c, v in (reliability or {}).items() if not v.reliable}
        self.endResetModel()

    def update_scores(self, scores: dict, reliability: dict | None = None) -> bool:
        """New scores for the rows already shown (a refresh); False when the images differ
        (the caller resets the table instead)."""
        scored = {n for n, s in self.rows if s is not None}
        if not self.rows or scored != set(scores):
            return False
        unreliable = {c for c, v in (reliability or {}).items() if not v.reliable}
        if unreliable != self.unreliable:
            self.unreliable = unreliable
            self.headerDataChanged.emit(Qt.Horizontal, 0, self.columnCount() - 1)
        self.rows = [(n, scores[n] if s is not None else None) for n, s in self.rows]
        self.dataChanged.emit(self.index(0, 0),
                              self.index(len(self.rows) - 1, self.columnCount() - 1))
        return True

    @property
    def ranking_shown(self) -> bool:
        """False when no class is reliable: the overall quality is then not a ranking."""
        return not self.classes or len(self.unreliable) < len(self.classes)

    def headers(self) -> list[str]:
        return ["image", "quality" if self.ranking_shown else "quality (unreliable)",
                *(f"{c} (unreliable)" if c in self.unreliable else c for c in self.classes),
                "status"]

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
        if col <= 1 + len(self.classes) and s is None:
            return None  # a draft: no masks, no quality
        if col == 1:
            return s.quality
        if col <= 1 + len(self.classes):
            return s.per_class[self.classes[col - 2]]
        return self.status.get(name, UNREVIEWED)

    def shown(self, col: int) -> bool:
        """Whether column ``col``'s numbers are shown (not '-' for an unreliable class)."""
        if col == 1:
            return self.ranking_shown
        return not (2 <= col <= 1 + len(self.classes) and self.classes[col - 2] in self.unreliable)

    def data(self, index, role=Qt.DisplayRole):
        if not index.isValid():
            return None
        row, col = index.row(), index.column()
        v = self._value(row, col)
        number = isinstance(v, float) and self.shown(col)
        if role == Qt.DisplayRole:
            if v is None or (isinstance(v, float) and not number):
                return "-"
            return f"{v:.3f}" if number else v
        if role == SORT_ROLE:
            if col == 1 and not self.ranking_shown:
                return float(self._by_name[self.rows[row][0]])  # not a ranking: by name
            return 2.0 if v is None else v  # drafts (no quality) last when worst first
        if role == Qt.BackgroundRole and number:
            return quality_colour(v)
        if role == Qt.ForegroundRole and number:
            return QColor(0, 0, 0)
        if role == Qt.ToolTipRole:
            return self._tooltip(row, col)
        return None

    def _tooltip(self, row: int, col: int) -> str | None:
        """Why the cell's quality is what it is, then the raw signals behind it (a class's
        own for a class column, all for the image's)."""
        s = self.rows[row][1]
        if s is None:
            return "no masks: a draft (predicted, not scored)"
        if 2 <= col <= 1 + len(self.classes):
            cls = self.classes[col - 2]
            reason = s.why.get(cls, "")
            signals = {k: x for k, x in s.signals.items() if k.endswith(f"_{cls}")}
        else:
            reason, signals = image_reason(s), s.signals
        lines = [f"{k}: {x:.3g}" for k, x in signals.items()]
        return "\n".join([reason, "", *lines] if reason else lines)

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

    def lessThan(self, left, right) -> bool:  # noqa: N802
        """By the sort role, ties by image name: the order of scores.csv and of Alt+N (a
        part left out and a class left out both score 0, so ties are common at the top)."""
        a, b = left.data(SORT_ROLE), right.data(SORT_ROLE)
        if a != b:
            return a < b
        source = self.sourceModel()
        return source.name_at(left.row()) < source.name_at(right.row())
