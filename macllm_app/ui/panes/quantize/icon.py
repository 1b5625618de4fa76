"""The Quantize pane's sidebar icon: bars stepping down, drawn in code."""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap


def quantize_icon(color: str = "#3c3c43") -> QIcon:
    pixmap = QPixmap(64, 64)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QColor(color))
    for i, height in enumerate((48, 36, 24, 14)):
        painter.drawRoundedRect(QRectF(6 + i * 14, 56 - height, 10, height), 2, 2)
    painter.end()
    return QIcon(pixmap)
