"""Linux twin: memory pressure from /proc/pressure/memory (PSI)."""

from __future__ import annotations

from pathlib import Path

from macllm_app.core.platform.base import MemoryPressure, Platform

PSI_PATH = Path("/proc/pressure/memory")


def parse_psi(text: str) -> MemoryPressure:
    """Map PSI's `some avg10` stall percentage to a pressure level."""
    for line in text.splitlines():
        if line.startswith("some "):
            fields = dict(part.split("=", 1) for part in line.split()[1:])
            avg10 = float(fields.get("avg10", "0"))
            if avg10 >= 20:
                return "critical"
            if avg10 >= 5:
                return "warning"
            return "normal"
    return "unknown"


class LinuxPlatform(Platform):
    name = "linux"
    maxrss_unit = 1024

    def memory_pressure(self) -> MemoryPressure:
        try:
            return parse_psi(PSI_PATH.read_text())
        except OSError:
            return "unknown"

    def reveal_command(self, path: str) -> list[str]:
        return ["xdg-open", str(Path(path).parent)]

    def limit_mlx_memory(self, needed_bytes: int) -> int | None:
        return None  # MLX runs on the CPU here: no wired GPU memory to limit
