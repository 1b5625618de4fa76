"""Small icons drawn in code, so the app needs no icon font or emoji font."""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPainterPath, QPixmap

SIZE = 64


def chat_icon(color: str = "#3c3c43") -> QIcon:
    """A speech bubble."""
    pixmap = QPixmap(SIZE, SIZE)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QColor(color))
    path = QPainterPath()
    path.addRoundedRect(QRectF(6, 8, 52, 38), 12, 12)
    tail = QPainterPath()
    tail.moveTo(QPointF(16, 40))
    tail.lineTo(QPointF(12, 56))
    tail.lineTo(QPointF(30, 44))
    tail.closeSubpath()
    painter.drawPath(path.united(tail))
    painter.setBrush(QColor("#ffffff"))
    for x in (20, 32, 44):
        painter.drawEllipse(QPointF(x, 27), 3.5, 3.5)
    painter.end()
    return QIcon(pixmap)
