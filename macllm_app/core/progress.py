"""Helpers for `progress(fraction, message)` callbacks (`types.ProgressCallback`)."""

from __future__ import annotations

from macllm_app.core.types import ProgressCallback


def monotonic(progress: ProgressCallback | None) -> ProgressCallback:
    """Forward progress clamped to [0, 1] and never going backwards."""
    if progress is None:
        return lambda _f, _msg: None
    best = [0.0]

    def report(fraction: float, message: str) -> None:
        best[0] = max(best[0], min(fraction, 1.0))
        progress(best[0], message)

    return report


def span(progress: ProgressCallback, start: float, end: float) -> ProgressCallback:
    """Map a sub-task's 0..1 onto start..end of the whole."""
    return lambda f, msg: progress(start + (end - start) * min(max(f, 0.0), 1.0), msg)
