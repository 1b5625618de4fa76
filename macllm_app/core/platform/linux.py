"""Linux twin: memory pressure from PSI (`/proc/pressure/memory`), memory from
`/proc/meminfo`."""

from __future__ import annotations

from pathlib import Path

from macllm_app.core.platform.base import MemoryPressure, Platform, SystemMemory

PSI_PATH = Path("/proc/pressure/memory")
MEMINFO_PATH = Path("/proc/meminfo")


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


def parse_meminfo(text: str) -> SystemMemory:
    """`/proc/meminfo` (values in kB) as the monitor's columns: used is what is not
    available (MemAvailable, as `free` and htop count it), wired the unevictable
    pages, compressed zswap's pool, cached the page cache and reclaimable slabs."""
    kb: dict[str, int] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            kb[name.strip()] = int(parts[0])
    total = kb.get("MemTotal", 0)
    available = kb.get("MemAvailable", kb.get("MemFree", 0))
    return SystemMemory(
        total_bytes=total * 1024,
        used_bytes=max(0, total - available) * 1024,
        wired_bytes=kb.get("Unevictable", 0) * 1024,
        compressed_bytes=kb.get("Zswap", 0) * 1024,
        cached_bytes=(kb.get("Cached", 0) + kb.get("Buffers", 0)
                      + kb.get("SReclaimable", 0)) * 1024,
        swap_used_bytes=max(0, kb.get("SwapTotal", 0) - kb.get("SwapFree", 0)) * 1024,
        swap_total_bytes=kb.get("SwapTotal", 0) * 1024,
    )


class LinuxPlatform(Platform):
    name = "linux"
    maxrss_unit = 1024

    def memory_pressure(self) -> MemoryPressure:
        try:
            return parse_psi(PSI_PATH.read_text())
        except OSError:
            return "unknown"

    def system_memory(self) -> SystemMemory:
        return parse_meminfo(MEMINFO_PATH.read_text())

    def reveal_command(self, path: str) -> list[str]:
        return ["xdg-open", str(Path(path).parent)]

    def limit_mlx_memory(self, needed_bytes: int) -> int | None:
        return None  # MLX runs on the CPU here: no wired GPU memory to limit
