"""Platform twins, the macOS branch on recorded command output."""

from __future__ import annotations

import pytest

from macllm_app.core.child_process import describe_exit
from macllm_app.core.platform.linux import parse_psi
from macllm_app.core.platform.macos import MacOSPlatform, parse_pressure_level

PSI_CALM = (
    "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
    "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
)
PSI_BUSY = "some avg10=7.50 avg60=3.00 avg300=1.00 total=123\nfull avg10=1.00 total=1\n"
PSI_THRASH = "some avg10=42.10 avg60=30.00 avg300=9.00 total=999\n"


@pytest.mark.parametrize(
    ("text", "level"),
    [(PSI_CALM, "normal"), (PSI_BUSY, "warning"), (PSI_THRASH, "critical"), ("", "unknown")],
)
def test_linux_pressure_from_psi(text: str, level: str) -> None:
    assert parse_psi(text) == level


@pytest.mark.parametrize(
    ("output", "level"),
    [("1\n", "normal"), ("2\n", "warning"), ("4\n", "critical"), ("", "unknown"), ("x", "unknown")],
)
def test_macos_pressure_from_sysctl_output(output: str, level: str) -> None:
    assert parse_pressure_level(output) == level


def test_macos_maxrss_is_in_bytes() -> None:
    assert MacOSPlatform.maxrss_unit == 1
    assert MacOSPlatform().reveal_command("/a/b.gguf") == ["open", "-R", "/a/b.gguf"]


@pytest.mark.parametrize(
    ("code", "words"),
    [(-9, "killed by SIGKILL"), (-11, "crashed with SIGSEGV"), (3, "exit code 3"),
     (None, "stopped responding")],
)
def test_exit_descriptions(code: int | None, words: str) -> None:
    assert words in describe_exit(code)


# `mx.device_info()` as printed on an Apple M2 Max with 32 GB.
M2_MAX_DEVICE_INFO: dict[str, object] = {
    "architecture": "applegpu_g14s", "device_name": "Apple M2 Max",
    "max_buffer_length": 22906503168, "max_recommended_working_set_size": 22906503168,
    "memory_size": 34359738368, "resource_limit": 499000,
}


def test_wired_limit_covers_the_estimate_with_headroom() -> None:
    from macllm_app.core.platform.macos import WIRED_HEADROOM, wired_limit_bytes

    needed = 4 * 2**30
    assert wired_limit_bytes(needed, M2_MAX_DEVICE_INFO) == int(needed * WIRED_HEADROOM)


def test_wired_limit_stays_below_the_recommended_working_set() -> None:
    from macllm_app.core.platform.macos import WIRED_CEILING, wired_limit_bytes

    recommended = M2_MAX_DEVICE_INFO["max_recommended_working_set_size"]
    assert isinstance(recommended, int)
    limit = wired_limit_bytes(40 * 2**30, M2_MAX_DEVICE_INFO)
    assert limit == int(WIRED_CEILING * recommended) < recommended


def test_linux_sets_no_mlx_memory_limit() -> None:
    from macllm_app.core.platform.linux import LinuxPlatform

    assert LinuxPlatform().limit_mlx_memory(10 * 2**30) is None


