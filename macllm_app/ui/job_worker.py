"""A worker that runs a core `Job` (a function in a child process) for the GUI.

It relays the job's progress as `progress(fraction, message)` and ends with
exactly one of `finished(result)`, `failed(message)` or `cancelled()`, on the
GUI thread like every worker. The job itself never runs in the GUI process,
so it may import mlx, crash or be killed without harm.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from macllm_app.core.jobs import Job
from macllm_app.ui.workers import Worker


class JobWorker(Worker):
    """Runs `Job(target, args, kwargs, ...)`; see `macllm_app.core.jobs`."""

    def __init__(self, target: str, args: tuple[Any, ...] = (),
                 kwargs: dict[str, Any] | None = None, *, title: str = "The job",
                 cancel_grace_s: float | None = None,
                 after_crash: Callable[[], None] | None = None) -> None:
        super().__init__()
        self.job = Job(target, args, kwargs, title=title, cancel_grace_s=cancel_grace_s,
                       after_crash=after_crash)

    def work(self) -> object:
        return self.job.run(self._progress)

    def _progress(self, fraction: float, message: str) -> None:
        self.progress.emit(fraction, message)

    def cancel(self) -> None:
        """Ask the job to stop; it ends as cancelled unless it had already finished.

        A job that completed while the cancel was on its way still reports
        `finished`, because its result (a new model folder) exists.
        """
        self.job.cancel()
