"""Platform twins, the macOS branch on recorded command output."""

from __future__ import annotations

import pytest

from macllm_app.core.engines.host import describe_exit
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
