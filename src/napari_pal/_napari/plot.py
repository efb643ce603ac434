"""A light live plot of training (QPainter, no matplotlib): the loss per step and the
spread of the quality weights in each batch (min-max band, median line; mean is 1).

``add`` only stores numbers; the widget repaints at most ``max_hz`` times a second, so a
fast training loop cannot flood the GUI thread with redraws.
"""

from __future__ import annotations

import math

from qtpy.QtCore import QPointF, QRectF, Qt, QTimer
from qtpy.QtGui import QColor, QPainter, QPainterPath, QPen, QPolygonF
from qtpy.QtWidgets import QSizePolicy, QWidget


class TrainingPlot(QWidget):
    def __init__(self, parent=None, max_hz: float = 5.0):
        super().__init__(parent)
        self.setMinimumHeight(150)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Preferred)
        self.steps: list[int] = []
        self.loss: list[float] = []
        self.wmin: list[float] = []
        self.wmed: list[float] = []
        self.wmax: list[float] = []
        self.total = 1
        self.paints = 0
        self._dirty = False
        self._timer = QTimer(self)
        self._timer.setInterval(int(1000 / max_hz))
        self._timer.timeout.connect(self._flush)
        self._timer.start()

    def clear(self) -> None:
        for a in (self.steps, self.loss, self.wmin, self.wmed, self.wmax):
            a.clear()
        self._dirty = True

    def add(self, step: int, total: int, loss: float, weights: list[float]) -> None:
        if not math.isfinite(loss) or not weights:
            return
        w = sorted(weights)
        self.total = max(1, total)
        self.steps.append(step)
        self.loss.append(loss)
        self.wmin.append(w[0])
        self.wmax.append(w[-1])
        self.wmed.append(w[len(w) // 2])
        self._dirty = True

    def _flush(self) -> None:
        if self._dirty and self.isVisible():
            self._dirty = False
            self.update()

    # --- drawing ------------------------------------------------------------------------
    def paintEvent(self, event) -> None:  # noqa: N802 - Qt name
        self.paints += 1
        p = QPainter(self)
        p.setRenderHint(QPainter.Antialiasing)
        p.fillRect(self.rect(), QColor(38, 41, 48))
        w, h = self.width(), self.height()
        half = (h - 6) / 2
        self._panel(p, QRectF(34, 3, w - 40, half - 14), "loss", self.loss, None, None,
                    QColor(255, 170, 60))
        self._panel(p, QRectF(34, half + 14, w - 40, half - 14), "quality weights (batch)",
                    self.wmed, self.wmin, self.wmax, QColor(90, 200, 255), ref=1.0)
        p.end()

    def _x(self, r: QRectF, step: int) -> float:
        return r.left() + r.width() * step / self.total

    def _panel(self, p: QPainter, r: QRectF, title: str, line, lo, hi, colour: QColor,
               ref: float | None = None) -> None:
        p.setPen(QPen(QColor(110, 110, 120)))
        p.drawRect(r)
        p.setPen(QColor(200, 200, 200))
        p.drawText(QRectF(r.left() + 4, r.top() - 1, r.width(), 14),
                   Qt.AlignLeft | Qt.AlignTop, title)
        if not line:
            return
        top = max(hi) if hi else max(line)
        bottom = 0.0
        top = max(top, (ref or 0) * 1.1, 1e-6)
        def y(v: float) -> float:
            return r.bottom() - r.height() * (v - bottom) / (top - bottom)

        p.drawText(QRectF(0, r.top() - 6, 32, 14), Qt.AlignRight, f"{top:.2g}")
        p.drawText(QRectF(0, r.bottom() - 8, 32, 14), Qt.AlignRight, "0")
        if lo is not None and hi is not None:
            pts = [QPointF(self._x(r, s), y(v)) for s, v in zip(self.steps, hi)]
            pts += [QPointF(self._x(r, s), y(v)) for s, v in zip(reversed(self.steps),
                                                                  reversed(lo))]
            band = QColor(colour)
            band.setAlpha(70)
            p.setPen(Qt.NoPen)
            p.setBrush(band)
            p.drawPolygon(QPolygonF(pts))
            p.setBrush(Qt.NoBrush)
        if ref is not None:
            pen = QPen(QColor(160, 160, 160))
            pen.setStyle(Qt.DashLine)
            p.setPen(pen)
            p.drawLine(QPointF(r.left(), y(ref)), QPointF(r.right(), y(ref)))
        path = QPainterPath()
        for k, (s, v) in enumerate(zip(self.steps, line)):
            pt = QPointF(self._x(r, s), y(v))
            path.moveTo(pt) if k == 0 else path.lineTo(pt)
        p.setPen(QPen(colour, 1.5))
        p.drawPath(path)
