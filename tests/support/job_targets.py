"""Tiny job functions for the job-runner tests; the spawned child imports them by name."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from macllm_app.core.errors import Cancelled, UserError

Progress = Callable[[float, str], None]


def count(n: int, progress: Progress, should_stop: Callable[[], bool]) -> dict[str, int]:
    """Reports n steps and returns the child's pid with the count."""
    for i in range(n):
        if should_stop():
            raise Cancelled
        progress((i + 1) / n, f"step {i + 1} of {n}")
        time.sleep(0.01)
    return {"pid": os.getpid(), "count": n}


def until_stopped(progress: Progress, should_stop: Callable[[], bool]) -> None:
    """Reports progress until asked to stop; leaves a marker to show it saw the stop."""
    step = 0
    while not should_stop():
        step += 1
        progress(0.5, f"working {step}")
        time.sleep(0.02)
    raise Cancelled


def progress_only(marker: str, progress: Progress) -> str:
    """Takes no should_stop: the runner stops it at a progress report."""
    for step in range(10_000):
        progress(0.1, f"working {step}")
        time.sleep(0.01)
    Path(marker).write_text("ran to the end")
    return "done"


def stuck(marker: str, progress: Progress) -> None:
    """Reports once, then hangs in a 'native call' that never checks for a stop."""
    Path(marker).write_text("half-written")
    progress(0.2, "stuck")
    time.sleep(600)


def refuse(message: str) -> None:
    raise UserError(message)


def buggy() -> None:
    raise ValueError("bad value\nsecond line of detail")


def unpicklable() -> object:
    return lambda: None


def wait_to_be_killed(progress: Progress) -> None:
    progress(0.3, "waiting")
    time.sleep(600)


def report_squares(n: int, report: Callable[[object], None], progress: Progress) -> int:
    """Reports n values, faster than progress is passed on, then returns n."""
    for i in range(n):
        report({"i": i, "square": i * i})
        progress(i / n, f"value {i}")
    return n


def train_with_file_size_limit(plan: object, limit_bytes: int, progress: Progress,
                               should_stop: Callable[[], bool],
                               report: Callable[[object], None]) -> object:
    """The fine-tune job in a child whose files may not grow past `limit_bytes`, as on a
    disk that fills up: a write past it fails (EFBIG) instead of killing the child."""
    import resource
    import signal

    from macllm_app.core.finetune.train import train_run

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))
    return train_run(plan, progress, should_stop, report)  # type: ignore[arg-type]
