"""How the app writes sizes, in one place (binary units, as file managers on a Mac do not,
but as Activity Monitor's memory columns do)."""

from __future__ import annotations

_UNITS = ("B", "KB", "MB", "GB", "TB")


def human_size(n: int | float | None) -> str:
    """'512 B', '12 KB', '93.8 MB', '3.0 GB'; '?' when unknown."""
    if n is None:
        return "?"
    size = float(n)
    for unit in _UNITS:
        if abs(size) < 1024 or unit == _UNITS[-1]:
            return f"{size:.0f} {unit}" if unit in ("B", "KB") else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")
