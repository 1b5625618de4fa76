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
