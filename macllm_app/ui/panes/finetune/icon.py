"""The Fine-tune pane's sidebar icon: three sliders at different settings, drawn in code."""

from __future__ import annotations

from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPen, QPixmap

SLIDERS = ((14, 40), (32, 20), (50, 46))  # (height, knob position)


def finetune_icon(color: str = "#3c3c43") -> QIcon:
    pixmap = QPixmap(64, 64)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    pen = QPen(QColor(color), 5)
    pen.setCapStyle(Qt.PenCapStyle.RoundCap)
    painter.setPen(pen)
    for y, _knob in SLIDERS:
        painter.drawLine(QPointF(8, y), QPointF(56, y))
    painter.setBrush(QColor(color))
    painter.setPen(Qt.PenStyle.NoPen)
    for y, knob in SLIDERS:
        painter.drawEllipse(QPointF(knob, y), 7, 7)
    painter.end()
    return QIcon(pixmap)
