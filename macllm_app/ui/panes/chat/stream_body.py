"""The body of a reply while it streams: completed Markdown blocks plus an open tail.

Re-rendering the whole reply on every tick costs O(reply length) each time (the
Markdown, then the label's layout of the full document). Instead the text is cut
into blocks: a blank line outside an open code fence ends one. Each completed block
is rendered once, into its own label, and never touched again; only the tail (the
text after the last completed block) is rendered again on each tick. When the
stream ends, the message renders the full text as one document, as stored messages
are shown, and this widget goes away.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from PySide6.QtCore import QCoreApplication, QEvent, Qt
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget

from macllm_app.ui.panes.chat.markdown import render_markdown

PLACEHOLDER = '<span style="color:#9aa0a6;">…</span>'
BLOCK_SPACING = 8
PARAGRAPH_LIMIT = 200   # characters of an open paragraph before it is cut
MIN_PIECE = 60          # the shortest piece cut from a paragraph

LinkHandler = Callable[[str, list[str]], None]   # href, the code blocks of its label


class Block(NamedTuple):
    text: str
    joined: bool   # a piece of a long paragraph that goes on in the next block


def _balanced(text: str) -> bool:
    """No inline markup left open in `text` (so it renders alone as it does inside)."""
    return all(text.count(mark) % 2 == 0 for mark in ("`", "*", "_", "~")) \
        and text.count("[") == text.count("]")


def _starts_plain(text: str) -> bool:
    """`text` begins a plain paragraph (no list item, heading, quote, table, code)."""
    return bool(text) and (text[0].isalpha() or text[0] in "\"'(") \
        and not text.startswith(("* ", "+ ", "- "))


class BlockSplitter:
    """Cuts a growing text into completed Markdown blocks and an open tail.

    `feed` takes the whole text so far (each call extends the previous one) and
    scans only the lines it has not seen, so its cost follows the new text. A plain
    paragraph longer than PARAGRAPH_LIMIT is cut too, after a sentence (or, if it
    has none, a comma or space), so the tail stays short however long it runs; the
    pieces are shown without a gap, and the finished reply is one paragraph again."""

    def __init__(self) -> None:
        self._text = ""
        self._start = 0      # where the open block begins
        self._scan = 0       # where the first line not yet scanned begins
        self._fence = ""     # the open fence's marker (``` or ~~~ and longer), or ""

    def feed(self, text: str) -> list[Block]:
        """Blocks completed by the text added since the last call."""
        self._text = text
        done: list[Block] = []
        while (end := text.find("\n", self._scan)) >= 0:
            line = text[self._scan:end].strip()
            self._scan = end + 1
            if self._fence:
                if line.startswith(self._fence) and not line.strip(self._fence[0]):
                    self._fence = ""
            elif line.startswith(("```", "~~~")):
                self._fence = line[:len(line) - len(line.lstrip(line[0]))]
            elif not line:
                block = text[self._start:end]
                if block.strip():
                    done.append(Block(block, False))
                self._start = self._scan
        while (cut := self._paragraph_cut()) > 0:
            done.append(Block(text[self._start:cut], True))
            self._start = cut
        return done

    def _paragraph_cut(self) -> int:
        """Where to cut the open block, if it is a long plain paragraph; else 0."""
        start, text = self._start, self._text
        if self._fence or len(text) - start <= PARAGRAPH_LIMIT or self._scan > start:
            return 0  # short, in a fence, or more than one line (lists, tables...)
        head = text[start:start + 8]
        if len(head) - len(head.lstrip(" ")) > 3 or not _starts_plain(head.lstrip(" ")):
            return 0
        tiers: list[tuple[str, ...]] = [(". ", "! ", "? ")]
        if len(text) - start > PARAGRAPH_LIMIT * 3 // 2:
            tiers.append((", ", " "))  # no sentence ends: a comma or a space will do
        for marks in tiers:
            for mark in marks:
                end = len(text)
                for _ in range(8):  # the last few candidates only
                    index = text.rfind(mark, start + MIN_PIECE, end)
                    if index < 0:
                        break
                    cut = index + len(mark)
                    if _starts_plain(text[cut:cut + 3]) and _balanced(text[start:cut]):
                        return cut
                    end = index
        return 0

    @property
    def tail(self) -> str:
        return self._text[self._start:]


def body_label() -> QLabel:
    """A label for a message's text, as rich text with clickable links."""
    label = QLabel()
    label.setObjectName("messageBody")
    label.setTextFormat(Qt.TextFormat.RichText)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
    label.setOpenExternalLinks(False)
    label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
    return label


