"""Process and system memory readings (psutil + the platform layer)."""

from __future__ import annotations

import psutil

from macllm_app.core.platform import current


def current_rss_bytes(pid: int | None = None) -> int:
    try:
        return int(psutil.Process(pid).memory_info().rss)
    except psutil.Error:
        return 0


def peak_rss_bytes() -> int:
    """Peak resident memory of this process since it started."""
    return current().peak_rss_bytes()


def total_ram_bytes() -> int:
    return int(psutil.virtual_memory().total)


def available_ram_bytes() -> int:
    return int(psutil.virtual_memory().available)
