"""A 500-message conversation opens quickly, and streaming into it costs what it costs
in a short one: only the streaming message's open tail is re-rendered, at most every
~50 ms; its completed Markdown blocks are rendered once.
(bench/ measures this properly; these are the structural guarantees.)"""

from __future__ import annotations

import statistics
import time
from typing import Any

import pytest
from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QApplication, QWidget

from macllm_app.core.chat.store import ChatStore
from macllm_app.ui.panes.chat import message_view, stream_body
from macllm_app.ui.panes.chat.markdown import render_markdown
from macllm_app.ui.panes.chat.message_widget import MessageWidget
from macllm_app.ui.panes.chat.reply_buffer import ReplyBuffer
from tests.support.gui_helpers import seed_conversation

pytestmark = [pytest.mark.gui, pytest.mark.slow]

REPLY = ("Here is some **markdown** with a list:\n\n- one\n- two\n\n"
         "```python\nfor i in range(3):\n    print(i)\n```\n")


class _Resizes(QObject):
    """Counts Resize events of the stored messages' widgets."""

    def __init__(self, widgets: list[QWidget]) -> None:
        super().__init__()
        self.count = 0
        for widget in widgets:
            widget.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Resize:
            self.count += 1
        return False


def _stream(qtbot: Any, view: Any, tokens: int) -> tuple[list[float], int]:
    """Feed `tokens` deltas as a fast engine would; returns event-loop turn times.

    Checks the streaming structure on the way: completed Markdown blocks are rendered
    once each (into labels kept as they are), and every later render is of the open
    tail only."""
    renders = 0
    resizes = _Resizes(view.message_widgets())
    original = MessageWidget.stream_text
    rendered: list[str] = []

    def counting(widget: MessageWidget, text: str) -> None:
        nonlocal renders
        assert widget is view.streaming, "only the streaming message may re-render"
        renders += 1
        original(widget, text)

    def recording(text: str) -> Any:
        rendered.append(text)
        return render_markdown(text)

    turns: list[float] = []
    reply = ReplyBuffer()
    view.begin_stream(None, reply)
    widget = view.streaming
    first_block = None
    MessageWidget.stream_text = counting  # type: ignore[method-assign]
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(stream_body, "render_markdown", recording)
            for i in range(tokens):
                reply.append(f" word{i}" if i % 40 else "\n\n")
                view.reply_grew()
                start = time.perf_counter()
                QApplication.processEvents()
                turns.append(time.perf_counter() - start)
                if i % 8 == 0:
                    qtbot.wait(2)
                if first_block is None and widget.stream_body and widget.stream_body.blocks:
                    first_block = widget.stream_body.blocks[0]
                    first_html = first_block.text()
            view._render_stream()  # what is still coalesced
            blocks = [b.strip() for b in widget.text.split("\n\n") if b.strip()]
            body = widget.stream_body
            assert body is not None and len(body.blocks) == len(blocks) - 1
            assert body.blocks[0] is first_block and first_block.text() == first_html
            done = [text for text in rendered if text.strip() in blocks[:-1]]
            assert sorted(t.strip() for t in done) == sorted(blocks[:-1]), \
                "each completed block is rendered exactly once"
            tails = [text for text in rendered if text not in done]
            assert all(blocks[-1].startswith(t.strip()) or "\n\n" not in t.strip()
                       for t in tails)
            assert max(map(len, rendered)) <= max(map(len, blocks)) + 2, \
                "a render covered more than the open block"
    finally:
        MessageWidget.stream_text = original  # type: ignore[method-assign]
    assert resizes.count == 0, "stored messages were laid out again while streaming"
    return turns, renders


def test_streamed_reply_ends_as_the_stored_message_shows(qtbot: Any, make_window: Any) -> None:
    text = REPLY + "\nMore after the code.\n\n```\nkept\n\nin one fence\n```\nend"
    with ChatStore() as store:
        conversation = seed_conversation(store, [("hi", text)])
        window = make_window(load=False, store=store)
        view = window.chat.view
        window.chat.open_conversation(conversation)
        history = view.message_widgets()
        stored = history[-1]
        reply = ReplyBuffer()
        view.begin_stream("again", reply)
        streaming = view.streaming
        for start in range(0, len(text), 3):
            reply.append(text[start:start + 3])
            view.reply_grew()
            qtbot.wait(1)
        view._render_stream()  # what is still coalesced
        assert streaming.stream_body is not None
        assert view.streamed_text() == text
        code = [label for label in streaming.stream_body.blocks if "copy:0" in label.text()]
        assert len(code) == 1 and "<pre" in code[0].text()
        code[0].linkActivated.emit("copy:0")  # each block's links name its own code
        assert QApplication.clipboard().text() == "for i in range(3):\n    print(i)"
        # The turn is stored (as a session stores it); its messages take the streamed
        # ones' place below the history, whose widgets stay as they were.
        user = store.add_message(conversation, "user", "again")
        row = store.start_reply(conversation, user.id)
        store.finish_reply(row.id, reply.text(), "complete", {"engine": "llama.cpp"})
        view.finish_stream([user, store.get_message(row.id)])
        assert view.streaming is None and view.streamed_text() == ""
        widgets = view.message_widgets()
        assert widgets[:len(history)] == history, "the history was rebuilt"
        finished = widgets[-1]
        assert finished.message is not None and finished.message.id == row.id
        assert [m.id for m in view.messages()][-2:] == [user.id, row.id]
        assert finished.body.text() == stored.body.text() == render_markdown(text).html
        assert finished.code_blocks() == stored.code_blocks() == [
            "for i in range(3):\n    print(i)", "kept\n\nin one fence"]
        finished.body.linkActivated.emit("copy:1")
        assert QApplication.clipboard().text() == "kept\n\nin one fence"


