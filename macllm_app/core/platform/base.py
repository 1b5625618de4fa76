"""What each platform twin provides."""

from __future__ import annotations

import resource
from abc import ABC, abstractmethod
from typing import Literal

MemoryPressure = Literal["normal", "warning", "critical", "unknown"]


class Platform(ABC):
    name: str
    #: Multiplier from `ru_maxrss` units to bytes (KiB on Linux, bytes on macOS).
    maxrss_unit: int

    def peak_rss_bytes(self) -> int:
        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * self.maxrss_unit

    @abstractmethod
    def memory_pressure(self) -> MemoryPressure: ...

    @abstractmethod
    def reveal_command(self, path: str) -> list[str]:
        """The command that shows a file in the file manager."""

    @abstractmethod
    def limit_mlx_memory(self, needed_bytes: int) -> int | None:
        """Set MLX's wired-memory limit for a model needing `needed_bytes`
        (call only inside the engine host); the limit set, or None where there is none."""
