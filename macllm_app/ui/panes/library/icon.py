"""The Library pane's sidebar icon: three book spines, drawn in code."""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap


def library_icon(color: str = "#3c3c43") -> QIcon:
    pixmap = QPixmap(64, 64)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QColor(color))
    for x, top in ((8, 12), (22, 6), (36, 14)):
        painter.drawRoundedRect(QRectF(x, top, 11, 52 - top + 6), 3, 3)
    painter.translate(52, 14)
    painter.rotate(14)
    painter.drawRoundedRect(QRectF(-4, 0, 10, 46), 3, 3)
    painter.end()
    return QIcon(pixmap)
