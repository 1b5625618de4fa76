"""`macllm-app --self-test`: the real window, the real engine host, one short reply.

Runs in a throwaway profile (MACLLM_HOME in a temp folder) so it never
touches the user's chats. Exit 0 when a few tokens streamed into the chat,
1 with a one-line reason otherwise; bounded by a timeout.
"""

from __future__ import annotations

import os
import sys
import tempfile

WANTED_DELTAS = 3
PROMPT = "Say hello in one short sentence."


def run_self_test(timeout_s: float) -> int:
    with tempfile.TemporaryDirectory(prefix="macllm-selftest-") as home:
        os.environ["MACLLM_HOME"] = home
        try:
            reason = _run(timeout_s)
        except Exception as exc:  # the self-test reports every failure as one line
            reason = f"{type(exc).__name__}: {exc}"
    if reason:
        print(f"self-test failed: {reason}", file=sys.stderr)
        return 1
    print("self-test ok")
    return 0


def _run(timeout_s: float) -> str:
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from macllm_app.core import settings as settings_mod
    from macllm_app.core.logs import setup_logging
    from macllm_app.ui.crash import CrashHandler
    from macllm_app.ui.main_window import MainWindow

    setup_logging(to_file=False)
    app = QApplication.instance() or QApplication([sys.argv[0]])
    assert isinstance(app, QApplication)
    crash = CrashHandler(show_dialogs=False)
    crash.install()
    settings = settings_mod.Settings()
    settings.sampling.max_tokens = 24
    window = MainWindow(settings)
    outcome: dict[str, str] = {}
    deltas = 0

    def done(reason: str = "") -> None:
        if "reason" not in outcome:
            outcome["reason"] = reason
            app.quit()

    def on_token(_text: str) -> None:
        nonlocal deltas
        deltas += 1
        if deltas >= WANTED_DELTAS:
            done()

    def on_streaming(streaming: bool) -> None:
        if not streaming and "reason" not in outcome:
            shown = window.chat.view.messages()
            text = shown[-1].content if shown and shown[-1].role == "assistant" else ""
            done("" if text.strip() else "the reply ended without any text")

    def start() -> None:
        window.chat.send(PROMPT)

    window.chat.streaming_changed.connect(on_streaming)
    window.chat.token_received.connect(on_token)
    window.engine.load_failed.connect(lambda message: done(f"model load failed: {message}"))
    window.show()
    QTimer.singleShot(0, start)
    QTimer.singleShot(int(timeout_s * 1000), lambda: done(f"timed out after {timeout_s:g} s"))
    try:
        app.exec()
    finally:
        window.close()
        crash.uninstall()
    if crash.reports and not outcome.get("reason"):
        return f"unexpected error: {crash.reports[0]}"
    return outcome.get("reason", "the event loop ended early")
