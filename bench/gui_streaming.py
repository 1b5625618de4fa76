"""GUI responsiveness while the real engine streams 512 tokens into a conversation
that already has 500 messages (and, for comparison, into an empty one).

Measures the longest event-loop stall (a 1 ms timer's largest gap) and the GUI-thread
CPU time spent per appended piece (append + throttled Markdown re-render), comparing
the last 10 % of the reply with the first 10 %. CPU time (not wall time) because on a
2-core machine the engine's two threads preempt the GUI thread at random.
Targets: stall <= 50 ms; last 10 % / first 10 % <= 1.2.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from common import verdict

REPLY = ("Here is a **short** answer with a list:\n\n- first point\n- second point\n\n"
         "```python\ndef add(a, b):\n    return a + b\n```\n\nAnything else?")
PROMPT = "Write a 1000-word essay about the history of the bicycle."


class Probe:
    """Wraps the chat controller's handling of each streamed piece (buffer, pane, view)
    and the message view's throttled render, to time GUI work per piece."""

    def __init__(self) -> None:
        self.pieces = 0
        self.cost: list[float] = []  # GUI seconds attributed to each piece

    def wrap(self, controller_cls: Any, view_cls: Any) -> None:
        from macllm_app.core.types import TextDelta

        on_event, render = controller_cls._on_event, view_cls._render_stream
        probe = self

        clock = time.thread_time

        def timed_event(controller: Any, turn: Any, event: Any) -> None:
            start = clock()
            on_event(controller, turn, event)
            if isinstance(event, TextDelta):
                probe.cost.append(clock() - start)
                probe.pieces += 1

        def timed_render(view: Any) -> None:
            start = clock()
            render(view)
            if probe.cost:
                probe.cost[-1] += clock() - start

        controller_cls._on_event, view_cls._render_stream = timed_event, timed_render


def run_reply(app: Any, pane: Any, probe: Probe, stall_timer: Any,
              gaps: list[float]) -> tuple[list[float], float]:
    probe.cost.clear()
    gaps.clear()
    pane.send(PROMPT)
    last = time.perf_counter()

    def tick() -> None:
        nonlocal last
        now = time.perf_counter()
        gaps.append(now - last)
        last = now

    stall_timer.timeout.connect(tick)
    stall_timer.start()
    deadline = time.monotonic() + 300
    while pane.is_streaming() and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.0005)
    stall_timer.stop()
    stall_timer.timeout.disconnect(tick)
    return list(probe.cost), max(gaps[1:], default=0.0)


def tenth_ratio(costs: list[float]) -> tuple[float, float]:
    n = max(1, len(costs) // 10)
    first, last = statistics.mean(costs[:n]), statistics.mean(costs[-n:])
    return first, last


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--history", type=int, default=500, help="messages already there")
    args = parser.parse_args()
    os.environ["MACLLM_HOME"] = tempfile.mkdtemp(prefix="macllm-bench-")

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from macllm_app.core.chat.store import ChatStore
    from macllm_app.core.settings import Settings
    from macllm_app.ui.main_window import MainWindow
    from macllm_app.ui.panes.chat.controller import ChatController
    from macllm_app.ui.panes.chat.message_view import MessageView

    app = QApplication.instance() or QApplication(sys.argv)
    probe = Probe()
    probe.wrap(ChatController, MessageView)
    settings = Settings()
    settings.engine.n_threads = 2
    settings.engine.n_ctx = 2048
    settings.sampling.max_tokens = args.tokens
    settings.sampling.temperature = 0.0
    store = ChatStore()
    long_id = store.create_conversation(settings={"max_tokens": args.tokens,
                                                  "temperature": 0.0}).id
    for i in range(args.history // 2):
        message = store.add_message(long_id, "user", f"Question {i}: how do I add numbers?")
        reply = store.start_reply(long_id, message.id)
        store.finish_reply(reply.id, REPLY, "complete", {"generated_tokens": 30})
    # The long history is display-only: the model sees the system prompt and the last
    # turns that fit its window, so both runs below ask it the same thing.
    window = MainWindow(settings, store)
    window.show()
    wait_until(app, window.engine.is_ready, 120)
    pane = window.chat
    stall_timer = QTimer()
    stall_timer.setInterval(1)
    gaps: list[float] = []
    results: dict[str, tuple[list[float], float, int]] = {}
    for label in ("empty", "long"):
        if label == "empty":
            pane.new_conversation()
            store.update_conversation(pane.conversation_id,
                                      settings={"max_tokens": args.tokens, "temperature": 0.0})
        else:
            started = time.perf_counter()
            pane.open_conversation(long_id)
            app.processEvents()
            print(f"opening the {args.history}-message conversation took "
                  f"{(time.perf_counter() - started) * 1000:.0f} ms on the GUI thread")
        costs, stall = run_reply(app, pane, probe, stall_timer, gaps)
        reply = store.active_path(pane.conversation_id)[-1]
        tokens = int((reply.stats or {}).get("generated_tokens", 0))
        results[label] = (costs, stall, tokens)
    window.close()

    for label, (costs, stall, tokens) in results.items():
        first, last = tenth_ratio(costs)
        print(f"{label:5}: {tokens} tokens in {len(costs)} pieces; GUI time per piece "
              f"first 10% {first * 1e3:.3f} ms, last 10% {last * 1e3:.3f} ms, "
              f"mean {statistics.mean(costs) * 1e3:.3f} ms; longest stall {stall * 1e3:.1f} ms")
    costs, stall, _ = results["long"]
    first, last = tenth_ratio(costs)
    print(verdict(f"longest event-loop stall ms ({args.history} messages)", stall * 1e3, 50,
                  higher_is_better=False))
    print(verdict("per-piece GUI time, last 10% / first 10%", last / first, 1.2,
                  higher_is_better=False))
    mean_long = statistics.mean(results["long"][0])
    mean_empty = statistics.mean(results["empty"][0])
    print(verdict(f"per-piece GUI time, {args.history} messages / empty chat",
                  mean_long / mean_empty, 1.2, higher_is_better=False))
    return 0


def wait_until(app: Any, condition: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit("the model did not load in time")
        app.processEvents()
        time.sleep(0.01)


if __name__ == "__main__":
    sys.exit(main())
