"""One message in the chat: text (Markdown for replies), actions, stats, branches,
and for a reply run on the other engine, both replies' stats side by side."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, QUrl, Signal, Slot
from PySide6.QtGui import QDesktopServices, QGuiApplication
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from macllm_app.core.chat.records import StoredMessage
from macllm_app.ui.panes.chat.comparison import ComparisonTable
from macllm_app.ui.panes.chat.formatting import STATUS_TEXT, stats_text
from macllm_app.ui.panes.chat.markdown import plain_html, render_markdown
from macllm_app.ui.panes.chat.stream_body import PLACEHOLDER, StreamBody, body_label

ROLE_NAMES = {"user": "You", "assistant": "Assistant", "system": "System"}


def _tool(text: str, tip: str, name: str) -> QToolButton:
    button = QToolButton()
    button.setText(text)
    button.setToolTip(tip)
    button.setObjectName(name)
    button.setAutoRaise(True)
    button.setCursor(Qt.CursorShape.PointingHandCursor)
    return button


class MessageWidget(QFrame):
    """Shows a stored message, or a pending/streaming one (`message` None)."""

    branch_requested = Signal(int)          # sibling message id to show
    edit_requested = Signal(int, str)       # user message id, its text
    compare_requested = Signal()            # "Run on the other engine" (last reply only)

    def __init__(self, role: str, message: StoredMessage | None = None,
                 siblings: tuple[int, list[int]] | None = None,
                 parent: QWidget | None = None, *,
                 compared: StoredMessage | None = None) -> None:
        super().__init__(parent)
        self.role = role
        self.message = message
        self.text = message.content if message is not None else ""
        self._code_blocks: list[str] = []
        self.stream_body: StreamBody | None = None
        self.setObjectName("message")
        self.setProperty("role", role)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)

        header = QHBoxLayout()
        header.setContentsMargins(0, 0, 0, 0)
        header.setSpacing(2)
        name = QLabel(ROLE_NAMES.get(role, role))
        name.setObjectName("messageRole")
        header.addWidget(name)
        header.addStretch(1)
        self.branch_label: QLabel | None = None
        if siblings is not None and len(siblings[1]) > 1:
            self._add_branch_switcher(header, *siblings)
        self.copy_button = _tool("Copy", "Copy this message", "copyMessage")
        self.copy_button.clicked.connect(self.copy_text)
        header.addWidget(self.copy_button)
        if role == "user" and message is not None:
            edit = _tool("Edit", "Edit and resend (keeps the old branch)", "editMessage")
            edit.clicked.connect(lambda: self.edit_requested.emit(message.id, message.content))
            header.addWidget(edit)
        self.compare_button: QToolButton | None = None
        if role == "assistant" and message is not None:
            self.compare_button = _tool("Run on the other engine", "", "compareEngines")
            self.compare_button.clicked.connect(self.compare_requested)
            self.compare_button.hide()  # the view shows it on the last reply
            header.addWidget(self.compare_button)

        self.body = body_label()
        self.body.linkActivated.connect(self._link)

        self.footer = QLabel()
        self.footer.setObjectName("messageStats")
        self.footer.setWordWrap(True)
        self.footer.hide()

        layout = self._layout = QVBoxLayout(self)
        layout.setContentsMargins(14, 8, 14, 10)
        layout.setSpacing(4)
        layout.addLayout(header)
        layout.addWidget(self.body)
        layout.addWidget(self.footer)
        self.comparison: ComparisonTable | None = None
        if compared is not None and message is not None:
            self.comparison = ComparisonTable(compared, message)
            self.comparison.show_reply.connect(self.branch_requested)
            layout.addWidget(self.comparison)
        self.set_text(self.text)
        if message is not None:
            self._show_status(message)

    def set_compare_action(self, shown: bool, text: str = "", enabled: bool = False,
                           tip: str = "") -> None:
        if self.compare_button is None:
            return
        if shown:
            self.compare_button.setText(text)
            self.compare_button.setEnabled(enabled)
            self.compare_button.setToolTip(tip)
        self.compare_button.setVisible(shown)

    def _add_branch_switcher(self, header: QHBoxLayout, index: int, ids: list[int]) -> None:
        back = _tool("‹", "Previous version", "branchPrevious")
        forward = _tool("›", "Next version", "branchNext")
        self.branch_label = QLabel(f"{index + 1}/{len(ids)}")
        self.branch_label.setObjectName("branchLabel")
        back.setEnabled(index > 0)
        forward.setEnabled(index < len(ids) - 1)
        back.clicked.connect(lambda: self.branch_requested.emit(ids[index - 1]))
        forward.clicked.connect(lambda: self.branch_requested.emit(ids[index + 1]))
        for widget in (back, self.branch_label, forward):
            header.addWidget(widget)

    # -- content ----------------------------------------------------------
    def set_text(self, text: str) -> None:
        """Show `text`; replies are rendered as Markdown."""
        self.text = text
        if self.role == "assistant":
            if not text:
                self.body.setText(PLACEHOLDER)
                self._code_blocks = []
                return
            rendered = render_markdown(text)
            self._code_blocks = rendered.code_blocks
            self.body.setText(rendered.html)
        else:
            self.body.setText(plain_html(text))

    def stream_text(self, text: str) -> None:
        """Show a reply still streaming: `text` extends the last one given. Only its
        open tail is rendered again; completed Markdown blocks keep their labels."""
        self.text = text
        if self.stream_body is None:
            self.stream_body = StreamBody(self._open_link)
            self._layout.insertWidget(self._layout.indexOf(self.body), self.stream_body)
            self.body.hide()
        self.stream_body.show_text(text)

    def set_stats_line(self, text: str, *, problem: bool = False) -> None:
        self.footer.setProperty("problem", problem)
        self.footer.setText(text)
        self.footer.setVisible(bool(text))
        self.footer.style().unpolish(self.footer)
        self.footer.style().polish(self.footer)

    def _show_status(self, message: StoredMessage) -> None:
        if message.role != "assistant":
            return
        parts = []
        if message.status != "complete":
            parts.append(STATUS_TEXT.get(message.status, message.status).upper())
        if message.error:
            parts.append(message.error)
        line = stats_text(message.stats)
        if line:
            parts.append(line)
        self.set_stats_line(" · ".join(parts), problem=message.status != "complete")

    # -- actions ------------------------------------------------------------
    @Slot()
    def copy_text(self) -> None:
        QGuiApplication.clipboard().setText(self.text)
        self.copy_button.setText("Copied")
        QTimer.singleShot(1500, self._reset_copy_button)

    @Slot()
    def _reset_copy_button(self) -> None:
        self.copy_button.setText("Copy")

    @Slot(str)
    def _link(self, href: str) -> None:
        self._open_link(href, self._code_blocks)

    @staticmethod
    def _open_link(href: str, code_blocks: list[str]) -> None:
        """`copy:N` copies code block N of the label clicked; web links open."""
        if href.startswith("copy:"):
            index = int(href.split(":", 1)[1])
            if 0 <= index < len(code_blocks):
                QGuiApplication.clipboard().setText(code_blocks[index])
            return
        url = QUrl(href)
        if url.scheme() in ("http", "https", "mailto"):
            QDesktopServices.openUrl(url)

    def code_blocks(self) -> list[str]:
        return list(self._code_blocks)
