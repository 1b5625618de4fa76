"""Periodic work off the GUI thread: a QTimer that starts a task each beat."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from PySide6.QtCore import QObject, QTimer, Slot

from macllm_app.ui.tasks import Task

T = TypeVar("T")


class Poll(QObject, Generic[T]):
    """Runs `fn` on the pool every `interval_ms` while started; each result goes to
    `on_result`. A beat is skipped while the previous run is still going."""

    def __init__(self, owner: QObject, interval_ms: int, fn: Callable[[], T],
                 on_result: Callable[[T], None], *, name: str = "poll") -> None:
        super().__init__(owner)
        self._fn = fn
        self._on_result = on_result
        self._name = name
        self._task: Task[T, None] | None = None
        self.timer = QTimer(self)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.poll_now)

    def start(self, *, at_once: bool = True) -> None:
        self.timer.start()
        if at_once:
            self.poll_now()

    def stop(self) -> None:
        self.timer.stop()

    @Slot()
    def poll_now(self) -> None:
        if self._task is not None and self._task.running:
            return
        self._task = Task.call(self, self._fn, key=self._name, name=self._name).on_done(
            self._on_result).start()
