"""A 500-message conversation opens quickly, and streaming into it costs what it costs
in a short one: only the streaming message is re-rendered, at most every ~50 ms.
(bench/ measures this properly; these are the structural guarantees.)"""

from __future__ import annotations

import statistics
import time
from typing import Any

import pytest
from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QApplication, QWidget

from macllm_app.core.chat.store import ChatStore
from macllm_app.ui.panes.chat import message_view
from macllm_app.ui.panes.chat.message_widget import MessageWidget
from tests.gui.helpers import seed_conversation

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
    """Feed `tokens` deltas as a fast engine would; returns event-loop turn times."""
    renders = 0
    resizes = _Resizes(view.message_widgets())
    original = MessageWidget.set_text

    def counting(widget: MessageWidget, text: str) -> None:
        nonlocal renders
        assert widget is view.streaming, "only the streaming message may re-render"
        renders += 1
        original(widget, text)

    turns: list[float] = []
    view.begin_stream(None)
    MessageWidget.set_text = counting  # type: ignore[method-assign,assignment]
    try:
        for i in range(tokens):
            view.append_delta(f" word{i}" if i % 40 else "\n\n")
            start = time.perf_counter()
            QApplication.processEvents()
            turns.append(time.perf_counter() - start)
            if i % 8 == 0:
                qtbot.wait(2)
        view.end_stream()
    finally:
        MessageWidget.set_text = original  # type: ignore[method-assign]
    assert resizes.count == 0, "stored messages were laid out again while streaming"
    return turns, renders


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
