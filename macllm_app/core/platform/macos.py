"""macOS twin: memory pressure from `sysctl kern.memorystatus_vm_pressure_level`."""

from __future__ import annotations

import subprocess

from macllm_app.core.platform.base import MemoryPressure, Platform

_LEVELS: dict[int, MemoryPressure] = {1: "normal", 2: "warning", 4: "critical"}


def parse_pressure_level(output: str) -> MemoryPressure:
    """Parse `sysctl -n kern.memorystatus_vm_pressure_level` (1, 2 or 4)."""
    try:
        return _LEVELS.get(int(output.strip()), "unknown")
    except ValueError:
        return "unknown"


WIRED_HEADROOM = 1.1  # room above the fit estimate for activations and the allocator
WIRED_CEILING = 0.9  # never wire more than this share of Metal's recommended working set


def wired_limit_bytes(needed_bytes: int, device_info: dict[str, object]) -> int:
    """The wired limit for a model: its estimate plus headroom, below the working set
    Metal recommends (`mx.device_info()["max_recommended_working_set_size"]`)."""
    recommended = device_info.get("max_recommended_working_set_size")
    ceiling = int(WIRED_CEILING * recommended) if isinstance(recommended, int) else 0
    wanted = int(needed_bytes * WIRED_HEADROOM)
    return min(wanted, ceiling) if ceiling > 0 else wanted


class MacOSPlatform(Platform):
    name = "macos"
    maxrss_unit = 1

    def memory_pressure(self) -> MemoryPressure:
        try:
            out = subprocess.run(
                ["sysctl", "-n", "kern.memorystatus_vm_pressure_level"],
                capture_output=True, text=True, timeout=2, check=False,
            ).stdout
        except (OSError, subprocess.SubprocessError):
            return "unknown"
        return parse_pressure_level(out)

    def reveal_command(self, path: str) -> list[str]:
        return ["open", "-R", path]

    def limit_mlx_memory(self, needed_bytes: int) -> int | None:
        import mlx.core as mx

        if not mx.metal.is_available():
            return None
        limit = wired_limit_bytes(needed_bytes, dict(mx.device_info()))
        mx.set_wired_limit(limit)
        return limit
