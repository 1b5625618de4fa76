"""Two replies to the same message, side by side: engine, speed, tokens, memory.

Shown under a reply made by "Run on the other engine" (its stats name the
reply it is compared with).
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QGridLayout, QLabel, QWidget

from macllm_app.core.chat.records import StoredMessage
from macllm_app.core.chat.store import ChatStore

MISSING = "–"
ROW_TITLES = ("Engine", "Time to first token", "Prompt", "Decode", "Tokens", "Peak memory")


def _seconds(value: Any) -> str:
    return f"{float(value):.2f} s" if value else MISSING


def _speed(value: Any) -> str:
    return f"{float(value):.1f} tok/s" if value else MISSING


def _bytes(value: Any) -> str:
    """Binary units, as the library shows sizes."""
    if not value:
        return MISSING
    mib = float(value) / 1024**2
    return f"{mib / 1024:.2f} GB" if mib >= 1024 else f"{mib:.0f} MB"


def stats_column(stats: dict[str, Any] | None) -> tuple[str, ...]:
    """One reply's values, in the order of ROW_TITLES."""
    s = stats or {}
    tokens = f"{int(s['generated_tokens'])}" if "generated_tokens" in s else MISSING
    if s.get("prompt_tokens"):
        tokens += f" (prompt {int(s['prompt_tokens'])})"
    return (str(s.get("engine") or MISSING), _seconds(s.get("ttft_s")),
            _speed(s.get("prompt_tps")), _speed(s.get("decode_tps")), tokens,
            _bytes(s.get("peak_rss_bytes")))


def comparison_rows(before: dict[str, Any] | None,
                    after: dict[str, Any] | None) -> list[tuple[str, str, str]]:
    """(row title, earlier reply's value, this reply's value) for each row."""
    return list(zip(ROW_TITLES, stats_column(before), stats_column(after), strict=True))


def compared_reply(store: ChatStore, reply: StoredMessage) -> StoredMessage | None:
    """The reply `reply` was compared with (its stats say which), if it is in its chat."""
    wanted = (reply.stats or {}).get("compared_with")
    if not isinstance(wanted, int):
        return None
    try:
        other = store.get_message(wanted)
    except KeyError:
        return None
    return other if other.conversation_id == reply.conversation_id else None


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