def test_block_splitter_keeps_fences_whole() -> None:
    splitter = stream_body.BlockSplitter()
    text = "para one\n\n```py\na\n\nb\n```\n\n~~~~\n```\n\n~~~~\n\ntail"
    done: list[str] = []
    for end in range(1, len(text) + 1):
        done += splitter.feed(text[:end])
    assert [block.text.rstrip("\n") for block in done] == [
        "para one", "```py\na\n\nb\n```", "~~~~\n```\n\n~~~~"]
    assert splitter.tail == "tail"


def test_block_splitter_cuts_long_paragraphs_after_sentences() -> None:
    sentence = "A plain sentence with **bold** words in it, going on. "
    text = sentence * 12 + "\n\n- " + "a list item that is long " * 20
    splitter = stream_body.BlockSplitter()
    pieces = [block for end in range(1, len(text) + 1) for block in splitter.feed(text[:end])]
    assert len(pieces) > 2 and all(p.joined for p in pieces[:-1]) and not pieces[-1].joined
    assert all(p.text.endswith(". ") for p in pieces[:-1])
    assert "".join(p.text for p in pieces).rstrip() == (sentence * 12).rstrip()
    assert all(len(p.text) <= stream_body.PARAGRAPH_LIMIT + len(sentence) for p in pieces)
    assert splitter.tail == "- " + "a list item that is long " * 20  # lists stay whole


@pytest.mark.parametrize("turns_count", [250])
def test_open_and_stream_in_a_500_message_conversation(qtbot: Any, make_window: Any,
                                                       turns_count: int) -> None:
    with ChatStore() as store:
        short = seed_conversation(store, [("hi", REPLY)] * 5, "short")
        long = seed_conversation(store, [(f"question {i}", REPLY) for i in range(turns_count)],
                                 "long")
        assert store.message_count(long) == 500
        window = make_window(load=False, store=store)
        pane = window.chat
        view = pane.view

        start = time.perf_counter()
        pane.open_conversation(long)
        QApplication.processEvents()
        opened_s = time.perf_counter() - start
        assert len(view.message_widgets()) <= message_view.FIRST_BATCH + message_view.BATCH
        qtbot.waitUntil(lambda: len(view.message_widgets()) == message_view.WINDOW)
        assert view.earlier_button.isVisible()
        assert opened_s < 3.0, f"opening took {opened_s:.2f} s"

        long_turns, long_renders = _stream(qtbot, view, 512)
        pane.open_conversation(short)
        short_turns, short_renders = _stream(qtbot, view, 512)

    print(f"open {opened_s * 1000:.0f} ms; renders {long_renders}/{short_renders}; "
          f"median turn {statistics.median(long_turns) * 1e3:.2f}/"
          f"{statistics.median(short_turns) * 1e3:.2f} ms; worst {max(long_turns) * 1e3:.1f}/"
          f"{max(short_turns) * 1e3:.1f} ms")
    # Deltas are coalesced: far fewer renders than tokens.
    assert long_renders < 512 / 4 and short_renders < 512 / 4
    long_median = statistics.median(long_turns)
    short_median = statistics.median(short_turns)
    assert long_median < max(3 * short_median, 0.002), (long_median, short_median)
    # The streaming tail grows, so compare like with like: the worst turn stays small.
    assert max(long_turns) < 0.25, max(long_turns)


def test_show_earlier_adds_a_batch(qtbot: Any, make_window: Any) -> None:
    with ChatStore() as store:
        conversation = seed_conversation(store, [(f"q{i}", "a") for i in range(60)])
        window = make_window(load=False, store=store)
        view = window.chat.view
        window.chat.open_conversation(conversation)
        assert view.earlier_button.text() == "Show 40 earlier messages (80 hidden)"
        qtbot.waitUntil(lambda: len(view.message_widgets()) == message_view.WINDOW)
        view.earlier_button.click()
        assert len(view.message_widgets()) == 2 * message_view.WINDOW
        first_id = store.active_path(conversation)[0].id
        view.reveal(first_id)
        assert len(view.message_widgets()) == 120
        assert not view.earlier_button.isVisible()