class StreamBody(QWidget):
    """Labels for the completed blocks of a streaming reply, then one for its tail.

    Placed by hand with a fixed height, like StackBox: a completed block is measured
    once (again only if the width changes), so a layout pass measures the tail alone;
    in a QVBoxLayout every block label was moved and resized again on each pass."""

    def __init__(self, on_link: LinkHandler, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("streamBody")
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self.setFixedHeight(0)
        self._on_link = on_link
        self._splitter = BlockSplitter()
        self.blocks: list[QLabel] = []
        self._heights: list[int] = []
        self._gaps: list[int] = []       # the spacing after each block
        self._blocks_height = 0          # the blocks and the spacing after each
        self._width = self.width()
        self._tail_codes: list[str] = []
        self._tail_text: str | None = None
        self.tail = body_label()
        self.tail.setParent(self)
        self.tail.linkActivated.connect(lambda href: self._on_link(href, self._tail_codes))
        self.tail.setText(PLACEHOLDER)
        self._place()

    def show_text(self, text: str) -> None:
        """Show `text` (the whole reply so far, extending the last one shown). The
        labels are measured and placed in the next layout pass, as a layout would."""
        for block in self._splitter.feed(text):
            self._add_block(block)
        tail = self._splitter.tail
        if tail != self._tail_text:
            self._tail_text = tail
            if tail.strip():
                rendered = render_markdown(tail)
                self._tail_codes = rendered.code_blocks
                self.tail.setText(rendered.html)
                self.tail.setVisible(True)
            elif self.blocks:
                self.tail.clear()
                self.tail.setVisible(False)
            else:
                self.tail.setText(PLACEHOLDER)
        QCoreApplication.postEvent(self, QEvent(QEvent.Type.LayoutRequest))  # compressed

    def _add_block(self, block: Block) -> None:
        rendered = render_markdown(block.text)
        codes = rendered.code_blocks
        label = body_label()
        label.hide()  # until placed
        label.setParent(self)
        label.linkActivated.connect(lambda href: self._on_link(href, codes))
        label.setText(rendered.html)
        self.blocks.append(label)
        self._gaps.append(0 if block.joined else BLOCK_SPACING)

    def _measure(self, label: QLabel) -> int:
        label.ensurePolished()
        return max(label.heightForWidth(self._width), label.minimumSizeHint().height())

    def _place(self) -> None:
        """Place the blocks not placed yet (each once), then the tail."""
        for index in range(len(self._heights), len(self.blocks)):
            label = self.blocks[index]
            height = self._measure(label)
            label.setGeometry(0, self._blocks_height, self._width, height)
            label.show()
            self._heights.append(height)
            self._blocks_height += height + self._gaps[index]
        gap = self._gaps[-1] if self._gaps else 0
        height = self._measure(self.tail) if not self.tail.isHidden() else -gap
        if height > 0:
            self.tail.setGeometry(0, self._blocks_height, self._width, height)
        self.setFixedHeight(max(0, self._blocks_height + height))

    def _relayout(self) -> None:
        """The width changed: measure every block again (rare; not per tick)."""
        self._width = self.width()
        self._heights = []
        self._blocks_height = 0
        self._place()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        if event.size().width() != self._width:
            self._relayout()

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.LayoutRequest:
            self._place()  # new text, or the tail changed its size hint
        return super().event(event)