# `vm_stat` on a 32 GB Apple Silicon Mac (macOS 15), as it prints.
VM_STAT = """\
Mach Virtual Memory Statistics: (page size of 16384 bytes)
Pages free:                               41342.
Pages active:                            766553.
Pages inactive:                          744129.
Pages speculative:                         3096.
Pages throttled:                              0.
Pages wired down:                        269858.
Pages purgeable:                          12006.
"Translation faults":                 482120379.
Pages copy-on-write:                   14420287.
Pages zero filled:                    206417446.
Pages reactivated:                     12373717.
Pages purged:                           2063011.
File-backed pages:                       464418.
Anonymous pages:                        1049360.
Pages stored in compressor:              801228.
Pages occupied by compressor:            209420.
Decompressions:                        11211017.
Compressions:                          17264287.
Pageins:                                7311427.
Pageouts:                                 42897.
Swapins:                                      0.
Swapouts:                                     0.
"""
SWAPUSAGE = "total = 2048.00M  used = 1024.50M  free = 1023.50M  (encrypted)\n"
MEMSIZE = "34359738368\n"
MEMORY_PRESSURE_Q = (
    "The system has 34359738368 (2097152 pages with a page size of 16384).\n\n"
    "System-wide memory free percentage: 41%\n"
)
# /proc/meminfo of a 24 GB Linux machine with zswap on, trimmed to the fields we read.
MEMINFO = """\
MemTotal:       24684096 kB
MemFree:         2911148 kB
MemAvailable:   14143720 kB
Buffers:           30756 kB
Cached:          9406900 kB
SwapCached:            0 kB
Unevictable:       10704 kB
Mlocked:            9800 kB
SwapTotal:       8388604 kB
SwapFree:        6291452 kB
Zswap:            262144 kB
Zswapped:         786432 kB
SReclaimable:      88656 kB
HugePages_Total:       0
"""


def test_macos_memory_from_vm_stat_sysctl_and_swapusage() -> None:
    from macllm_app.core.platform.macos import parse_vm_stat, system_memory_from

    page, pages = parse_vm_stat(VM_STAT)
    assert page == 16384 and pages["Pages wired down"] == 269858
    assert pages["Translation faults"] == 482120379  # quoted names too
    memory = system_memory_from(VM_STAT, MEMSIZE, SWAPUSAGE)
    assert memory.total_bytes == 32 * 2**30
    assert memory.wired_bytes == 269858 * 16384
    assert memory.compressed_bytes == 209420 * 16384
    assert memory.cached_bytes == (464418 + 12006) * 16384
    assert memory.used_bytes == (1049360 - 12006 + 269858 + 209420) * 16384
    assert memory.swap_used_bytes == int(1024.5 * 2**20)
    assert memory.swap_total_bytes == 2048 * 2**20
    assert 0 < memory.available_bytes < memory.total_bytes


def test_macos_free_percentage_from_memory_pressure() -> None:
    from macllm_app.core.platform.macos import parse_free_percentage

    assert parse_free_percentage(MEMORY_PRESSURE_Q) == 41
    assert parse_free_percentage("memory_pressure: command not found") is None


def test_macos_commands_that_fail_give_empty_readings() -> None:
    from macllm_app.core.platform.macos import parse_swapusage, system_memory_from

    assert parse_swapusage("") == (0, 0)
    memory = system_memory_from("", "", "")
    assert memory.total_bytes == memory.used_bytes == memory.swap_total_bytes == 0


def test_linux_memory_from_meminfo() -> None:
    from macllm_app.core.platform.linux import parse_meminfo

    memory = parse_meminfo(MEMINFO)
    assert memory.total_bytes == 24684096 * 1024
    assert memory.used_bytes == (24684096 - 14143720) * 1024
    assert memory.available_bytes == 14143720 * 1024
    assert memory.cached_bytes == (9406900 + 30756 + 88656) * 1024
    assert memory.compressed_bytes == 262144 * 1024 and memory.wired_bytes == 10704 * 1024
    assert memory.swap_used_bytes == (8388604 - 6291452) * 1024


def test_this_machines_memory_is_read() -> None:
    from macllm_app.core.platform import current

    memory = current().system_memory()
    assert memory.total_bytes > 2**30
    assert 0 < memory.used_bytes < memory.total_bytes
    percent = current().memory_free_percent()
    assert percent is not None and 0 < percent < 100


def test_the_wired_limit_waits_for_macos_15() -> None:
    from macllm_app.core.platform.macos import wired_limit_supported

    assert wired_limit_supported("15.1") and wired_limit_supported("26.0")
    assert not wired_limit_supported("14.6.1") and not wired_limit_supported("")
