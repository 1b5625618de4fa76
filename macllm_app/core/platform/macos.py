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
