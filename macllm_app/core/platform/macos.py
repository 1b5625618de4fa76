"""macOS twin: memory pressure, memory and swap from `sysctl`, `vm_stat` and
`memory_pressure` (none needs administrator rights), and MLX's wired-memory limit.

Each command's output is parsed by a pure function, tested on recorded output.
"""

from __future__ import annotations

import platform
import re
import subprocess

from macllm_app.core.platform.base import MemoryPressure, Platform, SystemMemory

_LEVELS: dict[int, MemoryPressure] = {1: "normal", 2: "warning", 4: "critical"}
COMMAND_TIMEOUT_S = 2.0
_UNITS = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def parse_pressure_level(output: str) -> MemoryPressure:
    """Parse `sysctl -n kern.memorystatus_vm_pressure_level` (1, 2 or 4)."""
    try:
        return _LEVELS.get(int(output.strip()), "unknown")
    except ValueError:
        return "unknown"


def parse_vm_stat(output: str) -> tuple[int, dict[str, int]]:
    """`vm_stat`: (page size in bytes, {"Pages wired down": count, ...})."""
    size = re.search(r"page size of (\d+) bytes", output)
    pages: dict[str, int] = {}
    for line in output.splitlines()[1:]:
        name, _, value = line.rpartition(":")
        value = value.strip().rstrip(".")
        if name and value.isdigit():
            pages[name.strip().strip('"')] = int(value)
    return (int(size.group(1)) if size else 4096), pages


def parse_swapusage(output: str) -> tuple[int, int]:
    """`sysctl -n vm.swapusage` ("total = 2048.00M  used = 512.25M  free = ...") as
    (used, total) bytes."""
    values: dict[str, int] = {}
    for name, number, unit in re.findall(r"(\w+) = ([\d.]+)([KMGT])", output):
        values[name] = int(float(number) * _UNITS[unit])
    return values.get("used", 0), values.get("total", 0)


def parse_free_percentage(output: str) -> int | None:
    """`memory_pressure -Q`: "System-wide memory free percentage: 41%" -> 41."""
    found = re.search(r"memory free percentage:\s*(\d+)%", output)
    return int(found.group(1)) if found else None


def system_memory_from(vm_stat: str, memsize: str, swapusage: str) -> SystemMemory:
    """Activity Monitor's columns from `vm_stat`, `sysctl -n hw.memsize` and
    `sysctl -n vm.swapusage`: used = app memory (anonymous pages less purgeable) +
    wired + compressed; cached = file-backed + purgeable pages."""
    page, pages = parse_vm_stat(vm_stat)
    wired = pages.get("Pages wired down", 0) * page
    compressed = pages.get("Pages occupied by compressor", 0) * page
    purgeable = pages.get("Pages purgeable", 0)
    app = max(0, pages.get("Anonymous pages", 0) - purgeable) * page
    swap_used, swap_total = parse_swapusage(swapusage)
    return SystemMemory(
        total_bytes=int(memsize.strip() or 0),
        used_bytes=app + wired + compressed,
        wired_bytes=wired,
        compressed_bytes=compressed,
        cached_bytes=(pages.get("File-backed pages", 0) + purgeable) * page,
        swap_used_bytes=swap_used,
        swap_total_bytes=swap_total,
    )


#: Metal's recommended working set, as a share of memory, by machine size: about two
#: thirds up to 36 GB and three quarters above (what `recommendedMaxWorkingSetSize`
#: reports), unless `sysctl iogpu.wired_limit_mb` sets a limit of its own.
WORKING_SET_SMALL, WORKING_SET_LARGE, LARGE_MAC_BYTES = 0.67, 0.75, 36 * 1024**3


def gpu_limit_from(wired_limit_mb: str, memsize: str) -> int | None:
    """The GPU's memory limit from `sysctl -n iogpu.wired_limit_mb` and `hw.memsize`."""
    limit = wired_limit_mb.strip()
    if limit.isdigit() and int(limit) > 0:
        return int(limit) * 1024**2
    total = memsize.strip()
    if not total.isdigit() or int(total) == 0:
        return None
    share = WORKING_SET_LARGE if int(total) > LARGE_MAC_BYTES else WORKING_SET_SMALL
    return int(int(total) * share)


WIRED_HEADROOM = 1.1  # room above the fit estimate for activations and the allocator
WIRED_CEILING = 0.9  # never wire more than this share of Metal's recommended working set
WIRED_LIMIT_SINCE = 15  # macOS 15 (Sequoia) is the first to honour MLX's wired limit


def wired_limit_bytes(needed_bytes: int, device_info: dict[str, object]) -> int:
    """The wired limit for a model: its estimate plus headroom, below the working set
    Metal recommends (`mx.device_info()["max_recommended_working_set_size"]`)."""
    recommended = device_info.get("max_recommended_working_set_size")
    ceiling = int(WIRED_CEILING * recommended) if isinstance(recommended, int) else 0
    wanted = int(needed_bytes * WIRED_HEADROOM)
    return min(wanted, ceiling) if ceiling > 0 else wanted


def wired_limit_supported(mac_version: str) -> bool:
    """True on macOS 15 or later (`platform.mac_ver()[0]`, e.g. "15.1")."""
    major = mac_version.split(".", 1)[0]
    return major.isdigit() and int(major) >= WIRED_LIMIT_SINCE


def _run(*command: str) -> str:
    try:
        return subprocess.run(command, capture_output=True, text=True,
                              timeout=COMMAND_TIMEOUT_S, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


class MacOSPlatform(Platform):
    name = "macos"
    maxrss_unit = 1

    def memory_pressure(self) -> MemoryPressure:
        return parse_pressure_level(_run("sysctl", "-n", "kern.memorystatus_vm_pressure_level"))

    def system_memory(self) -> SystemMemory:
        return system_memory_from(_run("vm_stat"), _run("sysctl", "-n", "hw.memsize"),
                                  _run("sysctl", "-n", "vm.swapusage"))

    def memory_free_percent(self) -> int | None:
        return parse_free_percentage(_run("memory_pressure", "-Q"))

    def gpu_memory_limit_bytes(self) -> int | None:
        if platform.machine() != "arm64":
            return None  # an Intel Mac's GPU has memory of its own
        return gpu_limit_from(_run("sysctl", "-n", "iogpu.wired_limit_mb"),
                              _run("sysctl", "-n", "hw.memsize"))

    def reveal_command(self, path: str) -> list[str]:
        return ["open", "-R", path]

    def limit_mlx_memory(self, needed_bytes: int) -> int | None:
        import mlx.core as mx

        if not mx.metal.is_available() or not wired_limit_supported(platform.mac_ver()[0]):
            return None
        limit = wired_limit_bytes(needed_bytes, dict(mx.device_info()))
        mx.set_wired_limit(limit)
        return limit
