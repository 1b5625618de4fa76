"""Global exception hooks: a bug gets a report dialog, a user error one line.

Exceptions raised in slots (Qt calls Python), in plain threads and in tasks
(`tasks.set_bug_reporter`) end here instead of killing the app. Hooks may fire
on any thread, so they only post to the GUI thread through a queued signal.
"""

from __future__ import annotations

import logging
import sys
import threading
import traceback
from types import TracebackType

from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtWidgets import QApplication, QMessageBox

from macllm_app.core.errors import Cancelled, RemoteBug, describe, is_bug
from macllm_app.ui.task_registry import set_bug_reporter

log = logging.getLogger("macllm.ui.crash")


class CrashHandler(QObject):
    """Installs `sys.excepthook` and `threading.excepthook`; shows what went wrong."""

    report = Signal(str, str, bool)  # summary, details, is_user_error

    def __init__(self, *, show_dialogs: bool = True) -> None:
        super().__init__()
        self.show_dialogs = show_dialogs
        self.reports: list[str] = []
        self.report.connect(self._show, Qt.ConnectionType.QueuedConnection)
        self._old_hooks = (sys.excepthook, threading.excepthook)

    def install(self) -> None:
        sys.excepthook = self._excepthook
        threading.excepthook = self._thread_hook
        set_bug_reporter(self.report_bug)

    def uninstall(self) -> None:
        sys.excepthook, threading.excepthook = self._old_hooks
        set_bug_reporter(None)

    def report_bug(self, exc: BaseException) -> None:
        """Offer a report for a bug a task raised (its traceback is logged already)."""
        if isinstance(exc, RemoteBug):
            details = f"{exc}\n\n{exc.remote_traceback}"
        else:
            details = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        self.report.emit(describe(exc), details, False)

    def _excepthook(self, kind: type[BaseException], exc: BaseException,
                    tb: TracebackType | None) -> None:
        self.handle(kind, exc, tb)

    def _thread_hook(self, args: threading.ExceptHookArgs) -> None:
        if args.exc_value is not None:
            self.handle(args.exc_type, args.exc_value, args.exc_traceback)

    def handle(self, kind: type[BaseException], exc: BaseException,
               tb: TracebackType | None) -> None:
        if issubclass(kind, KeyboardInterrupt):
            QApplication.quit()
            return
        if isinstance(exc, Cancelled):
            return
        if not is_bug(exc):
            log.warning("%s", exc)
            self.report.emit(describe(exc), "", True)
            return
        details = "".join(traceback.format_exception(kind, exc, tb))
        log.error("Unhandled exception:\n%s", details)
        self.report.emit(f"{kind.__name__}: {exc}", details, False)

    @Slot(str, str, bool)
    def _show(self, summary: str, details: str, is_user_error: bool) -> None:
        self.reports.append(summary)
        if not self.show_dialogs:
            return
        box = QMessageBox(QApplication.activeWindow())
        if is_user_error:
            box.setIcon(QMessageBox.Icon.Warning)
            box.setText(summary)
        else:
            box.setIcon(QMessageBox.Icon.Critical)
            box.setWindowTitle("MacLLM hit a bug")
            box.setText("Something went wrong inside MacLLM. Your chats are safe.")
            box.setInformativeText(summary)
            box.setDetailedText(details)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
