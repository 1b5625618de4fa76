"""What each platform twin provides."""

from __future__ import annotations

import resource
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Literal

MemoryPressure = Literal["normal", "warning", "critical", "unknown"]
PRESSURE_LEVELS: tuple[MemoryPressure, ...] = ("normal", "warning", "critical")


@dataclass(frozen=True, slots=True)
class SystemMemory:
    """The machine's memory as its own tools report it (Activity Monitor's columns on a
    Mac). Fields a platform does not have are 0: Linux has no wired or compressed
    memory in macOS's sense (zswap's pool counts as compressed where it is on)."""

    total_bytes: int
    used_bytes: int          # what applications and the system hold (not file cache)
    wired_bytes: int         # memory that can never be paged out
    compressed_bytes: int    # memory held by the compressor
    cached_bytes: int        # file cache the system can give back at once
    swap_used_bytes: int
    swap_total_bytes: int

    @property
    def available_bytes(self) -> int:
        return max(0, self.total_bytes - self.used_bytes)


class Platform(ABC):
    name: str
    #: Multiplier from `ru_maxrss` units to bytes (KiB on Linux, bytes on macOS).
    maxrss_unit: int

    def peak_rss_bytes(self) -> int:
        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * self.maxrss_unit

    @abstractmethod
    def memory_pressure(self) -> MemoryPressure: ...

    @abstractmethod
    def system_memory(self) -> SystemMemory:
        """The machine's memory now (no administrator rights needed)."""

    def memory_free_percent(self) -> int | None:
        """The share of memory free for new work (macOS: `memory_pressure`'s figure)."""
        memory = self.system_memory()
        return round(100 * memory.available_bytes / memory.total_bytes) \
            if memory.total_bytes else None

    def gpu_memory_limit_bytes(self) -> int | None:
        """How much memory the GPU may use for a model (a Mac's Metal working set);
        None where models run on the CPU or a GPU with its own memory."""
        return None

    @abstractmethod
    def reveal_command(self, path: str) -> list[str]:
        """The command that shows a file in the file manager."""

    @abstractmethod
    def limit_mlx_memory(self, needed_bytes: int) -> int | None:
        """Set MLX's wired-memory limit for a model needing `needed_bytes`
        (call only inside the engine host); the limit set, or None where there is none."""
