"""Small icons drawn in code, so the app needs no icon font or emoji font."""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPainterPath, QPixmap

from macllm_app.core.resources import APP_ICON, resource

SIZE = 64


def _draw_bubble(painter: QPainter, color: str, dots: str) -> None:
    """A speech bubble with three dots, in a 64 x 64 box."""
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
    painter.setBrush(QColor(dots))
    for x in (20, 32, 44):
        painter.drawEllipse(QPointF(x, 27), 3.5, 3.5)


def _canvas(size: int) -> tuple[QPixmap, QPainter]:
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    return pixmap, painter


def chat_icon(color: str = "#3c3c43") -> QIcon:
    pixmap, painter = _canvas(SIZE)
    _draw_bubble(painter, color, "#ffffff")
    painter.end()
    return QIcon(pixmap)


def app_icon() -> QIcon:
    """The app's icon, from its vector source in resources/ (window and dock icon)."""
    return QIcon(str(resource(APP_ICON)))
