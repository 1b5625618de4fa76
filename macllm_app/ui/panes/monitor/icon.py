"""The Monitor pane's sidebar icon: a pulse line over a baseline, drawn in code."""

from __future__ import annotations

from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPen, QPixmap


def monitor_icon(color: str = "#3c3c43") -> QIcon:
    pixmap = QPixmap(64, 64)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    pen = QPen(QColor(color), 6)
    pen.setCapStyle(Qt.PenCapStyle.RoundCap)
    pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
    painter.setPen(pen)
    points = [QPointF(x, y) for x, y in ((6, 36), (20, 36), (27, 16), (37, 50), (44, 30),
                                          (58, 30))]
    painter.drawPolyline(points)
    painter.end()
    return QIcon(pixmap)
