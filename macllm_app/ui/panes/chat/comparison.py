"""The table under a reply made by "Run on the other engine": both replies' engine,
speed, tokens and memory side by side (the rows come from `core.chat.comparison`)."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QGridLayout, QLabel, QWidget

from macllm_app.core.chat.comparison import comparison_rows
from macllm_app.core.chat.records import StoredMessage


class ComparisonTable(QFrame):
    """The earlier reply's stats next to this reply's; the header links to the earlier one."""

    show_reply = Signal(int)  # message id of the earlier reply

    def __init__(self, earlier: StoredMessage, this: StoredMessage,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("compareTable")
        grid = QGridLayout(self)
        grid.setContentsMargins(10, 6, 10, 6)
        grid.setHorizontalSpacing(16)
        grid.setVerticalSpacing(2)
        link = QLabel("<a href='earlier'>Earlier reply</a>")
        link.setObjectName("compareEarlier")
        link.setToolTip("Show the earlier reply")
        link.linkActivated.connect(lambda _href: self.show_reply.emit(earlier.id))
        header = (QLabel(), link, QLabel("This reply"))
        for column, label in enumerate(header):
            font = label.font()
            font.setBold(True)
            label.setFont(font)
            grid.addWidget(label, 0, column)
        self.rows = comparison_rows(earlier.stats, this.stats)
        for row, values in enumerate(self.rows, start=1):
            for column, text in enumerate(values):
                label = QLabel(text)
                label.setObjectName(f"compareCell{row}_{column}")
                if column > 0:
                    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
                grid.addWidget(label, row, column)
        grid.setColumnStretch(3, 1)
        self.setToolTip("Peak memory: the engine host process's peak resident memory.")

    def cell(self, row: int, column: int) -> str:
        """The text at `row` (0: Engine) and `column` (0: title, 1: earlier, 2: this)."""
        return self.rows[row][column]
