"""The only place with macOS- or Linux-specific calls. `current()` picks the twin."""

from __future__ import annotations

import sys
from functools import cache

from macllm_app.core.platform.base import Platform


@cache
def current() -> Platform:
    if sys.platform == "darwin":
        from macllm_app.core.platform.macos import MacOSPlatform

        return MacOSPlatform()
    from macllm_app.core.platform.linux import LinuxPlatform

    return LinuxPlatform()


__all__ = ["Platform", "current"]
