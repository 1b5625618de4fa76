"""`macllm-app --self-test [MODEL ...]`: the real window, the real engine host, one
short reply, then each MODEL opened as a file-open would open it (linked into the
library).

Runs in a throwaway profile (MACLLM_HOME in a temp folder) so it never touches
the user's chats. In a frozen bundle it first checks the bundle is whole
(`core.bundle_check`), and reports where its code was imported from. Exit 0 when
a few tokens streamed into the chat, every model was opened and the Monitor
pane drew a sample, 1 with a one-line reason otherwise; bounded by a timeout.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

WANTED_DELTAS = 3
PROMPT = "Say hello in one short sentence."


def run_self_test(timeout_s: float, paths: Sequence[str] = ()) -> int:
    reason = _bundle_reason()
    if reason:
        print(f"self-test failed: {reason}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="macllm-selftest-") as home:
        os.environ["MACLLM_HOME"] = home
        try:
            reason = _run(timeout_s, [str(Path(path).resolve()) for path in paths])
        except Exception as exc:  # the self-test reports every failure as one line
            reason = f"{type(exc).__name__}: {exc}"
    if reason:
        print(f"self-test failed: {reason}", file=sys.stderr)
        return 1
    print("self-test ok")
    return 0


def _bundle_reason() -> str:
    """'' when running from source or from a whole bundle, else what the bundle lacks."""
    from macllm_app.core.bundle_check import bundle_root, missing_parts

    root = bundle_root()
    if root is None:
        return ""
    import macllm_app

    print(f"frozen bundle at {root}; macllm_app from {Path(macllm_app.__file__).parent}")
    missing = missing_parts(root)
    return "; ".join(missing)


def _run(timeout_s: float, paths: list[str]) -> str:
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
        if deltas == WANTED_DELTAS:
            chatted()

    def on_streaming(streaming: bool) -> None:
        if not streaming and "reason" not in outcome and deltas < WANTED_DELTAS:
            shown = window.chat.view.messages()
            text = shown[-1].content if shown and shown[-1].role == "assistant" else ""
            if text.strip():
                chatted()
            else:
                done("the reply ended without any text")

    def chatted() -> None:
        if paths:
            open_models()
        else:
            check_monitor()

    def open_models() -> None:
        library = window.panes["library"]
        importer = library.importer  # type: ignore[attr-defined]
        importer.done.connect(on_imported)
        importer.run(paths, "link")  # what a file-open does once Link is chosen

    def on_imported(results: list[dict[str, object]]) -> None:
        errors = [str(r["error"]) for r in results if "error" in r]
        if errors:
            done(f"opening {errors[0]}")
        else:
            check_monitor()

    def check_monitor() -> None:
        """The Monitor pane draws its graphs (pyqtgraph, built on first show)."""
        window.monitor.sampled.connect(lambda _sample: QTimer.singleShot(0, monitor_drawn))
        window.show_pane("monitor")

    def monitor_drawn() -> None:
        pane = window.panes["monitor"]
        curves = getattr(pane, "curves", {})
        if any(len(curve.getData()[0]) for curve in curves.values()):
            done()

    def start() -> None:
        window.chat.send(PROMPT)

    window.chat.streaming_changed.connect(on_streaming)
    window.chat.token_received.connect(on_token)
    window.engine.load_failed.connect(lambda message: done(f"model load failed: {message}"))
    crash.report.connect(lambda summary, _details, _user: done(f"unexpected error: {summary}"))
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
