"""`MACLLM_STARTUP_PROBE=FILE`: record when the window became interactive and the GUI
process's idle memory, write them to FILE as JSON, and quit (used by bench/startup.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import psutil
from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QApplication

IDLE_AFTER_MS = 3000


class StartupProbe(QObject):
    def __init__(self, app: QApplication, path: str) -> None:
        super().__init__(app)
        self._app, self._path = app, Path(path)
        self._interactive_at = 0.0

    def start(self) -> None:
        # A zero-delay timer fires on the first turn of the running event loop.
        QTimer.singleShot(0, self._interactive)

    def _interactive(self) -> None:
        self._interactive_at = time.time()
        QTimer.singleShot(IDLE_AFTER_MS, self._idle)

    def _idle(self) -> None:
        rss = psutil.Process().memory_info().rss
        self._path.write_text(json.dumps({"interactive_at": self._interactive_at,
                                           "idle_rss_bytes": rss}))
        self._app.quit()
