"""A vertical stack of widgets placed by hand, with a fixed height.

Why not a QVBoxLayout: a layout's height-for-width is recomputed for every
child whenever any sibling of the box changes size, so a long chat paid for
all its messages each time the streaming reply grew by a line. This box
measures its children only when they or its width change, and presents a
plain fixed height to the layout around it.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QEvent
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QSizePolicy, QWidget


class StackBox(QWidget):
    def __init__(self, spacing: int = 10, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._spacing = spacing
        self._items: list[QWidget] = []
        self._width = -1
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self.setFixedHeight(0)

    def widgets(self) -> list[QWidget]:
        return list(self._items)

    def set_widgets(self, widgets: Sequence[QWidget]) -> None:
        """Show exactly `widgets`, top to bottom (others are hidden, not deleted)."""
        keep = set(map(id, widgets))
        for widget in self._items:
            if id(widget) not in keep:
                widget.hide()
        for widget in widgets:
            self.adopt(widget)
        self._items = list(widgets)
        self.relayout()

    def adopt(self, widget: QWidget) -> None:
        """Make `widget` a visible child (styled now), before set_widgets places it."""
        if widget.parentWidget() is not self:
            widget.setParent(self)
        widget.show()

    def relayout(self) -> None:
        width = self.width()
        self._width = width
        y = 0
        for widget in self._items:
            widget.ensurePolished()
            if widget.hasHeightForWidth():
                height = widget.heightForWidth(width)
            else:
                height = widget.sizeHint().height()
            height = max(height, widget.minimumSizeHint().height())
            widget.setGeometry(0, y, width, height)
            y += height + self._spacing
        self.setFixedHeight(max(0, y - self._spacing))
        self.setVisible(bool(self._items))  # an empty box takes no spacing in its parent

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        if event.size().width() != self._width:
            self.relayout()

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.LayoutRequest:
            self.relayout()  # a child changed its size hint
        return super().event(event)
